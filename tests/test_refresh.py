"""Monthly refresh: a newer release replaces the older one in every figure (the older stays as history), each
edition publishes its figures as data, says what changed since the previous edition, and the feed lists updates.

Expected figures are computed here straight from the rate files (``refresh_files``), never from cptpub's code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

import duckdb
import pytest

from cptpub.analysis.benchmarks import compute
from cptpub.analysis.changes import Thresholds, changes_markdown, compare, load_thresholds, summary_lines
from cptpub.demo.generator import PPRRVU_FILE_NAME
from cptpub.errors import CptpubError
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.ingest.tic import ingest_tic_file
from cptpub.records import load_payers
from cptpub.store import RatesStore, release_store

from .conftest import REPO, copy_project, run_cptpub
from .refresh_files import professional_rates, rewrite_tic

CODE = "20702"
PAYERS = ["Aetna", "Blue Cross Blue Shield", "Cigna Health", "UnitedHealthcare", "Medicare"]
COMMERCIAL = PAYERS[:4]  # kind commercial in data/payers.yaml
ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def aetna_months(tmp_path_factory, demo_inputs: Path) -> tuple[Path, Path]:
    """Aetna's October file (prices rounded to whole dollars) and its November file: same reporting entity and
    plan, last_updated_on a month later, every price of 20702 10% higher (exact in cents)."""
    folder = tmp_path_factory.mktemp("aetna-months")
    source = demo_inputs / "demo-aetna-in-network-rates.json.gz"
    october = rewrite_tic(source, folder / "2026-10-01_aetna.json.gz", last_updated_on="2026-10-01", price=round)
    november = rewrite_tic(
        october,
        folder / "2026-11-01_aetna.json.gz",
        last_updated_on="2026-11-01",
        price=lambda r: round(r * 1.1, 2),
        codes={CODE},
    )
    return october, november


def _ingest(store: RatesStore, path: Path) -> str:
    catalogue = load_payers(REPO / "data" / "payers.yaml")
    return ingest_tic_file(store, path, codes={CODE, "20705"}, catalogue=catalogue).source_id


def _median(path: Path) -> float:
    return statistics.median(r[2] for r in professional_rates(path, CODE))


def _aetna(store_path: Path):
    stats = {s.payer: s for s in compute(store_path, CODE, PAYERS, COMMERCIAL).by_payer}
    return stats["Aetna"]


def test_next_months_file_replaces_the_previous_one_and_the_older_stays_as_history(tmp_path, aetna_months):
    october, november = aetna_months
    old_rates, new_rates = professional_rates(october, CODE), professional_rates(november, CODE)
    assert len(old_rates) == len(new_rates) > 3
    store = RatesStore(tmp_path / "rates.duckdb")

    old_id = _ingest(store, october)
    before = _aetna(store.path)
    assert before.n_rates == len(old_rates)
    assert before.median == pytest.approx(statistics.median(r[2] for r in old_rates), abs=1e-9)

    new_id = _ingest(store, november)
    after = _aetna(store.path)
    assert after.n_rates == len(new_rates)  # not doubled: the October rates are out of every figure
    assert after.n_provider_groups == before.n_provider_groups
    assert after.median == pytest.approx(statistics.median(r[2] for r in new_rates), abs=1e-9)
    assert after.median == pytest.approx(before.median * 1.1, abs=1e-9)  # exactly the price change

    with duckdb.connect(str(store.path), read_only=True) as con:
        history = con.execute(
            "SELECT count(*) FROM negotiated_rates WHERE source_id = ? AND billing_code = ?", [old_id, CODE]
        ).fetchone()
        status = con.execute("SELECT source_id, status, superseded_by FROM source_status ORDER BY status").fetchall()
    assert history is not None and history[0] > 0  # the older release is still queryable
    assert status == [(new_id, "current", None), (old_id, "superseded", new_id)]


def test_an_older_file_ingested_after_the_newer_one_stays_history(tmp_path, aetna_months):
    october, november = aetna_months
    store = RatesStore(tmp_path / "rates.duckdb")
    _ingest(store, november)
    _ingest(store, october)
    assert _aetna(store.path).median == pytest.approx(_median(november))


def test_sources_command_shows_why_and_can_pin_an_older_release(tmp_path, aetna_months, demo_inputs):
    october, november = aetna_months
    root = copy_project(tmp_path / "project")
    run_cptpub(root, "ingest", "tic", "--codes", CODE, str(october), str(november))
    listed = json.loads(run_cptpub(root, "sources", "--json").stdout)["sources"]
    by_file = {row["file_name"]: row for row in listed}
    assert by_file[november.name]["status"] == "current"
    assert by_file[october.name]["status"] == "superseded"
    assert by_file[october.name]["superseded_by_file"] == november.name
    assert by_file[october.name]["reason"] == f"replaced by the newer release {november.name} (last updated 2026-11-01)"
    table = run_cptpub(root, "sources", env={"COLUMNS": "250"}).stdout
    assert "superseded" in table and october.name in table

    run_cptpub(root, "sources", "--current", october.name)  # the editor rolls back to October
    store_path = root / "build" / "rates.duckdb"
    assert _aetna(store_path).median == pytest.approx(_median(october))
    by_file = {r["file_name"]: r for r in json.loads(run_cptpub(root, "sources", "--json").stdout)["sources"]}
    assert (by_file[october.name]["status"], by_file[october.name]["pinned"]) == ("current", True)
    assert by_file[november.name]["status"] == "superseded"

    run_cptpub(root, "sources", "--auto", october.name)
    assert _aetna(store_path).median == pytest.approx(_median(november))

    unknown = run_cptpub(root, "sources", "--current", "no-such-file.json", check=False)
    assert unknown.returncode == 2 and "no ingested file matches 'no-such-file.json'" in unknown.stderr


def test_release_of_joins_a_renamed_plan_to_its_series(tmp_path, aetna_months):
    october, november = aetna_months
    import gzip

    renamed = tmp_path / "2026-11-01_aetna-renamed.json.gz"
    document = json.loads(gzip.decompress(november.read_bytes()))
    document["plan_name"] = "[DEMO DATA] Aetna Open Access PPO (renamed)"
    renamed.write_bytes(gzip.compress(json.dumps(document).encode(), mtime=0))
    root = copy_project(tmp_path / "project")
    run_cptpub(root, "ingest", "tic", "--codes", CODE, str(october), str(renamed))
    rows = {r["file_name"]: r["status"] for r in json.loads(run_cptpub(root, "sources", "--json").stdout)["sources"]}
    assert rows == {october.name: "current", renamed.name: "current"}  # another plan: another series
    run_cptpub(root, "sources", "--release-of", renamed.name, october.name)
    rows = {r["file_name"]: r["status"] for r in json.loads(run_cptpub(root, "sources", "--json").stdout)["sources"]}
    assert rows == {october.name: "superseded", renamed.name: "current"}


def _pprrvu(demo_inputs: Path, dest: Path, factor: str) -> Path:
    text = (demo_inputs / PPRRVU_FILE_NAME).read_text(encoding="utf-8")
    dest.write_text(text.replace(",33.4009,", f",{factor},"), encoding="utf-8")
    return dest


def test_a_newer_pprrvu_release_of_the_same_year_supersedes_the_older(tmp_path, demo_inputs):
    store = RatesStore(tmp_path / "rates.duckdb")
    january = _pprrvu(demo_inputs, tmp_path / "PPRRVU26_JAN.csv", "33.4009")
    april = _pprrvu(demo_inputs, tmp_path / "PPRRVU26_APR.csv", "34.1234")
    ingest_pfs_file(store, april, codes={CODE})  # ingest order must not matter: the release name decides
    old = ingest_pfs_file(store, january, codes={CODE})
    medicare = compute(store.path, CODE, PAYERS, COMMERCIAL).medicare
    assert medicare is not None
    # 20702's non-facility total RVUs in CMS's 2026 file: work 2.44 + PE 1.50 + MP 0.49 = 4.43; amounts are total x
    # conversion factor, half-up to cents
    expected = float((Decimal("4.43") * Decimal("34.1234")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    assert (medicare.conversion_factor, medicare.nonfacility_amount) == (34.1234, expected)
    with duckdb.connect(str(store.path), read_only=True) as con:
        status = dict(con.execute("SELECT source_id, status FROM source_status").fetchall())
        kept = con.execute("SELECT count(*) FROM medicare_pfs WHERE source_id = ?", [old.source_id]).fetchone()
    assert status[old.source_id] == "superseded" and list(status.values()).count("current") == 1
    assert kept == (1,)  # RVU26A stays as history


def test_a_store_made_before_supersession_is_upgraded_when_read(tmp_path, aetna_months):
    october, november = aetna_months
    store = RatesStore(tmp_path / "rates.duckdb")
    _ingest(store, october)
    _ingest(store, november)
    release_store()  # this process keeps the store open for reading; the older cptpub would be another process
    with duckdb.connect(str(store.path)) as con:  # as an older cptpub left it
        con.execute("DROP VIEW current_sources")
        con.execute("DROP TABLE source_status")
        con.execute("DROP TABLE source_overrides")
        con.execute("DROP TABLE store_schema")  # the schema mark came later still
    assert _aetna(store.path).n_rates == len(professional_rates(november, CODE))


# --- changes between snapshots ---------------------------------------------------------------------------------


def _snapshot(payers: dict, medicare: dict | None = None, facts: dict | None = None, fields: dict | None = None):
    stats = {name: {"n_rates": n, "n_provider_groups": n, "median": median} for name, (n, median) in payers.items()}
    return {
        "edition_date": "2026-10-01",
        "figures": {"payers": stats, "medicare": medicare},
        "facts": facts or {},
        "record": {"fields": fields or {}},
        "sources": [],
    }


def test_the_threshold_decides_what_is_material():
    before = _snapshot({"Aetna": (10, 100.0), "Cigna <b>*Health*</b>": (5, 200.0)})
    after = _snapshot({"Aetna": (10, 100.5), "Cigna <b>*Health*</b>": (5, 203.0)})
    found = compare(before, after, Thresholds(median_percent=1.0))
    assert [p["payer"] for p in found["payers"]] == ["Cigna <b>*Health*</b>"]  # +0.5% is below 1%, +1.5% is not
    assert found["payers"][0]["median_change_pct"] == pytest.approx(1.5)
    assert compare(before, after, Thresholds(median_percent=0.25))["payers"][0]["payer"] == "Aetna"
    assert not compare(before, after, Thresholds(median_percent=5))["material"]
    counted = compare(before, _snapshot({"Aetna": (11, 100.0), "Cigna <b>*Health*</b>": (5, 200.0)}), Thresholds())
    assert [(p["n_rates_before"], p["n_rates_after"]) for p in counted["payers"]] == [(10, 11)]  # any count change

    box = changes_markdown(found)
    assert box.startswith("**Changes since the edition of October 1\\, 2026**\n\n| Payer | Median before |")
    assert "| Cigna \\<b\\>\\*Health\\*\\<\\/b\\> | \\$200\\.00 | \\$203\\.00 | \\+1\\.5\\% | 5 → 5 |" in box
    assert "<b>" not in box  # payer names are escaped
    quiet = changes_markdown(compare(before, before, Thresholds()))
    assert quiet == "**Changes since the edition of October 1\\, 2026**\n\nNo material changes.\n"
    assert changes_markdown(None) == ""  # a first edition says nothing


def test_payers_medicare_facts_and_record_fields_are_compared_generically():
    before = _snapshot(
        {"Aetna": (10, 100.0), "Cigna Health": (4, 90.0)},
        medicare={"nonfacility_amount": 135.27, "facility_amount": 135.27, "conversion_factor": 33.4009},
        facts={"NCCI/MUE": {"practitioner MUE": 1, "column 2 of 20680": True}},
        fields={"title": "a", "modifiers": "b", "descriptor": "c"},
    )
    after = _snapshot(
        {"Aetna": (10, 100.0), "UnitedHealthcare": (7, 120.0)},
        medicare={"nonfacility_amount": 138.2, "facility_amount": 135.27, "conversion_factor": 34.1234},
        facts={"NCCI/MUE": {"practitioner MUE": 2}, "new group": {"x": "y"}},
        fields={"title": "a", "modifiers": "B", "descriptor": "c", "policy_updates": "d"},
    )
    found = compare(before, after, Thresholds())
    assert found["material"] and found["payers"] == []
    assert found["payers_added"] == [{"payer": "UnitedHealthcare", "median": 120.0, "n_rates": 7}]
    assert found["payers_gone"] == [{"payer": "Cigna Health", "median": 90.0, "n_rates": 4}]
    assert [(m["field"], m["before"], m["after"]) for m in found["medicare"]] == [
        ("nonfacility_amount", 135.27, 138.2),
        ("conversion_factor", 33.4009, 34.1234),
    ]
    assert [(f["group"], f["name"], f["before"], f["after"]) for f in found["facts"]] == [
        ("NCCI/MUE", "column 2 of 20680", True, None),
        ("NCCI/MUE", "practitioner MUE", 1, 2),
        ("new group", "x", None, "y"),
    ]
    assert [f["label"] for f in found["record_fields"]] == ["modifiers", "policy updates"]
    lines = summary_lines(found)
    assert "Medicare conversion factor: 33.4009 → 34.1234" in lines
    assert "Medicare non-facility national amount: $135.27 → $138.20" in lines
    assert "Edited: modifiers, policy updates" in lines


def test_the_threshold_is_read_from_the_report_settings(tmp_path):
    report = tmp_path / "report"
    shutil.copytree(REPO / "report", report)
    assert load_thresholds(report) == Thresholds(median_percent=1.0)
    config = report / "_quarto.yml"
    config.write_text(config.read_text().replace("median-percent: 1.0", "median-percent: 2.5"))
    assert load_thresholds(report) == Thresholds(median_percent=2.5)
    config.write_text(config.read_text().replace("2.5", "lots"))
    with pytest.raises(CptpubError, match="median-percent: expected a number") as error:
        load_thresholds(report)
    assert str(config) in str(error.value)


# --- end to end: build, refresh, build ------------------------------------------------------------------------


def _dist_bytes(dist: Path) -> dict[str, bytes]:
    return {
        p.relative_to(dist).as_posix(): p.read_bytes()
        for p in sorted(dist.rglob("*"))
        if p.is_file() and p.name != "index.html" and p.name != "manifest.json"
    }


def _check_atom(path: Path) -> list[ET.Element]:
    """The feed's structure against RFC 4287's requirements; returns its entries."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated"):
        assert len(root.findall(f"{ATOM}{tag}")) == 1, f"feed needs exactly one atom:{tag}"
    assert RFC3339.match(root.findtext(f"{ATOM}updated") or "")
    entries = root.findall(f"{ATOM}entry")
    if not all(e.find(f"{ATOM}author") is not None for e in entries):
        assert root.find(f"{ATOM}author/{ATOM}name") is not None, "a feed without entry authors needs an author"
    ids = []
    for entry in entries:
        for tag in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{tag}")) == 1, f"entry needs exactly one atom:{tag}"
        assert RFC3339.match(entry.findtext(f"{ATOM}updated") or "")
        assert re.match(r"^[a-z][a-z0-9+.-]*:", entry.findtext(f"{ATOM}id") or ""), "atom:id is an absolute IRI"
        has_alternate = any(link.get("rel", "alternate") == "alternate" for link in entry.findall(f"{ATOM}link"))
        assert entry.find(f"{ATOM}content") is not None or has_alternate
        ids.append(entry.findtext(f"{ATOM}id"))
    assert len(set(ids)) == len(ids)
    return entries


