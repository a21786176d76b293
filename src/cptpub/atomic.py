"""Atomic file writes: every output cptpub produces is written to a temporary file and renamed into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from cptpub.errors import CptpubError


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    Readers (a web server, the catalogue, a build) see the old file or the new one, never half of one. A full disk
    or an unwritable folder is a ``CptpubError`` naming the file; the temporary file is removed. ``durable=False``
    skips the fsync (about 3 ms of waiting each) for scratch files of a build, which a crash makes it redo anyway.
    """
    tmp = _stage(path, data, durable=durable)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CptpubError(f"cannot write: {exc.strerror or exc}", where=path) from exc
    return path


def _stage(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """``data`` in a temporary file beside ``path``, synced if ``durable`` (removed again if writing fails)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        return Path(tmp)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise CptpubError(f"cannot write: {exc.strerror or exc}", where=path) from exc
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replace_together(files: dict[Path, bytes]) -> Iterator[None]:
    """Replace several files as one: all of them or none.

    Every file is first written in full beside its target; only when all are written are they renamed into place.
    If a write fails nothing was replaced; if a rename fails, or the body of the ``with`` raises (e.g. the
    manifest that lists them cannot be written), the previous files are put back (kept as hard links meanwhile)
    and new ones that had no predecessor are removed. So an edition's HTML never sits beside another edition's
    PDF, and the manifest never lists files that are not there.
    """
    staged: dict[Path, Path] = {}
    backups: dict[Path, Path | None] = {}
    try:
        for path, data in files.items():
            staged[path] = _stage(path, data)
        try:
            for path in files:
                backup = path.with_name(f".{path.name}.{os.getpid()}.previous.tmp")
                backup.unlink(missing_ok=True)
                try:
                    os.link(path, backup)
                    backups[path] = backup
                except FileNotFoundError:
                    backups[path] = None
            for path, tmp in staged.items():
                os.replace(tmp, path)
        except OSError as exc:
            _restore(backups)
            where = exc.filename or next(iter(files))
            raise CptpubError(f"cannot replace: {exc.strerror or exc}", where=where) from exc
        try:
            yield
        except BaseException:
            _restore(backups)
            raise
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        for kept in backups.values():
            if kept is not None:
                kept.unlink(missing_ok=True)


def _restore(backups: dict[Path, Path | None]) -> None:
    for path, backup in backups.items():
        with suppress(OSError):
            if backup is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(backup, path)
