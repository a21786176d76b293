-- The rates store: one embedded DuckDB file (build/rates.duckdb by default), filled only by `cptpub ingest`.
-- Every row points at the source file it came from, so an edition can cite each file in its Methodology section
-- and a re-ingest can replace exactly one file's rows.

-- One row per ingested file.
CREATE TABLE IF NOT EXISTS sources (
    source_id        VARCHAR PRIMARY KEY,   -- SHA-256 of the file's bytes, as read (compressed if gzip)
    kind             VARCHAR NOT NULL,      -- 'tic-in-network' | 'pprrvu'
    path             VARCHAR NOT NULL,      -- the path given to `cptpub ingest`
    file_name        VARCHAR NOT NULL,
    payer            VARCHAR NOT NULL,      -- a payer name of data/payers.yaml ('Medicare' for PPRRVU)
    publisher        VARCHAR,              -- reporting_entity_name, or 'CMS' for PPRRVU
    entity_type      VARCHAR,              -- reporting_entity_type
    plans            VARCHAR,              -- a single-plan TiC file's plan_name; NULL for multi-plan files and PPRRVU
    last_updated_on  DATE,                 -- the file's own as-of date (TiC last_updated_on; PPRRVU: Jan 1 of its year)
    schema_version   VARCHAR,              -- TiC version field; PPRRVU release name (e.g. 'RVU24A')
    rows_kept        BIGINT NOT NULL,       -- rows written to negotiated_rates / medicare_pfs
    items_skipped    BIGINT NOT NULL,       -- in_network items / CSV rows not wanted (other codes)
    warnings         VARCHAR[],            -- e.g. unresolved remote provider references
    is_demo          BOOLEAN NOT NULL,      -- synthetic demo data (marked '[DEMO DATA]' in the file itself)
    ingested_at      TIMESTAMP NOT NULL
);

-- One row per (negotiated price, provider group): a price that applies to three provider groups is three rows.
-- Percentages and per-diems are stored too; benchmarks keep only dollar types.
CREATE TABLE IF NOT EXISTS negotiated_rates (
    source_id                 VARCHAR NOT NULL,
    payer                     VARCHAR NOT NULL,
    billing_code              VARCHAR NOT NULL,
    billing_code_type         VARCHAR NOT NULL,   -- CPT, HCPCS, ...
    billing_code_modifiers    VARCHAR[],          -- billing_code_modifier of the price, if any
    negotiation_arrangement   VARCHAR NOT NULL,   -- ffs | bundle | capitation
    item_name                 VARCHAR,            -- the in_network item's name, as the payer wrote it
    negotiated_type           VARCHAR NOT NULL,   -- negotiated | derived | fee schedule | percentage | per diem
    negotiated_rate           DOUBLE NOT NULL,    -- dollars, or percent for 'percentage'
    billing_class             VARCHAR NOT NULL,   -- professional | institutional | both
    setting                   VARCHAR,            -- v2 'setting' (inpatient | outpatient | both), NULL in v1
    service_codes             VARCHAR[],          -- CMS place-of-service codes; ['CSTM-00'] = all
    expiration_date           VARCHAR,
    network_names             VARCHAR[],          -- v2 network_name of the provider reference
    provider_group_key        VARCHAR,            -- 'ein:11-1111111' / 'npi:1234567890'; NULL when unresolved
    provider_group_name       VARCHAR,            -- tin.business_name when given
    npi_count                 INTEGER,
    provider_reference        VARCHAR,            -- provider_group_id as written (may be non-integer), if referenced
    provider_reference_status VARCHAR NOT NULL,   -- inline | resolved | unresolved
    as_of                     DATE                -- the source's last_updated_on
);

-- CMS physician fee schedule (PPRRVU), national values; amounts = total RVUs x conversion factor.
CREATE TABLE IF NOT EXISTS medicare_pfs (
    source_id          VARCHAR NOT NULL,
    year               INTEGER NOT NULL,
    hcpcs              VARCHAR NOT NULL,
    modifier           VARCHAR,               -- NULL for the global (unmodified) line
    description        VARCHAR,
    status_code        VARCHAR,
    work_rvu           DOUBLE,
    nonfacility_pe_rvu DOUBLE,
    facility_pe_rvu    DOUBLE,
    mp_rvu             DOUBLE,
    nonfacility_total  DOUBLE,
    facility_total     DOUBLE,
    global_days        VARCHAR,               -- '000', '010', '090', 'ZZZ' (add-on), 'XXX', ...
    conversion_factor  DOUBLE NOT NULL,
    nonfacility_amount DOUBLE,
    facility_amount    DOUBLE
);
