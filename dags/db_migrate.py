"""
### db_migrate

Applies the numbered SQL migrations in `include/sql/<target>/` to each database, through its
Airflow connection. One task per target; the `targets` param picks which run (the others skip).

| target | connection |
|---|---|
| tidb | `tidb_ops` |
| supabase | `supabase_ptmmm` |
| lifecycle | `lifecycle_db` |
| pmo | `pmo_db` |
| tekmetric | `tekmetric_warehouse` |
| registry | `registry_db` |

Safe to rerun: applied files are skipped (ledger table `datasync_migrations`). A file edited
after it was applied stops the task with its name; add a new numbered file instead.
Same runner from a shell: `python -m datasync migrate [target ...]`.
"""

from airflow.sdk import DAG, Param, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.migrate import TARGETS

with DAG(
    dag_id="db_migrate",
    description="Apply the SQL migrations to every target database (on demand).",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two migration runs would only queue on the same lock
    default_args=DEFAULT_ARGS,
    tags=["ops", "migrations"],
    doc_md=__doc__,
    params={
        "targets": Param(
            list(TARGETS),
            type="array",
            items={"type": "string", "enum": list(TARGETS)},
            examples=list(TARGETS),
            title="Targets",
            description="Databases to migrate.",
        )
    },
):
    for target_name in TARGETS:

        @task(task_id=f"migrate_{target_name}", doc_md=f"Migrate `{target_name}` ({TARGETS[target_name].conn_id}).")
        def migrate_target(name: str, params=None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from datasync.migrate import migrate

            if name not in params["targets"]:
                raise AirflowSkipException(f"{name} not selected in params.targets")
            report = migrate([name])[0]
            print(report.summary())
            return {"applied": report.applied, "skipped": report.skipped}

        migrate_target(target_name)
