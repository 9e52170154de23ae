"""The Data sync page's JSON and HTML, served by Airflow's API server app on loopback, reading the
real target databases of the seeded world."""

import pytest
import requests

from monitor_world import API_TOKEN, REGISTRY_PASSWORD

ENDPOINTS = ["/datasync/", "/datasync/api/overview", "/datasync/registry", "/datasync/api/registry",
             "/datasync/registry/plant_sensors", "/datasync/api/registry/plant_sensors", "/datasync/kpi",
             "/datasync/api/kpi", "/datasync/tekmetric", "/datasync/api/tekmetric",
             "/datasync/sync/pmo/lifecycle_sync.sync_products", "/datasync/api/sync/pmo/lifecycle_sync.sync_products",
             "/datasync/ti/lifecycle_sync/scheduled__run0/sync_products/-1",
             "/datasync/api/ti/lifecycle_sync/scheduled__run0/sync_products/-1"]


def get(server, path, token=None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server + path, headers=headers, timeout=30, **kw)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_refuses_anonymous_and_forged_tokens(server, path):
    anonymous = get(server, path)
    assert anonymous.status_code == 401, anonymous.text
    assert "Bearer" in anonymous.headers.get("WWW-Authenticate", "")
    forged = get(server, path, token="eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJvbmNhbGwifQ.c2lnbmF0dXJl")
    assert forged.status_code == 401
    cookie = requests.get(server + path, cookies={"_token": "not-a-jwt"}, timeout=30)
    assert cookie.status_code == 401
    for body in (anonymous.text, forged.text):
        assert "registry" not in body.lower() or "sign in" in body.lower() or "not signed in" in body.lower()
        assert "mes_downtime_api" not in body


def test_the_sign_in_page_links_to_airflows_login(server):
    page = get(server, "/datasync/")
    assert page.status_code == 401
    assert "/auth/login?next=" in page.text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_answers_a_signed_in_user(server, token, path):
    by_header = get(server, path, token)
    assert by_header.status_code == 200, by_header.text[:500]
    by_cookie = requests.get(server + path, cookies={"_token": token}, timeout=30)  # what the Airflow UI sends
    assert by_cookie.status_code == 200


def test_overview_lists_every_sync_problems_first(server, token, world):
    data = get(server, "/datasync/api/overview", token).json()
    rows = data["syncs"]
    by_name = {(r["target"], r["name"]): r for r in rows}
    assert {t["target"]: t["state"] for t in data["targets"]} == {
        "tidb": "ok", "supabase": "ok", "lifecycle": "ok", "pmo": "ok", "tekmetric": "ok", "registry": "ok"}

    failing = by_name[("registry", world.failing_source)]
    assert failing["status"] == "error" and failing["error_count"] == 3
    assert world.failing_error_fragment in failing["last_error"]
    backup = by_name[("registry", world.backup_source)]
    assert backup["rejects_open"] == 1 and backup["note"].startswith("via backup 'sensors_local'")
    assert backup["last_status"] == "partial" and backup["as_of_from"] == "cursor" and 0 < backup["lag_seconds"] < 3600
    assert by_name[("registry", "spare_parts")]["status"] == "never run"

    products = by_name[("pmo", world.reject_sync)]
    assert products["pipeline"] == "lifecycle" and products["status"] == "partial"
    assert products["rejects_open"] == 3  # one refused row in each of three runs
    assert products["as_of_from"] == "cursor" and products["data_as_of"].startswith(str(world.now.year))
    assert products["task_url"] == "/dags/lifecycle_sync/runs/scheduled__run2/tasks/sync_products"
    failed = by_name[("pmo", world.failed_sync)]
    assert failed["status"] == "failed" and "no_such_table" in failed["last_error"] and failed["error_count"] == 1

    assert by_name[("supabase", "ptmmm_daily_kpi_etl.mirror.inventory_kpi_daily")]["pipeline"] == "kpi mirror"
    kpi = by_name[("tidb", "inventory_kpi_daily days")]
    assert kpi["status"] == "gaps" and "1 warehouse-day(s) missing" in kpi["note"]
    assert by_name[("tekmetric", f"tekmetric_sync.{world.shop_id}.repair_orders")]["status"] == "ok"

    ranks = [r["status"] for r in rows]
    first_ok = ranks.index("ok")
    assert {"error", "failed"} <= set(ranks[:first_ok]) and "ok" not in ranks[:first_ok]
    assert all(s in ("ok", "never run", "running", "inactive", "not configured") for s in ranks[first_ok:])


