"""Google Sheets through the Google provider's GSheetsHook: the first row of the range is the header.

The endpoint is never hard-coded: ``api_endpoint`` (config, else the connection's extra) points
the hook at another server, which is how tests run against a local stand-in. The Google
credentials travel with every request, so a registry row's own ``api_endpoint`` must be an
origin the registry policy allows (``api_origins``); the connection's extra is the platform's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from datasync.registry.connectors.base import (
    Batch, Record, SourceConfigError, SourceError, SourceNotConfigured, batched, check_keys,
)

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

KIND = "gsheet"
DEFAULT_CONN_ID = "google_sheets"  # DESIGN.md
OPTIONAL = ("gcp_conn_id", "api_endpoint", "value_render_option")
RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")


def validate(config: Mapping[str, Any]) -> None:
    check_keys(KIND, config, ["spreadsheet_id", "range"], OPTIONAL)
    if config.get("value_render_option", "FORMATTED_VALUE") not in RENDER_OPTIONS:
        raise SourceConfigError(f"{KIND} source: value_render_option must be one of {RENDER_OPTIONS}")


def open_source(config: Mapping[str, Any], *, batch_size: int, policy: RegistryPolicy) -> Iterator[Batch]:
    from datasync.registry.policy import PolicyRefused

    validate(config)
    conn_id = config.get("gcp_conn_id") or DEFAULT_CONN_ID
    where = f"{KIND} source {config['spreadsheet_id']} range {config['range']!r}"
    if config.get("api_endpoint"):  # the Google credentials go wherever this points
        try:
            policy.api_url(str(config["api_endpoint"]))
        except PolicyRefused as exc:
            raise exc.at(where) from None

    def records() -> Iterator[Record]:
        from airflow.providers.google.suite.hooks.sheets import GSheetsHook
        from airflow.sdk import BaseHook

        try:
            extra = BaseHook.get_connection(conn_id).extra_dejson or {}
        except Exception:  # not configured: optional per DESIGN.md, so callers may skip
            raise SourceNotConfigured(f"{where}: Airflow connection '{conn_id}' is not configured") from None
        endpoint = config.get("api_endpoint") or extra.get("api_endpoint")
        hook = GSheetsHook(gcp_conn_id=conn_id, api_endpoint=endpoint)
        try:
            rows = hook.get_values(
                spreadsheet_id=config["spreadsheet_id"],
                range_=config["range"],
                value_render_option=config.get("value_render_option", "FORMATTED_VALUE"),
            )
        except Exception as exc:  # googleapiclient/auth errors: keep type and message, drop the traceback noise
            raise SourceError(f"{where}: cannot read values ({type(exc).__name__}: {str(exc)[:300]})") from None
        yield from sheet_records(rows, where)

    return batched(records(), batch_size)


def sheet_records(rows: list[list[Any]], where: str) -> Iterator[Record]:
    """The API drops trailing empty cells, so short rows are padded with None."""
    if not rows:
        return
    header = [str(h).strip() for h in rows[0]]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates or "" in header:
        raise SourceError(f"{where}: header row has duplicate or empty names {duplicates or ['']}")
    for row_no, row in enumerate(rows[1:], 2):
        if len(row) > len(header):
            raise SourceError(f"{where} row {row_no}: {len(row)} cells, but the header has {len(header)}")
        if any(v not in (None, "") for v in row):
            yield {h: (row[i] if i < len(row) else None) for i, h in enumerate(header)}
