"""Product lifecycle sync: lifecycle_db -> pmo_db, four tables in foreign-key order."""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_CONN = "lifecycle_db"
TARGET_CONN = "pmo_db"


@dataclass(frozen=True)
class LifecycleTable:
    name: str  # task and sync name part
    source: str
    target: str


# Parents before children; full refresh prunes in the reverse order.
TABLES = (
    LifecycleTable("segments", "tbl_segmen", "tbl_segmen_lifecycle"),
    LifecycleTable("stages", "tbl_stage", "tbl_stage_lifecycle"),
    LifecycleTable("products", "tbl_produk", "tbl_produk_lifecycle"),
    LifecycleTable("stage_history", "tbl_stage_histori", "tbl_stage_histori_lifecycle"),
)
