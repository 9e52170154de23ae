"""source_registry_runner end to end: the real DAG through dag.test() over a small registry on
real Postgres, with real files, a loopback HTTP API, real subprocesses and a database source
whose primary server is down."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from openpyxl import Workbook

from harness import load_dag, run_dag, task_states
from policies import command_spec, policy_variable, reader_login
from runner_fixtures import (  # noqa: F401  (loopback is a fixture)
    Registry, captured_output, loopback, migrated_registry, program, registry_bound, rerun_cleared,
    xcom_and_rendered_text,
)

TOKEN = "tok-REDACT-ME-7f3a9c"  # resolved from an Airflow Variable at run time only
ECHO_ARGV = "import json, sys\nprint(json.dumps([{'i': i, 'arg': a} for i, a in enumerate(sys.argv[1:])]))\n"

PRODUCTION = {"columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "machine", "source": "machine"},
    {"column": "qty", "source": "qty", "cast": "int"},
    {"column": "updated_at", "source": "updated_at", "cast": "timestamp"}]}


def cols(*names, cast=None):
    return {"columns": [{"column": n, "source": n, **({"cast": cast[n]} if cast and n in cast else {})} for n in names]}


@pytest.fixture(scope="module")
def world(database_factory, airflow_db, loopback, tmp_path_factory):
    """A registry with one good source of each type, one bad source per way of failing, and
    sources the runner must leave alone; then one run of the DAG."""
    d = tmp_path_factory.mktemp("registry_runner")
    db = migrated_registry(database_factory, "regrun")
    src = database_factory("postgres", "regrun_src")
    src.query("CREATE TABLE machine_layout_src (machine TEXT PRIMARY KEY, hall TEXT, x INT, y INT)")
    src.query("INSERT INTO machine_layout_src VALUES ('M1', 'A', 1, 2), ('M2', 'A', 3, 4), ('M3', 'B', 5, 6)")
    drop_reader = reader_login(src, "registry_src_db")  # the platform gives registry sources a read-only login
    os.environ["AIRFLOW_CONN_REGISTRY_DOWN_DB"] = "postgresql://postgres@127.0.0.1:1/nothing"  # refused
    os.environ["AIRFLOW_VAR_REGISTRY_RUNNER_TOKEN"] = TOKEN
    db.query("CREATE TABLE y (id INT)")  # what an injected "DROP TABLE y" would hit

    (d / "production.json").write_text(json.dumps({"data": [
        {"id": i, "machine": f"M{i}", "qty": str(10 * i), "updated_at": f"2026-01-05T0{i}:00:00Z"} for i in (1, 2, 3)]}))
    (d / "shifts.csv").write_text("shift,start,end\nPagi,06:00,14:00\nSiang,14:00,22:00\nMalam,22:00,06:00\n")
    wb = Workbook()
    wb.active.append(["Date", "Line", "Target"])
    for day in (5, 6):
        wb.active.append([dt.datetime(2026, 1, day), "L1", 100 + day])
    wb.save(d / "target.xlsx")
    (d / "cycle.json").write_text('[{"id": 1, "seconds": 42},')  # cut off
    (d / "downtime.csv").write_text("machine,minutes\nM1,5\nM2,7,extra\n")
    (d / "power.xlsx").write_text("this is not a workbook")

    def oee(req):
        if req["headers"].get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"error": "bad token"}
        return 200, {"items": [{"id": 1, "oee": "0.85", "updated_at": "2026-01-05T08:00:00Z"},
                               {"id": 2, "oee": "0.91", "updated_at": "2026-01-05T09:00:00Z"}]}

    loopback.routes["/oee"] = oee
    # a hostile server echoing the credential back: it must not reach any message we keep
    loopback.routes["/vibration"] = lambda req: (500, f"boom {req['headers'].get('Authorization')}")
    loopback.routes["/ofm"] = lambda req: (200, "<html>maintenance page</html>")
    echo = program(d, "echo.py", ECHO_ARGV)
    slow = program(d, "slow.py", "import time\ntime.sleep(30)\n")
    fails = program(d, "fails.py", "import sys\nprint('cannot reach machine 7', file=sys.stderr)\nsys.exit(3)\n")
    api = {"base_url": loopback.url, "retries": 1, "backoff": 0.01, "rate_limit": 6000, "timeout": 5,
           "headers": {"Authorization": "Bearer {{ var.registry_runner_token }}"}}
    marker = d / "pwned"

    reg = Registry(db)
    reg.add("prod_json", "json", [{"file_path": str(d / "production.json"), "records_path": "data"}],
            [{"target_table": "actual_production", "key_columns": ["id"], "cursor_field": "updated_at",
              "sync_strategy": "incremental", **PRODUCTION}], name="Aktual Produksi", priority=2)
    reg.add("csv_full", "csv", [{"file_path": str(d / "shifts.csv")}],
            [{"target_table": "shift_schedules", "key_columns": ["shift"], **cols("shift", "start", "end")}],
            name="Shift Schedules", priority=3)
    reg.add("excel_full", "excel", [{"file_path": str(d / "target.xlsx")}],
            [{"target_table": "production_target", "key_columns": ["plan_date", "line"], "columns": [
                {"column": "plan_date", "source": "Date", "cast": "date"}, {"column": "line", "source": "Line"},
                {"column": "target", "source": "Target", "cast": "int"}]}], name="Production Target")
    reg.add("db_backup", "database",
            [{"name": "plant-primary", "conn_id": "registry_down_db", "table": "machine_layout_src"},
             {"name": "plant-replica", "conn_id": "registry_src_db", "table": "machine_layout_src"}],
            [{"target_table": "machine_layout", "key_columns": ["machine"], **cols("machine", "hall", "x", "y",
                                                                                   cast={"x": "int", "y": "int"})}],
            name="Machine Layout")
    reg.add("api_secret", "api", [{**api, "endpoint": "/oee", "records_path": "items"}],
            [{"target_table": "oee", "key_columns": ["id"], "cursor_field": "updated_at", "sync_strategy": "incremental",
              **cols("id", "oee", "updated_at", cast={"id": "int", "oee": "decimal", "updated_at": "timestamp"})}],
            name="OEE", priority=1)
    # what the platform team allows: these files, these connections, these commands
    allowed = {
        "file_roots": [str(d)],
        "database_connections": ["registry_down_db", "registry_src_db"],
        "placeholder_variables": ["registry_runner_token"],
        "api_origins": [loopback.url],
        "api_private_networks": ["127.0.0.0/8"],
        # even a command whose parameters may be any text never sees a shell
        "artisan_commands": {"echo": command_spec(echo, parameters=(".+",)), "slow": command_spec(slow),
                             "fails": command_spec(fails)},
    }
    reg.add("artisan_literal", "artisan",
            [{"command": "echo", "parameters": ["data:sync", f"; touch {marker}", f"&& touch {marker}", f"$(touch {marker})"],
              "timeout": 20}],
            [{"target_table": "incident_count", "key_columns": ["i"], **cols("i", "arg", cast={"i": "int"})}],
            name="Incident Count")
    failing = {
        "bad_json": ("json", {"file_path": str(d / "cycle.json")}, "Cycle Time"),
        "bad_csv": ("csv", {"file_path": str(d / "downtime.csv")}, "Downtime"),
        "bad_excel": ("excel", {"file_path": str(d / "power.xlsx")}, "Power Consumption"),
        "missing_file": ("json", {"file_path": str(d / "nope.json")}, "Electric Consumption"),
        "api_500": ("api", {**api, "endpoint": "/vibration"}, "Temperature vs Vibration"),
        "api_garbage": ("api", {**api, "endpoint": "/ofm"}, "OFM"),
        "cmd_timeout": ("artisan", {"command": "slow", "timeout": 1}, "NRFC"),
        "cmd_exit": ("artisan", {"command": "fails", "timeout": 20}, "NRFW"),
        # hostile rows: what only the platform may decide (trust model); none of them runs or reads
        "evil_shell": ("artisan", {"command": ["/bin/sh", "-c", f"touch {marker}"]}, "Shell"),
        "evil_env": ("artisan", {"command": "echo", "env": {"LD_PRELOAD": "{{ var.registry_runner_token }}"}}, "Env"),
        "evil_environ": ("json", {"file_path": "/proc/self/environ"}, "Environ"),
    }
    for sid, (kind, config, name) in failing.items():
        reg.add(sid, kind, [config], [{"target_table": f"t_{sid}", "key_columns": ["id"], **cols("id")}], name=name)
    reg.add("evil_column", "json", [{"file_path": str(d / "production.json"), "records_path": "data"}],
            [{"target_table": "nrdae", "key_columns": ["id"],
              "columns": [{"column": "id", "source": "id"}, {"column": "x; DROP TABLE y", "source": "machine"}]}],
            name="NRDAE")
    left_alone = {"inactive": {"status": "inactive"}, "maintenance": {"status": "maintenance"},
                  "in_error": {"status": "error", "error_count": 3},
                  "not_due": {"next_sync": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)}}
    for sid, extra in left_alone.items():
        reg.add(sid, "json", [{"file_path": str(d / "production.json"), "records_path": "data"}],
                [{"target_table": f"t_{sid}", "key_columns": ["id"], **cols("id")}], **extra)
    reg.add("rt_json", "json", [{"file_path": str(d / "production.json"), "records_path": "data"}],
            [{"target_table": "produksi_rejected", "key_columns": ["id"], "cursor_field": "updated_at",
              "sync_strategy": "realtime", **PRODUCTION}], name="Produksi & Rejected Mesin")

    with registry_bound(db), policy_variable(allowed):
        dag = load_dag("source_registry_runner")
        with captured_output() as output:
            dag_run = run_dag(dag)
        yield {"db": db, "reg": reg, "dag": dag, "run": dag_run, "states": task_states(dag_run), "dir": d,
               "output": output(), "server": loopback, "marker": marker, "failing": failing}
    drop_reader()


GOOD = ["prod_json", "csv_full", "excel_full", "db_backup", "api_secret", "artisan_literal"]
BAD = ["bad_json", "bad_csv", "bad_excel", "missing_file", "api_500", "api_garbage", "cmd_timeout", "cmd_exit",
       "evil_column", "evil_shell", "evil_env", "evil_environ"]


def mapped(world):
    """source_id -> (map_index, state, rendered label) of the run's sync_source instances."""
    tis = [ti for ti in world["run"].get_task_instances() if ti.task_id == "sync_source"]
    names = {r[0]: r[1] for r in world["db"].query("SELECT name, source_id FROM data_source_registry")}
    return {names[ti.rendered_map_index]: (ti.map_index, ti.state, ti.rendered_map_index) for ti in tis}


