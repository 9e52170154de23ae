"""
### ptmmm_master_data

Warehouses, SKUs and vehicles from the PTMMM **master Google Sheet** into TiDB (`tidb_ops`),
replacing the v0.3.0 Apps Script import. Runs daily at 22:00 WIB, an hour before
`ptmmm_daily_kpi_etl`, so a warehouse opened today is in tonight's KPIs; trigger it by hand
after editing the sheet.

* Tabs `warehouses`, `skus`, `vehicles`, one header row each; rows are matched by **code**
  (vehicles by `plate_no`) within their organisation and upserted; existing ids are kept.
* Bad rows (unknown organisation or warehouse code, duplicate code, unreadable time, values the
  table refuses) go to `tidb_ops.sync_rejects` with the reason; up to `max_rejects` per tab the
  rest is written, past it nothing of that tab is and the task fails. Each tab is a `sync_log` row.
* Needs the connection `google_sheets` and the spreadsheet (param `spreadsheet_id` or Variable
  `ptmmm_master_spreadsheet_id`); without them every task **skips**.

Sheet layout and column rules: `docs/etl/daily_kpi_etl.md`, "Master data".
"""

import pendulum
from airflow.sdk import DAG, Param, task
from airflow.timetables.trigger import CronTriggerTimetable

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.ptmmm import master_data

with DAG(
    dag_id=master_data.DAG_ID,
    description="Daily at 22:00 WIB (Asia/Jakarta): warehouses, SKUs, vehicles from the master Google Sheet into TiDB.",
    schedule=CronTriggerTimetable("0 22 * * *", timezone=pendulum.timezone("Asia/Jakarta")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # each run reads the whole sheet; an older run has nothing to add
    default_args=DEFAULT_ARGS,
    tags=["ptmmm", "master-data", "sheets", "tidb"],
    doc_md=__doc__,
    params={
        "spreadsheet_id": Param(None, type=["null", "string"], title="Master spreadsheet id",
                                description="Empty: the Variable ptmmm_master_spreadsheet_id."),
        "max_rejects": Param(10, type="integer", minimum=0, title="Max rejects per tab",
                             description="Bad rows a tab may have before nothing of it is written."),
    },
):
    imports = {}
    for table in master_data.ORDER:

        @task(task_id=f"import_{table}", doc_md=f"Upsert the `{table}` tab into `tidb_ops.{table}`.")
        def import_table(table: str, params=None, run_id=None) -> dict:
            return master_data.import_task(table, params, run_id)

        imports[table] = import_table(table)

    imports["warehouses"] >> imports["vehicles"]  # vehicles name their warehouse by code
