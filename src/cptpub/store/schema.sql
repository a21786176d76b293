-- The rates store: one embedded DuckDB file (build/rates.duckdb by default), filled only by `cptpub ingest`.
-- Every row points at the source file it came from (directly, or through its item), so an edition can cite each
-- file in its Methodology section and a re-ingest can replace exactly one file's rows.

-- One row per ingested file.
CREATE TABLE IF NOT EXISTS sources (
    source_id        VARCHAR PRIMARY KEY,   -- SHA-256 of the file's bytes, as read (compressed if gzip)
    kind             VARCHAR NOT NULL,      -- 'tic-in-network' | 'pprrvu' | 'ncci-ptp' | 'ncci-mue' | 'ncci-aoc'
    path             VARCHAR NOT NULL,      -- the path given to `cptpub ingest`
    file_name        VARCHAR NOT NULL,
    payer            VARCHAR NOT NULL,      -- a payer name of data/payers.yaml ('Medicare' for PPRRVU)
    publisher        VARCHAR,              -- reporting_entity_name, or 'CMS' for PPRRVU
    entity_type      VARCHAR,              -- reporting_entity_type; NCCI: the claim type ('practitioner', ...)
    plans            VARCHAR,              -- a single-plan TiC file's plan_name; NULL for multi-plan files and PPRRVU
    last_updated_on  DATE,                 -- the file's own as-of date (TiC last_updated_on; PPRRVU: Jan 1 of its year;
                                           -- NCCI: the first day of its quarter)
    schema_version   VARCHAR,              -- TiC version field; PPRRVU release name (e.g. 'RVU24A'); NCCI quarter
                                           -- (e.g. '2026Q2')
    rows_kept        BIGINT NOT NULL,       -- rows written to negotiated_rates / medicare_pfs
    items_skipped    BIGINT NOT NULL,       -- in_network items / CSV rows not wanted (other codes)
    warnings         VARCHAR[],            -- e.g. unresolved remote provider references
    is_demo          BOOLEAN NOT NULL,      -- synthetic demo data (marked '[DEMO DATA]' in the file itself)
    ingested_at      TIMESTAMP NOT NULL
);

-- In-network rates are stored normalised (one row per item, per price, per distinct set of price terms and per
-- provider group of a file, and a narrow price -> group link); the view negotiated_rates below joins them back into
-- one row per (negotiated price, provider group), the shape every reader uses. Ids are unique across the store. The
-- tables of a file's few rows carry its source_id; its prices and links are found through its items and prices
-- (the two big tables hold numbers only: a store of millions of prices is written and read in less time).

-- One row per in_network item kept (and the payer and as-of date of its file).
CREATE TABLE IF NOT EXISTS tic_items (
    item_id                   BIGINT NOT NULL,
    source_id                 VARCHAR NOT NULL,
    payer                     VARCHAR NOT NULL,
    billing_code              VARCHAR NOT NULL,
    billing_code_type         VARCHAR NOT NULL,   -- CPT, HCPCS, ...
    negotiation_arrangement   VARCHAR NOT NULL,   -- ffs | bundle | capitation
    item_name                 VARCHAR,            -- the in_network item's name, as the payer wrote it
    as_of                     DATE                -- the source's last_updated_on
);

-- The terms of a file's prices: each distinct combination once (a file has a few, each shared by thousands of prices).
CREATE TABLE IF NOT EXISTS tic_terms (
    source_id                 VARCHAR NOT NULL,
    terms_id                  BIGINT NOT NULL,
    billing_code_modifiers    VARCHAR[],          -- billing_code_modifier of the price, if any
    negotiated_type           VARCHAR NOT NULL,   -- negotiated | derived | fee schedule | percentage | per diem
    billing_class             VARCHAR NOT NULL,   -- professional | institutional | both
    setting                   VARCHAR,            -- v2 'setting' (inpatient | outpatient | both), NULL in v1
    service_codes             VARCHAR[],          -- CMS place-of-service codes; ['CSTM-00'] = all
    expiration_date           VARCHAR
);