def test_each_source_is_its_own_task_and_failures_stay_there(world):
    assert world["states"]["pick_sources"] == "success"
    assert world["run"].state == "failed"  # honest: some sources failed
    instances = mapped(world)
    assert {s for s, (_, state, _) in instances.items() if state == "success"} == set(GOOD)
    assert {s for s, (_, state, _) in instances.items() if state == "failed"} == set(BAD)
    # high priority first: the scheduler queues mapped instances by map index
    priority = dict(world["db"].query("SELECT source_id, priority FROM data_source_registry"))
    by_index = sorted(instances, key=lambda s: instances[s][0])
    assert [priority[s] for s in by_index] == sorted(priority[s] for s in by_index)
    assert by_index[-2:] == ["prod_json", "csv_full"]
    assert instances["db_backup"][2] == "Machine Layout"


def test_target_tables_hold_the_source_rows(world):
    db = world["db"]
    assert db.query("SELECT id, machine, qty, updated_at FROM actual_production ORDER BY id") == [
        (i, f"M{i}", 10 * i, dt.datetime(2026, 1, 5, i, tzinfo=dt.timezone.utc)) for i in (1, 2, 3)]
    assert db.query("SELECT shift, start, \"end\" FROM shift_schedules ORDER BY start") == [
        ("Pagi", "06:00", "14:00"), ("Siang", "14:00", "22:00"), ("Malam", "22:00", "06:00")]
    assert db.query("SELECT plan_date, line, target FROM production_target ORDER BY plan_date") == [
        (dt.date(2026, 1, 5), "L1", 105), (dt.date(2026, 1, 6), "L1", 106)]
    assert db.query("SELECT machine, hall, x, y FROM machine_layout ORDER BY machine") == [
        ("M1", "A", 1, 2), ("M2", "A", 3, 4), ("M3", "B", 5, 6)]
    assert [(i, str(v)) for i, v in db.query("SELECT id, oee FROM oee ORDER BY id")] == [(1, "0.85"), (2, "0.91")]


