"""Bad input to `ingest tic`: each case gives a clear message naming the file and where in it, leaves the store
exactly as it was, and does not stop the other files of the same run."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import cptpub.ingest.tic
from cptpub.cli import main
from cptpub.errors import IngestError
from cptpub.ingest import stream
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.ingest.tic import ingest_tic_file
from cptpub.records.load import load_payers
from cptpub.store import RatesStore

from .conftest import FIXTURES

REPO = Path(__file__).resolve().parents[1]
TIC = FIXTURES / "tic"
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
        ingest_tic_file(store, path, codes=None if codes is None else set(codes), catalogue=_catalogue(), **options)
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


def test_invalid_json_in_a_skimmed_item_names_the_item(store, tmp_path):
    """Keep-few steps over runs of minified items without reading them one by one; an item broken in one of those
    runs is still named, with the byte."""
    document = json.loads(V2_FFS.read_text())
    items = [dict(document["in_network"][1], billing_code=f"{10000 + n}") for n in range(300)]
    document["in_network"] = items
    text = json.dumps(document, separators=(",", ":"))
    start = text.index('{"negotiation_arrangement"')
    for _ in range(211):
        start = text.index('{"negotiation_arrangement"', start + 1)
    broken_at = text.index('"negotiated_rate":', start) + len('"negotiated_rate":')
    broken = text[:broken_at] + "+" + text[broken_at:]  # "+123.45" is not a JSON number
    path = _write(tmp_path, "skimmed-bad-number.json", broken)
    message = _fails(store, path, codes=("99999",))
    assert "in_network item 211" in message and "invalid JSON: invalid character" in message
    assert f"byte {broken_at:,}" in message


@pytest.mark.parametrize("codes", [None, ("99999",)], ids=["every code", "few codes"])
def test_an_item_that_is_not_an_object_among_minified_items_is_named(store, tmp_path, codes):
    """``[{...},42,{...}]``: the 42 is named as the item that is not an object (the objects around it are fine)."""
    document = json.loads(V2_FFS.read_text())
    item = document["in_network"][1]
    document["in_network"] = [item, 42, item]
    text = json.dumps(document, separators=(",", ":"))
    message = _fails(store, _write(tmp_path, "not-an-object.json", text), codes=codes)
    assert f"byte {text.index(',42,') + 1:,}, in_network item 1" in message
    assert "expected an object, found '42," in message


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


def _stored_rates(store: RatesStore, source_id: str) -> list[float]:
    con = store.connect(read_only=True)
    try:
        rows = con.execute("SELECT negotiated_rate FROM negotiated_rates WHERE source_id = ?", [source_id]).fetchall()
        return sorted(r[0] for r in rows)
    finally:
        con.close()


@pytest.mark.parametrize(
    ("replace", "by", "suspect"),
    [
        ("12.45", "0", 0.0),
        ("1230.45", "-1230.45", -1230.45),
        ("12.45", "0.01", 0.01),
        ("12.45", "999999.99", 999999.99),
    ],
)
def test_a_zero_negative_or_placeholder_price_is_stored_and_counted(store, tmp_path, replace, by, suspect):
    """Real files carry $0.00, negative and placeholder prices: the file is ingested, the price stored with the
    others (analysis recognises it with staging.SUSPECT_PRICE_SQL) and counted in the source's warnings."""
    path = _write(
        tmp_path,
        "odd-price.json",
        V2_FFS.read_text().replace(f'"negotiated_rate": {replace}', f'"negotiated_rate": {by}'),
    )
    result = ingest_tic_file(store, path, codes={"27447", "27448"}, catalogue=_catalogue())
    assert result.status == "ingested"
    assert suspect in _stored_rates(store, result.source_id)
    unchanged = ingest_tic_file(
        RatesStore(tmp_path / "plain.duckdb"), V2_FFS, codes={"27447", "27448"}, catalogue=_catalogue()
    )
    assert result.rows_kept == unchanged.rows_kept  # nothing dropped
    assert any("1 price(s) of zero, a negative amount or a placeholder" in w for w in result.warnings)
    con = store.connect(read_only=True)
    warnings = con.execute("SELECT warnings FROM sources WHERE source_id = ?", [result.source_id]).fetchone()[0]
    con.close()
    assert warnings == result.warnings
    from cptpub.ingest.staging import SUSPECT_PRICE_SQL

    con = store.connect(read_only=True)
    flagged = con.execute(
        f"SELECT negotiated_rate FROM negotiated_rates WHERE source_id = ? AND {SUSPECT_PRICE_SQL}", [result.source_id]
    ).fetchall()
    con.close()
    assert set(flagged) == {(suspect,)}


