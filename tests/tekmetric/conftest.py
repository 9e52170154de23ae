"""Fixtures for the Tekmetric tests: a live emulator on loopback and hooks pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from devtools.tekmetric.emulator import TekmetricEmulator
from datasync.tekmetric.hook import TekmetricHook

# Small data, but more than 100 customers per shop so that paging has several pages.
SMALL = {"shops": 2, "seed": 11, "employees": 6, "customers": 130, "repair_orders": 70}


@pytest.fixture
def emulator() -> Iterator[TekmetricEmulator]:
    with TekmetricEmulator(**SMALL) as emu:
        yield emu


@pytest.fixture
def make_hook(emulator: TekmetricEmulator, monkeypatch: pytest.MonkeyPatch) -> Callable[..., TekmetricHook]:
    """Hooks on connection ``tekmetric_api`` -> the emulator; tiny backoff, no client-side throttling unless asked."""
    monkeypatch.setenv("AIRFLOW_CONN_TEKMETRIC_API", emulator.airflow_connection())
    hooks: list[TekmetricHook] = []

    def make(**overrides) -> TekmetricHook:
        options = {"backoff_base": 0.001, "rate_limit_per_minute": 60_000, "timeout": 5, **overrides}
        hook = TekmetricHook(**options)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(make_hook) -> TekmetricHook:
    return make_hook()


@pytest.fixture
def shop_id(emulator: TekmetricEmulator) -> int:
    return emulator.store.shop_ids[0]
