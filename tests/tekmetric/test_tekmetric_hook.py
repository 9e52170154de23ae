"""TekmetricHook against the emulator over real HTTP: auth, paging, retries, rate limit, windows, secrets."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import threading

import pytest

from datasync.tekmetric.hook import (
    TekmetricAuthError,
    TekmetricError,
    TekmetricHook,
    TekmetricHTTPError,
    TekmetricUnavailable,
)
from datasync.tekmetric.values import normalize_repair_order, parse_timestamp

UTC = dt.timezone.utc


def ids(records: list[dict]) -> list[int]:
    return [r["id"] for r in records]


def test_token_cached_with_scope(emulator, hook):
    assert hook.get_token() == emulator.token
    assert hook.scope_shop_ids() == emulator.store.shop_ids
    assert [s["id"] for s in hook.get_shops()] == emulator.store.shop_ids
    hook.get_shops()
    assert emulator.request_count("/oauth/token") == 1  # one token per hook instance
    assert hook.requests_made == emulator.request_count() == 3


def test_construction_does_no_io(emulator):
    TekmetricHook("no_such_connection")  # fails only when used
    assert emulator.request_count() == 0


@pytest.mark.parametrize(
    "host, port, extra, base_url, rate",
    [
        ("https://sandbox.tekmetric.com", None, {}, "https://sandbox.tekmetric.com", 300),
        ("sandbox.tekmetric.com", None, {}, "https://sandbox.tekmetric.com", 300),
        ("shop.tekmetric.com/", None, {}, "https://shop.tekmetric.com", 600),
        ("https://shop.tekmetric.com/api/v1", None, {"rate_limit_per_minute": "450"},
         "https://shop.tekmetric.com", 450),
        ("127.0.0.1", 8765, {}, "http://127.0.0.1:8765", 600),
    ],
)
def test_settings_from_the_connection(monkeypatch, host, port, extra, base_url, rate):
    conn = {"conn_type": "http", "host": host, "port": port, "login": "id", "password": "pw",
            "extra": {"timeout": 12, "max_retries": 3, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_TM_SETTINGS", json.dumps(conn))
    settings = TekmetricHook("tm_settings").settings
    got = (settings.base_url, settings.rate_limit_per_minute, settings.timeout, settings.max_retries)
    assert got == (base_url, rate, 12, 3)
    assert settings.backoff_base == 1 and settings.backoff_cap == 60  # Tekmetric's advice by default
    assert "pw" not in repr(settings)


@pytest.mark.parametrize(
    "conn, problem",
    [
        ({"host": "sandbox.tekmetric.com", "login": "id"}, "needs login (client id) and password (client secret)"),
        ({"host": "", "login": "id", "password": "pw"}, "has no host"),
        ({"host": "sandbox.tekmetric.com", "login": "id", "password": "pw", "extra": {"timeout": "soon"}},
         "extra timeout='soon' is not a number"),
    ],
)
def test_bad_connection_settings_are_named(monkeypatch, conn, problem):
    monkeypatch.setenv("AIRFLOW_CONN_TM_BROKEN", json.dumps({"conn_type": "http", **conn}))
    with pytest.raises(TekmetricError, match=re.escape(problem)):
        TekmetricHook("tm_broken").get_token()


def test_iter_pages_until_last_with_size_capped_at_100(emulator, make_hook, shop_id):
    truth = emulator.store.records("customers", shop_id)
    pages = list(make_hook(page_size=500).iter_pages("/customers", {"shop": shop_id}))
    assert [p[0] for p in pages] == list(range(-(-len(truth) // 100)))
    assert [len(content) for _, content, _ in pages[:-1]] == [100] * (len(pages) - 1)
    assert all(env["size"] == 100 for _, _, env in pages) and pages[-1][2]["last"]
    assert [r for _, content, _ in pages for r in content] == truth
    small = make_hook(page_size=7)
    assert list(small.iter_records("customers", {"shop": shop_id})) == truth
    statuses = list(small.iter_records("/repair-orders", {"shop": shop_id, "repairOrderStatusId": [1, 2]}))
    open_ros = [r for r in emulator.store.records("repair-orders", shop_id) if r["repairOrderStatus"]["id"] in (1, 2)]
    assert statuses == open_ros


def test_get_repair_order(emulator, hook, shop_id):
    ro = emulator.store.records("repair-orders", shop_id)[3]
    assert hook.get_repair_order(ro["id"]) == ro


def test_429_burst_recovered(emulator, hook, shop_id):
    emulator.faults.throttle_next = 4
    assert list(hook.iter_records("/employees", {"shop": shop_id})) == emulator.store.records("employees", shop_id)
    assert [r.reason for r in emulator.requests][-5:] == ["fault:throttle"] * 4 + ["ok"]


def test_429_with_retry_after_is_honoured(emulator, hook):
    emulator.faults.throttle_next, emulator.faults.retry_after = 1, 0.3
    hook.get_shops()
    throttled, retried = emulator.requests[-2:]
    assert throttled.status == 429 and retried.status == 200
    assert retried.monotonic - throttled.monotonic >= 0.3


def test_429_storm_survived(emulator, make_hook, shop_id):
    emulator.faults.throttle_rate = 0.4
    records = make_hook(page_size=10).iter_records("/customers", {"shop": shop_id})
    assert ids(records) == ids(emulator.store.records("customers", shop_id))
    assert emulator.request_count(reason="fault:throttle") > 0


def test_401_mid_run_refreshes_the_token_once_and_continues(emulator, hook, shop_id):
    emulator.after_page("/customers", 0, lambda store: emulator.revoke_token())
    first_token = hook.get_token()
    assert ids(hook.iter_records("/customers", {"shop": shop_id})) == ids(emulator.store.records("customers", shop_id))
    assert hook.get_token() == emulator.token != first_token
    assert emulator.request_count(reason="unauthorized") == 1 and emulator.request_count("/oauth/token") == 2


def test_token_revoked_twice_fails_clearly(emulator, hook):
    emulator.faults.revoke_next = 2
    with pytest.raises(TekmetricAuthError, match="401 Unauthorized to GET /api/v1/shops even with a freshly issued"):
        hook.get_shops()
    assert emulator.request_count("/oauth/token") == 2 and emulator.request_count("/shops") == 2


def bad_credentials(emulator, monkeypatch) -> TekmetricHook:
    connection = emulator.airflow_connection().replace(emulator.client_secret, "wrong-secret-42")
    monkeypatch.setenv("AIRFLOW_CONN_TM_BAD", connection)
    return TekmetricHook("tm_bad", backoff_base=0.001)


def test_bad_credentials_fail_clearly(emulator, monkeypatch):
    problem = r"refused the client credentials of connection 'tm_bad' \(HTTP 401.*Bad client credentials"
    with pytest.raises(TekmetricAuthError, match=problem):
        bad_credentials(emulator, monkeypatch).get_shops()


def test_5xx_recovered(emulator, hook):
    emulator.faults.server_errors_next = 3
    assert len(hook.get_shops()) == 2


def test_5xx_exhausted_gives_a_clear_error(emulator, make_hook, shop_id):
    emulator.faults.server_errors_next, emulator.faults.server_error_status = 10, 502
    with pytest.raises(TekmetricUnavailable) as failure:
        make_hook(max_retries=2).get_json("/customers", {"shop": shop_id})
    message = str(failure.value)
    assert f"GET /api/v1/customers?shop={shop_id} still failing after 3 attempts: HTTP 502" in message
    assert "Internal Server Error" in message and emulator.request_count("/customers") == 3


def test_timeout_and_dropped_connection_are_retried(emulator, make_hook):
    hook = make_hook(timeout=0.3)
    emulator.faults.delay_seconds, emulator.faults.delay_next = 1.0, 1
    assert len(hook.get_shops()) == 2
    emulator.faults.disconnect_next = 1
    assert len(hook.get_shops()) == 2
    emulator.faults.delay_seconds, emulator.faults.delay_next = 1.0, None
    with pytest.raises(TekmetricUnavailable, match=r"after 2 attempts: no answer within 0.3 s"):
        make_hook(timeout=0.3, max_retries=1).get_shops()


def test_other_4xx_raise_with_tekmetric_message(emulator, hook, shop_id):
    problem = "HTTP 404 to GET /api/v1/repair-orders/123: Repair order 123 not found"
    with pytest.raises(TekmetricHTTPError, match=problem) as missing:
        hook.get_repair_order(123)
    assert missing.value.status == 404
    with pytest.raises(TekmetricHTTPError, match="HTTP 400 .*sort=updatedDate.*Sorting by 'updatedDate' is not"):
        list(hook.iter_pages("/repair-orders", {"shop": shop_id, "sort": "updatedDate"}))
    assert emulator.request_count("/repair-orders") == 2  # a 4xx is not retried


def test_rate_limiter_stays_under_the_server_limit_and_uses_it(emulator, make_hook):
    emulator.rate_limit_per_minute, emulator.rate_limit_window = 600, 1.0  # at most 10 (+1 jitter) in any second
    hook = make_hook(rate_limit_per_minute=600)
    hook.get_token()
    emulator.clear_requests()

    def work():
        for _ in range(8):
            hook.get_json("/shops")

    threads = [threading.Thread(target=work) for _ in range(4)]  # concurrent callers share one bucket
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = emulator.requests
    assert len(log) == 32 and emulator.request_count(status=429) == 0
    per_minute = (len(log) - 1) / (log[-1].monotonic - log[0].monotonic) * 60
    assert 0.9 * 600 <= per_minute <= 1.05 * 600


def test_read_window_survives_records_changing_between_pages(emulator, make_hook, shop_id):
    store = emulator.store
    end = dt.datetime.now(UTC) - dt.timedelta(seconds=2)  # the run's start less a safety lag, fixed before the read
    truth = store.records("customers", shop_id)
    victim = truth[10]
    # After page 0 a record on it changes: it leaves the window and later records shift left.
    emulator.after_page("/customers", 0, lambda s: s.update("customers", victim["id"], lastName="Moved"))
    result = make_hook(page_size=50).read_window("/customers", shop_id, None, end)
    assert ids(result.records) == ids(truth)  # every record, once
    assert result.stats.rereads == 1 and result.stats.consistent
    assert result.stats.total_elements == len(truth) - 1  # the second pass no longer sees the moved record
    assert result.stats.requests == emulator.request_count() == result.stats.pages + 1  # + the token request

    # Without the re-read one record would be lost, which is what the check is for.
    emulator.clear_requests()
    emulator.after_page("/customers", 0, lambda s: s.update("customers", truth[20]["id"], lastName="Moved"))
    single = make_hook(page_size=50).read_window("/customers", shop_id, None, end, max_rereads=0)
    assert not single.stats.consistent and len(single.records) == len(truth) - 2


def test_read_window_merges_passes_keeping_the_newest(emulator, make_hook, shop_id):
    start = emulator.store.anchor - dt.timedelta(days=60)
    truth = emulator.store.records("repair-orders", shop_id)
    victim, gone = truth[1], truth[2]

    def change(store):  # one record changes but stays in the open window; another is deleted
        store.update("repair-orders", victim["id"], milesOut=1)
        store.delete("repair-orders", gone["id"])

    emulator.after_page("/repair-orders", 0, change)
    result = make_hook(page_size=20).read_window("repair-orders", shop_id, start, None)
    assert result.stats.rereads == 1 and result.stats.consistent
    # The deleted one was seen by the first pass; its deletion arrives through the deleted read.
    assert ids(result.records) == ids(truth)
    newest = next(r for r in result.records if r["id"] == victim["id"])
    assert newest == emulator.store.get("repair-orders", victim["id"]) and newest["milesOut"] == 1


def test_deleted_records_only_through_the_deleted_read(emulator, hook, shop_id):
    before = dt.datetime.now(UTC)
    target = emulator.store.records("customers", shop_id)[5]
    emulator.store.update("customers", emulator.store.records("customers", shop_id)[6]["id"], notes="vip")
    emulator.store.delete("customers", target["id"])
    changed = hook.read_window("customers", shop_id, before, None)
    deleted = hook.read_window("customers", shop_id, before, None, deleted=True)
    assert target["id"] not in ids(changed.records) and len(changed.records) == 1
    assert ids(deleted.records) == [target["id"]] and deleted.records[0]["deletedDate"]
    everything = hook.read_window("customers", shop_id, "2000-01-01T00:00:00Z", None, deleted=True)
    assert ids(everything.records) == ids(emulator.store.records("customers", shop_id, deleted=True))
    with pytest.raises(ValueError, match="/employees has no deleted-date filter"):
        hook.read_window("employees", shop_id, before, None, deleted=True)


def test_window_bounds_are_widened_to_whole_seconds(emulator, hook, shop_id):
    start = dt.datetime(2026, 1, 5, 14, 3, 22, 900000, tzinfo=UTC)
    hook.read_window("/vehicles", shop_id, start, start + dt.timedelta(seconds=1))
    query = emulator.requests[-1].query
    assert "updatedDateStart=2026-01-05T14%3A03%3A22Z" in query and "updatedDateEnd=2026-01-05T14%3A03%3A24Z" in query


def test_float_cents_accepted_fractional_rejected_with_the_ro_id(emulator, hook, shop_id):
    ro = emulator.store.records("repair-orders", shop_id)[0]
    emulator.faults.float_cents = True
    raw = hook.get_repair_order(ro["id"])
    assert type(raw["totalSales"]) is float and normalize_repair_order(raw) == ro
    emulator.faults.fractional_cents_ro = ro["id"]
    problem = rf"repair order {ro['id']}: laborSales = {ro['laborSales'] + 0.5!r} has a fraction of a cent"
    with pytest.raises(ValueError, match=problem):
        normalize_repair_order(hook.get_repair_order(ro["id"]))


def test_zone_less_authorized_dates_and_null_part_names(emulator, hook, shop_id):
    ro = next(r for r in emulator.store.records("repair-orders", shop_id)
              if r["jobs"][0]["authorizedDate"] and r["jobs"][0]["parts"])
    emulator.faults.naive_authorized_dates = emulator.faults.null_part_names = True
    job = hook.get_repair_order(ro["id"])["jobs"][0]
    assert not job["authorizedDate"].endswith("Z") and job["parts"][0]["name"] is None
    assert parse_timestamp(job["authorizedDate"]) == parse_timestamp(ro["jobs"][0]["authorizedDate"])


def test_secrets_never_reach_logs_or_errors(emulator, make_hook, monkeypatch, caplog, shop_id):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests too
    hook = make_hook()
    errors: list[str] = []
    tokens: list[str] = [hook.get_token()]
    emulator.faults.throttle_next = emulator.faults.server_errors_next = 1
    emulator.after_page("/customers", 0, lambda store: emulator.revoke_token())
    list(hook.iter_records("/customers", {"shop": shop_id}))
    tokens.append(hook.get_token())
    emulator.faults.revoke_next = 2
    for attempt in (hook.get_shops, lambda: hook.get_repair_order(1), lambda: make_hook(max_retries=0).get_shops()):
        emulator.faults.server_errors_next = 1
        try:
            attempt()
        except Exception as exc:
            errors.append(f"{exc!s} {exc!r} {exc.__cause__!r}")
    tokens.append(emulator.token)
    with pytest.raises(TekmetricAuthError) as bad:
        bad_credentials(emulator, monkeypatch).get_shops()
    errors.append(str(bad.value))

    assert len(errors) == 4 and "Fetched page" in caplog.text and "retry" in caplog.text
    basic = base64.b64encode(f"{emulator.client_id}:{emulator.client_secret}".encode()).decode()
    for text in [caplog.text, *errors, repr(hook.settings)]:
        for secret in [*filter(None, tokens), emulator.client_secret, "wrong-secret-42", basic, "Bearer",
                       "Authorization"]:
            assert secret not in text