def test_a_price_that_is_not_a_number_fails_the_file(store, tmp_path):
    path = _write(
        tmp_path, "text-rate.json", V2_FFS.read_text().replace('"negotiated_rate": 12.45', '"negotiated_rate": "12.45"')
    )
    message = _fails(store, path)
    assert "in_network item 1, billing code 27448" in message
    assert "negotiated_rates[1].negotiated_prices[0].negotiated_rate: must be a number, got '12.45'" in message


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
    bad = _write(tmp_path, "text-rate.json", V2_FFS.read_text().replace("12.45", '"12.45"'))
    status = main(["ingest", "tic", str(GOOD), str(bad), str(V2_FFS), "--codes", "27447,27448"])
    captured = capsys.readouterr()
    assert status == 1
    assert "1 of 3 file(s) failed" in captured.err
    assert f"  {bad}" in captured.err
    assert "must be a number, got '12.45'" in captured.err
    con = RatesStore(project / "build" / "rates.duckdb").connect(read_only=True)
    assert sorted(r[0] for r in con.execute("SELECT file_name FROM sources").fetchall()) == sorted(
        [GOOD.name, V2_FFS.name]
    )


# --- files that cannot be read: every one an IngestError naming the path, never an OSError ------------------


@pytest.fixture
def fifo() -> Iterator[Callable[[Path], Path]]:
    """Makes named pipes; should a reader block on one anyway, it is released after 5 s (it then reads an
    empty file), so a regression fails the test instead of hanging the run."""
    stop = threading.Event()
    made: list[Path] = []

    def release() -> None:
        if stop.wait(5):
            return
        while not stop.wait(0.2):
            for path in made:
                os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))  # a writer that comes and goes

    thread = threading.Thread(target=release, daemon=True)
    thread.start()

    def make(path: Path) -> Path:
        os.mkfifo(path)
        made.append(path)
        return path

    yield make
    stop.set()
    thread.join()


def test_a_broken_link(store, tmp_path):
    path = tmp_path / "annexed.json"
    path.symlink_to(tmp_path / "never-fetched")
    message = _fails(store, path)
    assert f"cannot read the file: it is a broken symbolic link (to {tmp_path / 'never-fetched'})" in message


def test_a_folder(store, tmp_path):
    folder = tmp_path / "looks-like.json"
    folder.mkdir()
    assert "it is a folder, not a file" in _fails(store, folder)


def test_a_named_pipe_is_refused_before_it_is_opened(store, tmp_path, fifo):
    path = fifo(tmp_path / "pipe.json")
    assert "cannot read the file: it is a named pipe, not a regular file" in _fails(store, path)


class _FailingDisk(io.FileIO):
    """A file whose reads fail after its first ``good`` bytes, as on a failing disk."""

    good = 0

    def read(self, size: int = -1) -> bytes:
        left = self._left()
        return super().read(left if size < 0 else min(size, left))

    def readinto(self, buffer) -> int:
        left = self._left()
        with memoryview(buffer) as view:
            return super().readinto(view[:left])

    def _left(self) -> int:
        if self.tell() >= self.good:
            raise OSError(errno.EIO, "Input/output error")
        return self.good - self.tell()


