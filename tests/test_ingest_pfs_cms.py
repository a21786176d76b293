"""PPRRVU ingest of CMS's real files (excerpts): every payment-policy column kept as written, the CSV streamed with
a size limit, and mutated files either loaded or refused with an error naming the file and line."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cptpub.errors import IngestError
from cptpub.ingest.pfs import MAX_CSV_BYTES, ingest_pfs_file
from cptpub.store import RatesStore

CMS = Path(__file__).parent / "fixtures" / "cms"
FILES = {2026: CMS / "PPRRVU2026_Jul_nonQPP.excerpt.csv", 2025: CMS / "PPRRVU2025_Oct.excerpt.csv"}
# (stored column, its position in CMS's layout of that year); 2026 inserted PRIC IND at 23
POSITIONS = {
    "status_code": 3, "nonfacility_na": 7, "facility_na": 9, "pctc_indicator": 13, "global_days": 14,
    "preop_share": 15, "intraop_share": 16, "postop_share": 17, "mult_proc": 18, "bilat_surg": 19, "asst_surg": 20,
    "co_surg": 21, "team_surg": 22,
}  # fmt: skip
LATER = {"endo_base": 23, "phys_supervision": 25, "calculation_flag": 26, "imaging_family": 27}


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="cp1252") as handle:
        return [row for row in csv.reader(handle) if row and len(row[0]) == 5 and row[0] != "HCPCS"]


def stored(store: RatesStore, columns: list[str], year: int) -> dict[str, tuple]:
    con = store.connect(read_only=True)
    try:
        rows = con.execute(f"SELECT hcpcs, {', '.join(columns)} FROM medicare_pfs WHERE year = ?", [year]).fetchall()
    finally:
        con.close()
    return {row[0]: row[1:] for row in rows}


@pytest.mark.parametrize("year", [2025, 2026])
def test_every_policy_column_equals_the_csv_cell(tmp_path, year):
    store = RatesStore(tmp_path / "rates.duckdb")
    result = ingest_pfs_file(store, FILES[year])  # no codes: every line of the file
    rows = csv_rows(FILES[year])
    assert result.rows_kept == len(rows) and result.items_skipped == 0
    shift = 1 if year == 2026 else 0
    positions = {**POSITIONS, **{name: index + shift for name, index in LATER.items()}}
    if year == 2026:
        positions["pricing_indicator"] = 23
    got = stored(store, list(positions), year)
    for row in rows:
        assert got[row[0]] == tuple(row[i].strip() or None for i in positions.values()), row[0]
    if year == 2025:
        assert got["27447"][list(positions).index("nonfacility_na")] == "NA"
        assert stored(store, ["pricing_indicator"], 2025)["27447"] == (None,)  # the 2025 layout has no PRIC IND


def _zip(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path


def test_a_member_larger_than_the_limit_is_refused_by_its_declared_size(tmp_path):
    data = FILES[2026].read_bytes() + b"," * 3_000_000
    path = _zip(tmp_path / "RVU26C.zip", "PPRRVU2026_Jul_nonQPP.csv", data)
    assert path.stat().st_size < 100_000
    with pytest.raises(IngestError, match="the zip member is 3,002,028 bytes, over the limit of 1,000,000 bytes") as e:
        ingest_pfs_file(RatesStore(tmp_path / "rates.duckdb"), path, max_bytes=1_000_000)
    assert e.value.where == f"{path}!PPRRVU2026_Jul_nonQPP.csv"
    assert not (tmp_path / "rates.duckdb").exists() or _sources(tmp_path / "rates.duckdb") == 0
    assert MAX_CSV_BYTES == 64 << 20


def test_a_plain_csv_larger_than_the_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "PPRRVU2026_Jul.csv"
    path.write_bytes(FILES[2026].read_bytes())
    with pytest.raises(IngestError, match="the file is 2,028 bytes, over the limit of 1,000 bytes"):
        ingest_pfs_file(RatesStore(tmp_path / "rates.duckdb"), path, max_bytes=1000)


def test_the_zip_member_is_streamed_not_read_whole(tmp_path, monkeypatch):
    """The member is read in blocks: no single read asks for the whole member."""
    import zipfile as zf

    sizes: list[int] = []
    original = zf.ZipExtFile.read

    def spy(self, n=-1):  # type: ignore[no-untyped-def]
        sizes.append(n)
        return original(self, n)

    monkeypatch.setattr(zf.ZipExtFile, "read", spy)
    lines = FILES[2026].read_bytes().splitlines()
    data = b"\r\n".join([*lines[:10], *([line for line in lines[10:] if line] * 20_000)])  # 140,000 rows, 15 MB
    path = _zip(tmp_path / "RVU26C.zip", "PPRRVU2026_Jul_nonQPP.csv", data)
    result = ingest_pfs_file(RatesStore(tmp_path / "rates.duckdb"), path, codes={"99213"})
    assert result.rows_kept == 20_000 and result.bytes_parsed == len(data)
    assert sizes and all(0 < n <= 1 << 20 for n in sizes), max(sizes)


def _sources(path: Path) -> int:
    con = RatesStore(path).connect(read_only=True)
    try:
        return con.execute("SELECT count(*) FROM sources").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> RatesStore:
    return RatesStore(tmp_path_factory.mktemp("pfs-fuzz") / "rates.duckdb")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5000),
            st.integers(min_value=0, max_value=12),
            st.text(alphabet=st.sampled_from(list('0123456789.,"\r\nAZNX -\x00\u00e9')), max_size=10),
        ),
        min_size=1,
        max_size=5,
    ),
    year=st.sampled_from([2025, 2026]),
)
def test_mutated_pprrvu_loads_or_fails_naming_file_and_line(tmp_path_factory, fuzz_store, edits, year):
    data = FILES[year].read_text(encoding="cp1252")
    for position, cut, text in edits:
        at = position % (len(data) + 1)
        data = data[:at] + text + data[at + cut :]
    path = tmp_path_factory.mktemp("pfs") / FILES[year].name
    path.write_bytes(data.encode("utf-8", errors="replace"))
    try:
        ingest_pfs_file(fuzz_store, path, replace=True)
    except IngestError as exc:
        assert exc.where is not None and exc.where.startswith(str(path)), exc
        assert "\n" not in exc.message
        if "must be" in exc.message:  # a bad value: the line is named
            assert exc.where.rsplit(":", 1)[1].isdigit()
    except Exception as exc:  # noqa: BLE001 (only the year may be missing: a usage error naming the file)
        from cptpub.errors import UsageError

        assert isinstance(exc, UsageError) and str(path) in str(exc), repr(exc)


def test_sources_row_for_the_real_file(tmp_path):
    store = RatesStore(tmp_path / "rates.duckdb")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("PPRRVU2026_Jul_QPP.csv", FILES[2026].read_bytes().replace(b"33.4009", b"33.5675"))
        archive.writestr("PPRRVU2026_Jul_nonQPP.csv", FILES[2026].read_bytes())
        archive.writestr("RVU26C.pdf", b"%PDF-1.4")
    path = tmp_path / "rvu26c.zip"
    path.write_bytes(buffer.getvalue())
    result = ingest_pfs_file(store, path)
    assert (result.schema_version, result.rows_kept) == ("RVU26C", 7)
    con = store.connect(read_only=True)
    assert con.execute("SELECT DISTINCT conversion_factor FROM medicare_pfs").fetchall() == [(33.4009,)]
    con.close()
