"""``dist/manifest.json``: which editions ``dist/`` holds, what they were built from and their files' checksums.

Shape (editions sorted by code)::

    {"generator": "cptpub 0.1.0",
     "editions": [{"code": "20702", "title": "CPT 20702: ...", "key": "<sha256>", "edition_date": "2026-10-15",
                   "data_as_of": {"Aetna rates": "2026-10-01", "Medicare fee schedule": "2026-01-01"},
                   "payers": ["Aetna", ...], "demo": true, "engine": "builtin (pandoc 3.9, typst 0.15.2)",
                   "outputs": {"html": {"file": "cpt-20702.html", "sha256": "..."}, "pdf": {...}},
                   "data": {"file": "data/cpt-20702.json", "sha256": "..."},
                   "changes": {"since": "2026-10-01", "material": true, "summary": ["Aetna: median ..."]},
                   "build_seconds": 4.2}]}

``data`` is the edition's figures as data (:mod:`cptpub.analysis.snapshot`), ``changes`` what changed since the
previous edition (:mod:`cptpub.analysis.changes`; null for a first edition).

The batch runner is the only writer, and keeps the manifest equal to ``dist/``: :func:`reconcile` drops entries
whose files are missing or altered, and removes edition files no entry claims (left by a run that was killed
between renaming files and recording them).

Incremental writes: rewriting the whole manifest after each of 10,000 editions would be quadratic (gigabytes
written). So an edition published during a batch is appended to the journal ``dist/.manifest.journal.jsonl``
(:func:`record_edition`: one JSON entry per line, flushed and fsync'd before the next edition is published), and
the journal is folded into ``manifest.json`` (:func:`write_manifest`: one atomic rewrite, then the journal is
removed) at the end of the batch, and by the next batch if this one was killed. :func:`load_editions` reads the
manifest and then the journal, a later line replacing an earlier entry of the same code, so a build killed after
9,000 editions keeps those 9,000. A torn last line (killed mid-append) is ignored: its edition's files are then
unclaimed and removed by :func:`reconcile`, and that edition is built again. Until the fold, ``manifest.json``
alone lags behind ``dist/``; read the manifest with :func:`load_editions`.

Verifying ``dist/`` checks each file against a remembered checksum by its size, mtime, ctime and inode
(:class:`ChecksumCache`, in ``build/``) and re-hashes only files whose stat differs, so a no-op check of 20,000
files is 20,000 ``stat`` calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cptpub import __version__
from cptpub.atomic import write_atomic
from cptpub.errors import CptpubError

MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = ".manifest.journal.jsonl"  # editions published since manifest.json was last written
# Files cptpub publishes per edition, and the temporary names write_atomic uses beside them.
EDITION_FILE = re.compile(r"^cpt-[A-Za-z0-9]{5}\.(html|pdf)$")
TEMP_FILE = re.compile(r"^\.cpt-[A-Za-z0-9]{5}\.(html|pdf)\..*\.tmp$")
# The editions' data files, in dist/data/ (dist/data/history/ is an archive no entry claims: left alone).
DATA_FILE = re.compile(r"^cpt-[A-Za-z0-9]{5}\.json$")
TEMP_DATA_FILE = re.compile(r"^\.cpt-[A-Za-z0-9]{5}\.json\..*\.tmp$")

Editions = dict[str, dict]  # code -> manifest entry


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_editions(dist_dir: Path) -> Editions:
    """The manifest's entries by code, with the journal's applied; an absent or unreadable manifest counts as
    empty (all will be rebuilt)."""
    editions: Editions = {}
    try:
        document = json.loads((dist_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        entries = document["editions"]
        editions = {entry["code"]: entry for entry in entries if isinstance(entry, dict) and "code" in entry}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    editions.update(_journal_entries(dist_dir))
    return editions


def _journal_entries(dist_dir: Path) -> Editions:
    try:
        data = (dist_dir / JOURNAL_NAME).read_bytes()
    except OSError:
        return {}
    entries: Editions = {}
    for line in data.splitlines():  # bytes: a line torn inside a character must not hide the others
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash mid-append
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            entries[entry["code"]] = entry
    return entries


def has_journal(dist_dir: Path) -> bool:
    """Editions were recorded since ``manifest.json`` was last written (a batch was killed): fold them in."""
    return (dist_dir / JOURNAL_NAME).exists()


def record_edition(dist_dir: Path, entry: dict) -> None:
    """Append one published edition's entry to the journal, durably (fsync'd) before this returns."""
    line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
    path = dist_dir / JOURNAL_NAME
    try:
        with path.open("a", encoding="utf-8") as handle:
            if handle.tell() and not _ends_with_newline(path):
                handle.write("\n")  # after a torn line, start a fresh one
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise CptpubError(f"cannot write: {exc.strerror or exc}", where=path) from exc


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def manifest_document(editions: Editions) -> dict:
    return {"generator": f"cptpub {__version__}", "editions": [editions[code] for code in sorted(editions)]}


def write_manifest(dist_dir: Path, editions: Editions, serializer: ManifestSerializer | None = None) -> dict:
    """Write ``manifest.json`` atomically; the journal, now folded in (``editions`` holds its entries), goes."""
    document = manifest_document(editions)
    text = (serializer or ManifestSerializer()).dumps(document)
    write_atomic(dist_dir / MANIFEST_NAME, text.encode("utf-8"))
    (dist_dir / JOURNAL_NAME).unlink(missing_ok=True)
    return document


class ManifestSerializer:
    """``json.dumps(document, indent=2)`` (plus a newline), remembering each entry's text.

    A batch writes the manifest at its start and its end; an entry already serialised (at the start) is joined
    as it is at the end (a full dump of 1,000 entries takes ~30 ms, a join ~1 ms).
    """

    def __init__(self) -> None:
        self._texts: dict[str, tuple[dict, str]] = {}

    def _entry(self, entry: dict) -> str:
        code = entry.get("code")
        cached = self._texts.get(code) if isinstance(code, str) else None
        if cached is not None and cached[0] is entry:
            return cached[1]
        text = "\n".join("    " + line for line in json.dumps(entry, indent=2, ensure_ascii=False).splitlines())
        if isinstance(code, str):
            self._texts[code] = (entry, text)
        return text

    def dumps(self, document: dict) -> str:
        head = json.dumps(document["generator"], ensure_ascii=False)
        entries = [self._entry(entry) for entry in document["editions"]]
        body = "[\n" + ",\n".join(entries) + "\n  ]" if entries else "[]"
        return f'{{\n  "generator": {head},\n  "editions": {body}\n}}\n'


class ChecksumCache:
    """SHA-256 of published files, remembered (in ``build/``) with the file's size, mtime, ctime and inode.

    A no-op build of a thousand editions would otherwise re-read ~150 MB to re-check files nothing touched. Any
    write to a file, even one that restores its mtime, changes its ctime, so a remembered checksum is only used
    for the very bytes it was computed from (or written from, see :meth:`remember`).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, list] = {}
        self._used: dict[str, list] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._entries = loaded
            except (OSError, ValueError):
                pass

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def sha256(self, path: Path) -> str:
        stamp = self._stamp(path)  # raises FileNotFoundError for a missing file
        known = self._entries.get(path.name)
        if isinstance(known, list) and len(known) == 2 and known[0] == stamp:
            digest = str(known[1])
        else:
            digest = sha256_file(path)
            if self._stamp(path) != stamp:  # changed while we read it: do not remember
                self._used.pop(path.name, None)
                return digest
        self._used[path.name] = [stamp, digest]
        return digest

    def known_sha256(self, folder: str, name: str) -> str | None:
        """The remembered checksum of ``folder/name`` if the file's stat is the one it was remembered with; "" for a
        missing file; None when the file must be hashed. (Plain strings: on a no-op build of 10,000 editions this
        runs for 20,000 files.)"""
        try:
            st = os.stat(f"{folder}/{name}")
        except FileNotFoundError:
            return ""
        except OSError:
            return None
        known = self._entries.get(name.rpartition("/")[2])  # remembered by base name, as :meth:`remember` does
        if (
            isinstance(known, list)
            and len(known) == 2
            and known[0] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        ):
            self._used[name.rpartition("/")[2]] = known
            return str(known[1])
        return None

    def remember(self, path: Path, digest: str) -> None:
        """``path`` was just written with bytes of this ``digest``."""
        self._used[path.name] = [self._stamp(path), digest]

    def forget(self, name: str) -> None:
        self._used.pop(name, None)

    def save(self) -> None:
        if self.path is None or self._used == self._entries:
            return
        try:
            write_atomic(self.path, json.dumps(self._used).encode("utf-8"))
            self._entries = dict(self._used)
        except CptpubError:
            pass  # only a cache


