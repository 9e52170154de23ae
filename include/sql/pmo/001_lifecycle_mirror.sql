-- pmo_db: the PMO application's read copy of lifecycle_db (seed 002), with the constraints
-- the source lacks. Rows that break them are rejected by the sync with their id and reason.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS tbl_segmen_lifecycle (
    id          INTEGER PRIMARY KEY,
    segmen      VARCHAR(100) NOT NULL,
    deskripsi   TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS tbl_stage_lifecycle (
    id          INTEGER PRIMARY KEY,
    stage       VARCHAR(100) NOT NULL,
    urutan      INTEGER,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS tbl_produk_lifecycle (
    id                  INTEGER PRIMARY KEY,
    nama_produk         VARCHAR(200) NOT NULL,
    id_kategori         INTEGER,
    id_segmen           INTEGER NOT NULL REFERENCES tbl_segmen_lifecycle (id),
    id_stage            INTEGER NOT NULL REFERENCES tbl_stage_lifecycle (id),
    harga               BIGINT CONSTRAINT harga_not_negative CHECK (harga >= 0),
    deskripsi           TEXT,
    performance_metrics JSONB,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS tbl_stage_histori_lifecycle (
    id              INTEGER PRIMARY KEY,
    id_produk       INTEGER NOT NULL REFERENCES tbl_produk_lifecycle (id),
    id_stage_from   INTEGER REFERENCES tbl_stage_lifecycle (id),
    id_stage_to     INTEGER NOT NULL REFERENCES tbl_stage_lifecycle (id),
    changed_at      TIMESTAMPTZ NOT NULL,
    changed_by      VARCHAR(100),
    catatan         TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- What the PMO API filters and pages by (seed: search, stageId, segmentId, categoryId, page).
CREATE INDEX IF NOT EXISTS tbl_produk_lifecycle_search ON tbl_produk_lifecycle USING gin (nama_produk gin_trgm_ops);
CREATE INDEX IF NOT EXISTS tbl_produk_lifecycle_stage ON tbl_produk_lifecycle (id_stage, id);
CREATE INDEX IF NOT EXISTS tbl_produk_lifecycle_segmen ON tbl_produk_lifecycle (id_segmen, id);
CREATE INDEX IF NOT EXISTS tbl_produk_lifecycle_kategori ON tbl_produk_lifecycle (id_kategori, id);
CREATE INDEX IF NOT EXISTS tbl_stage_histori_lifecycle_produk ON tbl_stage_histori_lifecycle (id_produk, changed_at DESC);

-- The seed's "After" product shape: ids plus segment and stage names from the join.
CREATE OR REPLACE VIEW v_produk_lifecycle AS
SELECT p.id, p.nama_produk, p.id_kategori, p.id_segmen, p.id_stage,
       s.segmen, st.stage, p.harga, p.deskripsi, p.performance_metrics, p.created_at, p.updated_at
FROM tbl_produk_lifecycle p
JOIN tbl_segmen_lifecycle s ON s.id = p.id_segmen
JOIN tbl_stage_lifecycle st ON st.id = p.id_stage;