-- One row per negotiated price: its item, its negotiated_rates element (whose provider groups it applies to), its
-- terms and its amount.
CREATE TABLE IF NOT EXISTS tic_prices (
    item_id                   BIGINT NOT NULL,
    rate_id                   BIGINT NOT NULL,
    terms_id                  BIGINT NOT NULL,
    negotiated_rate           DOUBLE NOT NULL     -- dollars, or percent for 'percentage'
);

-- The targets of each negotiated_rates element: one row per provider group or provider reference it lists.
CREATE TABLE IF NOT EXISTS tic_rate_targets (
    rate_id                   BIGINT NOT NULL,
    target_id                 BIGINT NOT NULL
);

-- What a target stands for: an inline provider group (one row), or a provider reference (one row per group it
-- lists, or one unresolved row).
CREATE TABLE IF NOT EXISTS tic_provider_groups (
    source_id                 VARCHAR NOT NULL,
    target_id                 BIGINT NOT NULL,
    network_names             VARCHAR[],          -- v2 network_name of the provider reference
    provider_group_key        VARCHAR,            -- 'ein:11-1111111' / 'npi:1234567890'; NULL when unresolved
    provider_group_name       VARCHAR,            -- tin.business_name when given
    npi_count                 INTEGER,
    provider_reference        VARCHAR,            -- provider_group_id as written (may be non-integer), if referenced
    provider_reference_status VARCHAR NOT NULL    -- inline | resolved | unresolved
);

-- One row per (negotiated price, provider group): a price that applies to three provider groups is three rows.
-- Percentages and per-diems are stored too; benchmarks keep only dollar types. Columns as described above.
-- (Replaced, not "IF NOT EXISTS": a store written by an older cptpub gets this definition with the tables above.)
CREATE OR REPLACE VIEW negotiated_rates AS
SELECT i.source_id, i.payer, i.billing_code, i.billing_code_type, m.billing_code_modifiers,
       i.negotiation_arrangement, i.item_name, m.negotiated_type, p.negotiated_rate, m.billing_class, m.setting,
       m.service_codes, m.expiration_date, g.network_names, g.provider_group_key, g.provider_group_name, g.npi_count,
       g.provider_reference, g.provider_reference_status, i.as_of
FROM tic_items i
JOIN tic_prices p ON p.item_id = i.item_id
JOIN tic_terms m ON m.terms_id = p.terms_id
JOIN tic_rate_targets t ON t.rate_id = p.rate_id
JOIN tic_provider_groups g ON g.target_id = t.target_id;

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
    facility_amount    DOUBLE,
    -- Payment-policy indicators as CMS writes them (NULL in stores ingested before they were kept, and for files
    -- whose layout lacks the column); cptpub.analysis.facts states what each value means.
    not_used_for_medicare VARCHAR,            -- 'NOT USED FOR MEDICARE PAYMENT'
    nonfacility_na     VARCHAR,               -- 'NA': no non-facility practice expense (typically done in a facility)
    facility_na        VARCHAR,               -- 'NA': no facility practice expense
    pctc_indicator     VARCHAR,               -- 0-9: professional/technical component (modifiers 26, TC)
    preop_share        VARCHAR,               -- share of the global package before, during and after the procedure
    intraop_share      VARCHAR,
    postop_share       VARCHAR,
    mult_proc          VARCHAR,               -- 0-9: multiple-procedure rule (modifier 51)
    bilat_surg         VARCHAR,               -- 0-3, 9: bilateral rule (modifier 50)
    asst_surg          VARCHAR,               -- 0-2, 9: assistant at surgery (80, 81, 82, AS)
    co_surg            VARCHAR,               -- 0-2, 9: co-surgeons (62)
    team_surg          VARCHAR,               -- 0-2, 9: team surgery (66)
    pricing_indicator  VARCHAR,               -- 'PRIC IND' (2026 on)
    endo_base          VARCHAR,               -- endoscopic base code (multiple-procedure indicator 3)
    phys_supervision   VARCHAR,               -- physician supervision of diagnostic procedures
    calculation_flag   VARCHAR,
    imaging_family     VARCHAR                -- diagnostic imaging family indicator
);

