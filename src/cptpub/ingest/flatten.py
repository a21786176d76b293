"""Flatten batches of whole in_network items into the staging columns with DuckDB's JSON reader (C++, all cores).

The parse hands over kept items as raw bytes, a batch at a time (``BATCH_BYTES``): they are written one per line
(their line breaks, whitespace between tokens, made spaces) to a scratch file, read by ``read_json`` with every
field typed ``JSON``, and checked in SQL against the rules of the checking parser in ``tic`` (types, allowed
values after trimming and lower-casing, non-empty prices, a provider group or reference per rate). A batch that
passes is written straight to Parquet as the rows of negotiated_rates (``rows-N.parquet``, provider references still
to expand) beside ``Staging``'s files; a batch that does not (or that DuckDB
refuses: a repeated key, a wrong shape, memory) returns None, and the caller sends its items through the checking
parser, which stages what is valid and names what is not. Memory stays bounded by the batch size."""

from __future__ import annotations

import duckdb

from cptpub.ingest.staging import ROW_COLUMNS, SUSPECT_PRICE_SQL, Staging

BATCH_BYTES = 8 << 20
_MEMORY = "128MB"

_ITEM = """{billing_code: 'JSON', billing_code_type: 'JSON', negotiation_arrangement: 'JSON', name: 'JSON',
  negotiated_rates: 'STRUCT(negotiated_prices STRUCT(negotiated_type JSON, negotiated_rate JSON,
    billing_class JSON, setting JSON, service_code JSON, expiration_date JSON, billing_code_modifier JSON)[],
    provider_groups STRUCT(npi JSON, tin STRUCT(type JSON, value JSON, business_name JSON))[],
    provider_references JSON[])[]'}"""


def _text(column: str) -> str:
    return f"({column} ->> '$')"


def _is_text(column: str) -> str:
    return f"coalesce(json_type({column}) = 'VARCHAR', false)"


def _choice(column: str, allowed: tuple[str, ...]) -> str:
    values = ", ".join(f"'{v}'" for v in allowed)
    return f"({_is_text(column)} AND lower(trim({_text(column)}, ' \t\r\n')) IN ({values}))"


def _optional(column: str, check: str) -> str:
    return f"({column} IS NULL OR json_type({column}) = 'NULL' OR {check})"


def _strings(column: str) -> str:
    """A JSON array of strings."""
    others = f"list_filter(json_type({column}, '$[*]'), lambda t: t <> 'VARCHAR')"
    return f"(json_type({column}) = 'ARRAY' AND len({others}) = 0)"


def _string_list(column: str) -> str:
    return f"CASE WHEN json_type({column}) = 'ARRAY' THEN from_json({column}, '[\"VARCHAR\"]') END"


