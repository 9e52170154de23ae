"""Tekmetric partner API: the Airflow hook and value helpers.

The hook is imported lazily so that the value helpers load without Airflow (the development
emulator, ``python -m devtools.tekmetric.emulator``, uses them).
"""

from __future__ import annotations

from typing import Any

from datasync.tekmetric.values import cents, normalize_repair_order, parse_timestamp

_HOOK_NAMES = ("TekmetricHook", "TekmetricError", "TekmetricAuthError", "TekmetricHTTPError",
               "TekmetricUnavailable", "WindowRead", "WindowStats", "RateLimiter")

__all__ = ["cents", "normalize_repair_order", "parse_timestamp", *_HOOK_NAMES]


def __getattr__(name: str) -> Any:
    if name in _HOOK_NAMES:
        from datasync.tekmetric import hook

        return getattr(hook, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
