"""Google Sheets for PTMMM: the optional KPI export and reading the master-data sheet.

Both go through the Google provider's ``GSheetsHook`` on the Airflow connection
``google_sheets`` (DESIGN.md). The connection extra ``api_endpoint`` points the hook at another
server (tests and the demo use :mod:`devtools.ptmmm.sheets_standin`). Which spreadsheet: a DAG
param, else an Airflow Variable. Without both the tasks skip and say why.

The export keeps one tab per KPI table (header row + one row per day and warehouse, sorted by
day). Exporting a day replaces exactly that day's rows: the tab is read, the day's old rows are
dropped, the new ones put in place, and the whole tab is written back in one ``values.update``
(rows that fall off the end are blanked in the same call), so a rerun never duplicates a day and
a failed call leaves the previous content.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)

SHEETS_CONN = "google_sheets"
KPI_SPREADSHEET_VARIABLE = "ptmmm_kpi_spreadsheet_id"
MASTER_SPREADSHEET_VARIABLE = "ptmmm_master_spreadsheet_id"
_SHEETS_EPOCH = dt.date(1899, 12, 30)  # day 0 of a spreadsheet date serial


class SheetsNotConfigured(RuntimeError):
    """No ``google_sheets`` connection or no spreadsheet id: the task skips."""


class SheetsError(RuntimeError):
    """The Sheets API refused a call, or a tab is not laid out as expected."""


@dataclass(frozen=True)
class SheetTarget:
    conn_id: str
    spreadsheet_id: str
    api_endpoint: str | None

    def describe(self) -> str:
        return f"spreadsheet {self.spreadsheet_id} (connection '{self.conn_id}')"

    def hook(self):
        from airflow.providers.google.suite.hooks.sheets import GSheetsHook

        return GSheetsHook(gcp_conn_id=self.conn_id, api_endpoint=self.api_endpoint)


def _variable(name: str) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(name, default=None)
    except Exception:  # outside a task (or no metadata DB): treat as unset
        return None


def sheet_target(spreadsheet_id: str | None, variable: str, conn_id: str = SHEETS_CONN) -> SheetTarget:
    """The configured spreadsheet, or :class:`SheetsNotConfigured` saying what is missing."""
    from airflow.sdk import BaseHook

    spreadsheet_id = (spreadsheet_id or "").strip() or (_variable(variable) or "").strip()
    try:
        extra = BaseHook.get_connection(conn_id).extra_dejson or {}
    except Exception:
        raise SheetsNotConfigured(f"no Airflow connection '{conn_id}' (type google_cloud_platform) is configured") from None
    if not spreadsheet_id:
        raise SheetsNotConfigured(f"no spreadsheet id: set the DAG param spreadsheet_id or the Airflow Variable '{variable}'")
    return SheetTarget(conn_id, spreadsheet_id, extra.get("api_endpoint"))


def _call(what: str, target: SheetTarget, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except SheetsError:
        raise
    except Exception as exc:  # HttpError / auth errors: keep type and message, not the traceback noise
        raise SheetsError(f"{target.describe()}: {what} failed ({type(exc).__name__}: {str(exc)[:300]})") from exc


def quote_tab(tab: str) -> str:
    return "'" + tab.replace("'", "''") + "'"


def read_tab(target: SheetTarget, tab: str, hook=None, unformatted: bool = True) -> list[list[Any]]:
    """All values of a tab (``[]`` when it is empty); :class:`SheetsError` when it does not exist."""
    hook = hook or target.hook()
    titles = _call("listing tabs", target, hook.get_sheet_titles, target.spreadsheet_id)
    if tab not in titles:
        raise SheetsError(f"{target.describe()} has no tab '{tab}' (it has {titles})")
    return _call(f"reading tab '{tab}'", target, hook.get_values, target.spreadsheet_id, quote_tab(tab),
                 value_render_option="UNFORMATTED_VALUE" if unformatted else "FORMATTED_VALUE")


def tab_records(values: list[list[Any]], where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(sheet row number, {header: value})`` for each non-empty row under the header row.
    Strings are stripped; empty cells are None (the API drops trailing ones)."""
    if not values:
        return
    header = [str(h).strip() for h in values[0]]
    duplicates = sorted({h for h in header if h and header.count(h) > 1})
    if duplicates:
        raise SheetsError(f"{where}: the header row names {duplicates} more than once")
    for row_no, row in enumerate(values[1:], 2):
        cells = [v.strip() if isinstance(v, str) else v for v in row]
        cells = [None if v == "" else v for v in cells]
        if all(v is None for v in cells):
            continue
        yield row_no, {h: (cells[i] if i < len(cells) else None) for i, h in enumerate(header) if h}


# --- the KPI export --------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A database value as a RAW cell: numbers stay numbers, days and times become text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _day_of(cell: Any) -> str:
    """The data_date cell as YYYY-MM-DD (someone may have retyped it and Sheets made it a date serial)."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return (_SHEETS_EPOCH + dt.timedelta(days=int(cell))).isoformat()
    return str(cell).strip()


def replace_day(target: SheetTarget, tab: str, header: list[str], day: dt.date, rows: list[Mapping[str, Any]],
                hook=None) -> dict[str, int]:
    """Put ``rows`` (dicts with the ``header`` keys; ``header[0]`` is the day) in place of the
    tab's rows of ``day``. Creates the tab on first use. Returns the counts."""
    hook = hook or target.hook()
    sid = target.spreadsheet_id
    titles = _call("listing tabs", target, hook.get_sheet_titles, sid)
    if tab not in titles:
        _call(f"adding tab '{tab}'", target,
              lambda: hook.get_conn().spreadsheets().batchUpdate(
                  spreadsheetId=sid, body={"requests": [{"addSheet": {"properties": {"title": tab}}}]}
              ).execute(num_retries=hook.num_retries))
        existing: list[list[Any]] = []
        log.info("%s: added tab '%s'", target.describe(), tab)
    else:
        existing = _call(f"reading tab '{tab}'", target, hook.get_values, sid, quote_tab(tab),
                         value_render_option="UNFORMATTED_VALUE")
    if existing and [str(h).strip() for h in existing[0]] != header:
        raise SheetsError(
            f"{target.describe()} tab '{tab}': the header row is {existing[0]}, expected {header}. "
            "Nothing was written; restore the header (or clear the tab) and rerun"
        )
    wanted = day.isoformat()
    kept = [r for r in existing[1:] if r and _day_of(r[0]) != wanted]
    replaced = len(existing[1:]) - len(kept)
    new = [[_cell(row.get(h)) for h in header] for row in rows]
    body = sorted(kept + new, key=lambda r: _day_of(r[0]) if r else "")  # stable: a day's rows keep their order
    blanks = max(0, len(existing) - 1 - len(body))
    width = max([len(header)] + [len(r) for r in existing])
    values = [header] + [r + [""] * (width - len(r)) for r in body] + [[""] * width] * blanks
    _call(f"writing tab '{tab}'", target, hook.update_values, sid, f"{quote_tab(tab)}!A1", values, value_input_option="RAW")
    counts = {"rows_written": len(new), "rows_replaced": replaced, "rows_kept": len(kept)}
    log.info("%s tab '%s': %s rows for %s written (%s old rows of that day replaced); %s rows of other days kept",
             target.describe(), tab, len(new), wanted, replaced, len(kept))
    return counts
