"""`cptpub ingest tic | pfs | toc` as a user runs them: arguments, output, exit status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cptpub.cli import main
from cptpub.store import RatesStore
from tests.test_ingest_pfs import pprrvu_csv

from .conftest import FIXTURES

TIC = FIXTURES / "tic"
NO_NPI = TIC / "v1/in-network-rates-no-npi.json"
MULTI = TIC / "v2/in-network-rates-multiple-plans-sample.json"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def stored(project: Path, sql: str) -> list[tuple]:
    con = RatesStore(project / "build" / "rates.duckdb").connect(read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_ingest_tic_prints_one_line_per_file(bare_project, capsys):
    status, out, err = run(capsys, "ingest", "tic", str(NO_NPI), str(MULTI), "--codes", "27447")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert re.fullmatch(
        r"ingested   in-network-rates-no-npi\.json: Medicare, 1 rates kept, 0 skipped \(version 1\.0\.0; \d+\.\d s\)",
        lines[0],
    )
    assert lines[1].startswith(
        "ingested   in-network-rates-multiple-plans-sample.json: Medicare, 8 rates kept, 1 skipped"
    )
    assert stored(bare_project, "SELECT count(*) FROM negotiated_rates") == [(9,)]


def test_again_is_unchanged_and_replace_reloads(bare_project, capsys):
    run(capsys, "ingest", "tic", str(NO_NPI), "--codes", "27447")
    status, out, _ = run(capsys, "ingest", "tic", str(NO_NPI), "--codes", "27447")
    assert status == 0 and out.startswith("unchanged  in-network-rates-no-npi.json: already ingested (source ")
    status, out, _ = run(capsys, "ingest", "tic", str(NO_NPI), "--codes", "27447", "--replace")
    assert status == 0 and out.startswith("replaced   in-network-rates-no-npi.json: Medicare, 1 rates kept")


def test_every_code_is_kept_by_default_whatever_the_records(bare_project, capsys):
    (bare_project / "data" / "codes" / "27448.yaml").write_text("title: Femur and knee repair\n")
    status, out, _ = run(capsys, "ingest", "tic", str(MULTI))
    assert status == 0 and "12 rates kept, 0 skipped" in out
    in_file = {item["billing_code"] for item in json.loads(MULTI.read_text())["in_network"]}
    assert {c for (c,) in stored(bare_project, "SELECT DISTINCT billing_code FROM negotiated_rates")} == in_file


def test_codes_file(bare_project, tmp_path, capsys):
    listing = tmp_path / "codes.txt"
    listing.write_text("# knee\n27447, 27448\n")
    status, out, _ = run(capsys, "ingest", "tic", str(MULTI), "--codes-file", str(listing))
    assert status == 0 and "12 rates kept, 0 skipped" in out


def test_codes_listing_none_is_a_usage_error(bare_project, capsys):
    status, _, err = run(capsys, "ingest", "tic", str(NO_NPI), "--codes", ",")
    assert status == 2
    assert "no codes to keep" in err and "--codes" in err


def test_an_invalid_code_is_a_usage_error(bare_project, capsys):
    status, _, err = run(capsys, "ingest", "tic", str(NO_NPI), "--codes", "2744")
    assert status == 2 and "invalid code '2744'" in err


def test_an_unknown_payer_is_a_usage_error_before_any_file_is_read(bare_project, capsys):
    status, _, err = run(capsys, "ingest", "tic", str(NO_NPI), "--codes", "27447", "--payer", "Acme")
    assert status == 2 and "unknown payer 'Acme' for --payer" in err
    assert not (bare_project / "build" / "rates.duckdb").exists() or stored(
        bare_project, "SELECT count(*) FROM sources"
    ) == [(0,)]


def test_payer_override(bare_project, capsys):
    path = TIC / "v2/in-network-rates-all-negotiated-types-sample.json"
    status, _, err = run(capsys, "ingest", "tic", str(path), "--codes", "27447")
    assert status == 1 and "unknown reporting entity 'Comprehensive Health Insurance'" in err
    status, out, _ = run(capsys, "ingest", "tic", str(path), "--codes", "27447", "--payer", "aetna")
    assert status == 0 and ": Aetna, 6 rates kept, 5 skipped" in out


def test_provider_refs_folder(bare_project, tmp_path, capsys):
    document = json.loads((TIC / "v1/in-network-rates-fee-for-service-single-plan-sample.json").read_text())
    document["in_network"][1]["negotiated_rates"][0]["provider_references"] = [2]
    path = tmp_path / "remote.json"
    path.write_text(json.dumps(document))
    status, out, _ = run(capsys, "ingest", "tic", str(path), "--codes", "27448")
    assert status == 0
    assert "  warning: 1 provider reference(s) used by kept rates point at remote files" in out
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "some_provider_group.json").write_text((TIC / "v1/provider-reference.json").read_text())
    status, out, _ = run(
        capsys, "ingest", "tic", str(path), "--codes", "27448", "--provider-refs", str(refs), "--replace"
    )
    assert status == 0 and "warning" not in out
    assert stored(bare_project, "SELECT DISTINCT provider_reference_status FROM negotiated_rates ORDER BY 1") == [
        ("inline",),
        ("resolved",),
    ]


def test_a_folder_is_searched_for_json_and_gz_files(bare_project, tmp_path, capsys):
    folder = tmp_path / "downloads"
    (folder / "aetna").mkdir(parents=True)
    (folder / "aetna" / "a.json").write_bytes(NO_NPI.read_bytes())
    (folder / "notes.txt").write_text("not a rate file")
    status, out, _ = run(capsys, "ingest", "tic", str(folder), "--codes", "27447")
    assert status == 0 and out.startswith("ingested   a.json: Medicare, 1 rates kept")


def test_ingest_pfs(bare_project, tmp_path, capsys):
    path = tmp_path / "PPRRVU24_JAN.csv"
    path.write_bytes(pprrvu_csv())
    status, out, _ = run(capsys, "ingest", "pfs", str(path), "--codes", "99213")
    assert status == 0
    assert re.fullmatch(
        r"ingested   PPRRVU24_JAN\.csv: Medicare, 1 lines kept, 6 skipped \(version RVU24A; \d+\.\d s\)\n", out
    )
    assert stored(bare_project, "SELECT hcpcs, nonfacility_amount, year FROM medicare_pfs") == [("99213", 85.22, 2024)]


def test_ingest_toc_table(capsys, monkeypatch):
    from cptpub import cli

    monkeypatch.setattr(cli.console, "width", 250)  # one table row per line, whatever ran first in this process
    status, out, _ = run(capsys, "ingest", "toc", str(TIC / "v2/table-of-contents-sample.json"))
    assert status == 0
    assert "medicare: 3 in-network file(s), updated 2023-04-19" in out
    for text in ("medicaid (hios 1111111111)", "chip (hios 3333333333)", "behavioral in-network shared file"):
        assert text in out
    assert "in-network-file-123456.json" in out and "chip-in-network-file.json" in out


def test_ingest_toc_json(capsys):
    status, out, _ = run(capsys, "ingest", "toc", str(TIC / "v1/table-of-contents-sample.json"), "--json")
    assert status == 0
    listing = json.loads(out)
    assert listing["reporting_entity_name"] == "medicare" and listing["version"] == "1.4.0"
    files = listing["in_network_files"]
    assert [f["location"] for f in files] == [
        "https://www.some_site.com/files/in-network-file-123456.json",
        "https://www.some_site.com/files/behavioral-health-0000.json",
        "https://www.some_site.com/files/chip-in-network-file.json",
    ]
    assert files[0]["plans"] == [
        {"plan_name": "medicaid", "plan_id_type": "hios", "plan_id": "1111111111", "plan_market_type": "individual"},
        {"plan_name": "medicare", "plan_id_type": "hios", "plan_id": "000000000", "plan_market_type": "individual"},
    ]
    assert files[2]["description"] == "in-network file"


def test_ingest_toc_of_an_in_network_file(capsys):
    status, _, err = run(capsys, "ingest", "toc", str(NO_NPI))
    assert status == 1 and "not a table-of-contents file: it is an in-network rate file" in err


def test_help_lists_the_three_commands(capsys):
    status, out, _ = run(capsys, "ingest", "--help")
    assert status == 0
    for command in ("tic", "pfs", "toc"):
        assert re.search(rf"\b{command}\b", out)


@pytest.mark.parametrize("command", ["pfs", "toc"])
def test_a_folder_where_a_file_is_wanted_is_a_usage_error(bare_project, tmp_path, capsys, command):
    folder = tmp_path / "data"
    folder.mkdir()
    status, _, err = run(capsys, "ingest", command, str(folder), *(["--codes", "99213"] if command == "pfs" else []))
    assert status == 2
    assert "internal error" not in err and (f"'{folder}' is a directory" in err or f"{folder} is a folder" in err)


def test_paths_with_markup_are_printed_as_they_are(bare_project, tmp_path, capsys):
    folder = tmp_path / "x[" / "]y"  # the path holds "[/]", rich's closing tag
    folder.mkdir(parents=True)
    good = folder / "[bold]rates.json"
    good.write_bytes(NO_NPI.read_bytes())
    bad = folder / "[red]zero.json"
    bad.write_text("")
    status, out, err = run(capsys, "ingest", "tic", str(good), str(bad), "--codes", "27447")
    assert status == 1
    assert out.startswith("ingested   [bold]rates.json: Medicare")
    assert f"failed     {bad}: the file is empty" in err and f"\n  {bad}" in err


def test_toc_text_from_the_file_is_not_markup(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    document = {
        "reporting_entity_name": "Acme [/] Health [bold]",
        "reporting_entity_type": "health insurance issuer",
        "last_updated_on": "2024-01-01",
        "version": "1.0.0",
        "reporting_structure": [
            {
                "reporting_plans": [{"plan_name": "Gold [red]", "plan_id_type": "ein", "plan_id": "12[/]"}],
                "in_network_files": [
                    {"description": 12345, "location": "https://example.com/[/]a.json"},
                    {"description": {"note": "[/]"}, "location": "https://example.com/b.json"},
                    {"description": "knee [i]", "location": "https://example.com/c.json"},
                ],
            }
        ],
    }
    path = tmp_path / "x[" / "]toc.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    status, out, err = run(capsys, "ingest", "toc", str(path))
    assert (status, err) == (0, "")
    assert "Acme [/] Health [bold]: 3 in-network file(s), updated 2024-01-01" in out
    for text in ("Gold [red] (ein 12[/])", "12345", "{'note': '[/]'}", "knee [i]", "https://example.com/[/]a.json"):
        assert text in out
