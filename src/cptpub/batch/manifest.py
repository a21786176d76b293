"""``dist/manifest.json``: which editions ``dist/`` holds, what they were built from and their files' checksums.

Shape (editions sorted by code)::

    {"generator": "cptpub 0.1.0",
     "editions": [{"code": "20702", "title": "CPT 20702: ...", "key": "<sha256>", "edition_date": "2026-10-15",
                   "data_as_of": {"Aetna rates": "2026-10-01", "Medicare fee schedule": "2026-01-01"},
                   "payers": ["Aetna", ...], "demo": true, "engine": "builtin (pandoc 3.9, typst 0.15.2)",
                   "outputs": {"html": {"file": "cpt-20702.html", "sha256": "..."}, "pdf": {...}},
                   "build_seconds": 4.2}]}

The batch runner is the only writer. It writes the manifest atomically after every edition it publishes, and
keeps it equal to ``dist/``: :func:`reconcile` drops entries whose files are missing or altered, and removes
edition files no entry claims (left by a run that was killed between renaming files and writing the manifest).
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
# Files cptpub publishes per edition, and the temporary names write_atomic uses beside them.
EDITION_FILE = re.compile(r"^cpt-[A-Za-z0-9]{5}\.(html|pdf)$")
TEMP_FILE = re.compile(r"^\.cpt-[A-Za-z0-9]{5}\.(html|pdf)\..*\.tmp$")

Editions = dict[str, dict]  # code -> manifest entry


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_editions(dist_dir: Path) -> Editions:
    """The manifest's entries by code; an absent or unreadable manifest counts as empty (all will be rebuilt)."""
    try:
        document = json.loads((dist_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        entries = document["editions"]
        return {entry["code"]: entry for entry in entries if isinstance(entry, dict) and "code" in entry}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def manifest_document(editions: Editions) -> dict:
    return {"generator": f"cptpub {__version__}", "editions": [editions[code] for code in sorted(editions)]}


def write_manifest(dist_dir: Path, editions: Editions, serializer: ManifestSerializer | None = None) -> dict:
    document = manifest_document(editions)
    text = (serializer or ManifestSerializer()).dumps(document)
    write_atomic(dist_dir / MANIFEST_NAME, text.encode("utf-8"))
    return document


class ManifestSerializer:
    """``json.dumps(document, indent=2)`` (plus a newline), remembering each entry's text.

    The batch rewrites the manifest after every edition; serialising only the new entry keeps that linear in the
    catalogue's size instead of quadratic (a full dump of 1,000 entries takes ~30 ms, a join ~1 ms).
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
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for output in outputs.values():
        try:
            path = dist_dir / output["file"]
            digest = checksums.sha256(path) if checksums else sha256_file(path)
            if path.parent != dist_dir or digest != output["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def entry_files(entry: dict) -> set[str]:
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        return set()
    return {o["file"] for o in outputs.values() if isinstance(o, dict) and isinstance(o.get("file"), str)}


def reconcile(
    dist_dir: Path, editions: Editions, known_codes: set[str], checksums: ChecksumCache | None = None
) -> tuple[Editions, list[str]]:
    """Make the manifest and ``dist/`` agree before a batch starts; return the kept entries and what was dropped.

    Dropped: entries whose files are missing or altered, and entries of codes that no longer have a record.
    Removed from ``dist/``: the files of dropped entries, edition files no entry claims, leftover temp files.
    """
    kept: Editions = {}
    dropped = []
    candidates = [(code, entry) for code, entry in editions.items() if code in known_codes]
    # hashlib releases the GIL: checking a thousand editions' files on a few threads takes a fraction of the time.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        intact = list(pool.map(lambda item: entry_is_intact(dist_dir, item[1], checksums), candidates))
    for (code, entry), ok in zip(candidates, intact, strict=True):
        if ok:
            kept[code] = entry
    dropped = sorted(set(editions) - set(kept))
    claimed = set().union(*(entry_files(e) for e in kept.values())) if kept else set()
    if dist_dir.is_dir():
        for path in dist_dir.iterdir():
            name = path.name
            if (EDITION_FILE.match(name) and name not in claimed) or TEMP_FILE.match(name):
                path.unlink(missing_ok=True)
                if checksums:
                    checksums.forget(name)
    return kept, dropped
