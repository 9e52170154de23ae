"""The "Data sync" page in the Airflow UI: an Airflow plugin mounting :mod:`datasync.monitor`.

The API server serves the page at ``/datasync/`` (JSON under ``/datasync/api/``); the UI shows it
in its navigation, and as a tab on every DAG (that DAG's syncs) and task instance (the runs and
rejects that task instance recorded). Only signed-in Airflow users see it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from datasync.monitor import URL_PREFIX, PageApp


class DataSyncPlugin(AirflowPlugin):
    name = "datasync"
    fastapi_apps = [{"app": PageApp(), "url_prefix": URL_PREFIX, "name": "Data sync"}]
    external_views = [
        {"name": "Data sync", "href": f"{URL_PREFIX}/", "url_route": "datasync", "destination": "nav",
         "nav_top_level": True},
        {"name": "Data sync", "href": f"{URL_PREFIX}/?dag={{DAG_ID}}", "url_route": "datasync_dag", "destination": "dag"},
        {"name": "Data sync", "href": f"{URL_PREFIX}/ti/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
         "url_route": "datasync_task_instance", "destination": "task_instance"},
    ]