def _page_text(path: Path) -> str:
    """An HTML page's visible text, tags removed and whitespace collapsed."""
    import html

    text = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_a_refresh_changes_exactly_the_refreshed_figures(tmp_path, demo_inputs, aetna_months):
    october, november = aetna_months
    root = copy_project(tmp_path / "project")
    for record in (root / "data" / "codes").glob("*.yaml"):
        if record.stem not in (CODE, "20705"):
            record.unlink()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for payer in ("bcbs", "cigna", "uhc"):
        shutil.copy(demo_inputs / f"demo-{payer}-in-network-rates.json.gz", inputs)
    shutil.copy(october, inputs)
    run_cptpub(root, "ingest", "pfs", str(demo_inputs / PPRRVU_FILE_NAME))
    run_cptpub(root, "ingest", "tic", str(inputs))
    build = ("build", "--all", "--engine", "builtin", "--to", "html", "-j", "1")
    run_cptpub(root, *build)
    dist = root / "dist"

    first = json.loads((dist / "data" / f"cpt-{CODE}.json").read_text())
    assert first["changes"] is None  # a first edition says nothing
    assert first["figures"]["payers"]["Aetna"]["n_rates"] == len(professional_rates(october, CODE))
    assert _check_atom(dist / "feed.xml") == []
    nothing = json.loads(run_cptpub(root, "changes", "--json").stdout)
    assert (nothing["changed"], nothing["unchanged"]) == ([], [CODE, "20705"])

    assert "Changes since the edition of" not in _page_text(dist / f"cpt-{CODE}.html")

    published = _dist_bytes(dist)
    run_cptpub(root, *build, "--force")  # a rebuild that changes nothing
    assert _dist_bytes(dist) == published

    run_cptpub(root, "ingest", "tic", str(november))
    listed = json.loads(run_cptpub(root, "changes", "--json").stdout)
    assert [c["code"] for c in listed["changed"]] == [CODE]  # 20705's prices did not change
    assert listed["unchanged"] == ["20705"]
    human = run_cptpub(root, "changes", env={"COLUMNS": "200"}).stdout
    assert "Aetna: median" in human and "+10.0%" in human

    run_cptpub(root, *build)
    snapshot = json.loads((dist / "data" / f"cpt-{CODE}.json").read_text())
    old_amounts = [r[2] for r in professional_rates(october, CODE)]
    new_amounts = [r[2] for r in professional_rates(november, CODE)]
    changes = snapshot["changes"]
    assert changes["since"] == first["edition_date"] and changes["material"]
    (aetna,) = changes["payers"]
    assert aetna["payer"] == "Aetna"
    assert (aetna["n_rates_before"], aetna["n_rates_after"]) == (len(old_amounts), len(new_amounts))
    assert aetna["median_before"] == pytest.approx(statistics.median(old_amounts), abs=1e-9)
    assert aetna["median_after"] == pytest.approx(statistics.median(new_amounts), abs=1e-9)
    assert aetna["median_change_pct"] == pytest.approx(10.0, abs=1e-9)
    assert snapshot["edition_date"] == "2026-11-01"
    assert {s["file_name"] for s in snapshot["sources"] if s["payer"] == "Aetna"} == {november.name}
    # the page's box, at the top of the edition, says the same as an independent computation from the two files
    page = _page_text(dist / f"cpt-{CODE}.html")
    day = dt.date.fromisoformat(first["edition_date"])
    box = page[page.index(f"Changes since the edition of {day:%B} {day.day}, {day.year}") :][:600]
    assert page.index("Changes since the edition of") < page.index("Summary & Overview CPT code")  # the top
    before, after = statistics.median(old_amounts), statistics.median(new_amounts)
    assert f"Aetna ${before:,.2f} ${after:,.2f} +10.0% {len(old_amounts)} → {len(new_amounts)}" in box
    assert "No material changes." in _page_text(dist / "cpt-20705.html")

    other = json.loads((dist / "data" / "cpt-20705.json").read_text())
    assert other["changes"]["material"] is False  # only the file's date moved

    entries = _check_atom(dist / "feed.xml")
    assert [link.get("href") for e in entries for link in e.findall(f"{ATOM}link")] == [f"cpt-{CODE}.html"]
    assert "+10.0%" in (entries[0].findtext(f"{ATOM}summary") or "")
    assert entries[0].findtext(f"{ATOM}updated") == "2026-11-01T00:00:00Z"

    manifest = {e["code"]: e for e in json.loads((dist / "manifest.json").read_text())["editions"]}
    assert manifest[CODE]["data"]["file"] == f"data/cpt-{CODE}.json"
    assert manifest[CODE]["changes"]["material"] and not manifest["20705"]["changes"]["material"]
    catalogue = (dist / "index.html").read_text()
    assert [code for code, changes in changes_by_code(embedded(catalogue)).items() if changes] == [CODE]
    assert 'id="only-updated"' in catalogue

    assert (dist / "data" / "history" / f"cpt-{CODE}-{first['edition_date']}.json").exists()
    since = json.loads(run_cptpub(root, "changes", "--since", first["edition_date"], "--json").stdout)
    assert [c["code"] for c in since["changed"]] == [CODE]  # against the October edition, kept in the history
    assert json.loads(run_cptpub(root, "changes", "--json").stdout)["changed"] == []


