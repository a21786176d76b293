"""Edition keys: one SHA-256 per code over everything its publication is made from.

A key covers the section notebooks, the code's record, the payer catalogue, the slice of the rates store the
code reads (its ``negotiated_rates`` and ``medicare_pfs`` rows and NCCI edits of current, not superseded, sources
and the ``sources`` rows they point at), the ``report/`` template files (except the catalogue page's own template),
the assembly engine and its version, cptpub's own code (a digest of every file of the package) and the output
formats. When none of these changed and the published files are intact, the edition is not rebuilt.

Everything shared by all codes is hashed once per batch (:func:`shared_digest`); the store slices of all codes
come from one read-only query (:func:`store_digests`), remembered in ``build/.store-digests.json`` until the store
file changes. A code's key is remembered too (``build/.edition-keys.json``) with its record file's size, mtime,
ctime and inode and the shared and store digests it was made from: while none of these changed, the record is not
read again, so keying 10,000 codes takes 10,000 ``stat`` calls, not 100 MB of reading and hashing.

Deliberately not in the key: ``sources.ingested_at`` (bookkeeping no section reads: re-ingesting the same file
must not rebuild every edition), the execution engine (warm and fresh kernels give the same bytes), and the
number of workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cptpub
from cptpub import __version__
from cptpub.atomic import write_atomic
from cptpub.errors import CptpubError
from cptpub.project import Project

KEY_SCHEME = "cptpub-edition-key/2"  # bump when what goes into a key changes (2: package code, NCCI, supersession)
NO_STORE = "no-store"
NO_RECORD = b"\0no-record"
STORE_DIGEST_CACHE = ".store-digests.json"  # in build/
KEY_CACHE = ".edition-keys.json"  # in build/
_SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".quarto"}
# Read only by the catalogue page (dist/index.html), which is rewritten after every batch anyway: editing it
# must not rebuild every edition.
CATALOGUE_TEMPLATE = "catalogue.html.j2"
PACKAGE_DIR = Path(cptpub.__file__).parent


def _frame(h: hashlib._Hash, label: str, data: bytes | str) -> None:
    """Feed one labelled, length-prefixed field, so no two different inputs hash the same stream."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    h.update(f"{label}\0{len(data)}\0".encode())
    h.update(data)


