"""The one HTTP policy of every API the package calls (Tekmetric, registry API sources).

* :class:`HttpPolicy` retries what may succeed later (429, 5xx, timeouts, dropped connections)
  with exponential backoff and full jitter (tenacity), or as long as the server's ``Retry-After``
  says (seconds or an HTTP date), never longer than ``backoff_cap``.
* :class:`RateLimiter` paces the calls of one connection (threads share it) and slows itself down
  when the server answers 429: the configured rate is what the connection *says*; the server's
  real limit may be lower, and each 429 costs a request and a wait. As TCP does with a lost
  packet: a 429 halves the rate, and each call that goes through adds a small step back, so a
  connection that overstates the limit settles under the server's. A 429 also caps the rate at
  the calls the server let through in the last minute: where the server counts per minute, that
  is this client's real share, and one lesson is enough.

Callers raise :class:`Transient` for an attempt worth repeating; anything else ends the call.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

T = TypeVar("T")

SLOWEST_FRACTION = 1 / 64  # the adaptive rate never drops below this share of the configured rate
PROBE_STEP = 0.01  # per successful call, as a share of the rate set by the last 429


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: a number (fractions allowed) or an HTTP date
    (RFC 9110); None when absent or unreadable. A date in the past means now (0)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by the RFC
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class Transient(Exception):
    """An attempt that may succeed when repeated: ``problem`` says what happened (no secrets),
    ``retry_after`` what the server asked for, ``throttled`` whether it was a 429."""

    def __init__(self, problem: str, *, retry_after: float | None = None, throttled: bool = False,
                 response: Any = None) -> None:
        super().__init__(problem)
        self.problem, self.retry_after, self.throttled, self.response = problem, retry_after, throttled, response


class GaveUp(Exception):
    """Every attempt failed; ``last`` is the final :class:`Transient`."""

    def __init__(self, attempts: int, last: Transient) -> None:
        super().__init__(f"still failing after {attempts} attempts: {last.problem}")
        self.attempts, self.last = attempts, last


class RateLimiter:
    """At most ``per_minute`` calls a minute (GCRA: evenly spaced, ``burst`` back to back), and
    adaptive: :meth:`throttled` after a 429 halves the rate, :meth:`succeeded` wins it back.

    Threads reserve their slot under the lock and sleep outside it, so concurrent callers queue up
    evenly; idle time is not saved up beyond ``burst`` calls.
    """

    def __init__(self, per_minute: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not per_minute > 0:
            raise ValueError(f"rate limit must be positive, got {per_minute}")
        self.limit = float(per_minute)
        self.burst = max(int(burst), 1)
        self.clock, self.sleep = clock, sleep
        self._rate = self._safe = self.limit
        self._next_free = clock()  # the "theoretical arrival time"
        self._slowed_at = -math.inf
        self._successes = 0  # since the rate last dropped
        self._recent: deque[float] = deque()  # when calls went through, over the last minute
        self._lock = threading.Lock()

    @property
    def per_minute(self) -> float:
        """The rate in force now (the configured one unless 429s slowed it down)."""
        return self._rate

    def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited."""
        with self._lock:
            interval = 60.0 / self._rate
            now = self.clock()
            tat = max(self._next_free, now)
            start = max(now, tat - (self.burst - 1) * interval)
            self._next_free = tat + interval
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return max(wait, 0.0)

    def defer(self, seconds: float) -> None:
        """Nobody calls for ``seconds`` (the server said wait)."""
        with self._lock:
            self._next_free = max(self._next_free, self.clock() + seconds)

    def throttled(self, sent_at: float) -> None:
        """A call sent at ``sent_at`` (this limiter's clock) got a 429: halve the rate, once per
        lesson. Calls already under way when it dropped, and 429s back to back before any call went
        through at the lower rate (the server's window still full of earlier calls: the backoff
        waits that out), teach nothing new and do not drop it again."""
        with self._lock:
            if sent_at <= self._slowed_at or (self._successes == 0 and self._rate < self.limit):
                return
            now = self.clock()
            while self._recent and self._recent[0] <= now - 60:
                self._recent.popleft()
            share = len(self._recent) or math.inf  # what the server let through in the last minute
            self._rate = self._safe = max(min(self._rate / 2, share), self.limit * SLOWEST_FRACTION)
            self._slowed_at, self._successes = now, 0

    def succeeded(self) -> None:
        """A call went through: step the rate back up towards the configured one."""
        with self._lock:
            self._successes += 1
            self._recent.append(self.clock())
            if len(self._recent) > 2 * self.limit:  # only the last minute matters; bound the memory
                self._recent.popleft()
            self._rate = min(self._rate + PROBE_STEP * self._safe, self.limit)


@dataclass(frozen=True)
class HttpPolicy:
    """How often and how long to retry. ``max_retries`` repeats after the first attempt; waits
    grow as ``backoff_base * 2**n`` plus up to ``backoff_base`` of jitter, capped at ``backoff_cap``
    (a longer ``Retry-After`` is capped too: the next attempt will say again)."""

    max_retries: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    def call(self, attempt: Callable[[], T], *, limiter: RateLimiter | None = None,
             on_retry: Callable[[int, Transient, float], None] | None = None) -> T:
        """``attempt()`` until it returns, raises something else than :class:`Transient`, or the
        retries run out (then :class:`GaveUp`). With ``limiter``: each attempt waits for its slot,
        a 429 slows the limiter down and defers every caller of it, a success speeds it up.
        ``on_retry(repeat number, transient, wait)`` runs before each wait (to log)."""

        def paced() -> T:
            sent_at = 0.0
            if limiter is not None:
                limiter.acquire()
                sent_at = limiter.clock()
            try:
                result = attempt()
            except Transient as exc:
                if limiter is not None and exc.throttled:
                    limiter.throttled(sent_at)
                raise
            if limiter is not None:
                limiter.succeeded()
            return result

        backoff = tenacity.wait_exponential_jitter(initial=self.backoff_base, max=self.backoff_cap,
                                                   jitter=self.backoff_base)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception()
            seconds = backoff(state) if exc.retry_after is None else min(exc.retry_after, self.backoff_cap)
            if limiter is not None and exc.throttled:
                limiter.defer(seconds)  # every thread of this connection waits, not just this one
            return seconds

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                on_retry(state.attempt_number, state.outcome.exception(), state.next_action.sleep)

        def give_up(state: tenacity.RetryCallState) -> T:
            raise GaveUp(state.attempt_number, state.outcome.exception())

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception_type(Transient),
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )(paced)

