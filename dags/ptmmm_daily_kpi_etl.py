"""
### ptmmm_daily_kpi_etl

The PTMMM daily KPIs, replacing the `run_daily_kpi_etl.sh` cron job: every day
at **23:00 WIB** (Asia/Jakarta) it computes the **previous WIB day** from the operational tables
in TiDB (`tidb_ops`) into `inventory_kpi_daily` / `fleet_kpi_daily`, checks them, mirrors that
day to Supabase (`supabase_ptmmm`) and, when configured, to a Google Sheet.

| task | does |
|---|---|
| `validate_data_date` | `data_date` param (or the WIB day before the logical date): a real day, not in the future, not before the first ops data. Nothing is written before this passes. |
| `check_ops_data` | the day's orders / movements / shipments / scans. **An empty day fails** (import missed?) unless `allow_empty_day`. |
| `run_kpi_etl` | `CALL sp_run_daily_kpi_etl` (MySQL/MariaDB) or the same statements in one transaction (TiDB). Replaces the day. |
| `check_kpi_quality` | one row per active warehouse, no negatives, percentages 0..100, stock balances; exclusions past `max_excluded_pct`. Fails before the mirror. |
| `mirror_to_supabase` | the day's rows upserted, the day's stale rows deleted, one transaction; `sync_log`. Publishes asset `ptmmm/kpi_daily`. |
| `export_to_sheet` | replaces the day's rows in the KPI sheet (`google_sheets` + param/Variable `ptmmm_kpi_spreadsheet_id`); skipped when unconfigured. |

Each task derives the date itself, so **clearing any one task reruns just that step** (e.g. the
mirror after a Supabase outage). Backfill (`airflow backfill create --dag-id ptmmm_daily_kpi_etl
--from-date ... --to-date ...`) gives one run per day; runs go one at a time.
Runbook: `docs/etl/daily_kpi_etl.md`.
"""

import pendulum
from airflow.sdk import DAG, Asset, Param, chain, task
from airflow.timetables.trigger import CronTriggerTimetable

from datasync.defaults import DEFAULT_ARGS
from datasync.ptmmm import daily

with DAG(
    dag_id=daily.DAG_ID,
    description="Daily at 23:00 WIB (Asia/Jakarta): the previous WIB day's PTMMM KPIs, TiDB -> Supabase (-> Sheet).",
    # A trigger timetable: the logical date is the 23:00 WIB firing time, the day computed is the one before.
    schedule=CronTriggerTimetable("0 23 * * *", timezone=pendulum.timezone("Asia/Jakarta")),
    # Early on purpose: backfills need logical dates after it; catchup=False keeps the scheduler from going back.
    start_date=daily.BACKFILL_FROM,
    catchup=False,
    # One day at a time: the ETL lock serialises days anyway, and the Sheet export rewrites whole tabs.
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ptmmm", "kpi", "tidb", "supabase"],
    doc_md=__doc__,
    params={
        "data_date": Param(None, type=["null", "string"], format="date", title="Data date (WIB)",
                           description="The WIB day to compute. Empty: the day before the run's logical date."),
        "allow_empty_day": Param(False, type="boolean", title="Allow an empty day",
                                 description="Compute KPI rows of zeros for a day without any operational data (a holiday)."),
        "max_excluded_pct": Param(daily.MAX_EXCLUDED_PCT, type="number", minimum=0, maximum=100,
                                  title="Max excluded rows (%)",
                                  description=f"Fail when more of the day's movements and shipments than this were left out "
                                              f"of the KPIs (and at least {daily.MIN_EXCLUDED_TO_FAIL})."),
        "spreadsheet_id": Param(None, type=["null", "string"], title="KPI spreadsheet id",
                                description="Google Sheet to export to; empty: the Variable ptmmm_kpi_spreadsheet_id."),
    },
):

    @task(task_id="validate_data_date")
    def validate_data_date(**context):
        return daily.validate(context)

    @task(task_id="check_ops_data")
    def check_ops_data(**context):
        return daily.check_ops(context)

    @task(task_id="run_kpi_etl")
    def run_kpi_etl(**context):
        return daily.compute(context)

    @task(task_id="check_kpi_quality")
    def check_kpi_quality(**context):
        return daily.check_quality(context)

    @task(task_id="mirror_to_supabase", outlets=[Asset(daily.ASSET_NAME)])
    def mirror_to_supabase(**context):
        return daily.mirror(context)

    @task(task_id="export_to_sheet")
    def export_to_sheet(**context):
        return daily.export_sheet(context)

    chain(validate_data_date(), check_ops_data(), run_kpi_etl(), check_kpi_quality(), mirror_to_supabase(), export_to_sheet())