# --- catalogue and feed from the manifest --------------------------------------------------------------------


def _manifest_entry(code: str, edition_date: str, changes: dict | None, title: str = "A title") -> dict:
    return {
        "code": code,
        "title": f"CPT {code}: {title}",
        "edition_date": edition_date,
        "outputs": {"html": {"file": f"cpt-{code}.html", "sha256": "0" * 64}},
        "changes": changes,
    }


def embedded(page: str) -> dict:
    """The catalogue's editions as the page embeds them for its script."""
    return json.loads(re.search(r'<script type="application/json" id="editions-data">(.*?)</script>', page, re.S)[1])


def changes_by_code(data: dict) -> dict:
    """Each embedded edition's changes (its optional seventh item holds them), by code."""
    return {e[0]: e[6].get("changes") if len(e) > 6 else None for e in data["editions"]}


def test_the_catalogue_marks_updated_editions_and_filters_to_them():
    from cptpub.publish.catalogue import render_catalogue

    hostile = "<script>alert(1)</script> & *x*"
    manifest = {
        "generator": "cptpub test",
        "editions": [
            _manifest_entry("20702", "2026-11-01", {"since": "2026-10-01", "material": True, "summary": [hostile]}),
            _manifest_entry("20703", "2026-11-01", {"since": "2026-10-01", "material": False, "summary": []}),
            _manifest_entry("20704", "2026-10-01", None),
        ],
    }
    page = render_catalogue(manifest, REPO / "report")
    # The rows are drawn by the page's script from the embedded JSON (driven in Chromium by test_browser.py).
    data = embedded(page)
    changes = changes_by_code(data)
    assert list(changes) == ["20702", "20703", "20704"]
    assert changes == {
        "20702": {"since": changes["20702"]["since"], "summary": [hostile]},  # text, shown as text nodes
        "20703": None,
        "20704": None,
    }
    assert data["dates"][changes["20702"]["since"]] == {"iso": "2026-10-01", "label": "October 1, 2026"}
    # the intro's key and the badge of the row the page arrives with (drawn as the script draws it)
    assert page.count('<span class="badge-updated">UPDATED</span>') == 2
    assert (
        '<span class="visually-hidden"> since the edition of October 1, 2026</span>'
        '<ul class="changes"><li>&lt;script&gt;alert(1)&lt;/script&gt; &amp; *x*</li></ul>'
    ) in page
    assert page.count('data-updated="1"') == 1
    assert "<script>alert" not in page
    assert '<input type="checkbox" id="only-updated"' in page
    assert '<link rel="alternate" type="application/atom+xml" title="Updated editions" href="feed.xml">' in page
    quiet = render_catalogue({"editions": manifest["editions"][1:]}, REPO / "report")
    assert 'id="only-updated"' not in quiet and 'badge-updated">UPDATED' not in quiet
    assert changes_by_code(embedded(quiet)) == {"20703": None, "20704": None}


