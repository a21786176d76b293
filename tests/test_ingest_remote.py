"""Ingest from URLs (a local HTTP server on 127.0.0.1 only), tables of contents, remote provider references, and
many files at once (-j, Dask), including kill -9 in the middle of a parallel ingest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cptpub.ingest import remote
from cptpub.ingest.tic import ingest_tic_file
from cptpub.records.load import load_payers
from cptpub.store import RatesStore

from .conftest import CPTPUB, FIXTURES, REPO

TIC = FIXTURES / "tic"
FFS = TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json"
MULTI = TIC / "v2/in-network-rates-multiple-plans-sample.json"
ALL_TYPES = TIC / "v2/in-network-rates-all-negotiated-types-sample.json"
V1_FFS = TIC / "v1/in-network-rates-fee-for-service-single-plan-sample.json"
REFS = TIC / "v1/provider-reference.json"


class _Server:
    """Serves a folder with HTTP Range support; ``drop_once`` names files whose first response is cut short."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.drop_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                path = server.folder / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                body = data[start:]
                if name in server.drop_once:
                    server.drop_once.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path):
    folder = tmp_path / "served"
    folder.mkdir()
    with _Server(folder) as server:
        yield server


@pytest.fixture
def catalogue():
    return load_payers(REPO / "data" / "payers.yaml")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(remote, "BACKOFF_SECONDS", 0.01)


def rows(store: RatesStore) -> Counter:
    con = store.connect(read_only=True)
    try:
        found = con.execute(
            """SELECT payer, billing_code, negotiated_type, negotiated_rate, billing_class, setting, service_codes,
                      billing_code_modifiers, network_names, provider_group_key, provider_group_name, npi_count,
                      provider_reference, provider_reference_status, item_name, as_of
               FROM negotiated_rates"""
        ).fetchall()
    finally:
        con.close()
    return Counter(tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in found)


def test_a_url_ingest_stores_exactly_the_rows_of_a_local_ingest(served, catalogue, tmp_path):
    shutil.copy(ALL_TYPES, served.folder / ALL_TYPES.name)
    local, fetched = RatesStore(tmp_path / "local.duckdb"), RatesStore(tmp_path / "url.duckdb")
    expected = ingest_tic_file(local, ALL_TYPES, catalogue=catalogue, payer_override="Aetna")
    result = ingest_tic_file(fetched, f"{served.url}/{ALL_TYPES.name}", catalogue=catalogue, payer_override="Aetna")
    assert result.source_id == expected.source_id  # the SHA-256 of the bytes served
    assert result.rows_kept == expected.rows_kept > 0
    assert rows(fetched) == rows(local)


def test_a_dropped_connection_is_resumed_with_a_range_request(served, catalogue, tmp_path):
    shutil.copy(ALL_TYPES, served.folder / ALL_TYPES.name)
    served.drop_once.add(ALL_TYPES.name)
    local, fetched = RatesStore(tmp_path / "local.duckdb"), RatesStore(tmp_path / "url.duckdb")
    ingest_tic_file(local, ALL_TYPES, catalogue=catalogue, payer_override="Aetna")
    ingest_tic_file(fetched, f"{served.url}/{ALL_TYPES.name}", catalogue=catalogue, payer_override="Aetna")
    ranges = [r for name, r in served.requests if name == ALL_TYPES.name]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0
    assert rows(fetched) == rows(local)


def test_a_missing_url_is_an_error_naming_it(served, catalogue, tmp_path):
    url = f"{served.url}/nothing-here.json"
    with pytest.raises(Exception, match="HTTP 404") as failure:
        ingest_tic_file(RatesStore(tmp_path / "s.duckdb"), url, catalogue=catalogue)
    assert url in str(failure.value)


def _remote_reference_file(folder: Path, base_url: str) -> Path:
    document = json.loads(V1_FFS.read_text())
    document["provider_references"].append({"provider_group_id": 7, "location": f"{base_url}/refs/group-7.json"})
    document["in_network"][1]["negotiated_rates"][0]["provider_references"] = [7]
    (folder / "refs").mkdir(exist_ok=True)
    shutil.copy(REFS, folder / "refs" / "group-7.json")
    path = folder / "remote-refs.json"
    path.write_text(json.dumps(document))
    return path


def test_remote_provider_references_are_fetched_cached_and_resolved(served, catalogue, tmp_path):
    path = _remote_reference_file(served.folder, served.url)
    store, cache = RatesStore(tmp_path / "s.duckdb"), tmp_path / "cache"
    result = ingest_tic_file(store, path, codes={"27448"}, catalogue=catalogue, refs_cache=cache)
    assert result.warnings == []
    expected_groups = json.loads(REFS.read_text())["provider_groups"]
    con = store.connect(read_only=True)
    stored = con.execute(
        "SELECT provider_group_key, npi_count, provider_reference_status FROM negotiated_rates "
        "WHERE provider_reference = '7' ORDER BY provider_group_key"
    ).fetchall()
    con.close()
    assert {row[0] for row in stored} == {f"{g['tin']['type']}:{g['tin']['value']}" for g in expected_groups}
    assert {row[2] for row in stored} == {"resolved"}
    assert len(list(cache.iterdir())) == 1  # cached by URL
    fetched = len(served.requests)
    ingest_tic_file(store, path, codes={"27448"}, catalogue=catalogue, refs_cache=cache, replace=True)
    assert len(served.requests) == fetched  # the second ingest reads the cache


