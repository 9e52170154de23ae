"""What on-call reads in a task log while a sync runs: one INFO line per committed page (rows so
far, rows/s, % and ETA when the total is known) and the closing summary once; and the sync_log
row names the task instance, so the Data sync page can link to that log."""

import logging
import os
import subprocess
import sys

from engine_fixtures import bookkept, create_items
from harness import REPO

from datasync.engine import SqlSource, SyncSpec, run_sync
from datasync.engine.progress import Progress


class Collected(logging.Handler):
    """Records of the datasync loggers, whatever Airflow's logging set-up does to the root logger."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        self.logger = logging.getLogger("datasync")
        self.level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


def test_a_page_line_says_rows_rate_share_and_eta():
    ticks = iter([0.0, 2.0, 4.0])
    progress = Progress("lifecycle_sync.sync_products", 100, clock=lambda: next(ticks))
    with Collected() as logged:
        progress.page(25)
        progress.page(25)
    assert [r.levelno for r in logged.records] == [logging.INFO, logging.INFO]
    assert logged.messages == [
        "lifecycle_sync.sync_products: page 1 committed: 25 rows so far (12 rows/s), 25% of 100, ETA 6s",
        "lifecycle_sync.sync_products: page 2 committed: 50 rows so far (12 rows/s), 50% of 100, ETA 4s",
    ]
    unknown = Progress("tekmetric_sync.1.customers", None, committed=False, clock=lambda: 1.0)
    assert unknown.page(7).endswith("7 rows so far (7,000,000 rows/s); the run commits when every page is written")


def test_each_committed_page_of_a_real_sync_is_logged_with_its_total(database_factory):
    src = bookkept(database_factory("postgres", "src"), "eng_src")
    tgt = bookkept(database_factory("postgres", "tgt"), "eng_tgt")
    create_items(src)
    create_items(tgt)
    src.query("INSERT INTO items SELECT i, 'item ' || i, i, 1.5, NULL, now() - interval '1 hour' + i * interval '1 second' "
              "FROM generate_series(1, 25) i")
    spec = SyncSpec(name="monitor_test.items", target_table="items", key=["id"], cursor_column="updated_at", batch_size=10)
    with Collected() as logged:
        run_sync(spec, SqlSource("eng_src", table="items"), "eng_tgt", run_id="manual__1")
    pages = [m for m in logged.messages if ": page " in m]
    assert [p.split(": ", 1)[1].split(" (")[0] for p in pages] == [
        "page 1 committed: 10 rows so far", "page 2 committed: 20 rows so far", "page 3 committed: 25 rows so far"]
    assert "40% of 25, ETA" in pages[0] and "100% of 25, ETA 0s" in pages[2]
    assert all(r.levelno == logging.INFO for r in logged.records if ": page " in r.getMessage())
    assert sum("eng_src.items -> eng_tgt.items" in m for m in logged.messages) == 1


def test_in_a_dag_run_the_summary_is_logged_once_and_sync_log_names_the_task_instance(database_factory, airflow_db):
    src = bookkept(database_factory("postgres", "src"), "eng_src")
    tgt = bookkept(database_factory("mysql", "tgt"), "eng_tgt")
    create_items(src)
    create_items(tgt)
    src.query("INSERT INTO items VALUES (7, 'from query', 1, 1.5, NULL, '2026-03-01T00:00:00Z')")

    # `airflow dags test` prints the task logs, as make demo shows them
    done = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "engine_operators"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "plugins")})
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0 and any("state=success" in line for line in lines if "DagRun Finished" in line), lines[-20:]
    summaries = [line for line in lines if "engine_operators.sync_table:" in line and " -> eng_tgt.items" in line]
    assert len(summaries) == 1, summaries
    assert any("engine_operators.upsert_rows: page 1 committed: 2 rows so far" in line and "100% of 2" in line
               and "[info" in line for line in lines)
    recorded = tgt.query("SELECT sync_name, run_id, dag_id, task_id, map_index, try_number FROM sync_log ORDER BY id")
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in recorded] == [
        ("engine_operators.upsert_rows", "engine_operators", "upsert_rows", -1, 1),
        ("engine_operators.upsert_query", "engine_operators", "upsert_query", -1, 1),
        ("engine_operators.sync_table", "engine_operators", "sync_table", -1, 1),
    ]
    assert len({r[1] for r in recorded}) == 1 and recorded[0][1].startswith("manual__")