def test_the_feed_lists_only_updated_editions_deterministically():
    from cptpub.publish.feed import render_feed

    changed = {"since": "2026-10-01", "material": True, "summary": ["Aetna: median $1.00 → $1.10 (+10.0%), 3 rates"]}
    manifest = {
        "editions": [
            _manifest_entry("20703", "2026-11-01", {"since": "2026-10-01", "material": False, "summary": []}),
            _manifest_entry("20702", "2026-11-01", changed, title="<b>bold\x07</b> & more"),
            _manifest_entry("20705", "2026-12-01", changed),
        ]
    }
    data = render_feed(manifest)
    assert render_feed(manifest) == data
    root = ET.fromstring(data)
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "CPT 20705: A title: updated",
        "CPT 20702: <b>bold</b> & more: updated",  # text, not markup; the control character is gone
    ]
    assert root.findtext(f"{ATOM}updated") == "2026-12-01T00:00:00Z"
    assert "+10.0%" in (entries[0].findtext(f"{ATOM}summary") or "")
    empty = ET.fromstring(render_feed({"editions": manifest["editions"][:1]}))
    assert empty.findall(f"{ATOM}entry") == [] and empty.findtext(f"{ATOM}updated") == "2026-11-01T00:00:00Z"


def test_other_cms_kinds_are_superseded_by_quarter_and_claim_type():
    import datetime as dt

    from cptpub.store.releases import SourceInfo, decide

    def ncci(sid: str, quarter: dt.date, claim: str, part: int) -> SourceInfo:
        stamp = dt.datetime(2026, 1, 1)
        name = f"ccipra-{quarter:%Y%m}-f{part}.txt"
        return SourceInfo(sid, "ncci-ptp", name, "Medicare", "CMS", claim, None, quarter, "Q", stamp)

    q1, q2 = dt.date(2026, 1, 1), dt.date(2026, 4, 1)
    sources = [
        ncci("a", q1, "practitioner", 1),
        ncci("b", q1, "practitioner", 2),
        ncci("c", q2, "practitioner", 1),
        ncci("d", q2, "practitioner", 2),  # the newer quarter comes in two parts: both current
        ncci("e", q1, "outpatient hospital", 1),  # another claim type: its own series
    ]
    status = {s.source_id: (s.current, s.superseded_by) for s in decide(sources)}
    assert status["c"] == status["d"] == status["e"] == (True, None)
    assert not status["a"][0] and not status["b"][0] and status["a"][1] in {"c", "d"}


