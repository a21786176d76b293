"""The cell library: missing fields become explicit sentences; data text is escaped; one computation feeds all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from cptpub import sections as cp
from cptpub.sections import load_context
from cptpub.sections.context import CONTEXT_FILE, load_edition, save_context


def drop_field(project: Path, code: str, field: str) -> None:
    path = project / "data" / "codes" / f"{code}.yaml"
    data = yaml.safe_load(path.read_text())
    data.pop(field)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_removed_field_becomes_a_not_available_sentence(project: Path):
    drop_field(project, "20702", "modifiers")
    e = load_context("20702", project / "data", project / "build" / "rates.duckdb")
    assert cp.table_or_missing(cp.modifier_table(e), "modifiers") == "Data not available in the input for modifiers."
    assert "Data not available in the input for modifiers;" in cp.missing_sentence(e)


def test_complete_record_says_so_and_lists_fields_missing_elsewhere(project: Path):
    e = load_context("20702", project / "data", project / "build" / "rates.duckdb")
    assert cp.missing_sentence(e) == "Every field of this code's record is present in the input."
    e = load_context("20705", project / "data", project / "build" / "rates.duckdb")
    assert "Data not available in the input for ICD\\-10 pairings and provider taxonomies;" in cp.missing_sentence(e)


def test_without_a_rates_store_the_benchmark_section_says_so(project: Path):
    e = load_context("20702", project / "data", project / "no-store.duckdb")
    assert cp.medicare_paragraph(e).startswith("Data not available in the input for negotiated rates")
    assert cp.payer_table(e) is None and cp.rates_figure(e) is None
    assert e.key_payers == []
    assert cp.key_payers_sentence(e) == "No payer has rate data for CPT 20702 in the input."


def test_markup_in_record_text_is_escaped(project: Path):
    path = project / "data" / "codes" / "20702.yaml"
    data = yaml.safe_load(path.read_text())
    data["service_type"] = "# not a heading <script>alert(1)</script> *x* $y$ ]"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    e = load_context("20702", project / "data", project / "no-store.duckdb")
    escaped = "\\# not a heading \\<script\\>alert\\(1\\)\\<\\/script\\> \\*x\\* \\$y\\$ \\]"
    assert escaped in cp.field(e.record.service_type, "the service type")
    assert cp.opening(e).endswith("for \\# not a heading \\<script\\>alert\\(1\\)\\<\\/script\\> \\*x\\* \\$y\\$ \\].")


def test_helpers_escape_data_and_keep_trusted_markdown():
    assert cp.names(["A*", "B", "C#"]) == "A\\*, B, and C\\#"
    assert cp.money(1234.5) == "\\$1\\,234\\.50" and cp.percent(None) == "n/a"
    assert cp.inline_markdown("*x*") == "\\*x\\*"
    assert cp.inline_markdown(cp.money(3)) == "\\$3\\.00"  # trusted: not escaped twice
    assert cp.inline_markdown(1234) == "1234" and cp.inline_markdown(None) == ""
    assert cp.inline_markdown(" alongside the #1 ") == " alongside the \\#1 "  # spaces around inline code kept
    table = cp.frame_markdown(pd.DataFrame({"Payer": ["A|B", "<b>"], "Rates": [3, 12]}))
    lines = table.splitlines()
    assert lines[0] == "| Payer | Rates |"
    assert lines[1].startswith("|:") and lines[1].endswith(":|")  # text left, numbers right
    assert lines[2:] == ["| A\\|B | 3 |", "| \\<b\\> | 12 |"]


def test_table_column_widths_follow_the_contents():
    frame = pd.DataFrame({"Payer": ["All commercial payers"], "Min": ["$1.00"], "Max": ["$2.00"]})
    separator = cp.frame_markdown(frame).splitlines()[1]
    widths = [len(part) for part in separator.strip("|").split("|")]
    assert widths[0] > 2 * widths[1] and len(separator) > 72  # Pandoc takes relative widths from the dashes


def test_the_build_computes_the_context_once_and_notebooks_read_it(ingested_project: Path, tmp_path: Path, monkeypatch):
    """load_edition reads what the build saved (no store needed), and only for the same code and inputs."""
    data, store = ingested_project / "data", tmp_path / "rates.duckdb"
    shutil.copy(ingested_project / "build" / "rates.duckdb", store)
    e = load_context("20702", data, store)
    workdir = tmp_path / "work"
    workdir.mkdir()
    save_context(e, data, store, workdir)
    monkeypatch.chdir(workdir)
    moved = tmp_path / "moved.duckdb"
    shutil.move(store, moved)  # the notebooks must not need the store any more
    loaded = load_edition("20702", os.path.relpath(data), os.path.relpath(store))
    assert loaded.benchmarks.overall == e.benchmarks.overall
    assert load_edition("20705", data, store).benchmarks is None  # another code: computed (no store now)
    assert (workdir / CONTEXT_FILE).exists()
