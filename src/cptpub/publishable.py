"""The codes a project can publish: every code with a record in ``data/codes/``, and every CPT or HCPCS code with
payers' rates in the rates store (a code without a record is published from its data: CMS's files, the payers'
item names). Fee schedule and NCCI rows alone do not make a code publishable: CMS's files hold every code there
is, and a catalogue of 19,000 editions without a single payer rate is not what a publisher asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cptpub.project import CODE_PATTERN, Project, known_codes
from cptpub.store import RatesStore

CODE_TYPES = ("CPT", "HCPCS")


@dataclass(frozen=True)
class CodeEntry:
    code: str
    has_record: bool
    payers: tuple[str, ...]  # payers with rates for the code, by name


def codes_with_rates(store_path: Path) -> dict[str, tuple[str, ...]]:
    """Code -> the payers with rates for it (CPT and HCPCS codes of the usual 5-character shape)."""
    store = RatesStore(store_path)
    if not store.exists():
        return {}
    con = store.connect(read_only=True)
    try:
        # the items with a price: what negotiated_rates holds rows of (each price applies to a provider group or
        # reference), read without joining the prices to their groups (12 ms against 200 for 3.7M rows)
        rows = con.execute(
            """SELECT billing_code, list_sort(list(DISTINCT payer)) FROM tic_items
               WHERE upper(billing_code_type) IN (SELECT unnest(?::VARCHAR[]))
                 AND item_id IN (SELECT item_id FROM tic_prices)
               GROUP BY billing_code""",
            [list(CODE_TYPES)],
        ).fetchall()
    finally:
        con.close()
    return {code.upper(): tuple(payers) for code, payers in rows if CODE_PATTERN.fullmatch(code)}


def publishable_codes(project: Project) -> list[CodeEntry]:
    """Every code with a record or with rates, sorted."""
    records = set(known_codes(project.codes_dir))
    rates = codes_with_rates(project.store_path)
    return [CodeEntry(code, code in records, rates.get(code, ())) for code in sorted(records | set(rates))]


def cms_titles(store_path: Path, codes: list[str]) -> dict[str, str]:
    """CMS's short descriptor of each code that has one (newest fee schedule year), in one query."""
    store = RatesStore(store_path)
    if not store.exists() or not codes:
        return {}
    con = store.connect(read_only=True)
    try:
        rows = con.execute(
            """SELECT hcpcs, description FROM medicare_pfs
               WHERE modifier IS NULL AND description IS NOT NULL AND hcpcs IN (SELECT unnest(?::VARCHAR[]))
               ORDER BY year""",
            [codes],
        ).fetchall()
    finally:
        con.close()
    return dict(rows)
