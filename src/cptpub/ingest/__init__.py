"""Fill the rates store: payers' Transparency in Coverage in-network files (``tic``), CMS's physician fee schedule
relative value file (``pfs``), and the listing of a payer's table of contents (``toc``).

Each file is ingested in one store transaction and recorded as a row of ``sources`` keyed by the SHA-256 of its
bytes, so re-ingesting the same file is a no-op and ``replace=True`` swaps exactly that file's rows.
"""

from cptpub.ingest.common import IngestResult
from cptpub.ingest.pfs import ingest_pfs_file
from cptpub.ingest.tic import ingest_tic_file, tic_files
from cptpub.ingest.toc import read_toc

__all__ = ["IngestResult", "ingest_pfs_file", "ingest_tic_file", "read_toc", "tic_files"]
