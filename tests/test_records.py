"""Records: typed schema, errors that name file, line and field, unknown codes, unsafe codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cptpub.errors import RecordError, UsageError
from cptpub.project import check_code
from cptpub.records import CodeNotFound, load_payers, load_record, match_payer

from .conftest import REPO, run_cptpub


def write(project: Path, code: str, text: str) -> Path:
    path = project / "data" / "codes" / f"{code}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_demo_record_is_valid_and_marked_demo():
    codes = sorted(p.stem for p in (REPO / "data" / "codes").glob("*.yaml"))
    assert codes == ["20700", "20701", "20702", "20703", "20704", "20705"]
    for code in codes:
        record = load_record(REPO / "data" / "codes", code)
        assert record.demo is True
        assert record.title and record.add_on is True


def test_type_error_names_file_line_and_field(project: Path):
    path = write(
        project,
        "20799",
        "title: Test code\nadd_on: true\nmodifiers:\n  - modifier: '59'\n"
        "    description: Distinct service\n    when_to_use: [not, a, string]\n",
    )
    with pytest.raises(RecordError) as err:
        load_record(project / "data" / "codes", "20799")
    text = str(err.value)
    assert f"{path}:6" in text
    assert "modifiers[0].when_to_use" in text


def test_unknown_field_suggests_the_right_one(project: Path):
    path = write(project, "20799", "title: Test\nicd10_pairing:\n  - code: M86.1\n    description: x\n")
    with pytest.raises(RecordError) as err:
        load_record(project / "data" / "codes", "20799")
    assert f"{path}:2" in str(err.value)
    assert "unknown field 'icd10_pairing' (did you mean 'icd10_pairings'?)" in str(err.value)


def test_yaml_syntax_error_names_line_and_column(project: Path):
    path = write(project, "20799", "title: ok\nmodifiers:\n  - modifier: '59\n    description: x\n")
    with pytest.raises(RecordError) as err:
        load_record(project / "data" / "codes", "20799")
    assert str(err.value).startswith(f"{path}:")
    assert "YAML syntax error" in str(err.value)


def test_code_in_file_must_match_its_name(project: Path):
    path = write(project, "20799", "code: '20702'\n")
    with pytest.raises(RecordError, match=f"{path}:1: code: '20702' does not match"):
        load_record(project / "data" / "codes", "20799")


def test_unknown_code_lists_similar_known_codes():
    with pytest.raises(CodeNotFound) as err:
        load_record(REPO / "data" / "codes", "20709")
    assert err.value.exit_code == 2
    assert "Similar known codes: 20700" in str(err.value)


@pytest.mark.parametrize("bad", ["../x", "2070", "207021", "20 70", "a/b/c", ""])
def test_unsafe_codes_are_rejected(bad: str):
    with pytest.raises(UsageError, match="exactly 5 letters or digits"):
        check_code(bad)


def test_cli_unknown_code_exits_2_and_rejects_paths_before_touching_files(project: Path):
    result = run_cptpub(project, "build", "20709", check=False)
    assert result.returncode == 2
    assert "unknown code 20709" in result.stderr and "20700" in result.stderr
    result = run_cptpub(project, "build", "../x", check=False)
    assert result.returncode == 2
    assert "invalid code '../x'" in result.stderr
    assert not (project / "build").exists() and not (project / "dist").exists()


def test_payer_catalogue_maps_every_bcbs_plan_and_keeps_the_seed_order():
    catalogue = load_payers(REPO / "data" / "payers.yaml")
    assert [p.name for p in catalogue.payers] == [
        "Aetna",
        "Blue Cross Blue Shield",
        "Cigna Health",
        "UnitedHealthcare",
        "Medicare",
    ]
    for entity in [
        "Anthem Blue Cross",
        "Blue Cross and Blue Shield of Texas",
        "Highmark BCBS",
        "Florida Blue",
        "Premera Blue Cross",
        "CareFirst BlueCross BlueShield",
        "Regence BlueShield of Idaho",
    ]:
        assert match_payer(catalogue, entity).name == "Blue Cross Blue Shield", entity
    assert match_payer(catalogue, "Cigna Health and Life Insurance Company").name == "Cigna Health"
    assert match_payer(catalogue, "UnitedHealthcare of Texas, Inc.").name == "UnitedHealthcare"
    assert match_payer(catalogue, "Acme Health Plan") is None


def test_impossible_date_names_file_and_line(project: Path):
    path = write(project, "20799", "title: Test\nlast_reviewed: 2026-13-45\n")
    with pytest.raises(RecordError) as err:
        load_record(project / "data" / "codes", "20799")
    assert str(err.value).startswith(f"{path}:2:16: invalid value '2026-13-45'")
    result = run_cptpub(project, "list")
    assert "20799" in result.stdout and "invalid" in result.stdout