def template_files(folder: Path, *, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every file of a template folder, in a fixed order (hidden files, caches and ``skip`` names left out)."""
    if not folder.is_dir():
        return []
    files = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") or part in _SKIPPED_PARTS for part in rel.parts) or rel.as_posix() in skip:
            continue
        if path.is_file():
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def package_digest(package_dir: Path | None = None) -> str:
    """A digest of every file of the cptpub package (code, templates, filters; not caches): any change to the
    toolkit changes every key. The version alone would not see an edited file between releases."""
    folder = package_dir or PACKAGE_DIR
    h = hashlib.sha256()
    _frame(h, "version", __version__)
    for path in template_files(folder):
        _frame(h, "file", path.relative_to(folder).as_posix())
        _frame(h, "file-bytes", path.read_bytes())
    return h.hexdigest()


def shared_digest(project: Project, engine_label: str, formats: Sequence[str]) -> str:
    """The digest of the inputs every edition shares: notebooks, payers, template, engine, version, formats."""
    h = hashlib.sha256()
    _frame(h, "scheme", KEY_SCHEME)
    for notebook in project.section_notebooks():
        _frame(h, "notebook", notebook.name)
        _frame(h, "notebook-bytes", notebook.read_bytes())
    payers = project.payers_file
    _frame(h, "payers", payers.read_bytes() if payers.exists() else b"")
    for path in template_files(project.report_dir, skip=(CATALOGUE_TEMPLATE,)):
        _frame(h, "report", path.relative_to(project.report_dir).as_posix())
        _frame(h, "report-bytes", path.read_bytes())
    _frame(h, "engine", engine_label)  # "builtin (pandoc 3.9, typst 0.15.2)": name and version
    _frame(h, "cptpub", package_digest())
    _frame(h, "formats", ",".join(formats))
    return h.hexdigest()


# One row set per table and code, each row as JSON (strings escaped, numbers in shortest round-trip form), sorted
# by that text: the same rows always give the same digest, whatever order the store returns them in.
_STORE_SQL = """
WITH wanted AS (SELECT DISTINCT unnest($codes::VARCHAR[]) AS code),
rates AS (
    SELECT r.billing_code AS code, r.source_id, to_json(r)::VARCHAR AS row_json
    FROM negotiated_rates r JOIN wanted w ON r.billing_code = w.code
    WHERE r.source_id IN (SELECT source_id FROM current_sources)
),
pfs AS (
    SELECT p.hcpcs AS code, p.source_id, to_json(p)::VARCHAR AS row_json
    FROM medicare_pfs p JOIN wanted w ON p.hcpcs = w.code
    WHERE p.source_id IN (SELECT source_id FROM current_sources)
),
ncci AS ({ncci}),
used AS (
    SELECT DISTINCT code, source_id FROM rates UNION SELECT DISTINCT code, source_id FROM pfs
    UNION SELECT DISTINCT code, source_id FROM ncci
),
src AS (
    SELECT u.code, to_json(s)::VARCHAR AS row_json
    FROM used u JOIN (SELECT * EXCLUDE (ingested_at) FROM sources) s ON s.source_id = u.source_id
)
SELECT 'negotiated_rates' AS tbl, code, count(*) AS n,
       sha256(string_agg(row_json, chr(10) ORDER BY row_json)) AS digest FROM rates GROUP BY code
UNION ALL
SELECT 'medicare_pfs', code, count(*), sha256(string_agg(row_json, chr(10) ORDER BY row_json)) FROM pfs GROUP BY code
UNION ALL
SELECT 'ncci', code, count(*), sha256(string_agg(row_json, chr(10) ORDER BY row_json)) FROM ncci GROUP BY code
UNION ALL
SELECT 'sources', code, count(*), sha256(string_agg(row_json, chr(10) ORDER BY row_json)) FROM src GROUP BY code
"""
# The NCCI rows a code reads (its edits in both directions, its MUE, its add-on edits); a store made before the
# NCCI tables existed has none.
_NCCI_SQL = """
SELECT w.code, t.source_id, to_json(t)::VARCHAR AS row_json FROM ncci_ptp t JOIN wanted w ON t.column1 = w.code
UNION ALL
SELECT w.code, t.source_id, to_json(t)::VARCHAR FROM ncci_ptp t JOIN wanted w ON t.column2 = w.code
UNION ALL
SELECT w.code, t.source_id, to_json(t)::VARCHAR FROM ncci_mue t JOIN wanted w ON t.hcpcs = w.code
UNION ALL
SELECT w.code, t.source_id, to_json(t)::VARCHAR FROM ncci_aoc t JOIN wanted w ON t.addon_code = w.code
"""
_NO_NCCI_SQL = "SELECT NULL::VARCHAR AS code, NULL::VARCHAR AS source_id, NULL::VARCHAR AS row_json WHERE false"
_TABLES = ("negotiated_rates", "medicare_pfs", "ncci", "sources")


def store_digests(store_path: Path, codes: Iterable[str]) -> dict[str, str]:
    """Each code's digest of the rows it reads from the rates store (read-only; ``no-store`` if there is none).

    A code without rows gets a digest too (of empty tables), so ingesting its first rates changes its key.
    """
    codes = sorted(set(codes))
    if not Path(store_path).exists():
        return dict.fromkeys(codes, NO_STORE)
    from cptpub.store import RatesStore

    parts: dict[str, dict[str, str]] = {code: {} for code in codes}
    con = RatesStore(store_path).connect(read_only=True)
    try:
        present = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_name IN ('ncci_ptp', 'ncci_mue', 'ncci_aoc')"
            ).fetchall()
        }
        ncci = _NCCI_SQL if len(present) == 3 else _NO_NCCI_SQL
        for table, code, count, digest in con.execute(_STORE_SQL.format(ncci=ncci), {"codes": codes}).fetchall():
            parts[code][table] = f"{count}:{digest}"
    finally:
        con.close()
    result = {}
    for code in codes:
        h = hashlib.sha256()
        for table in _TABLES:
            _frame(h, table, parts[code].get(table, "0:"))
        result[code] = h.hexdigest()
    return result


def _store_stamp(store_path: Path) -> list[list[int] | None] | None:
    """What identifies the store's current content on disk: size, mtime and inode of the file and its WAL."""
    stamp: list[list[int] | None] = []
    for path in (store_path, store_path.with_name(store_path.name + ".wal")):
        try:
            st = path.stat()
        except FileNotFoundError:
            stamp.append(None)
            continue
        stamp.append([st.st_size, st.st_mtime_ns, st.st_ino])
    return stamp if stamp[0] is not None else None


def cached_store_digests(store_path: Path, codes: Sequence[str], cache_file: Path) -> dict[str, str]:
    """:func:`store_digests`, remembered in ``cache_file`` for as long as the store file is untouched.

    A no-op build of a large catalogue then skips the store query (a third of a second per thousand codes);
    any write to the store (an ingest) changes its size or mtime and empties the cache. The cache is matched by
    the file's size, mtime and inode, not by its path: every build reads a pinned version of the store under a
    name of its own (:meth:`cptpub.store.RatesStore.pinned`), a hard link to the same file.
    """
    store_path = Path(store_path)
    stamp = _store_stamp(store_path)
    if stamp is None:
        return store_digests(store_path, codes)
    digests: dict[str, str] = {}
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
        if cached.get("stamp") == stamp:
            digests = dict(cached["digests"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    missing = [code for code in codes if code not in digests]
    if missing:
        digests.update(store_digests(store_path, missing))
        if _store_stamp(store_path) == stamp:  # not written to while we read it
            data = {"store": str(store_path.resolve()), "stamp": stamp, "digests": digests}
            with contextlib.suppress(CptpubError):  # only a cache
                write_atomic(cache_file, json.dumps(data).encode("utf-8"))
    return {code: digests[code] for code in codes}


def edition_key(shared: str, code: str, record: bytes, store: str) -> str:
    h = hashlib.sha256()
    _frame(h, "scheme", KEY_SCHEME)
    _frame(h, "shared", shared)
    _frame(h, "code", code)
    _frame(h, "record", record)
    _frame(h, "store", store)
    return h.hexdigest()


def _file_stamp(path: str) -> list[int]:
    """What identifies a file's bytes without reading them: any write changes its ctime, even one that restores
    the mtime."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def edition_keys(project: Project, codes: Sequence[str], engine_label: str, formats: Sequence[str]) -> dict[str, str]:
    """Every code's key (codes already checked). A code without a record keys on a marker no record file can
    equal (a YAML file holds no NUL byte)."""
    shared = shared_digest(project, engine_label, formats)
    store = cached_store_digests(project.store_path, codes, project.build_dir / STORE_DIGEST_CACHE)
    cache_file = project.build_dir / KEY_CACHE
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
        remembered = cached["keys"] if cached.get("shared") == shared else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        remembered = {}
    keys: dict[str, str] = {}
    fresh: dict[str, list] = {}
    changed = False
    folder = str(project.codes_dir)  # plain strings: this loop runs 10,000 times on a no-op build
    for code in codes:
        path = f"{folder}/{code}.yaml"  # codes are checked (upper case) already: project.record_path(code)
        try:
            stamp = _file_stamp(path)
        except FileNotFoundError:  # no record: the edition is built from its data alone
            keys[code] = edition_key(shared, code, NO_RECORD, store[code])
            continue
        known = remembered.get(code)
        if isinstance(known, list) and len(known) == 3 and known[0] == stamp and known[1] == store[code]:
            keys[code] = known[2]
        else:
            with open(path, "rb") as handle:
                record = handle.read()
            keys[code] = edition_key(shared, code, record, store[code])
            changed = True
            if _file_stamp(path) != stamp:  # written to while we read it: do not remember
                continue
        fresh[code] = [stamp, store[code], keys[code]]
    if changed:
        # A batch of some codes keeps the others' keys: the next --all needs them.
        kept = {code: entry for code, entry in remembered.items() if code not in fresh}
        data = {"shared": shared, "keys": {**kept, **fresh}}
        with contextlib.suppress(CptpubError):  # only a cache
            write_atomic(cache_file, json.dumps(data).encode("utf-8"))
    return keys
