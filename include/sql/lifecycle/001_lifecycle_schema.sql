-- lifecycle_db: the product lifecycle source (seed 002). It is the system of record and,
-- like the application that writes it, loose: no foreign keys, nullable names. The sync
-- validates on the way into pmo_db, where the constraints live.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE IF NOT EXISTS tbl_segmen (
    id          INTEGER PRIMARY KEY,
    segmen      VARCHAR(100),
    deskripsi   TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tbl_stage (
    id          INTEGER PRIMARY KEY,
    stage       VARCHAR(100),
    urutan      INTEGER,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tbl_produk (
    id                  INTEGER PRIMARY KEY,
    nama_produk         VARCHAR(200),
    id_kategori         INTEGER,
    id_segmen           INTEGER,
    id_stage            INTEGER,
    harga               BIGINT,
    deskripsi           TEXT,
    performance_metrics JSONB,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tbl_stage_histori (
    id              INTEGER PRIMARY KEY,
    id_produk       INTEGER,
    id_stage_from   INTEGER,
    id_stage_to     INTEGER,
    changed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    changed_by      VARCHAR(100),
    catatan         TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- updated_at stays current on every update: the incremental sync reads by it.
CREATE OR REPLACE TRIGGER tbl_segmen_updated_at BEFORE UPDATE ON tbl_segmen FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER tbl_stage_updated_at BEFORE UPDATE ON tbl_stage FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER tbl_produk_updated_at BEFORE UPDATE ON tbl_produk FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE OR REPLACE TRIGGER tbl_stage_histori_updated_at BEFORE UPDATE ON tbl_stage_histori FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The sync's keyset reads: (updated_at, id).
CREATE INDEX IF NOT EXISTS tbl_segmen_sync ON tbl_segmen (updated_at, id);
CREATE INDEX IF NOT EXISTS tbl_stage_sync ON tbl_stage (updated_at, id);
CREATE INDEX IF NOT EXISTS tbl_produk_sync ON tbl_produk (updated_at, id);
CREATE INDEX IF NOT EXISTS tbl_stage_histori_sync ON tbl_stage_histori (updated_at, id);