class Flattener:
    """One file's DuckDB connection and scratch file; ``stage`` flattens one batch into ``staging``."""

    def __init__(self, staging: Staging, choices: dict[str, tuple[str, ...]], largest_item: int):
        self.staging = staging
        self.largest_item = largest_item
        self.choices = choices
        self.scratch = staging.folder / "batch.json"
        self.con = duckdb.connect()
        self.con.execute(f"SET memory_limit = '{_MEMORY}'")
        self.con.execute(f"SET temp_directory = '{_quoted(str(staging.folder / 'spill'))}'")
        self.parts = 0
        self.suspect_prices = 0  # prices of the batches staged, see staging.SUSPECT_PRICE_SQL

    def close(self) -> None:
        self.con.close()
        self.scratch.unlink(missing_ok=True)

    def stage(self, items: list[bytes]) -> set[str] | None:
        """Stage a batch of whole items; returns the provider references its rates use, or None (nothing staged)
        when a check fails and the items need the checking parser."""
        with open(self.scratch, "wb") as out:  # one item per line: DuckDB reads lines in parallel
            out.write(b"\n".join(item.replace(b"\n", b" ").replace(b"\r", b" ") for item in items))
        con = self.con
        first_item, first_rate = self.staging.items, self.staging.rates
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE b_items AS
                    SELECT {first_item} + row_number() OVER () - 1 AS item_seq, *
                    FROM read_json('{_quoted(str(self.scratch))}', format = 'newline_delimited',
                                   columns = {_ITEM}, maximum_object_size = {self.largest_item + 1024})"""
            )
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE b_rates AS
                    SELECT {first_rate} + row_number() OVER (ORDER BY item_seq, rate_index) - 1 AS rate_seq, *
                    FROM (SELECT item_seq, unnest(negotiated_rates) AS r,
                                 generate_subscripts(negotiated_rates, 1) AS rate_index
                          FROM b_items)"""
            )
            part = self.parts
            self._table(
                f"""SELECT item_seq, upper(trim({_text("billing_code")}, ' \t\r\n')) AS billing_code,
                           trim({_text("billing_code_type")}, ' \t\r\n') AS billing_code_type,
                           lower(trim({_text("negotiation_arrangement")}, ' \t\r\n')) AS negotiation_arrangement,
                           {_text("name")} AS item_name
                    FROM b_items""",
                "b_i",
            )
            self._table(
                f"""SELECT rate_seq, lower(trim({_text("p.negotiated_type")}, ' \t\r\n')) AS negotiated_type,
                           CAST(p.negotiated_rate AS DOUBLE) AS negotiated_rate,
                           lower(trim({_text("p.billing_class")}, ' \t\r\n')) AS billing_class,
                           lower(trim({_text("p.setting")}, ' \t\r\n')) AS setting,
                           {_string_list("p.service_code")} AS service_codes,
                           {_text("p.expiration_date")} AS expiration_date,
                           {_string_list("p.billing_code_modifier")} AS billing_code_modifiers,
                           coalesce({self._price_check()}, false) AS ok
                    FROM (SELECT rate_seq, unnest(r.negotiated_prices) AS p FROM b_rates)""",
                "b_p",
            )
            self._table(
                f"""SELECT rate_seq, item_seq,
                           lower(trim({_text("g.tin.type")}, ' \t\r\n')) || ':'
                               || trim({_text("g.tin.value")}, ' \t\r\n') AS provider_group_key,
                           {_text("g.tin.business_name")} AS provider_group_name,
                           CAST(CASE WHEN g.npi IS NULL OR json_type(g.npi) = 'NULL' THEN 0
                                ELSE len(list_filter(json_extract(g.npi, '$[*]'),
                                                     lambda n: CAST(n AS VARCHAR) NOT IN ('0', '"0"')))
                                END AS INTEGER) AS npi_count,
                           NULL::VARCHAR AS provider_reference
                    FROM (SELECT rate_seq, item_seq, unnest(r.provider_groups) AS g FROM b_rates)
                    UNION ALL BY NAME
                    SELECT rate_seq, item_seq, NULL::VARCHAR AS provider_group_key,
                           NULL::VARCHAR AS provider_group_name, NULL::INTEGER AS npi_count,
                           CASE WHEN json_type(ref) = 'VARCHAR' THEN ref ->> '$' ELSE CAST(ref AS VARCHAR) END
                               AS provider_reference
                    FROM (SELECT rate_seq, item_seq, unnest(r.provider_references) AS ref FROM b_rates)""",
                "b_t",
            )
            if not self._valid():
                return None
            # one row per price and provider group or reference, as negotiated_rates holds them
            con.execute(
                f"""COPY (SELECT {ROW_COLUMNS} FROM b_p p JOIN b_t t USING (rate_seq) JOIN b_i i USING (item_seq))
                    TO '{self._part(f"rows-{part}")}' (FORMAT parquet, COMPRESSION lz4)"""
            )
            references = {
                ref
                for (ref,) in con.execute(
                    "SELECT DISTINCT provider_reference FROM b_t WHERE provider_reference IS NOT NULL"
                ).fetchall()
            }
            counts = con.execute(
                f"""SELECT (SELECT count(*) FROM b_items), (SELECT count(*) FROM b_rates), (SELECT count(*) FROM b_p),
                           (SELECT count(*) FROM b_p WHERE {SUSPECT_PRICE_SQL})"""
            ).fetchone()
        except duckdb.Error:
            (self.staging.folder / f"rows-{self.parts}.parquet").unlink(missing_ok=True)
            return None
        assert counts is not None
        self.parts += 1
        self.staging.items += int(counts[0])
        self.staging.rates += int(counts[1])
        self.staging.prices += int(counts[2])
        self.suspect_prices += int(counts[3])
        return references

    def _part(self, name: str) -> str:
        return _quoted(str(self.staging.folder / f"{name}.parquet"))

    def _table(self, query: str, name: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")

    def _price_check(self) -> str:
        """Whether a price ``p`` follows the rules of the checking parser (a SQL expression)."""
        c = self.choices
        numbers = "('BIGINT', 'UBIGINT', 'DOUBLE')"
        return f"""(p IS NOT NULL
                    AND {_choice("p.negotiated_type", c["type"])}
                    AND coalesce(json_type(p.negotiated_rate) IN {numbers}, false)
                    AND isfinite(CAST(p.negotiated_rate AS DOUBLE))
                    AND {_choice("p.billing_class", c["class"])}
                    AND {_optional("p.setting", _choice("p.setting", c["setting"]))}
                    AND {_optional("p.service_code", _strings("p.service_code"))}
                    AND {_optional("p.expiration_date", _is_text("p.expiration_date"))}
                    AND {_optional("p.billing_code_modifier", _strings("p.billing_code_modifier"))})"""

    def _valid(self) -> bool:
        """Whether every item, rate, price and group of the batch follows the rules of the checking parser."""
        c = self.choices
        checks = [
            f"""SELECT count(*) FROM b_items WHERE NOT (
                    {_is_text("billing_code")} AND trim({_text("billing_code")}, ' \t\r\n') <> ''
                    AND {_is_text("billing_code_type")} AND trim({_text("billing_code_type")}, ' \t\r\n') <> ''
                    AND {_choice("negotiation_arrangement", c["arrangement"])}
                    AND {_optional("name", _is_text("name"))}
                    AND negotiated_rates IS NOT NULL)""",
            """SELECT count(*) FROM b_rates WHERE NOT (
                    coalesce(len(r.negotiated_prices), 0) > 0
                    AND coalesce(len(r.provider_groups), 0) + coalesce(len(r.provider_references), 0) > 0
                    AND len(list_filter(coalesce(r.provider_references, []),
                            lambda ref: json_type(ref) NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR')
                                   OR length(CAST(ref AS VARCHAR)) > 100)) = 0)""",
            "SELECT count(*) FROM b_p WHERE NOT ok",
            f"""SELECT count(*) FROM (SELECT unnest(r.provider_groups) AS g FROM b_rates) WHERE NOT (
                    g IS NOT NULL AND g.tin IS NOT NULL
                    AND {_is_text("g.tin.type")} AND {_is_text("g.tin.value")}
                    AND {_optional("g.tin.business_name", _is_text("g.tin.business_name"))}
                    AND (g.npi IS NULL OR json_type(g.npi) = 'ARRAY'))""",
        ]
        for check in checks:
            found = self.con.execute(check).fetchone()
            if found is None or found[0]:
                return False
        return True


def _quoted(text: str) -> str:
    return text.replace("'", "''")
