"""Dotted paths into parsed JSON (``data.items``, ``machine.id``, ``rows.0.value``)."""

from __future__ import annotations

from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def get_path(obj: Any, path: str | None, default: Any = MISSING) -> Any:
    """The value at ``path`` (empty path: ``obj`` itself); ``default`` when any step is absent.

    A step into a list must be an index. Keys that themselves contain dots cannot be reached,
    which is the price of a readable notation; such sources can use a records path one level up.
    """
    if not path:
        return obj
    for step in path.split("."):
        if isinstance(obj, dict) and step in obj:
            obj = obj[step]
        elif isinstance(obj, list) and step.lstrip("-").isdigit() and -len(obj) <= int(step) < len(obj):
            obj = obj[int(step)]
        else:
            return default
    return obj
