-- Declare the ops and KPI tables' collation instead of leaving it to the server: utf8mb4_bin,
-- TiDB's default. 001 and 002 said only "utf8mb4", which MariaDB and MySQL read as their
-- case-insensitive default (utf8mb4_general_ci, utf8mb4_0900_ai_ci, ...), so 'Inbound' equalled
-- 'inbound' there but not on TiDB, and the same data gave different KPIs.
--
-- What this means (docs/etl/daily_kpi_etl.md, section 3):
--   * Every text comparison, unique key and GROUP BY in these tables is case-sensitive, on every
--     server: warehouse codes 'JKT-01' and 'jkt-01' are two codes, as they are on TiDB.
--   * Trailing spaces are ignored in comparisons (utf8mb4_bin is PAD SPACE on TiDB, MySQL and
--     MariaDB alike); leading spaces are not.
--   * The KPI SQL (include/sql/kpi/) does not rely on either: it lower-cases and trims tx_type,
--     ref_type and the ids it joins on itself.
--
-- On TiDB the tables already have this collation and each statement changes nothing. A TiDB cluster
-- set up with another default collation refuses to change the collation of indexed columns: then
-- recreate the tables with utf8mb4_bin (dump, drop, db_migrate, load).
-- An ALTER commits by itself; rerunning this file after a failure is safe.

ALTER TABLE organizations CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE warehouses CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE skus CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE vehicles CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE shipments CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE inventory_tx CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE scan_event CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE inventory_kpi_daily CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE fleet_kpi_daily CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE kpi_daily_exclusions CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