def test_an_ingest_between_two_editions_in_one_worker_is_seen(tmp_path, aetna_months):
    """A worker keeps the store open between editions; the next edition after an ingest reads the new file, and a
    build's pinned version keeps reading the file it pinned."""
    from cptpub.sections.context import load_context

    october, november = aetna_months
    store = RatesStore(tmp_path / "rates.duckdb")
    _ingest(store, october)

    def aetna_median(store_path: Path) -> float:
        benchmarks = load_context(CODE, REPO / "data", store_path).benchmarks
        assert benchmarks is not None
        return next(s for s in benchmarks.by_payer if s.payer == "Aetna").median

    october_median = statistics.median(r[2] for r in professional_rates(october, CODE))
    november_median = statistics.median(r[2] for r in professional_rates(november, CODE))
    assert aetna_median(store.path) == pytest.approx(october_median, abs=1e-9)
    with store.pinned() as pin:
        assert aetna_median(pin) == pytest.approx(october_median, abs=1e-9)
        _ingest(store, november)
        assert aetna_median(store.path) == pytest.approx(november_median, abs=1e-9)
        assert aetna_median(pin) == pytest.approx(october_median, abs=1e-9)  # the build's version, unchanged
    assert aetna_median(store.path) == pytest.approx(november_median, abs=1e-9)
    if Path("/proc/self/fd").is_dir():  # the pinned version is deleted after the build: this process let it go
        open_files = []
        for fd in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
                open_files.append(os.readlink(fd))
        assert not [f for f in open_files if f.startswith(str(pin))]