def entry_is_intact(dist_dir: Path, entry: dict, checksums: ChecksumCache | None = None) -> bool:
    """Every output the entry lists exists in ``dist/`` with the recorded checksum."""
    outputs = _outputs(entry)
    if outputs is None:
        return False
    try:
        for name, digest in outputs:
            path = dist_dir / name
            if (checksums.sha256(path) if checksums else sha256_file(path)) != digest:
                return False
    except OSError:
        return False
    return True


def _outputs(entry: dict) -> list[tuple[str, str]] | None:
    """The entry's file names (in ``dist/`` itself) and recorded checksums; None if it does not list them properly."""
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    listed = []
    for output in outputs.values():
        try:
            name = output["file"]
            digest = output["sha256"]
        except (KeyError, TypeError):
            return None
        if not isinstance(name, str) or not isinstance(digest, str) or not EDITION_FILE.match(name):
            return None
        listed.append((name, digest))
    data = entry.get("data")
    if data is not None:
        try:
            name, digest = data["file"], data["sha256"]
        except (KeyError, TypeError):
            return None
        folder, _, base = name.partition("/") if isinstance(name, str) else ("", "", "")
        if folder != "data" or not DATA_FILE.match(base) or not isinstance(digest, str):
            return None
        listed.append((name, digest))
    return listed


