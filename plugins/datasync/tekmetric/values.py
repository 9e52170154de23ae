"""Reading Tekmetric values: lenient timestamps and integer cents.

Shared by the hook and the emulator, so it must not import Airflow.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

UTC = dt.timezone.utc

# Money fields (integer cents) per shape; quantity and hours are decimals and not listed.
RO_MONEY = ("laborSales", "partsSales", "subletSales", "discountTotal", "feeTotal", "taxes", "amountPaid", "totalSales")
JOB_MONEY = ("partsTotal", "laborTotal", "discountTotal", "feeTotal", "subtotal")
LABOR_MONEY = ("rate",)
PART_MONEY = ("cost", "retail")
LINE_MONEY = ("total",)  # fees and discounts
SUBLET_MONEY = ("price", "cost")
SUBLET_ITEM_MONEY = ("cost", "price")


def parse_timestamp(value: Any, field: str = "timestamp") -> dt.datetime | None:
    """ISO-8601 text (``Z``, offsets, any fraction, no zone = UTC, date only) -> aware UTC datetime.

    ``None`` and ``""`` give ``None``; anything unreadable raises ``ValueError`` naming ``field``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text[-1:] == "z":
            text = text[:-1] + "Z"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{field}: {value!r} is not an ISO-8601 timestamp") from None
    else:
        raise ValueError(f"{field}: {value!r} is not an ISO-8601 timestamp")
    if parsed.tzinfo is None:  # Tekmetric's zone-less values (job authorizedDate) are UTC
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(value: dt.datetime) -> str:
    """UTC ``...Z`` text, with milliseconds only when there are any (as Tekmetric sends them)."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    spec = "milliseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def cents(value: Any, field: str, where: str = "") -> int | None:
    """An integer cent amount; whole floats (``8907.0``) pass, fractions (``12.5``) raise ``ValueError``."""
    if value is None:
        return None
    if isinstance(value, bool):
        pass  # a bool is an int in Python but never an amount
    elif isinstance(value, int):
        return value
    else:
        try:
            number = Decimal(str(value).strip()) if isinstance(value, (str, float, Decimal)) else None
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            if number == number.to_integral_value():
                return int(number)
            raise ValueError(_money_message(value, field, where, "has a fraction of a cent"))
    raise ValueError(_money_message(value, field, where, "is not a number of cents"))


def _money_message(value: Any, field: str, where: str, reason: str) -> str:
    place = f"{where}: " if where else ""
    return f"{place}{field} = {value!r} {reason}; Tekmetric money is integer cents"


def repair_order_money(ro: dict) -> Iterator[tuple[dict, str, str]]:
    """Every money field of a repair order as ``(container, key, path)``, embedded lines included."""

    def fields(obj: dict, keys: tuple[str, ...], prefix: str) -> Iterator[tuple[dict, str, str]]:
        for key in keys:
            if key in obj:
                yield obj, key, prefix + key

    yield from fields(ro, RO_MONEY, "")
    for j, job in enumerate(ro.get("jobs") or []):
        base = f"jobs[{j}]."
        yield from fields(job, JOB_MONEY, base)
        lines = (("labor", LABOR_MONEY), ("parts", PART_MONEY), ("fees", LINE_MONEY), ("discounts", LINE_MONEY))
        for name, keys in lines:
            for i, line in enumerate(job.get(name) or []):
                yield from fields(line, keys, f"{base}{name}[{i}].")
    for name in ("fees", "discounts"):
        for i, line in enumerate(ro.get(name) or []):
            yield from fields(line, LINE_MONEY, f"{name}[{i}].")
    for s, sublet in enumerate(ro.get("sublets") or []):
        yield from fields(sublet, SUBLET_MONEY, f"sublets[{s}].")
        for i, item in enumerate(sublet.get("items") or []):
            yield from fields(item, SUBLET_ITEM_MONEY, f"sublets[{s}].items[{i}].")


def normalize_repair_order(ro: dict) -> dict:
    """A copy of ``ro`` with every money field as ``int``; a bad amount raises naming the RO and field."""
    out = copy.deepcopy(ro)
    where = f"repair order {ro.get('id')}"
    for container, key, path in repair_order_money(out):
        container[key] = cents(container[key], path, where)
    return out
