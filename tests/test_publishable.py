"""Every code with a record or payers' rates can be published: `cptpub list`, `build --all`, and a build of a code
that has rates but no record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cptpub.batch.runner import resolve_codes
from cptpub.cli import main
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.project import Project
from cptpub.publishable import publishable_codes
from cptpub.records import CodeNotFound
from cptpub.store import RatesStore
from cptpub.store.rates import wide_rows

from .conftest import run_cptpub
from .test_batch import batch_project, manifest

PFS_2026 = Path(__file__).parent / "fixtures" / "cms" / "PPRRVU2026_Jul_nonQPP.excerpt.csv"


def _rates(store: RatesStore, rows: list[tuple[str, str, str]]) -> None:
    with store.transaction() as con:
        con.execute(
            "INSERT INTO sources VALUES ('s1', 'tic-in-network', 'in.json', 'in.json', 'Aetna', 'Aetna', NULL, NULL, "
            "DATE '2026-10-01', '1.0.0', 1, 0, [], false, now())"
        )
        with wide_rows(con) as rates:
            for code, code_type, payer in rows:
                con.execute(
                    f"INSERT INTO {rates} (source_id, payer, billing_code, billing_code_type, "
                    "negotiation_arrangement, item_name, negotiated_type, negotiated_rate, billing_class, "
                    "provider_reference_status) VALUES ('s1', ?, ?, ?, 'ffs', 'item', 'negotiated', 100, "
                    "'professional', 'inline')",
                    [payer, code, code_type],
                )


@pytest.fixture
def project_with_data(bare_project: Path) -> Path:
    (bare_project / "data" / "codes" / "20702.yaml").write_text("title: Insertion of a drug-delivery device\n")
    (bare_project / "data" / "codes" / "20703.yaml").write_text("title: [unclosed\n")
    store = RatesStore(bare_project / "build" / "rates.duckdb")
    ingest_pfs_file(store, PFS_2026)
    _rates(
        store,
        [
            ("99213", "CPT", "Aetna"),
            ("99213", "CPT", "Cigna Health"),
            ("J3490", "HCPCS", "Aetna"),
            ("470", "MS-DRG", "Aetna"),  # not a CPT/HCPCS code: never an edition
            ("CSTM-00", "CPT", "Aetna"),
            ("0450", "RC", "Aetna"),
        ],
    )
    return bare_project


def test_list_json_shows_records_and_codes_with_rates(project_with_data, capsys):
    assert main(["list", "--json"]) == 0
    rows = {row["code"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["20702", "20703", "99213", "J3490"]  # 20700 etc.: fee schedule only, not listed
    assert rows["20702"] == {
        "code": "20702",
        "title": "Insertion of a drug-delivery device",
        "title_source": "record",
        "record": "valid",
        "demo": False,
        "payers": [],
    }
    assert rows["20703"]["record"] == "invalid" and rows["20703"]["title"] == "Rmvl imed rx delivery device"
    assert rows["99213"] == {
        "code": "99213",
        "title": "Office o/p est low 20 min",
        "title_source": "CMS",
        "record": "none",
        "demo": False,
        "payers": ["Aetna", "Cigna Health"],
    }
    assert rows["J3490"]["title"] is None and rows["J3490"]["record"] == "none"
    assert main(["list"]) == 0
    table = capsys.readouterr().out
    assert "none: built from data" in table and "invalid" in table


def test_codes_to_build(project_with_data):
    project = Project(project_with_data)
    assert [(e.code, e.has_record) for e in publishable_codes(project)] == [
        ("20702", True),
        ("20703", True),
        ("99213", False),
        ("J3490", False),
    ]
    assert resolve_codes(project, [], all_codes=True) == ["20702", "20703", "99213", "J3490"]
    assert resolve_codes(project, ["99213"], all_codes=False) == ["99213"]  # rates, no record: buildable
    with pytest.raises(CodeNotFound, match="unknown code 20700"):  # fee schedule only: not buildable
        resolve_codes(project, ["20700"], all_codes=False)


def test_a_code_with_rates_and_no_record_builds(tmp_path: Path, ingested_project: Path):
    root = batch_project(tmp_path / "p", ingested_project, ("20702", "20703"))
    (root / "data" / "codes" / "20703.yaml").unlink()
    result = run_cptpub(root, "build", "--all", "-j", "1", "--to", "html", "--engine", "builtin")
    assert "2 codes: 2 to build" in result.stdout
    assert [e["code"] for e in manifest(root)["editions"]] == ["20702", "20703"]
    assert (root / "dist" / "cpt-20703.html").is_file()
    again = run_cptpub(root, "build", "--all", "--to", "html", "--engine", "builtin")
    assert "2 codes: all up to date" in again.stdout  # a code without a record has a stable key too


def test_a_codes_file_that_never_ends_is_refused(tmp_path):
    from cptpub.errors import UsageError
    from cptpub.project import read_codes_file

    with pytest.raises(UsageError, match="not a regular file") as caught:
        read_codes_file(Path("/dev/zero"))
    assert caught.value.where == "/dev/zero"
    big = tmp_path / "codes.txt"
    with big.open("wb") as handle:
        handle.truncate((16 << 20) + 1)
    with pytest.raises(UsageError, match="over the limit of 16,777,216"):
        read_codes_file(big)
    (tmp_path / "latin1.txt").write_bytes(b"20702\n\xe9\n")
    with pytest.raises(UsageError, match=r"not UTF-8 text \(byte 6\)"):
        read_codes_file(tmp_path / "latin1.txt")
