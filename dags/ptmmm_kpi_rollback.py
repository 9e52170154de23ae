"""
### ptmmm_kpi_rollback

Manual rollback of **one day's** PTMMM KPI rows (KPI data only:
safe for operations, the ops tables are not touched).

* `data_date` (required): the WIB day to remove.
* `sides`: `tidb` (`inventory_kpi_daily`, `fleet_kpi_daily`, `kpi_daily_exclusions` in `tidb_ops`)
  and/or `supabase` (the mirror tables in `supabase_ptmmm`).

Each side is one transaction, taken under the same lock as the ETL (TiDB) or the mirror
(Supabase), so it never interleaves with a run of `ptmmm_daily_kpi_etl`. The task log lists how
many rows of which warehouses were deleted; the same goes to `sync_log` (mode `rollback`) in
that database. To restore the day, trigger `ptmmm_daily_kpi_etl` with the same `data_date`.
Runbook: `docs/etl/daily_kpi_etl.md`, "Rollback".
"""

from airflow.sdk import DAG, Param, task

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.ptmmm import rollback

with DAG(
    dag_id="ptmmm_kpi_rollback",
    description="Delete one day's PTMMM KPI rows in TiDB and/or Supabase (on demand).",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # a rollback is a deliberate, one-off act: never two at once
    default_args=DEFAULT_ARGS,
    tags=["ptmmm", "kpi", "rollback"],
    doc_md=__doc__,
    params={
        "data_date": Param(type="string", format="date", title="Data date (WIB)",
                           description="The day whose KPI rows are deleted."),
        "sides": Param(list(rollback.SIDES), type="array", minItems=1, uniqueItems=True,
                       items={"type": "string", "enum": list(rollback.SIDES)}, examples=list(rollback.SIDES),
                       title="Sides", description="Where to delete the day's KPI rows."),
    },
):
    for side in rollback.SIDES:

        @task(task_id=f"delete_{side}", doc_md=f"Delete the day's KPI rows on `{side}`.")
        def delete_day(side: str, params=None, run_id=None) -> dict:
            return rollback.rollback_task(side, params, run_id)

        delete_day(side)