def test_overview_filters_by_pipeline_status_and_dag(server, token, world):
    only_registry = get(server, "/datasync/api/overview?pipeline=registry", token).json()["syncs"]
    assert {r["pipeline"] for r in only_registry} == {"registry"} and len(only_registry) == 3
    failed = get(server, "/datasync/api/overview?status=failed", token).json()["syncs"]
    assert [r["name"] for r in failed] == [world.failed_sync]
    problems = get(server, "/datasync/api/overview?status=problems", token).json()["syncs"]
    assert {r["name"] for r in problems} >= {world.failing_source, world.failed_sync, world.reject_sync}
    assert all(r["status"] != "ok" for r in problems)
    dag = get(server, "/datasync/api/overview?dag=lifecycle_sync", token).json()["syncs"]
    assert {r["name"] for r in dag} == {world.reject_sync, world.failed_sync}
    page = get(server, "/datasync/?pipeline=registry&status=error", token).text
    assert world.failing_source in page and world.backup_source not in page


def test_sync_detail_has_history_rejects_and_the_task_instance(server, token, world):
    d = get(server, f"/datasync/api/sync/pmo/{world.reject_sync}", token).json()
    assert len(d["runs"]) == 3 and all(r["status"] == "success" for r in d["runs"])
    assert d["runs"][-1]["rows_read"] == 39 and [r["rows_rejected"] for r in d["runs"]] == [1, 1, 1]
    assert d["runs"][0]["task_url"] == "/dags/lifecycle_sync/runs/scheduled__run2/tasks/sync_products"
    assert d["rejects_total"] == 3
    reject = d["rejects"][0]
    assert reject["table"] == "products_copy" and reject["column"] == world.reject_column
    assert reject["value"] == world.reject_value and reject["key"] == "5" and reject["reason"]
    page = get(server, f"/datasync/sync/pmo/{world.reject_sync}", token).text
    assert "<svg" in page and world.reject_value in page and 'target="_top"' in page
    assert get(server, "/datasync/api/sync/pmo/no.such.sync", token).status_code == 404
    assert get(server, "/datasync/api/sync/nowhere/x", token).status_code == 404


def test_registry_views_show_status_errors_and_the_serving_connection(server, token, world):
    d = get(server, "/datasync/api/registry", token).json()
    assert d["by_status"] == {"error": 1, "active": 2}
    assert d["sources"][0]["source_id"] == world.failing_source
    errors = get(server, "/datasync/api/registry?status=error", token).json()["sources"]
    assert [s["source_id"] for s in errors] == [world.failing_source]
    detail = get(server, f"/datasync/api/registry/{world.backup_source}", token).json()
    assert detail["runs"][0]["connection_role"] == "backup" and detail["runs"][0]["connection_name"] == "sensors_local"
    assert detail["runs"][-1]["connection_role"] == "primary"
    assert [c["role"] for c in detail["connections"]] == ["primary", "backup"]
    assert "config" not in str(detail["connections"]) and "/data/" not in str(detail)
    assert detail["rejects"][0]["column"] == "temperature_c"
    assert detail["runs"][0]["task_url"].startswith("/dags/source_registry_runner/runs/scheduled__sens5/tasks/sync_source")
    assert get(server, "/datasync/api/registry/nobody", token).status_code == 404


