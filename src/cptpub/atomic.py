"""Atomic file writes: every output cptpub produces is written to a temporary file and renamed into place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cptpub.errors import CptpubError


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    Readers (a web server, the catalogue, a build) see the old file or the new one, never half of one. A full disk
    or an unwritable folder is a ``CptpubError`` naming the file; the temporary file is removed.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise CptpubError(f"cannot write: {exc.strerror or exc}", where=path) from exc
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path
