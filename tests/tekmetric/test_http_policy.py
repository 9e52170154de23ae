"""The one HTTP policy (datasync.http): Retry-After, retries with backoff, the adaptive rate limiter;
and, over real HTTP against the emulator, how few 429s a connection that overstates the limit gets."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from datasync.http import GaveUp, HttpPolicy, RateLimiter, Transient, retry_after_seconds

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, seconds", [
    ("7", 7.0), ("0.25", 0.25), (" 3 ", 3.0), ("-5", 0.0),
    (email.utils.format_datetime(NOW + dt.timedelta(seconds=90), usegmt=True), 90.0),
    ("Mon, 30 Nov 2026 11:59:00 GMT", 0.0),  # a date in the past: now
    ("Mon, 30 Nov 2026 12:00:30 -0000", 30.0),
    (None, None), ("", None), ("soon", None), ("nan", None), ("inf", None),
])
def test_retry_after_as_seconds_or_http_date(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


class FakeClock:
    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_limiter_halves_once_per_lesson_and_climbs_back_in_small_steps():
    clock = FakeClock()
    limiter = RateLimiter(300, clock=clock, sleep=clock.sleep)
    sent = clock()
    limiter.throttled(sent)
    assert limiter.per_minute == 150
    limiter.throttled(sent)  # a second call already in flight when the rate dropped: no second drop
    clock.now += 1
    limiter.throttled(clock())  # a retry before anything went through at 150: nothing new learned
    assert limiter.per_minute == 150
    climbed = []
    for _ in range(10):
        limiter.succeeded()
        climbed.append(limiter.per_minute)
    assert climbed == pytest.approx([150 + 1.5 * n for n in range(1, 11)])  # 1 % of 150 per call
    clock.now += 1
    limiter.throttled(clock())  # a 429 after calls went through: a lesson, capped at the server's
    assert limiter.per_minute == 10  # 10 calls went through in the last minute: that is our share
    clock.now += 61
    for _ in range(200):
        limiter.succeeded()
    clock.now += 1
    limiter.throttled(clock())  # 200 went through in the last minute: plain halving
    assert limiter.per_minute == pytest.approx((10 + 200 * 0.1) / 2)
    for _ in range(3000):
        limiter.succeeded()
    assert limiter.per_minute == 300  # never past the configured rate
    clock.now += 1
    limiter.throttled(clock())
    clock.now += 1
    limiter.acquire()
    limiter.acquire()
    assert clock.slept == [pytest.approx(60 / 150)]  # the pace follows the slowed rate


def test_limiter_never_stops_and_defers_everyone():
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        clock.now += 1
        limiter.throttled(clock())
        limiter.succeeded()
    assert 60 / 64 <= limiter.per_minute < 1.02 * 60 / 64  # the floor (plus one step back up)
    limiter.defer(5)
    assert limiter.acquire() == pytest.approx(5)


def test_policy_retries_transient_with_backoff_then_gives_up():
    waits, calls = [], []
    policy = HttpPolicy(max_retries=3, backoff_base=0.01, backoff_cap=0.035)

    def flaky():
        calls.append(1)
        raise Transient(f"HTTP 503 #{len(calls)}")

    with pytest.raises(GaveUp) as gave_up:
        policy.call(flaky, on_retry=lambda n, exc, wait: waits.append((n, exc.problem, wait)))
    assert gave_up.value.attempts == 4 and gave_up.value.last.problem == "HTTP 503 #4"
    assert [(n, p) for n, p, _ in waits] == [(1, "HTTP 503 #1"), (2, "HTTP 503 #2"), (3, "HTTP 503 #3")]
    assert 0.01 <= waits[0][2] <= 0.02 and 0.02 <= waits[1][2] <= 0.03 and waits[2][2] == 0.035  # 2^n, jitter, cap


def test_policy_honours_retry_after_capped_and_stops_on_other_errors():
    waits = []
    answers = iter([Transient("HTTP 429", retry_after=0.02, throttled=True), Transient("HTTP 429", retry_after=99.0), "ok"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert HttpPolicy(max_retries=5, backoff_cap=0.03).call(call, on_retry=lambda n, e, w: waits.append(w)) == "ok"
    assert waits == [0.02, 0.03]
    tries = []

    def refused():
        tries.append(1)
        raise ValueError("HTTP 404")

    with pytest.raises(ValueError):
        HttpPolicy().call(refused)
    assert len(tries) == 1


def test_a_connection_that_overstates_the_limit_settles_under_the_server(emulator, make_hook, shop_id):
    # The server allows 600/min (10 in any second, +1 of slack); the connection says 3000/min.
    emulator.rate_limit_per_minute, emulator.rate_limit_window = 600, 1.0
    hook = make_hook(rate_limit_per_minute=3000, backoff_base=0.05)
    hook.get_token()
    emulator.clear_requests()
    for i in range(120):
        hook.get_json("/customers", {"shop": shop_id, "size": 5, "page": i % 3})
    calls = emulator.requests
    throttled = emulator.request_count(reason="rate_limit")
    assert len(calls) - throttled == 120
    assert throttled / len(calls) < 0.12, f"{throttled} of {len(calls)} calls answered 429"  # 25 % without the slowdown
    assert hook._limiter.per_minute < 3000  # it slowed itself down