def test_kpi_days_highlight_the_gap_and_the_unmirrored_day(server, token, world):
    d = get(server, "/datasync/api/kpi", token).json()
    inv = next(t for t in d["tables"] if t["table"] == "inventory_kpi_daily")
    assert inv["missing_in_tidb"] == 1 and inv["missing_in_supabase"] == 2  # the newest day, both warehouses
    sby = next(w for w in inv["warehouses"] if w["code"] == world.gap_warehouse_code)
    assert sby["days"][d["days"].index(world.gap_day.isoformat())] == "missing"
    assert sby["days"][d["days"].index(world.unmirrored_day.isoformat())] == "not mirrored"
    assert sby["days"][0] == "ok"
    page = get(server, "/datasync/kpi", token).text
    assert 'class="day d-missing"' in page


def test_tekmetric_shows_cursor_per_entity_and_the_last_variance_check(server, token, world):
    d = get(server, "/datasync/api/tekmetric", token).json()
    (shop,) = d["shops"]
    assert shop["shop_id"] == world.shop_id
    assert [e["entity"] for e in shop["entities"]] == ["customers", "repair_orders"]
    assert all(e["cursor"] and e["last_status"] == "success" for e in shop["entities"])
    assert shop["variance_check"]["ros_with_variance"] == 2


def test_task_instance_view_lists_what_it_recorded(server, token, world):
    d = get(server, "/datasync/api/ti/lifecycle_sync/scheduled__run0/sync_products/{MAP_INDEX}", token).json()
    (run,) = d["runs"]
    assert run["sync_name"] == world.reject_sync and run["rejects"][0]["column"] == world.reject_column


def test_no_secret_reaches_any_page_or_answer(server, token, world):
    texts = [get(server, path, token).text for path in ENDPOINTS + [f"/datasync/registry/{world.failing_source}",
                                                                  f"/datasync/api/registry/{world.failing_source}"]]
    everything = "\n".join(texts)
    assert REGISTRY_PASSWORD not in everything and API_TOKEN not in everything
    assert world.failing_error_fragment in everything and "api_key=***" in everything


def test_a_target_that_is_down_or_missing_is_shown_as_such(server, token, world, monkeypatch):
    from datasync.monitor import targets

    monkeypatch.setenv("AIRFLOW_CONN_TEKMETRIC_WAREHOUSE", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.delenv("AIRFLOW_CONN_TIDB_OPS")
    targets.reset()
    d = get(server, "/datasync/api/overview", token).json()
    states = {t["target"]: t for t in d["targets"]}
    assert states["tekmetric"]["state"] == "unreachable" and "tekmetric_warehouse" in states["tekmetric"]["error"]
    assert states["tidb"]["state"] == "not configured"
    assert states["registry"]["state"] == "ok" and any(r["name"] == world.failing_source for r in d["syncs"])
    assert d["syncs"][0]["status"] == "unreachable"
    page = get(server, "/datasync/tekmetric", token)
    assert page.status_code == 200 and "unreachable" in page.text
    assert get(server, "/datasync/kpi", token).status_code == 200


def test_a_target_not_yet_migrated_to_the_task_instance_columns_still_shows(server, token, database_factory, monkeypatch):
    from datasync.monitor import targets
    from datasync.paths import SQL_DIR

    old = database_factory("postgres", "mon_old")
    old.query((SQL_DIR / "common" / "postgres" / "001_sync_bookkeeping.sql").read_text())
    old.query("INSERT INTO sync_log (sync_name, run_id, mode, status, finished_at, rows_read) "
              "VALUES ('lifecycle_sync.sync_old', 'scheduled__old', 'incremental', 'success', now(), 3)")
    monkeypatch.setenv("AIRFLOW_CONN_LIFECYCLE_DB", old.uri)
    targets.reset()
    d = get(server, "/datasync/api/overview", token).json()
    assert {t["target"]: t["state"] for t in d["targets"]}["lifecycle"] == "ok"
    (row,) = [r for r in d["syncs"] if r["name"] == "lifecycle_sync.sync_old"]
    assert row["status"] in ("ok", "late") and row["rows_read_last_run"] == 3 and row["task_url"] is None
    detail = get(server, "/datasync/api/sync/lifecycle/lifecycle_sync.sync_old", token).json()
    assert detail["runs"][0]["dag_id"] is None and detail["runs"][0]["rows_read"] == 3
