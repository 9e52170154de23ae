"""Lenient timestamps and integer cents, as the Tekmetric payloads need."""

import datetime as dt

import pytest

from datasync.tekmetric.values import cents, format_timestamp, normalize_repair_order, parse_timestamp

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-05T14:03:22Z", dt.datetime(2026, 1, 5, 14, 3, 22, tzinfo=UTC)),
        ("2026-01-05T14:03:22.123Z", dt.datetime(2026, 1, 5, 14, 3, 22, 123000, tzinfo=UTC)),
        ("2026-01-05T14:03:22.123456789Z", dt.datetime(2026, 1, 5, 14, 3, 22, 123456, tzinfo=UTC)),
        ("2026-01-05T08:03:22-06:00", dt.datetime(2026, 1, 5, 14, 3, 22, tzinfo=UTC)),
        ("2026-01-05T16:03:22+0200", dt.datetime(2026, 1, 5, 14, 3, 22, tzinfo=UTC)),
        ("2026-01-05T14:03:22", dt.datetime(2026, 1, 5, 14, 3, 22, tzinfo=UTC)),  # no zone = UTC
        ("2026-01-05 14:03:22.5z", dt.datetime(2026, 1, 5, 14, 3, 22, 500000, tzinfo=UTC)),
        ("2026-01-05", dt.datetime(2026, 1, 5, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_is_lenient_and_returns_aware_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.tzinfo == UTC


def test_parse_timestamp_empty_and_bad_values():
    assert parse_timestamp(None) is None and parse_timestamp("") is None
    assert parse_timestamp(dt.datetime(2026, 1, 5, 14)) == dt.datetime(2026, 1, 5, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"authorizedDate: 'yesterday' is not an ISO-8601 timestamp"):
        parse_timestamp("yesterday", "authorizedDate")
    with pytest.raises(ValueError, match="createdDate"):
        parse_timestamp(1767621802000, "createdDate")


def test_format_timestamp_round_trips():
    assert format_timestamp(dt.datetime(2026, 1, 5, 14, 3, 22, tzinfo=UTC)) == "2026-01-05T14:03:22Z"
    assert format_timestamp(dt.datetime(2026, 1, 5, 14, 3, 22, 123456, tzinfo=UTC)) == "2026-01-05T14:03:22.123Z"


@pytest.mark.parametrize(
    "value, expected", [(8907, 8907), (8907.0, 8907), ("8907", 8907), ("8907.00", 8907), (0.0, 0), (None, None)]
)
def test_cents_accepts_whole_numbers(value, expected):
    assert cents(value, "totalSales") == expected
    assert type(cents(value, "totalSales")) is type(expected)


@pytest.mark.parametrize("value", [12.5, "1.01", 0.1])
def test_cents_rejects_fractions_naming_field_and_value(value):
    with pytest.raises(ValueError, match=rf"repair order 7: laborSales = {value!r} has a fraction of a cent"):
        cents(value, "laborSales", "repair order 7")


@pytest.mark.parametrize("value", [True, "abc", float("nan"), [1]])
def test_cents_rejects_non_numbers(value):
    with pytest.raises(ValueError, match="is not a number of cents"):
        cents(value, "cost")


def test_normalize_repair_order_walks_every_money_field():
    ro = {
        "id": 41, "laborSales": 100.0, "totalSales": 250,
        "jobs": [{"laborTotal": 100.0, "labor": [{"rate": 14500.0, "hours": 0.5}],
                  "parts": [{"cost": 10.0, "retail": 20, "quantity": 1.5}], "fees": [{"total": 5.0}], "discounts": []}],
        "sublets": [{"price": 30.0, "cost": 20, "items": [{"cost": 20.0, "price": 30}]}], "fees": [{"total": 295.0}],
    }
    out = normalize_repair_order(ro)
    assert out["laborSales"] == 100 and type(out["jobs"][0]["labor"][0]["rate"]) is int
    assert out["jobs"][0]["parts"][0]["quantity"] == 1.5  # quantities stay decimals
    assert type(out["sublets"][0]["items"][0]["cost"]) is int and out["fees"][0]["total"] == 295
    assert ro["laborSales"] == 100.0 and type(ro["laborSales"]) is float  # the input is untouched

    ro["jobs"][0]["parts"][0]["cost"] = 1099.5
    with pytest.raises(ValueError, match=r"repair order 41: jobs\[0\]\.parts\[0\]\.cost = 1099\.5"):
        normalize_repair_order(ro)
