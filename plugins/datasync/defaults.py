"""Defaults every DAG in this repository shares, so retry policy is decided once."""

from datetime import timedelta

import pendulum

OWNER = "data-platform"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}