def test_history_and_registry_record_every_source(world):
    reg = world["reg"]
    for sid in GOOD:
        (h,) = reg.history(sid)
        assert h["sync_status"] == "success", (sid, h)
        assert h["run_id"] == world["run"].run_id and h["sync_duration_ms"] >= 0
        st = reg.state(sid)
        assert (st["status"], st["error_count"], st["last_error"]) == ("active", 0, None)
        assert st["last_sync"] is not None and st["next_sync"] > st["last_sync"]
    h = reg.history("prod_json")[0]
    assert (h["sync_type"], h["connection_role"], h["records_processed"], h["records_inserted"]) == ("incremental", "primary", 3, 3)
    h = reg.history("db_backup")[0]
    assert (h["connection_role"], h["records_inserted"]) == ("backup", 3)
    assert "served by backup 'plant-replica'" in h["error_message"] and "primary 'plant-primary' failed" in h["error_message"]
    for sid in BAD:
        (h,) = reg.history(sid)
        assert h["sync_status"] == "failed" and h["error_message"], sid
        st = reg.state(sid)
        assert (st["status"], st["error_count"], st["last_error"] is not None) == ("active", 1, True), sid
        assert st["last_sync"] is None and st["next_sync"] is not None
    errors = {sid: reg.history(sid)[0]["error_message"] for sid in BAD}
    assert "malformed JSON" in errors["bad_json"]
    assert "3 fields, but the header has 2" in errors["bad_csv"]
    assert "not a readable .xlsx workbook" in errors["bad_excel"]
    assert "not found" in errors["missing_file"]
    assert "HTTP 500" in errors["api_500"] and "gave up after 2 attempt(s)" in errors["api_500"]
    assert "response is not JSON" in errors["api_garbage"]
    assert "timed out after 1s" in errors["cmd_timeout"]
    assert "exited with code 3" in errors["cmd_exit"] and "cannot reach machine 7" in errors["cmd_exit"]
    assert "refusing column name 'x; DROP TABLE y'" in errors["evil_column"]
    assert "'command' names a command the platform allows" in errors["evil_shell"]
    assert "refused by registry policy rule 'artisan_commands'" in errors["evil_env"] and "LD_PRELOAD" in errors["evil_env"]
    assert "json source /proc/self/environ: refused by registry policy rule 'file_roots'" in errors["evil_environ"]
    assert not world["marker"].exists()


