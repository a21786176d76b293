"""Bad input at the command line: one clear message with where and what, exit 2 for usage errors and 1 for failed
work, and a traceback only with --debug."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import FIXTURES, run_cptpub


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "No such command 'bogus'"),
        (["build", "20702", "--to", "docx"], "--to 'docx': choose one or more of html, pdf"),
        (["build", "20702", "--engine", "latex"], "latex"),
        (["build", "../x"], "invalid code '../x'"),
        (["build", "20709"], "unknown code 20709"),
        (["ingest", "tic", "/nonexistent/file.json.gz"], "/nonexistent/file.json.gz"),
        (["ingest", "tic", str(FIXTURES / "tic" / "v2" / "in-network-rates-no-npi.json"), "--payer", "Acme"], "Acme"),
        (["new", "20702"], "a record for 20702 already exists"),
    ],
)
def test_usage_errors_exit_2_with_a_message_and_no_traceback(project: Path, args, message):
    result = run_cptpub(project, *args, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_record_fails_the_build_with_file_line_and_field(project: Path):
    path = project / "data" / "codes" / "20702.yaml"
    path.write_text(path.read_text().replace("add_on: true", "add_on: sometimes"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("add_on:"))
    result = run_cptpub(project, "build", "20702", check=False)
    assert result.returncode == 1
    assert f"20702.yaml:{line}: add_on: Input should be a valid boolean" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not (project / "dist" / "cpt-20702.html").exists()


def test_broken_template_is_named_by_validate_and_build(ingested_project: Path, project: Path):
    (project / "report" / "_quarto.yml").write_text("project: [unclosed\n")
    result = run_cptpub(project, "validate", check=False)
    assert result.returncode == 1
    assert "report/_quarto.yml:2:1: YAML syntax error: expected ',' or ']'" in result.stderr
    shutil.copytree(ingested_project / "build", project / "build")
    result = run_cptpub(project, "build", "20702", "--engine", "builtin", "--to", "html", check=False)
    assert result.returncode == 1
    assert "report/_quarto.yml" in result.stderr and "Traceback" not in result.stderr


def test_missing_template_is_named(project: Path):
    (project / "report" / "_quarto.yml").unlink()
    result = run_cptpub(project, "validate", check=False)
    assert result.returncode == 1
    assert "report/_quarto.yml: report settings file not found" in " ".join(result.stderr.split())


def test_debug_shows_the_traceback(project: Path):
    result = run_cptpub(project, "--debug", "build", "20709", check=False)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_new_writes_a_complete_commented_record_that_validates(project: Path):
    result = run_cptpub(project, "new", "20799")
    path = project / "data" / "codes" / "20799.yaml"
    assert str(path) in " ".join(result.stdout.split())
    text = path.read_text()
    for field in ["title:", "descriptor:", "modifiers:", "icd10_pairings:", "taxonomies:", "policy_updates:"]:
        assert field in text
    validation = run_cptpub(project, "validate", check=False)
    assert validation.returncode == 0, validation.stderr
    assert "20799.yaml: title is missing" in validation.stderr


def test_build_without_a_rates_store_says_how_to_fill_it(project: Path):
    result = run_cptpub(project, "build", "20702", "--to", "html", check=False)
    assert result.returncode == 1
    assert "rates.duckdb: the rates store does not exist yet" in result.stderr
    assert "cptpub ingest tic" in result.stderr
    assert not (project / "dist" / "cpt-20702.html").exists()


def test_relative_cptpub_store_is_read_from_where_the_command_runs(ingested_project: Path, project: Path):
    shutil.copy(ingested_project / "build" / "rates.duckdb", project / "elsewhere.duckdb")
    run_cptpub(project, "build", "20702", "--engine", "builtin", "--to", "html",
               env={"CPTPUB_STORE": "elsewhere.duckdb"})  # fmt: skip
    html = (project / "dist" / "cpt-20702.html").read_text()
    assert "Across" in html and "the rates store has not been built" not in html
