"""Faults, with real processes: kill -9 during an ingest or a build, a full disk, an unwritable dist/."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import duckdb

from .conftest import CPTPUB, run_cptpub


def store_snapshot(store: Path) -> tuple:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return (
            con.execute("SELECT count(*) FROM negotiated_rates").fetchone(),
            con.execute("SELECT count(*) FROM medicare_pfs").fetchone(),
            con.execute("SELECT source_id, rows_kept FROM sources ORDER BY source_id").fetchall(),
        )
    finally:
        con.close()


def write_large_tic_file(path: Path, rates: int) -> None:
    """A valid v1-style in-network file with ``rates`` inline rates for 20702 (~300 bytes each)."""
    rate = (
        '{{"provider_groups":[{{"npi":[{npi}],"tin":{{"type":"ein","value":"{tin}"}}}}],'
        '"negotiated_prices":[{{"negotiated_type":"negotiated","negotiated_rate":{amount},'
        '"expiration_date":"9999-12-31","billing_class":"professional","service_code":["22"]}}]}}'
    )
    with path.open("w") as handle:
        handle.write(
            '{"reporting_entity_name":"Aetna Life Insurance Company","reporting_entity_type":"health insurance issuer",'
            '"plan_name":"Fault test plan","plan_id_type":"ein","plan_id":"11-1111111","plan_market_type":"group",'
            '"last_updated_on":"2026-10-01","version":"1.3.0","in_network":[{"negotiation_arrangement":"ffs",'
            '"name":"Device","billing_code_type":"CPT","billing_code_type_version":"2026","billing_code":"20702",'
            '"description":"device","negotiated_rates":['
        )
        chunk = []
        for i in range(rates):
            chunk.append(rate.format(npi=1000000000 + i, tin=f"{10 + i % 89}-{1000000 + i}", amount=100 + i % 997))
            if len(chunk) == 10000:
                handle.write(",".join(chunk) + ("," if i + 1 < rates else ""))
                chunk = []
        handle.write(",".join(chunk) + "]}]}")


def test_kill_9_during_an_ingest_leaves_the_store_as_it_was(ingested_project: Path, tmp_path: Path):
    project = tmp_path / "project"
    subprocess.run(["cp", "-r", str(ingested_project), str(project)], check=True)
    store = project / "build" / "rates.duckdb"
    before = store_snapshot(store)
    big = tmp_path / "big-in-network.json"
    write_large_tic_file(big, 400_000)
    env = {**os.environ, "CPTPUB_PROJECT": str(project)}
    process = subprocess.Popen(
        [*CPTPUB, "ingest", "tic", str(big), "--codes", "20702"], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(2.5)  # well into the file (it takes several seconds), inside the ingest's transaction
    assert process.poll() is None, "the ingest finished before it could be killed; make the file larger"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert store_snapshot(store) == before
    # and the store is healthy: the same file ingests completely afterwards
    run_cptpub(project, "ingest", "tic", str(big), "--codes", "20702")
    after = store_snapshot(store)
    assert after[0][0] == before[0][0] + 400_000


def test_full_disk_while_writing_an_edition_is_a_clear_error_and_leaves_no_partial_file(ingested_project, tmp_path):
    """RLIMIT_FSIZE makes every write past 64 KB fail with EFBIG, as a full disk fails with ENOSPC."""
    project = tmp_path / "project"
    subprocess.run(["cp", "-r", str(ingested_project), str(project)], check=True)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    env = {**os.environ, "CPTPUB_PROJECT": str(project)}
    result = subprocess.run(
        [*CPTPUB, "build", "20702", "--engine", "builtin", "--fresh-kernels", "-j", "1"],
        cwd=project, env=env, capture_output=True, text=True, preexec_fn=limit_file_size, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert "File too large" in result.stderr or "No space left" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    dist = project / "dist"
    leftovers = [p.name for p in dist.iterdir()] if dist.exists() else []
    assert not [n for n in leftovers if n.startswith("cpt-20702") or n.endswith(".tmp")], leftovers


def test_dist_that_is_not_a_writable_folder_is_a_clear_error(ingested_project: Path, tmp_path: Path):
    project = tmp_path / "project"
    subprocess.run(["cp", "-r", str(ingested_project), str(project)], check=True)
    (project / "dist").write_text("a file where the dist folder should be")
    result = run_cptpub(project, "build", "20702", "--engine", "builtin", "-j", "1", check=False)
    assert result.returncode == 1
    assert "dist" in result.stderr and "Traceback" not in result.stderr


def test_kill_9_during_a_build_leaves_only_complete_editions_and_the_next_run_finishes(ingested_project, tmp_path):
    """SIGKILL to the build and all its workers and kernels at once (as the OOM killer or a lost machine would),
    mid-way through the batch: every edition published before the kill is kept (the manifest's journal), and the
    manifest names exactly the complete editions."""
    import psutil

    from cptpub.batch import manifest as mf

    from .test_batch import assert_dist_matches_manifest, batch_project, editions, sha256

    codes = ("20700", "20701", "20702", "20703", "20704", "20705")
    root = batch_project(tmp_path / "p", ingested_project, codes)
    dist = root / "dist"
    env = {**os.environ, "CPTPUB_PROJECT": str(root)}
    process = subprocess.Popen(
        [*CPTPUB, "build", "--all", "-j", "1", "--to", "html"], cwd=root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while len(mf.load_editions(dist)) < 2:  # two editions published, four to go
        assert process.poll() is None and time.monotonic() < deadline, "no editions were published in time"
        time.sleep(0.05)
    seen = set(mf.load_editions(dist))
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in tree:
        member.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(tree, timeout=10)

    assert mf.has_journal(dist), "killed before the batch end: the journal is not folded yet"
    listed = mf.load_editions(dist)
    assert seen <= set(listed) and len(listed) < len(codes), "every edition recorded before the kill is kept"
    for entry in listed.values():  # every edition the manifest names is there, whole
        for output in entry["outputs"].values():
            assert sha256(dist / output["file"]) == output["sha256"]
    complete = {page.name[4:9] for page in dist.glob("cpt-*.html") if page.read_text().rstrip().endswith("</html>")}
    assert set(listed) <= complete, "the manifest names only complete editions"
    for page in dist.glob("cpt-*.html"):  # and nothing published is half-written
        assert page.read_text().rstrip().endswith("</html>"), page.name
    # An edition renamed into dist/ but killed before its journal line is unclaimed: the next run removes and
    # rebuilds it. So the editions skipped as up to date are exactly the listed ones.

    rerun = run_cptpub(root, "build", "--all", "-j", "1", "--to", "html")
    assert f"{len(listed)} up to date" in rerun.stdout + rerun.stderr
    assert not mf.has_journal(dist), "folded into manifest.json"
    assert sorted(editions(root)) == list(codes)
    assert_dist_matches_manifest(root)