def test_sources_not_due_or_not_active_are_left_alone(world):
    reg = world["reg"]
    for sid in ("inactive", "maintenance", "in_error", "not_due", "rt_json"):
        assert reg.history(sid) == [], sid
    assert reg.state("in_error")["error_count"] == 3


def test_injection_is_refused_before_any_sql(world):
    db = world["db"]
    assert db.query("SELECT to_regclass('y'), to_regclass('nrdae')") == [("y", None)]
    with pytest.raises(Exception, match="data_source_mappings_target_table_check"):
        Registry(db).add("evil_table", "json", [{"file_path": "/x.json"}],
                         [{"target_table": "x; DROP TABLE y", "key_columns": ["id"], **cols("id")}])


def test_command_arguments_are_passed_literally(world):
    args = [a for (a,) in world["db"].query("SELECT arg FROM incident_count ORDER BY i")]
    marker = world["marker"]
    assert args == ["data:sync", f"; touch {marker}", f"&& touch {marker}", f"$(touch {marker})"]
    assert not marker.exists()


def test_secret_resolved_at_run_time_and_kept_out_of_every_record(world):
    oee = [r for r in world["server"].seen if r["path"] == "/oee"]
    assert oee and all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in oee)
    echoed = [r for r in world["server"].seen if r["path"] == "/vibration"]
    assert echoed  # the server did echo it back, in a 500 body
    db = world["db"]
    tables = ["data_source_sync_history", "data_source_registry", "data_source_connections", "sync_log", "sync_rejects"]
    stored = json.dumps([db.query(f"SELECT * FROM {t}") for t in tables], default=str)
    assert "{{ var.registry_runner_token }}" in stored  # the registry keeps the placeholder
    assert TOKEN not in stored
    assert "***" in world["reg"].history("api_500")[0]["error_message"]
    assert "Task failed with exception" in world["output"] and "HTTP 500" in world["output"]
    assert TOKEN not in world["output"]
    stored_by_airflow = xcom_and_rendered_text(world["dag"].dag_id, world["run"].run_id)
    assert '"source_id": "api_secret"' in stored_by_airflow and '"records_path"' not in stored_by_airflow
    assert TOKEN not in stored_by_airflow


