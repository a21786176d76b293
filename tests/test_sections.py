"""Section content: missing fields become explicit sentences; data text is escaped; one computation feeds all."""

from __future__ import annotations

from pathlib import Path

import yaml

from cptpub import sections
from cptpub.sections import load_context


def drop_field(project: Path, code: str, field: str) -> None:
    path = project / "data" / "codes" / f"{code}.yaml"
    data = yaml.safe_load(path.read_text())
    data.pop(field)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_removed_field_becomes_a_not_available_sentence(project: Path):
    drop_field(project, "20702", "modifiers")
    ctx = load_context("20702", project / "data", project / "build" / "rates.duckdb")
    text = sections.clinical_and_coding(ctx)
    assert "Data not available in the input for modifiers." in text
    assert "| Modifier |" not in text
    summary = sections.summary(ctx)
    assert "Data not available in the input for modifiers;" in summary


def test_complete_record_says_so_and_lists_fields_missing_elsewhere(project: Path):
    ctx = load_context("20702", project / "data", project / "build" / "rates.duckdb")
    assert "Every field of this code's record is present in the input." in sections.summary(ctx)
    ctx = load_context("20705", project / "data", project / "build" / "rates.duckdb")
    assert "Data not available in the input for ICD\\-10 pairings and provider taxonomies;" in sections.summary(ctx)


def test_without_a_rates_store_the_benchmark_section_says_so(project: Path):
    ctx = load_context("20702", project / "data", project / "no-store.duckdb")
    text = sections.benchmarks(ctx)
    assert text.startswith("## Reimbursement Benchmarks")
    assert "Data not available in the input for negotiated rates" in text
    assert ctx.key_payers == []
    assert "No payer has rate data for CPT 20702 in the input." in sections.summary(ctx)


def test_markup_in_record_text_is_escaped(project: Path):
    path = project / "data" / "codes" / "20702.yaml"
    data = yaml.safe_load(path.read_text())
    data["service_type"] = "# not a heading <script>alert(1)</script> *x* $y$ ]"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ctx = load_context("20702", project / "data", project / "no-store.duckdb")
    text = sections.summary(ctx)
    assert "\\# not a heading \\<script\\>alert\\(1\\)\\<\\/script\\> \\*x\\* \\$y\\$ \\]" in text
