"""Master data (warehouses, SKUs, vehicles) from the master Google Sheet into TiDB (MariaDB here),
through the real GSheetsHook against the local Sheets stand-in and the sync engine's MySQL writer."""

import datetime as dt
import json
import uuid

import pytest
from ptmmm_example import uid
from ptmmm_fixtures import AS_MARIADB, OPS

from datasync.engine import RejectThresholdExceeded
from datasync.ptmmm import master_data
from datasync.ptmmm.sheets import SheetsError, sheet_target
from devtools.ptmmm.sheets_standin import SheetsStandIn
from harness import load_dag, run_dag, task_states

MASTER = "master-sheet-1"
NOW = dt.datetime(2025, 3, 1, 0, 0, tzinfo=dt.timezone.utc)


def sheet() -> dict[str, list[list]]:
    return {
        "warehouses": [
            ["org", "code", "name", "city", "opened_at", "closed_at", "catatan"],
            ["Org A", "JKT-01", "Gudang Cakung Baru", "Jakarta", "", "", "renamed"],  # existing: keeps id and opened_at
            [uid("A"), "BKS-01", "Gudang Bekasi", "Bekasi", "2025-03-05 08:00", "", ""],  # new, by org id
            ["Org Z", "XXX-01", "Gudang Hilang", "", "", "", "unknown org"],
            ["Org A", "BKS-01", "Gudang Bekasi 2", "", "", "", "duplicate code"],
            ["Org A", "BDG-01", "Gudang Gedebage", "Bandung", "kemarin", "", "bad time"],
        ],
        "skus": [
            ["org", "code", "name", "uom"],
            ["Org A", "S1", "Semen 50kg", "sak"],
            ["Org A", "SKU-NEW", "Cat tembok", ""],  # new: uom defaults to pcs
            ["Org B", "S2", "x" * 250, "pcs"],  # name too long for VARCHAR(200)
        ],
        "vehicles": [
            ["org", "plate_no", "warehouse_code", "vehicle_type", "capacity_kg", "in_service_at", "retired_at"],
            ["Org A", "B 1234 XY", "BKS-01", "van", 800, "2025-03-05", ""],  # on the warehouse imported just before
            ["Org A", "B 9999 ZZ", "NOPE-01", "truck", 4000, "", ""],  # unknown warehouse
            ["Org A", "B 5555 AA", "JKT-01", "", "banyak", "", ""],  # capacity not a number
        ],
    }


