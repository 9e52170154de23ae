"""The emulator over raw HTTP: the API contract of TEKMETRIC_API.md, its data and its test controls."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devtools.tekmetric.emulator import TekmetricEmulator
from devtools.tekmetric.emulator_data import DataStore
from datasync.tekmetric.values import RO_MONEY, parse_timestamp

ENVELOPE_KEYS = {"content", "totalPages", "totalElements", "last", "first", "size", "number", "numberOfElements",
                 "empty", "pageable", "sort"}


class Api:
    """A bare client: what any integrator would write with requests."""

    def __init__(self, emu: TekmetricEmulator):
        self.emu = emu
        self.session = requests.Session()
        self.token = self.post_token().json()["access_token"]

    def post_token(self, secret: str | None = None, grant: str = "client_credentials") -> requests.Response:
        return self.session.post(f"{self.emu.base_url}/api/v1/oauth/token", data={"grant_type": grant},
                                 auth=(self.emu.client_id, secret or self.emu.client_secret), timeout=5)

    def get(self, path: str, token: str | None = None, **params) -> requests.Response:
        return self.session.get(f"{self.emu.base_url}/api/v1{path}", params=params, timeout=5,
                                headers={"Authorization": f"Bearer {token or self.token}"})

    def all(self, path: str, **params) -> list[dict]:
        records, page = [], 0
        while True:
            body = self.get(path, page=page, size=100, **params).json()
            records += body["content"]
            if body["last"]:
                return records
            page += 1


@pytest.fixture
def api(emulator) -> Api:
    return Api(emulator)


def test_token_is_client_credentials_with_shop_scope_and_stable(emulator, api):
    first = api.post_token()
    assert first.status_code == 200
    assert first.json() == {"access_token": api.token, "token_type": "bearer",
                            "scope": " ".join(map(str, emulator.store.shop_ids))}
    assert api.post_token().json()["access_token"] == api.token  # same token until revoked
    emulator.revoke_token()
    assert api.get("/shops").status_code == 401
    renewed = api.post_token().json()["access_token"]
    assert renewed != api.token and api.get("/shops", token=renewed).status_code == 200


def test_token_errors(api):
    bad = api.post_token(secret="wrong")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    grant = api.post_token(grant="password")
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("token", ["not-a-token", ""])
def test_bad_token_gets_401_with_an_empty_body(api, token):
    response = api.get("/customers", token=token or " ", shop=6212)
    assert response.status_code == 401 and response.content == b""


def test_shops_is_a_plain_array_with_timezones(emulator, api):
    shops = api.get("/shops").json()
    assert isinstance(shops, list) and [s["id"] for s in shops] == emulator.store.shop_ids
    assert {"id", "name", "nickname", "phone", "email", "website", "address", "timeZone"} <= shops[0].keys()
    assert len({s["timeZone"] for s in shops}) == len(shops)
    assert shops[0] == emulator.store.shop(shops[0]["id"]) and "_laborRate" not in shops[0]


def test_scope_limits_shops():
    with TekmetricEmulator(shops=3, seed=2, customers=5, repair_orders=5, scope=[6213]) as emu:
        api = Api(emu)
        assert api.post_token().json()["scope"] == "6213"
        assert [s["id"] for s in api.get("/shops").json()] == [6213]
        denied = api.get("/customers", shop=6212)
        assert denied.status_code == 403
        assert denied.json() == {"type": "ERROR", "message": "Access Denied", "data": None, "details": {}}


def test_page_envelope_zero_based_and_size_capped(emulator, api, shop_id):
    truth = emulator.store.records("customers", shop_id)
    body = api.get("/customers", shop=shop_id, size=500).json()
    assert body.keys() == ENVELOPE_KEYS
    assert body["size"] == 100 and body["numberOfElements"] == 100 and body["number"] == 0 and body["first"]
    assert body["totalElements"] == len(truth) and body["totalPages"] == -(-len(truth) // 100) and not body["last"]
    assert body["pageable"]["pageNumber"] == 0 and body["pageable"]["pageSize"] == 100
    last = api.get("/customers", shop=shop_id, size=500, page=body["totalPages"] - 1).json()
    assert last["last"] and not last["first"] and last["numberOfElements"] == len(truth) % 100
    beyond = api.get("/customers", shop=shop_id, page=99).json()
    assert beyond["content"] == [] and beyond["empty"] and beyond["last"]
    assert api.get("/customers", shop=shop_id).json()["size"] == 20  # the default
    assert [c["id"] for c in api.all("/customers", shop=shop_id)] == [c["id"] for c in truth]


def test_list_requests_need_an_allowed_shop_and_valid_parameters(api, shop_id):
    missing = api.get("/customers")
    assert missing.status_code == 400 and missing.json()["type"] == "ERROR" and "'shop'" in missing.json()["message"]
    assert api.get("/customers", shop="abc").status_code == 400
    assert api.get("/customers", shop=shop_id, updatedDateStart="last week").status_code == 400
    assert api.get("/nope").status_code == 404


def test_sorting_by_updated_date_is_refused(api, shop_id):
    refused = api.get("/repair-orders", shop=shop_id, sort="updatedDate")
    assert refused.status_code == 400 and "updatedDate" in refused.json()["message"]
    newest_first = api.get("/repair-orders", shop=shop_id, sort="createdDate", sortDirection="DESC").json()["content"]
    created = [parse_timestamp(r["createdDate"]) for r in newest_first]
    assert created == sorted(created, reverse=True)


def test_updated_window_is_inclusive_and_excludes_deleted(emulator, api, shop_id):
    truth = emulator.store.records("repair-orders", shop_id)
    pivot = truth[len(truth) // 2]["updatedDate"]
    exact = api.all("/repair-orders", shop=shop_id, updatedDateStart=pivot, updatedDateEnd=pivot)
    assert truth[len(truth) // 2]["id"] in {r["id"] for r in exact}
    since = api.all("/repair-orders", shop=shop_id, updatedDateStart=pivot)
    later = {r["id"] for r in truth if parse_timestamp(r["updatedDate"]) >= parse_timestamp(pivot)}
    assert {r["id"] for r in since} == later
    deleted_ids = {r["id"] for r in emulator.store.records("repair-orders", shop_id, deleted=True)}
    assert deleted_ids and not deleted_ids & {r["id"] for r in api.all("/repair-orders", shop=shop_id)}


def test_deleted_window_returns_only_deleted_records(emulator, api, shop_id):
    start = "2000-01-01T00:00:00Z"
    deleted = api.all("/customers", shop=shop_id, deletedDateStart=start)
    truth = emulator.store.records("customers", shop_id, deleted=True)
    assert deleted == truth and all(c["deletedDate"] for c in deleted)
    # Asking for both still gives only deleted records [field].
    both = api.all("/customers", shop=shop_id, updatedDateStart=start, deletedDateStart=start)
    assert [c["id"] for c in both] == [c["id"] for c in truth]


def test_repair_order_status_filter_is_repeatable(emulator, api, shop_id):
    got = api.all("/repair-orders", shop=shop_id, repairOrderStatusId=[5, 6])
    truth = [r for r in emulator.store.records("repair-orders", shop_id) if r["repairOrderStatus"]["id"] in (5, 6)]
    assert got == truth and {r["repairOrderStatus"]["code"] for r in got} == {"POSTED", "ACCRECV"}


def test_shapes_money_and_bodies_without_shop_id(emulator, api, shop_id):
    ro = next(r for r in emulator.store.records("repair-orders", shop_id) if r["jobs"][0]["parts"])
    assert api.get(f"/repair-orders/{ro['id']}").json() == ro
    assert all(type(ro[k]) is int for k in RO_MONEY)
    assert ro["totalSales"] == (ro["laborSales"] + ro["partsSales"] + ro["subletSales"] + ro["feeTotal"]
                                - ro["discountTotal"] + ro["taxes"])
    job = ro["jobs"][0]
    assert {"labor", "parts", "fees", "discounts", "authorizedDate", "laborHours"} <= job.keys()
    assert {"cost", "retail", "quantity", "partType"} <= job["parts"][0].keys()
    assert "sublets" in ro and "sublets" not in job  # sublets hang on the RO
    assert "shopId" not in api.get("/employees", shop=shop_id).json()["content"][0]
    assert "shopId" not in api.get("/vehicles", shop=shop_id).json()["content"][0]
    assert api.get("/customers", shop=shop_id).json()["content"][0]["shopId"] == shop_id
    assert api.get("/repair-orders/1").status_code == 404


def test_generated_data_is_deterministic_and_realistic():
    anchor = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    one, two = DataStore(3, 5, anchor=anchor), DataStore(3, 5, anchor=anchor)
    assert one.records("repair-orders", deleted=None) == two.records("repair-orders", deleted=None)
    assert DataStore(3, 6, anchor=anchor).records("customers") != one.records("customers")
    ros = one.records("repair-orders", deleted=None)
    assert {r["repairOrderStatus"]["id"] for r in ros} >= {1, 2, 5, 6}
    created = [parse_timestamp(r["createdDate"]) for r in ros]
    assert max(created) < anchor and anchor - min(created) > dt.timedelta(weeks=4)
    assert all(parse_timestamp(r["createdDate"]) <= parse_timestamp(r["updatedDate"]) < anchor for r in ros)
    employees = one.records("employees", 6212)
    assert any(e["employeeRole"]["code"] == "TECHNICIAN" and e["canPerformWork"] for e in employees)


def test_mutations_bump_updated_date(emulator, api, shop_id):
    store = emulator.store
    customer = store.records("customers", shop_id)[0]
    changed = store.update("customers", customer["id"], firstName="Ann")
    assert changed["firstName"] == "Ann" and parse_timestamp(changed["updatedDate"]) > store.anchor
    assert api.get(f"/customers/{customer['id']}").json() == changed

    gone = store.delete("vehicles", store.records("vehicles", shop_id)[0]["id"])
    assert gone["deletedDate"] == gone["updatedDate"]

    ro = next(r for r in store.records("repair-orders", shop_id)
              if len(r["jobs"]) > 1 and r["repairOrderStatus"]["id"] == 2)
    fewer = store.remove_job(ro["id"], ro["jobs"][0]["id"])
    assert [j["id"] for j in fewer["jobs"]] == [j["id"] for j in ro["jobs"][1:]]
    posted = store.post_repair_order(ro["id"])
    assert posted["repairOrderStatus"]["code"] == "POSTED" and posted["postedDate"]
    assert posted["amountPaid"] == posted["totalSales"]
    assert parse_timestamp(posted["updatedDate"]) > parse_timestamp(fewer["updatedDate"])

    added = store.add("repair-orders", shop_id, status=2)
    assert added["jobs"] and added["createdDate"] == added["updatedDate"]
    assert api.get(f"/repair-orders/{added['id']}").json() == added


def test_jobs_filter_on_their_own_updated_date(emulator, api, shop_id):
    store = emulator.store
    ro = store.records("repair-orders", shop_id)[0]
    before = store.update("repair-orders", ro["id"], milesOut=ro["milesIn"] + 5)["updatedDate"]
    # An RO-level change leaves the jobs' updatedDate alone: /jobs misses it [field].
    assert api.all("/jobs", shop=shop_id, updatedDateStart=before) == []
    touched = store.update_job(ro["id"], ro["jobs"][0]["id"], note="customer declined")
    got = api.all("/jobs", shop=shop_id, updatedDateStart=before)
    assert [j["id"] for j in got] == [ro["jobs"][0]["id"]] and got[0] == touched["jobs"][0]
    assert [j["id"] for j in api.all("/jobs", repairOrderId=ro["id"])] == [j["id"] for j in ro["jobs"]]


def test_payload_faults(emulator, api, shop_id):
    ro = next(r for r in emulator.store.records("repair-orders", shop_id)
              if r["jobs"][0]["parts"] and r["jobs"][0]["authorizedDate"])
    f = emulator.faults
    f.float_cents, f.null_part_names, f.naive_authorized_dates, f.fractional_cents_ro = True, True, True, ro["id"]
    served = api.get(f"/repair-orders/{ro['id']}").text
    body = json.loads(served)
    assert f'"partsSales":{ro["partsSales"]}.0' in served and type(body["jobs"][0]["parts"][0]["cost"]) is float
    assert body["laborSales"] == ro["laborSales"] + 0.5
    assert body["jobs"][0]["parts"][0]["name"] is None
    assert body["jobs"][0]["authorizedDate"] == ro["jobs"][0]["authorizedDate"].removesuffix("Z")
    assert api.get("/jobs", repairOrderId=ro["id"]).json()["content"][0]["parts"][0]["name"] is None


def test_transport_faults_and_request_log(emulator, api):
    f = emulator.faults
    f.throttle_next, f.retry_after = 1, 2
    throttled = api.get("/shops")
    assert throttled.status_code == 429 and throttled.content == b"" and throttled.headers["Retry-After"] == "2"
    f.server_errors_next = 1
    assert api.get("/shops").status_code == 503
    f.disconnect_next = 1
    with pytest.raises(requests.ConnectionError):
        api.get("/shops")
    f.revoke_next = 1
    assert api.get("/shops").status_code == 401 and emulator.token is None
    f.delay_seconds, f.delay_next = 0.5, 1
    with pytest.raises(requests.Timeout):
        api.session.get(f"{emulator.base_url}/api/v1/shops", timeout=0.1)
    deadline = time.monotonic() + 5
    while emulator.request_count("/shops") < 5 and time.monotonic() < deadline:
        time.sleep(0.05)  # the slow answer is logged once the server gives it
    reasons = [r.reason for r in emulator.requests]
    assert reasons[-5:] == ["fault:throttle", "fault:server_error", "fault:disconnect", "fault:revoke", "unauthorized"]
    assert emulator.request_count("/shops") == 5 and emulator.request_count("/oauth/token") == 1
    assert emulator.request_count(status=429) == 1


def test_server_side_rate_limit_answers_429():
    options = {"customers": 3, "repair_orders": 3, "rate_limit_per_minute": 600, "rate_limit_window": 1.0}
    with TekmetricEmulator(shops=1, **options) as emu:
        api = Api(emu)
        statuses = [api.get("/shops").status_code for _ in range(15)]  # a burst well above 10 a second
        assert statuses.count(429) >= 4 and emu.request_count(reason="rate_limit") == statuses.count(429)
        limited = next(r for r in emu.requests if r.reason == "rate_limit")
        assert limited.status == 429


def test_after_page_mutates_between_page_reads(emulator, api, shop_id):
    first = emulator.store.records("customers", shop_id)[0]
    emulator.after_page("/customers", 0, lambda store: store.delete("customers", first["id"]))
    page0 = api.get("/customers", shop=shop_id, size=100, page=0).json()
    page1 = api.get("/customers", shop=shop_id, size=100, page=1).json()
    assert page0["totalElements"] == page1["totalElements"] + 1  # the pages shifted under the reader
    with pytest.raises(ValueError):
        emulator.after_page("/shops", 0, print)


def test_runs_as_a_module_for_the_demo():
    plugins = Path(__file__).resolve().parents[2] / "plugins"
    command = [sys.executable, "-m", "devtools.tekmetric.emulator", "--port", "0", "--shops", "2", "--seed", "1"]
    proc = subprocess.Popen(command, cwd=plugins, stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        conn = json.loads(proc.stdout.readline().split("=", 1)[1].strip().strip("'"))
        assert "Tekmetric emulator on http://127.0.0.1:" in banner and "America/" in banner
        token = requests.post(f"{conn['host']}/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(conn["login"], conn["password"]), timeout=5).json()
        assert token["scope"] == "6212 6213"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
