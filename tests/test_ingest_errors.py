"""Bad input to `ingest tic`: each case gives a clear message naming the file and where in it, leaves the store
exactly as it was, and does not stop the other files of the same run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cptpub.cli import main
from cptpub.errors import IngestError
from cptpub.ingest.tic import ingest_tic_file
from cptpub.records.load import load_payers
from cptpub.store import RatesStore

REPO = Path(__file__).resolve().parents[1]
TIC = REPO.parent / "shared" / "fixtures" / "tic"
GOOD = TIC / "v1/in-network-rates-multiple-plans-sample.json"
V2_FFS = TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json"


@pytest.fixture
def store(tmp_path: Path) -> RatesStore:
    """A store that already holds one file, so "unchanged" means something."""
    store = RatesStore(tmp_path / "rates.duckdb")
    ingest_tic_file(store, GOOD, codes={"27447"}, catalogue=_catalogue())
    return store


def _catalogue():
    return load_payers(REPO / "data" / "payers.yaml")


def _snapshot(store: RatesStore):
    con = store.connect(read_only=True)
    try:
        return (
            con.execute("SELECT count(*) FROM negotiated_rates").fetchone()[0],
            con.execute("SELECT source_id, rows_kept FROM sources ORDER BY source_id").fetchall(),
        )
    finally:
        con.close()


def _fails(store: RatesStore, path: Path, codes=("27447", "27448"), **options) -> str:
    """Ingest ``path``, expect an IngestError, check the store did not change; returns the message."""
    before = _snapshot(store)
    with pytest.raises(IngestError) as failure:
        ingest_tic_file(store, path, codes=set(codes), catalogue=_catalogue(), **options)
    assert _snapshot(store) == before
    message = str(failure.value)
    assert str(path) in message
    return message


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_truncated_gzip(store, tmp_path):
    packed = gzip.compress(GOOD.read_bytes())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    message = _fails(store, path)
    assert "the gzip data ends early" in message and "cut short" in message
    assert "download the file again" in message


def test_invalid_json_in_a_kept_item(store, tmp_path):
    text = V2_FFS.read_text().replace('"negotiated_rate": 12.45,', '"negotiated_rate": 12.45.6,')
    path = _write(tmp_path, "bad-number.json", text)
    message = _fails(store, path)
    offset = text.index("12.45.6") + len("12.45")
    assert f"byte {offset:,}, in_network item 1, billing code 27448" in message
    assert "invalid JSON" in message


def test_invalid_json_between_skipped_items(store, tmp_path):
    document = json.loads(GOOD.read_text())
    text = json.dumps(document, separators=(",", ":"))
    broken = text.replace('},{"negotiation_arrangement"', '}{"negotiation_arrangement"', 1)  # a comma lost
    path = _write(tmp_path, "missing-comma.json", broken)
    message = _fails(store, path, codes=("99999",))  # both items are stepped over, unparsed
    assert "expected ','" in message
    assert f"byte {broken.index('}{') + 1:,}, in_network item 0" in message


def test_unbalanced_brackets(store, tmp_path):
    text = GOOD.read_text()
    path = _write(tmp_path, "unbalanced.json", text[: text.rindex("]")])  # the in_network array never closes
    message = _fails(store, path)
    assert f"byte {len(text[: text.rindex(']')]):,}, in_network item 1" in message
    assert "unexpected end of the document" in message


def test_wrong_type_of_rate(store, tmp_path):
    path = _write(tmp_path, "text-rate.json", V2_FFS.read_text().replace("123.45,", '"abc",'))
    message = _fails(store, path)
    assert "in_network item 0, billing code 27447" in message
    assert "negotiated_rates[0].negotiated_prices[0].negotiated_rate: must be a number, got 'abc'" in message


def test_wrong_type_in_the_header(store, tmp_path):
    text = GOOD.read_text().replace('"last_updated_on": "2020-08-27"', '"last_updated_on": "last week"')
    message = _fails(store, _write(tmp_path, "undated.json", text))
    assert "last_updated_on: must be a date (YYYY-MM-DD), got 'last week'" in message


def test_zero_rate(store, tmp_path):
    path = _write(
        tmp_path, "zero-rate.json", V2_FFS.read_text().replace('"negotiated_rate": 12.45', '"negotiated_rate": 0')
    )
    message = _fails(store, path)
    assert "in_network item 1, billing code 27448" in message
    assert "negotiated_rates[1].negotiated_prices[0].negotiated_rate: must be greater than 0, got 0" in message


def test_negative_rate(store, tmp_path):
    path = _write(tmp_path, "negative.json", V2_FFS.read_text().replace("1230.45", "-1230.45"))
    message = _fails(store, path)
    assert "must be greater than 0, got -1230.45" in message


def test_empty_in_network(store, tmp_path):
    document = json.loads(GOOD.read_text())
    document["in_network"] = []
    message = _fails(store, _write(tmp_path, "empty.json", json.dumps(document)))
    assert "in_network is empty" in message


def test_a_table_of_contents_file(store):
    message = _fails(store, TIC / "v2/table-of-contents-sample.json")
    assert "not a Transparency in Coverage in-network rate file: it is a table-of-contents file" in message
    assert "cptpub ingest toc" in message


def test_an_allowed_amounts_file(store):
    message = _fails(store, TIC / "v1/allowed-amounts-single-plan-sample.json")
    assert "it is an allowed-amounts file" in message


def test_random_json(store, tmp_path):
    assert "it has no in_network array" in _fails(store, _write(tmp_path, "random.json", '{"a": [1, {"b": 2}]}'))
    assert "its top level is not a JSON object" in _fails(store, _write(tmp_path, "list.json", "[1, 2]"))
    assert "the file is empty" in _fails(store, _write(tmp_path, "empty.json", ""))
    assert "invalid JSON value" in _fails(store, _write(tmp_path, "csv.json", '{"a": nope}'))


def test_trailing_garbage(store, tmp_path):
    message = _fails(store, _write(tmp_path, "trailing.json", GOOD.read_text() + "\n{}"))
    assert "unexpected data after the end of the JSON document" in message


def test_unknown_reporting_entity(store, tmp_path):
    text = GOOD.read_text().replace('"reporting_entity_name": "cms"', '"reporting_entity_name": "Acme Health Plan"')
    message = _fails(store, _write(tmp_path, "acme.json", text))
    assert "unknown reporting entity 'Acme Health Plan'" in message
    assert "data/payers.yaml" in message and "--payer" in message


def test_the_cli_ingests_the_good_files_and_exits_1_listing_the_bad(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "data" / "codes").mkdir(parents=True)
    (project / "data" / "payers.yaml").write_text((REPO / "data" / "payers.yaml").read_text())
    monkeypatch.setenv("CPTPUB_PROJECT", str(project))
    monkeypatch.delenv("CPTPUB_STORE", raising=False)
    bad = _write(tmp_path, "zero.json", V2_FFS.read_text().replace("12.45", "0"))
    status = main(["ingest", "tic", str(GOOD), str(bad), str(V2_FFS), "--codes", "27447,27448"])
    captured = capsys.readouterr()
    assert status == 1
    assert "1 of 3 file(s) failed" in captured.err
    assert f"  {bad}" in captured.err
    assert "must be greater than 0" in captured.err
    con = RatesStore(project / "build" / "rates.duckdb").connect(read_only=True)
    assert sorted(r[0] for r in con.execute("SELECT file_name FROM sources").fetchall()) == sorted(
        [GOOD.name, V2_FFS.name]
    )
