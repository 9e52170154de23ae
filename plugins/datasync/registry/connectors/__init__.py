"""Source connectors: one small module per source type behind one interface.

Each module has ``validate(config)`` (raises :class:`SourceConfigError`, reads nothing) and
``open_source(config, *, batch_size, policy) -> Iterator[list[dict]]``: batches of records, read
lazily. ``validate`` checks the row's shape only; what the row may reach (commands, files,
database connections, API origins, placeholders, sizes) is decided by the platform's
:class:`~datasync.registry.policy.RegistryPolicy`, which every ``open_source`` requires.
Config problems and missing files fail when the source is opened; parse errors surface while
iterating, naming the source and the file/line. Heavy libraries (openpyxl, the Google client)
load only when their source is read, so importing this package costs a DAG file nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from datasync.registry.connectors import api, artisan, csvfile, database, excel, gsheet, jsonfile
from datasync.registry.connectors.base import (
    DEFAULT_BATCH_SIZE, Batch, Record, SourceConfigError, SourceError, SourceNotConfigured,
)
from datasync.registry.connectors.placeholders import check_no_clear_secrets

if TYPE_CHECKING:
    from datasync.registry.policy import RegistryPolicy

# source_type (data_source_registry.source_type) -> connector
CONNECTORS: dict[str, ModuleType] = {
    "json": jsonfile,
    "csv": csvfile,
    "excel": excel,
    "gsheet": gsheet,
    "database": database,
    "api": api,
    "artisan": artisan,
}


def connector(source_type: str) -> ModuleType:
    try:
        return CONNECTORS[source_type]
    except KeyError:
        raise SourceConfigError(f"unknown source type {source_type!r}; known: {sorted(CONNECTORS)}") from None


def validate_config(source_type: str, config: Mapping[str, Any]) -> None:
    """Everything that can be checked without reading the source, secrets policy included."""
    check_no_clear_secrets(config, source_type)
    connector(source_type).validate(config)


def open_source(source_type: str, config: Mapping[str, Any], *, policy: RegistryPolicy,
                batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    validate_config(source_type, config)
    return connector(source_type).open_source(config, batch_size=batch_size, policy=policy)


__all__ = [
    "CONNECTORS", "DEFAULT_BATCH_SIZE", "Batch", "Record", "SourceConfigError", "SourceError",
    "SourceNotConfigured", "connector", "open_source", "validate_config",
]