def test_offline_leaves_remote_references_unresolved(served, catalogue, tmp_path):
    path = _remote_reference_file(served.folder, served.url)
    result = ingest_tic_file(RatesStore(tmp_path / "s.duckdb"), path, codes={"27448"}, catalogue=catalogue)
    assert served.requests == []
    assert any("not resolved" in w and f"{served.url}/refs/group-7.json" in w for w in result.warnings)


def _run(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CPTPUB_STORE"}
    env["CPTPUB_PROJECT"] = str(project)
    done = subprocess.run([*CPTPUB, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _bare(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "data" / "codes").mkdir(parents=True)
    shutil.copy(REPO / "data" / "payers.yaml", project / "data" / "payers.yaml")
    return project


def _sources(project: Path) -> dict[str, int]:
    con = RatesStore(project / "build" / "rates.duckdb").connect(read_only=True)
    try:
        return dict(con.execute("SELECT file_name, rows_kept FROM sources").fetchall())
    finally:
        con.close()


def test_toc_ingest_ingests_the_files_it_names_after_the_filters(served, tmp_path):
    for path in (FFS, MULTI):
        shutil.copy(path, served.folder / path.name)
    toc = {
        "reporting_entity_name": "medicare",
        "reporting_entity_type": "medicare",
        "version": "2.0.0",
        "reporting_structure": [
            {
                "reporting_plans": [{"plan_name": "Gold PPO", "plan_id_type": "EIN", "plan_id": "11-1111111"}],
                "in_network_files": [{"description": "ffs", "location": f"{served.url}/{FFS.name}"}],
            },
            {
                "reporting_plans": [{"plan_name": "Silver HMO", "plan_id_type": "EIN", "plan_id": "22-2222222"}],
                "in_network_files": [{"description": "multi", "location": f"{served.url}/{MULTI.name}"}],
            },
        ],
    }
    (served.folder / "toc.json").write_text(json.dumps(toc))
    project = _bare(tmp_path)
    _run(project, "ingest", "toc", f"{served.url}/toc.json", "--ingest", "--plan", "gold")
    assert set(_sources(project)) == {FFS.name}
    _run(project, "ingest", "toc", f"{served.url}/toc.json", "--ingest", "--plan-id", "222222222")
    assert set(_sources(project)) == {FFS.name, MULTI.name}
    local = _bare(tmp_path / "local")
    _run(local, "ingest", "tic", str(FFS), str(MULTI))
    assert _sources(project) == _sources(local)


def test_dask_ingest_stores_the_same_rows_as_a_local_one(tmp_path):
    files = [FFS, MULTI, TIC / "v1/in-network-rates-bundle-single-plan-sample.json"]
    local, distributed = _bare(tmp_path / "a"), _bare(tmp_path / "b")
    _run(local, "ingest", "tic", *map(str, files))
    _run(distributed, "ingest", "tic", *map(str, files), "--executor", "dask", "-j", "1")
    a, b = RatesStore(local / "build/rates.duckdb"), RatesStore(distributed / "build/rates.duckdb")
    assert _sources(local) == _sources(distributed) and len(_sources(local)) == 3
    assert rows(a) == rows(b)


def _consistent(project: Path) -> dict[str, int]:
    """Every stored source has exactly its rows, and no row lacks its source."""
    con = RatesStore(project / "build" / "rates.duckdb").connect(read_only=True)
    try:
        per_source = dict(con.execute("SELECT source_id, count(*) FROM negotiated_rates GROUP BY 1").fetchall())
        sources = dict(con.execute("SELECT source_id, rows_kept FROM sources").fetchall())
        names = dict(con.execute("SELECT file_name, rows_kept FROM sources").fetchall())
    finally:
        con.close()
    assert set(per_source) <= set(sources)
    assert all(per_source.get(source, 0) == kept for source, kept in sources.items())
    return names


def test_kill_9_during_a_parallel_ingest_leaves_the_store_consistent_and_a_rerun_completes_it(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    document = json.loads(ALL_TYPES.read_text())
    for number in range(12):  # distinct files (distinct bytes) of the real layout
        document["plan_name"] = f"Plan {number}"
        (folder / f"in-network-{number:02}.json").write_text(json.dumps(document))
    project = _bare(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CPTPUB_STORE"}
    env["CPTPUB_PROJECT"] = str(project)
    args = [*CPTPUB, "ingest", "tic", str(folder), "-j", "2", "--payer", "Aetna"]
    process = subprocess.Popen(args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = project / "build" / "rates.duckdb"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # kill once the writer has started
        if process.stdout and process.stdout.readline().startswith(b"ingested"):
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(1)  # the pool's workers notice their parent is gone
    if store.exists():
        partial = _consistent(project)
        assert len(partial) < 12
    _run(project, "ingest", "tic", str(folder), "-j", "2", "--payer", "Aetna")
    complete = _consistent(project)
    assert len(complete) == 12 and len(set(complete.values())) == 1
    assert not any((project / "build" / "ingest-staging").iterdir())