@pytest.fixture
def master(ops_db, load_rows, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_TIDB_OPS", f"{ops_db.uri}?{AS_MARIADB}")  # TiDB's sql_mode
    load_rows(OPS, {
        "organizations": [{"id": uid("A"), "name": "Org A"}, {"id": uid("B"), "name": "Org B"}],
        "warehouses": [{"id": uid("W1"), "org_id": uid("A"), "code": "JKT-01", "name": "Gudang JKT-01",
                        "opened_at": dt.datetime(2025, 1, 1)}],
        "skus": [{"id": uid("S1"), "org_id": uid("A"), "code": "S1", "name": "S1"}],
    })
    with SheetsStandIn() as standin:
        standin.add_spreadsheet(MASTER, sheet())
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", standin.connection_json())
        yield ops_db, standin


def rejects(db, table: str) -> list[tuple]:
    rows = db.query("SELECT row_key, column_name, value, reason FROM sync_rejects WHERE table_name = %s ORDER BY id", (table,))
    return [(json.loads(k), c, v, r) for k, c, v, r in rows]


def test_the_dag_upserts_by_code_and_rejects_bad_rows_with_reasons(master):
    db, _ = master
    result = run_dag(load_dag("ptmmm_master_data"), conf={"spreadsheet_id": MASTER})
    assert result.state == "success", task_states(result)

    warehouses = {code: (wid, name, opened) for wid, code, name, opened in db.query(
        "SELECT id, code, name, opened_at FROM warehouses ORDER BY code")}
    assert warehouses["JKT-01"] == (uid("W1"), "Gudang Cakung Baru", dt.datetime(2025, 1, 1))  # same id, opened_at kept
    bks_id = warehouses["BKS-01"][0]
    assert uuid.UUID(bks_id) and warehouses["BKS-01"][2] == dt.datetime(2025, 3, 5, 1, 0)  # 08:00 WIB = 01:00 UTC
    assert sorted(warehouses) == ["BKS-01", "JKT-01"]
    assert rejects(db, "warehouses") == [
        ("XXX-01", "org", "Org Z", "unknown organisation (not an id or name in organizations)"),
        ("BKS-01", "code", "BKS-01", "code appears again in the sheet; row 3 is used"),
        ("BDG-01", "opened_at", "kemarin", "not a WIB date/time (YYYY-MM-DD or YYYY-MM-DD HH:MM)"),
    ]

    assert db.query("SELECT code, name, uom FROM skus ORDER BY code") == [
        ("S1", "Semen 50kg", "sak"), ("SKU-NEW", "Cat tembok", "pcs")]
    assert rejects(db, "skus") == [("S2", "name", "x" * 250, "longer than 200 characters (250)")]

    assert db.query("SELECT plate_no, warehouse_id, vehicle_type, capacity_kg FROM vehicles") == [("B 1234 XY", bks_id, "van", 800)]
    assert [r[1:] for r in rejects(db, "vehicles")] == [
        ("warehouse_code", "NOPE-01", "no warehouse with this code in the vehicle's organisation"),
        ("capacity_kg", "banyak", "not a valid number"),
    ]
    logs = db.query("SELECT sync_name, status, rows_read, rows_inserted, rows_updated, rows_rejected FROM sync_log ORDER BY id")
    assert sorted(logs) == [
        ("ptmmm_master_data.skus", "success", 3, 1, 1, 1),
        ("ptmmm_master_data.vehicles", "success", 3, 1, 0, 2),
        ("ptmmm_master_data.warehouses", "success", 5, 1, 1, 3),
    ]


def test_rerun_changes_nothing_and_ids_are_stable(master):
    db, _ = master
    target = sheet_target(MASTER, "unused")
    for table in master_data.ORDER:
        master_data.import_tab(table, target, max_rejects=10, now=NOW)
    before = db.query("SELECT id, org_id, code, name, city, opened_at, closed_at FROM warehouses ORDER BY code")
    again = {t: master_data.import_tab(t, target, max_rejects=10, now=NOW + dt.timedelta(days=1)).counts for t in master_data.ORDER}
    assert [(c.inserted, c.updated, c.unchanged) for c in again.values()] == [(0, 0, 2), (0, 0, 2), (0, 0, 1)]
    assert db.query("SELECT id, org_id, code, name, city, opened_at, closed_at FROM warehouses ORDER BY code") == before


def test_too_many_rejects_write_nothing_of_the_tab(master):
    db, _ = master
    target = sheet_target(MASTER, "unused")
    with pytest.raises(RejectThresholdExceeded, match=r"ptmmm_master_data.warehouses: 3 row\(s\) rejected, more than max_rejects=2"):
        master_data.import_tab("warehouses", target, max_rejects=2, now=NOW)
    assert db.query("SELECT code, name FROM warehouses") == [("JKT-01", "Gudang JKT-01")]  # not even the good rows
    assert len(rejects(db, "warehouses")) == 3  # kept for diagnosis
    assert db.query("SELECT status, rows_rejected FROM sync_log") == [("failed", 3)]


def test_layout_problems_and_an_unconfigured_sheet(master, monkeypatch):
    db, standin = master
    standin.add_spreadsheet(MASTER, {"warehouses": [["org", "kode", "name"], ["Org A", "JKT-01", "x"]]})
    target = sheet_target(MASTER, "unused")
    with pytest.raises(SheetsError, match=r"tab 'warehouses': the header row lacks \['code'\]; nothing was written"):
        master_data.import_tab("warehouses", target)
    with pytest.raises(SheetsError, match=r"has no tab 'skus'"):
        master_data.import_tab("skus", target)
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_SHEETS")
    result = run_dag(load_dag("ptmmm_master_data"), conf={"spreadsheet_id": MASTER})
    assert set(task_states(result).values()) == {"skipped"}
    assert db.query("SELECT COUNT(*) FROM sync_log WHERE status = 'success'") == [(0,)]
