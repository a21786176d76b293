"""Fill the rates store: payers' Transparency in Coverage in-network files (``tic``), CMS's physician fee schedule
relative value file (``pfs``), and the listing of a payer's table of contents (``toc``).

Each file is ingested in one store transaction and recorded as a row of ``sources`` keyed by the SHA-256 of its
bytes, so re-ingesting the same file is a no-op and ``replace=True`` swaps exactly that file's rows.

The names below are imported when first used: a build worker imports one constant of ``cptpub.ingest.staging``
and none of the ingest machinery (its JSON scanner, Arrow staging, remote files), ~0.1 s of CPU per process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cptpub.ingest.common import IngestResult
    from cptpub.ingest.pfs import ingest_pfs_file
    from cptpub.ingest.tic import ingest_tic_file, tic_files
    from cptpub.ingest.toc import read_toc

__all__ = ["IngestResult", "ingest_pfs_file", "ingest_tic_file", "read_toc", "tic_files"]
_MODULES = {
    "IngestResult": "common",
    "ingest_pfs_file": "pfs",
    "ingest_tic_file": "tic",
    "tic_files": "tic",
    "read_toc": "toc",
}


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