def entry_files(entry: dict) -> set[str]:
    """The files of ``dist/`` an entry claims, relative to ``dist/`` (``cpt-20702.html``, ``data/cpt-20702.json``)."""
    outputs = entry.get("outputs")
    files = set()
    if isinstance(outputs, dict):
        files = {o["file"] for o in outputs.values() if isinstance(o, dict) and isinstance(o.get("file"), str)}
    data = entry.get("data")
    if isinstance(data, dict) and isinstance(data.get("file"), str):
        files.add(data["file"])
    return files


def reconcile(
    dist_dir: Path, editions: Editions, known_codes: set[str], checksums: ChecksumCache | None = None
) -> tuple[Editions, list[str]]:
    """Make the manifest and ``dist/`` agree before a batch starts; return the kept entries and what was dropped.

    Dropped: entries whose files are missing or altered, and entries of codes that no longer have a record.
    Removed from ``dist/``: the files of dropped entries, edition files no entry claims, leftover temp files.
    """
    kept: Editions = {}
    claimed: set[str] = set()
    unsure: list[tuple[str, dict]] = []  # files that must be hashed: no remembered checksum for their stat
    folder = str(dist_dir)
    for code, entry in editions.items():
        if code not in known_codes:
            continue
        outputs = _outputs(entry)
        if outputs is None:
            continue
        verdicts = [checksums.known_sha256(folder, name) if checksums else None for name, _ in outputs]
        if None in verdicts:
            unsure.append((code, entry))
        elif all(verdict == digest for verdict, (_, digest) in zip(verdicts, outputs, strict=True)):
            kept[code] = entry
            claimed.update(name for name, _ in outputs)
    if unsure:
        # hashlib releases the GIL: hashing a thousand editions' files on a few threads takes a fraction of the time.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            intact = list(pool.map(lambda item: entry_is_intact(dist_dir, item[1], checksums), unsure))
        for (code, entry), ok in zip(unsure, intact, strict=True):
            if ok:
                kept[code] = entry
                claimed.update(name for name, _ in _outputs(entry) or ())
    dropped = sorted(set(editions) - set(kept))
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        names = []
    for name in names:
        if (EDITION_FILE.match(name) and name not in claimed) or TEMP_FILE.match(name):
            (dist_dir / name).unlink(missing_ok=True)
            if checksums:
                checksums.forget(name)
    data_dir = dist_dir / "data"
    if data_dir.is_dir():
        for path in data_dir.iterdir():
            name = path.name
            if (DATA_FILE.match(name) and f"data/{name}" not in claimed) or TEMP_DATA_FILE.match(name):
                path.unlink(missing_ok=True)
                if checksums:
                    checksums.forget(name)
    return kept, dropped
