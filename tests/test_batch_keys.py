"""Edition keys and the manifest, without building anything."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from cptpub.batch import manifest as mf
from cptpub.batch.keys import NO_STORE, edition_keys, shared_digest, store_digests
from cptpub.batch.runner import resolve_codes
from cptpub.errors import UsageError
from cptpub.project import Project, read_codes_file
from cptpub.store import RatesStore

ENGINE = "builtin (pandoc 3.9, typst 0.15.2)"


@pytest.fixture
def keyed_project(tmp_path: Path, ingested_project: Path) -> Project:
    root = tmp_path / "project"
    for name in ("data", "notebooks", "report"):
        shutil.copytree(ingested_project / name, root / name)
    (root / "build").mkdir()
    shutil.copy2(ingested_project / "build" / "rates.duckdb", root / "build" / "rates.duckdb")
    return Project(root)


def keys(project: Project, formats=("html", "pdf"), engine=ENGINE) -> dict[str, str]:
    return edition_keys(project, ["20702", "20703", "20705"], engine, formats)


def test_keys_change_with_exactly_the_inputs_of_their_code(keyed_project: Project):
    project = keyed_project
    base = keys(project)
    assert len(set(base.values())) == 3
    assert keys(project) == base  # deterministic

    record = project.record_path("20703")
    record.write_text(record.read_text() + "\n# a comment is a change of the record's bytes\n")
    changed = keys(project)
    assert [c for c in base if changed[c] != base[c]] == ["20703"]

    # One rate of 20705 in the store: only 20705's key moves.
    with RatesStore(project.store_path).transaction() as con:
        con.execute(
            "UPDATE tic_prices SET negotiated_rate = negotiated_rate + 1 WHERE rowid = "
            "(SELECT min(p.rowid) FROM tic_prices p JOIN tic_items i USING (item_id) WHERE billing_code = '20705')"
        )
    after_rate = keys(project)
    assert [c for c in base if after_rate[c] != changed[c]] == ["20705"]

    # Re-ingesting the same file only changes ingested_at: nothing to rebuild.
    with RatesStore(project.store_path).transaction() as con:
        con.execute("UPDATE sources SET ingested_at = ingested_at + INTERVAL 1 DAY")
    assert keys(project) == after_rate

    # Shared inputs move every key: a notebook, the payer catalogue, the template, the engine, the formats.
    notebook = project.section_notebooks()[0]
    notebook.write_bytes(notebook.read_bytes().replace(b"Parameters.", b"Parameters:"))
    after_notebook = keys(project)
    assert all(after_notebook[c] != after_rate[c] for c in base)
    css = project.report_dir / "styles.css"
    css.write_text(css.read_text() + "\n/* edited */\n")
    after_css = keys(project)
    assert all(after_css[c] != after_notebook[c] for c in base)
    assert keys(project, formats=("html",)) != after_css
    assert keys(project, engine="builtin (pandoc 3.9, typst 0.16.0)") != after_css
    payers = project.payers_file
    payers.write_text(payers.read_text() + "\n")
    assert all(keys(project)[c] != after_css[c] for c in base)


def test_store_digest_ignores_row_order(tmp_path: Path, keyed_project: Project):
    source = keyed_project.store_path
    shuffled = tmp_path / "shuffled.duckdb"
    con = duckdb.connect(str(shuffled))
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    for table in ("sources", "negotiated_rates", "medicare_pfs"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM src.{table} ORDER BY random()")
    con.close()
    codes = ["20702", "20705", "99999"]
    original = store_digests(source, codes)
    assert store_digests(shuffled, codes) == original
    assert len(set(original.values())) == 3  # a code with no rows has a digest of its own
    assert store_digests(tmp_path / "missing.duckdb", codes) == dict.fromkeys(codes, NO_STORE)


def test_shared_digest_ignores_hidden_and_cache_files(keyed_project: Project):
    project = keyed_project
    before = shared_digest(project, ENGINE, ("html",))
    (project.report_dir / ".DS_Store").write_bytes(b"junk")
    (project.report_dir / "__pycache__").mkdir()
    (project.report_dir / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert shared_digest(project, ENGINE, ("html",)) == before
    (project.report_dir / "extra.css").write_text("p {}")
    assert shared_digest(project, ENGINE, ("html",)) != before


def test_reconcile_keeps_dist_and_manifest_equal(tmp_path: Path):
    dist = tmp_path / "dist"
    dist.mkdir()

    def entry(code: str, content: bytes) -> dict:
        (dist / f"cpt-{code}.html").write_bytes(content)
        return {
            "code": code,
            "outputs": {"html": {"file": f"cpt-{code}.html", "sha256": mf.sha256_file(dist / f"cpt-{code}.html")}},
        }

    editions = {"20702": entry("20702", b"a"), "20703": entry("20703", b"b"), "20704": entry("20704", b"c")}
    mf.write_manifest(dist, editions)
    (dist / "cpt-20703.html").write_bytes(b"changed by hand")  # no longer what the manifest says
    (dist / "cpt-20705.pdf").write_bytes(b"orphan")  # claimed by no entry
    (dist / ".cpt-20706.html.abc123.tmp").write_bytes(b"half")  # a killed write
    (dist / "index.html").write_text("catalogue")  # not an edition file: left alone
    kept, dropped = mf.reconcile(dist, mf.load_editions(dist), known_codes={"20702", "20703"})
    assert sorted(kept) == ["20702"]
    assert dropped == ["20703", "20704"]  # altered; no record any more
    assert sorted(p.name for p in dist.iterdir()) == ["cpt-20702.html", "index.html", "manifest.json"]

    (dist / "manifest.json").write_text("{not json")
    assert mf.load_editions(dist) == {}
    document = mf.write_manifest(dist, kept)
    assert json.loads((dist / "manifest.json").read_text()) == document


def test_codes_file_and_code_resolution(tmp_path: Path, keyed_project: Project):
    path = tmp_path / "codes.txt"
    path.write_text("# codes for the spring edition\n20705 20702,20702\n\n 20703  # removal\n")
    assert read_codes_file(path) == ["20705", "20702", "20702", "20703"]
    assert resolve_codes(keyed_project, read_codes_file(path), False) == ["20702", "20703", "20705"]
    # --all: every code with a record or with rates in the store (the demo payers' files hold other codes too)
    import duckdb

    with duckdb.connect(str(keyed_project.store_path), read_only=True) as con:
        with_rates = {c for (c,) in con.execute("SELECT DISTINCT billing_code FROM negotiated_rates").fetchall()}
    records = {p.stem for p in keyed_project.codes_dir.glob("*.yaml")}
    assert with_rates - records, "the demo files hold codes without a record"
    assert resolve_codes(keyed_project, [], True) == sorted(records | {c for c in with_rates if len(c) == 5})
    with pytest.raises(UsageError, match="unknown code 20799"):
        resolve_codes(keyed_project, ["20702", "20799"], False)
    with pytest.raises(UsageError, match="name at least one code"):
        resolve_codes(keyed_project, [], False)
    with pytest.raises(UsageError):
        read_codes_file(tmp_path / "missing.txt")


def test_store_digest_cache_follows_the_store(keyed_project: Project):
    from cptpub.batch.keys import STORE_DIGEST_CACHE, cached_store_digests

    project = keyed_project
    cache = project.build_dir / STORE_DIGEST_CACHE
    codes = ["20702", "20705"]
    fresh = store_digests(project.store_path, codes)
    assert cached_store_digests(project.store_path, codes, cache) == fresh
    assert cache.exists()
    assert cached_store_digests(project.store_path, codes, cache) == fresh  # from the cache
    with RatesStore(project.store_path).transaction() as con:
        con.execute("UPDATE medicare_pfs SET work_rvu = work_rvu + 1 WHERE hcpcs = '20702'")
    after = cached_store_digests(project.store_path, codes, cache)
    assert after == store_digests(project.store_path, codes)
    assert after["20702"] != fresh["20702"] and after["20705"] == fresh["20705"]


def test_store_digest_cache_serves_each_builds_pinned_version_of_the_store(keyed_project: Project, monkeypatch):
    from cptpub.batch import keys as keys_module
    from cptpub.batch.keys import STORE_DIGEST_CACHE, cached_store_digests

    cache = keyed_project.build_dir / STORE_DIGEST_CACHE
    codes = ["20702", "20705"]
    with RatesStore(keyed_project.store_path).pinned() as pin:
        first = cached_store_digests(pin, codes, cache)
    assert first == store_digests(keyed_project.store_path, codes)

    def no_query(*args):
        raise AssertionError("the store was queried again")

    monkeypatch.setattr(keys_module, "store_digests", no_query)
    with RatesStore(keyed_project.store_path).pinned() as pin:  # the next build pins it under another name
        assert cached_store_digests(pin, codes, cache) == first


def test_any_change_to_the_package_moves_every_key(tmp_path: Path, keyed_project: Project, monkeypatch):
    """An edited module, template or filter of cptpub rebuilds every edition; caches and mtimes do not."""
    import cptpub
    from cptpub.batch import keys as keys_module

    package = tmp_path / "cptpub"
    shutil.copytree(Path(cptpub.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(keys_module, "PACKAGE_DIR", package)
    base = keys(keyed_project)
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    os.utime(package / "edition.py")  # touched, same bytes
    assert keys(keyed_project) == base
    for edited in ("sections/markdown.py", "assemble/safety.lua"):
        path = package / edited
        original = path.read_bytes()
        path.write_bytes(original + b"\n-- edited\n" if edited.endswith(".lua") else original + b"\n# edited\n")
        changed = keys(keyed_project)
        assert all(changed[code] != base[code] for code in base), edited
        path.write_bytes(original)
        assert keys(keyed_project) == base


def test_checksum_cache_never_trusts_a_changed_file(tmp_path: Path, monkeypatch):
    dist = tmp_path / "dist"
    dist.mkdir()
    path = dist / "cpt-20702.html"
    path.write_bytes(b"published")
    cache_file = tmp_path / "build" / "checksums.json"
    cache = mf.ChecksumCache(cache_file)
    digest = cache.sha256(path)
    assert digest == mf.sha256_file(path)
    cache.save()

    reads = []
    monkeypatch.setattr(mf, "sha256_file", lambda p: reads.append(p) or "recomputed")
    again = mf.ChecksumCache(cache_file)
    assert again.sha256(path) == digest and reads == []  # untouched: from the cache

    before = path.stat()
    path.write_bytes(b"PUBLISHED")  # same size; then the old mtime is put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert again.sha256(path) == "recomputed" and reads == [path]


def test_manifest_text_is_the_plain_json_dump(tmp_path: Path):
    serializer = mf.ManifestSerializer()
    entry = {"code": "20702", "title": "CPT 20702: Ärzte “quoted” \\ </script>", "data_as_of": {}, "payers": []}
    other = {"code": "20703", "outputs": {"html": {"file": "cpt-20703.html", "sha256": "ab"}}, "build_seconds": 1.5}
    for editions in ({}, {"20702": entry}, {"20702": entry, "20703": other}):
        document = mf.manifest_document(editions)
        assert serializer.dumps(document) == json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    dist = tmp_path / "dist"
    written = mf.write_manifest(dist, {"20703": other, "20702": entry}, serializer)
    assert json.loads((dist / "manifest.json").read_text()) == written
    assert [e["code"] for e in written["editions"]] == ["20702", "20703"]


def test_manifest_journal_keeps_every_recorded_edition_and_is_folded(tmp_path: Path):
    dist = tmp_path / "dist"
    dist.mkdir()
    first = {"code": "20702", "title": "first", "outputs": {}}
    mf.write_manifest(dist, {"20702": first})
    second = {"code": "20703", "title": "second", "outputs": {}}
    rebuilt = {"code": "20702", "title": "rebuilt", "outputs": {}}
    mf.record_edition(dist, second)
    mf.record_edition(dist, rebuilt)
    assert json.loads((dist / "manifest.json").read_text())["editions"] == [first], "not rewritten per edition"
    assert mf.has_journal(dist)
    assert mf.load_editions(dist) == {"20702": rebuilt, "20703": second}, "a later line replaces an earlier entry"

    journal = dist / mf.JOURNAL_NAME
    with journal.open("ab") as handle:
        handle.write('{"code": "20704", "title": "torn by a crash in “'.encode()[:-2])  # killed mid-character
    assert sorted(mf.load_editions(dist)) == ["20702", "20703"], "a torn last line is ignored"
    third = {"code": "20705", "title": "after the crash", "outputs": {}}
    mf.record_edition(dist, third)  # starts on a line of its own
    assert sorted(mf.load_editions(dist)) == ["20702", "20703", "20705"]

    document = mf.write_manifest(dist, mf.load_editions(dist))
    assert not journal.exists() and not mf.has_journal(dist)
    assert [e["title"] for e in document["editions"]] == ["rebuilt", "second", "after the crash"]
    assert mf.load_editions(dist) == {e["code"]: e for e in document["editions"]}


def test_edition_keys_are_remembered_only_while_the_record_and_store_are_unchanged(keyed_project: Project):
    from cptpub.batch.keys import KEY_CACHE, edition_key

    project = keyed_project
    base = keys(project)
    assert (project.build_dir / KEY_CACHE).exists()
    record = project.record_path("20703")
    before = record.stat()
    record.write_bytes(record.read_bytes().replace(b"title:", b"title: X", 1))
    os.utime(record, ns=(before.st_atime_ns, before.st_mtime_ns))  # the old mtime put back: ctime still moves
    changed = keys(project)
    assert [c for c in base if changed[c] != base[c]] == ["20703"]
    (project.build_dir / KEY_CACHE).unlink()
    assert keys(project) == changed, "the remembered keys are the computed ones"

    cache = json.loads((project.build_dir / KEY_CACHE).read_text())
    cache["keys"]["20702"][2] = "0" * 64  # a remembered key is used as it is while its inputs are unchanged...
    (project.build_dir / KEY_CACHE).write_text(json.dumps(cache))
    assert keys(project)["20702"] == "0" * 64
    # ...and not for other shared inputs (here: other formats)
    html_only = keys(project, formats=("html",))
    shared = shared_digest(project, ENGINE, ("html",))
    store = store_digests(project.store_path, ["20702"])["20702"]
    assert html_only["20702"] == edition_key(shared, "20702", project.record_path("20702").read_bytes(), store)


def test_reconcile_trusts_remembered_checksums_only_for_unchanged_files(tmp_path: Path, monkeypatch):
    dist = tmp_path / "dist"
    dist.mkdir()
    editions = {}
    for code in ("20702", "20703"):
        (dist / f"cpt-{code}.html").write_bytes(code.encode())
        editions[code] = {
            "code": code,
            "outputs": {"html": {"file": f"cpt-{code}.html", "sha256": mf.sha256_file(dist / f"cpt-{code}.html")}},
        }
    cache_file = tmp_path / "build" / "checksums.json"
    checksums = mf.ChecksumCache(cache_file)
    kept, dropped = mf.reconcile(dist, editions, {"20702", "20703"}, checksums)
    assert sorted(kept) == ["20702", "20703"] and dropped == []
    checksums.save()

    hashed: list[Path] = []
    real = mf.sha256_file
    monkeypatch.setattr(mf, "sha256_file", lambda p: hashed.append(p) or real(p))
    kept, _ = mf.reconcile(dist, editions, {"20702", "20703"}, mf.ChecksumCache(cache_file))
    assert sorted(kept) == ["20702", "20703"] and hashed == [], "nothing changed: stat checks only"

    page = dist / "cpt-20703.html"
    before = page.stat()
    page.write_bytes(b"20704")  # same size, old mtime put back
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    kept, dropped = mf.reconcile(dist, editions, {"20702", "20703"}, mf.ChecksumCache(cache_file))
    assert hashed == [page], "only the changed file is hashed"
    assert sorted(kept) == ["20702"] and dropped == ["20703"] and not page.exists()


def test_the_caches_are_written_atomically_and_synced(tmp_path: Path, monkeypatch):
    """The store-digest cache and the checksum cache go through write_atomic: synced before the rename."""
    from cptpub.batch.keys import cached_store_digests

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store = tmp_path / "rates.duckdb"
    with RatesStore(store).transaction():
        pass
    digests = cached_store_digests(store, ["20702"], tmp_path / "build" / "store-digests.json")
    published = tmp_path / "dist" / "cpt-20702.html"
    published.parent.mkdir()
    published.write_text("<p>edition</p>")
    checksums = mf.ChecksumCache(tmp_path / "build" / "checksums.json")
    checksums.sha256(published)
    checksums.save()

    for name in ("store-digests.json", "checksums.json"):
        assert [p for p in synced if Path(p).name.startswith(f".{name}.")], f"{name} was not synced before its rename"
        assert json.loads((tmp_path / "build" / name).read_text())
    assert json.loads((tmp_path / "build" / "store-digests.json").read_text())["digests"] == digests
    assert not [p.name for p in (tmp_path / "build").iterdir() if p.name.endswith(".tmp")]