-- Stores made before the policy columns were kept gain them here (NULL until the PPRRVU file is ingested again
-- with `cptpub ingest pfs --replace`).
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS not_used_for_medicare VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS nonfacility_na VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS facility_na VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS pctc_indicator VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS preop_share VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS intraop_share VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS postop_share VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS mult_proc VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS bilat_surg VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS asst_surg VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS co_surg VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS team_surg VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS pricing_indicator VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS endo_base VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS phys_supervision VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS calculation_flag VARCHAR;
ALTER TABLE medicare_pfs ADD COLUMN IF NOT EXISTS imaging_family VARCHAR;

-- NCCI procedure-to-procedure edits: Medicare does not pay column 2 when billed with column 1 (same patient,
-- provider and date), unless the modifier indicator allows a modifier (e.g. 59, XE/XS/XP/XU) to bypass it.
CREATE TABLE IF NOT EXISTS ncci_ptp (
    source_id          VARCHAR NOT NULL,
    column1            VARCHAR NOT NULL,
    column2            VARCHAR NOT NULL,
    prior_1996         BOOLEAN NOT NULL,       -- '*': the edit existed before 1996
    effective_date     DATE NOT NULL,
    deletion_date      DATE,                   -- NULL: '*' (no deletion)
    modifier_indicator VARCHAR NOT NULL,       -- '0' not allowed, '1' allowed, '9' not applicable
    rationale          VARCHAR,
    line               VARCHAR NOT NULL        -- where in the source file (file:line / sheet:row)
);

-- NCCI medically unlikely edits: the most units of a code one provider reports for one patient on one day.
CREATE TABLE IF NOT EXISTS ncci_mue (
    source_id              VARCHAR NOT NULL,
    hcpcs                  VARCHAR NOT NULL,
    mue_value              INTEGER NOT NULL,
    adjudication_indicator VARCHAR NOT NULL,   -- '1' claim line, '2' date of service (policy), '3' date of
                                               -- service (clinical)
    adjudication_text      VARCHAR,            -- the indicator's words when the file gives them
    rationale              VARCHAR,
    line                   VARCHAR NOT NULL
);

-- NCCI add-on code edits: the primary codes an add-on code is billed with. Dates as CMS writes them (CCYYDDD)
-- are stored as dates.
CREATE TABLE IF NOT EXISTS ncci_aoc (
    source_id            VARCHAR NOT NULL,
    edit_type            VARCHAR NOT NULL,     -- '1' primaries listed, '2' contractor-defined, '3' some listed
    addon_code           VARCHAR NOT NULL,
    addon_deletion_date  DATE,
    primary_code         VARCHAR NOT NULL,     -- 'CCCCC': the contractor defines the primary codes
    primary_deletion_date DATE,
    edit_effective_date  DATE,
    edit_deletion_date   DATE,
    special_instructions VARCHAR,
    line                 VARCHAR NOT NULL
);

-- Supersession (src/cptpub/store/releases.py has the rule): which release of its series each source is. Recomputed
-- from sources and source_overrides inside every write transaction; `cptpub sources` shows it.
CREATE TABLE IF NOT EXISTS source_status (
    source_id      VARCHAR PRIMARY KEY,
    series         VARCHAR NOT NULL,      -- what the file is a release of (entity + plans, fee schedule year, ...)
    series_label   VARCHAR NOT NULL,      -- the series in words
    status         VARCHAR NOT NULL,      -- 'current' | 'superseded'
    superseded_by  VARCHAR,               -- the source_id of the release that replaces it
    reason         VARCHAR NOT NULL       -- why, in words
);

-- The editor's overrides of the rule (`cptpub sources --current FILE`, `--release-of NEW OLD`, `--auto FILE`).
CREATE TABLE IF NOT EXISTS source_overrides (
    source_id  VARCHAR PRIMARY KEY,
    series     VARCHAR,                   -- the series key it joins (--release-of); NULL: the rule's
    pinned     BOOLEAN NOT NULL           -- true: the current release of its series, whatever the dates (--current)
);

-- The sources every figure reads: all but the superseded ones. Superseded rows stay in their tables as history.
CREATE VIEW IF NOT EXISTS current_sources AS
    SELECT * FROM sources WHERE source_id NOT IN (SELECT source_id FROM source_status WHERE status = 'superseded');