@pytest.mark.parametrize("codes", [("27447", "27448"), None], ids=["few codes", "every code"])
def test_an_io_error_while_reading(store, tmp_path, monkeypatch, codes):
    """The disk fails in the middle of in_network (of a minified file, which keep-few skims)."""
    document = json.loads(V2_FFS.read_text())
    document["in_network"] = [dict(document["in_network"][1], billing_code=f"{10000 + n}") for n in range(400)]
    text = json.dumps(document, separators=(",", ":"))
    path = _write(tmp_path, "flaky.json", text)
    monkeypatch.setattr(_FailingDisk, "good", len(text) // 2)
    monkeypatch.setattr(stream, "open", lambda path, mode, buffering: _FailingDisk(path, mode), raising=False)
    assert "cannot read the file: Input/output error" in _fails(store, path, codes=codes)


def _remote_refs(tmp_path: Path) -> tuple[Path, Path]:
    """An in-network file whose kept rate points at a remote provider-reference file, and a folder for it."""
    document = json.loads((TIC / "v1/in-network-rates-fee-for-service-single-plan-sample.json").read_text())
    document["in_network"][1]["negotiated_rates"][0]["provider_references"] = [2]
    path = _write(tmp_path, "remote.json", json.dumps(document))
    refs = tmp_path / "refs"
    refs.mkdir()
    return path, refs


def test_a_gzip_provider_reference_file_is_streamed_not_slurped(store, tmp_path):
    """A provider-reference file of 60 MB (decompressed) is read with a bounded window: peak Python memory during
    the ingest stays far below its size (a whole-file read would hold all of it at once)."""
    import tracemalloc

    path, refs = _remote_refs(tmp_path)
    document = json.loads((TIC / "v1/provider-reference.json").read_text())
    padding = json.dumps({"padding": [0] * 30_000_000})[1:-1]  # 60 MB of an array nobody reads
    text = json.dumps(document)[:-1] + ", " + padding + "}"
    (refs / "some_provider_group.json.gz").write_bytes(gzip.compress(text.encode(), compresslevel=1))
    tracemalloc.start()
    try:
        result = ingest_tic_file(store, path, codes={"27448"}, catalogue=_catalogue(), provider_refs_dir=refs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.warnings == []
    assert peak < 25e6, f"peak {peak / 1e6:.0f} MB while reading a 60 MB file"


def test_a_cut_short_provider_reference_file(store, tmp_path):
    path, refs = _remote_refs(tmp_path)
    packed = gzip.compress((TIC / "v1/provider-reference.json").read_bytes())
    (refs / "some_provider_group.json.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(IngestError, match="cannot read provider reference file") as failure:
        ingest_tic_file(store, path, codes={"27448"}, catalogue=_catalogue(), provider_refs_dir=refs)
    assert failure.value.where == str(refs / "some_provider_group.json.gz")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("folder", "it is a folder"), ("broken link", "it is a broken symbolic link"), ("named pipe", "a named pipe")],
)
def test_pfs_names_a_path_it_cannot_read(tmp_path, kind, reason, fifo):
    path = tmp_path / "PPRRVU24_JAN.csv"
    if kind == "folder":
        path.mkdir()
    elif kind == "broken link":
        path.symlink_to(tmp_path / "missing.csv")
    else:
        fifo(path)  # read_bytes() would block on it
    with pytest.raises(IngestError) as failure:
        ingest_pfs_file(RatesStore(tmp_path / "rates.duckdb"), path, codes={"99213"})
    assert failure.value.where == str(path) and reason in failure.value.message


def test_pfs_a_corrupt_zip(tmp_path):
    path = tmp_path / "RVU24A.zip"
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(IngestError, match="cannot read the zip") as failure:
        ingest_pfs_file(RatesStore(tmp_path / "rates.duckdb"), path, codes={"99213"})
    assert failure.value.where == str(path)


def _ingested(project: Path) -> list[str]:
    con = RatesStore(project / "build" / "rates.duckdb").connect(read_only=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT file_name FROM sources").fetchall())
    finally:
        con.close()


def test_the_cli_reports_unreadable_files_in_a_folder_and_goes_on(bare_project, tmp_path, capsys, fifo):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "a.json").write_bytes(GOOD.read_bytes())
    (folder / "b.json").symlink_to(tmp_path / "never-fetched.json")  # a git-annex file not fetched
    fifo(folder / "c.json")
    (folder / "d.json").write_bytes(V2_FFS.read_bytes())
    status = main(["ingest", "tic", str(folder), "--codes", "27447,27448"])
    err = capsys.readouterr().err
    assert status == 1
    assert f"failed     {folder / 'b.json'}: cannot read the file: it is a broken symbolic link" in err
    assert f"failed     {folder / 'c.json'}: cannot read the file: it is a named pipe" in err
    assert (
        f"2 of 4 file(s) failed, each leaving the store as it was:\n  {folder / 'b.json'}\n  {folder / 'c.json'}" in err
    )
    assert _ingested(bare_project) == ["a.json", "d.json"]


def test_the_cli_reports_an_os_error_per_file_and_goes_on(bare_project, tmp_path, capsys, monkeypatch):
    bad = _write(tmp_path, "locked.json", GOOD.read_text())
    ingest = cptpub.ingest.tic.ingest_tic_file

    def failing_for_bad(store, path, **options):
        if path == bad:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return ingest(store, path, **options)

    monkeypatch.setattr(cptpub.ingest.tic, "ingest_tic_file", failing_for_bad)
    status = main(["ingest", "tic", str(bad), str(V2_FFS), "--codes", "27447,27448"])
    err = capsys.readouterr().err
    assert status == 1
    assert f"failed     {bad}: cannot read the file: Permission denied" in err
    assert "internal error" not in err and "1 of 2 file(s) failed" in err
    assert _ingested(bare_project) == [V2_FFS.name]
