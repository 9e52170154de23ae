"""Table and column names that come from configuration are checked before any SQL sees them.

Only plain identifiers pass (letters, digits, underscore; optionally ``schema.table``);
anything else, such as ``x; DROP TABLE y`` or a quote, is refused with the offending value.
Callers still quote what passes (``Database.quote``), so reserved words work too.
"""

import re

# Matched whole (fullmatch): a ``$`` anchor would also accept a trailing newline ("v\n").
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class InvalidIdentifier(ValueError):
    pass


def check_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise InvalidIdentifier(f"refusing {what} {name!r}: only letters, digits and '_' (max 63, not starting with a digit)")
    return name


def check_table_name(name: str) -> str:
    """``table`` or ``schema.table``."""
    parts = name.split(".") if isinstance(name, str) else [name]
    if len(parts) > 2:
        raise InvalidIdentifier(f"refusing table name {name!r}: at most schema.table")
    for part in parts:
        check_identifier(part, "table name")
    return name