def test_clearing_a_failed_instance_reruns_that_source_alone(world):
    reg, db = world["reg"], world["db"]
    (world["dir"] / "cycle.json").write_text('[{"id": 1}, {"id": 2}]')  # on-call fixed the file
    index = mapped(world)["bad_json"][0]
    before = {sid: len(reg.history(sid)) for sid in GOOD + BAD}
    with registry_bound(db):
        dag_run, ran = rerun_cleared(world["dag"], world["run"], "sync_source", index)
        assert ran == [("sync_source", index)]
        assert db.query("SELECT id FROM t_bad_json ORDER BY id") == [("1",), ("2",)]
        assert reg.history("bad_json")[-1]["sync_status"] == "success"
        assert (reg.state("bad_json")["error_count"], reg.state("bad_json")["last_error"]) == (0, None)
        assert {sid: len(reg.history(sid)) for sid in GOOD + BAD} == {**before, "bad_json": 2}
        # and again: same target state, nothing rewritten
        dag_run, ran = rerun_cleared(world["dag"], dag_run, "sync_source", index)
    assert ran == [("sync_source", index)]
    h = reg.history("bad_json")[-1]
    assert (h["sync_status"], h["records_inserted"], h["records_updated"], h["records_unchanged"]) == ("success", 0, 0, 2)
    assert db.query("SELECT id FROM t_bad_json ORDER BY id") == [("1",), ("2",)]


def test_realtime_runner_takes_only_realtime_sources(world):
    with registry_bound(world["db"]):
        dag = load_dag("source_registry_realtime", file="source_registry_runner.py")
        dag_run = run_dag(dag)
    assert dag_run.state == "success", task_states(dag_run)
    assert [ti.rendered_map_index for ti in dag_run.get_task_instances() if ti.task_id == "sync_source"] == [
        "Produksi & Rejected Mesin"]
    (h,) = world["reg"].history("rt_json")
    assert (h["sync_type"], h["sync_status"], h["records_inserted"]) == ("realtime", "success", 3)


def test_consecutive_failures_put_a_source_in_error_and_alert(world, monkeypatch):
    reg, db, server = world["reg"], world["db"], world["server"]
    server.routes["/alerts"] = lambda req: (200, {"ok": True})
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY_ALERTS", f"{server.url}/alerts")
    path = world["dir"] / "flaky.json"
    reg.add("flaky", "json", [{"file_path": str(path)}],
            [{"target_table": "downtime_flaky", "key_columns": ["id"], **cols("id", cast={"id": "int"})}],
            name="Downtime Line 2")
    conf = {"source_ids": ["flaky"], "error_threshold": 2}
    with registry_bound(db):
        dag = world["dag"]
        with captured_output() as first:
            assert run_dag(dag, conf=conf).state == "failed"
        assert (reg.state("flaky")["status"], reg.state("flaky")["error_count"]) == ("active", 1)
        assert "REGISTRY ALERT" not in first()
        with captured_output() as second:
            assert run_dag(dag, conf=conf).state == "failed"
        state = reg.state("flaky")
        assert (state["status"], state["error_count"]) == ("error", 2)
        assert "not found" in state["last_error"]
        assert "REGISTRY ALERT: source flaky (Downtime Line 2) is now in status error" in second()
        alerts = [json.loads(r["body"]) for r in server.seen if r["path"] == "/alerts"]
        assert [(a["source_id"], a["error_count"]) for a in alerts] == [("flaky", 2)]

        from datasync.registry import runner
        assert "flaky" not in [s["source_id"] for s in runner.pick_sources(runner.registry_database())]
        path.write_text('[{"id": 1}]')
        assert run_dag(dag, conf=conf).state == "success"  # forced: how on-call retries a source in error
    state = reg.state("flaky")
    assert (state["status"], state["error_count"], state["last_error"]) == ("active", 0, None)
    assert [h["sync_status"] for h in reg.history("flaky")] == ["failed", "failed", "success"]
