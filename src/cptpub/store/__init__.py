"""The rates store: an embedded DuckDB database of negotiated rates, Medicare fee-schedule values and sources.

Its schema is ``schema.sql`` in this folder (documented column by column). Writers use ``RatesStore.transaction``,
so an interrupted ingest leaves the store as it was; readers open it read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import duckdb

from cptpub.errors import CptpubError

SCHEMA_SQL = files("cptpub.store").joinpath("schema.sql").read_text(encoding="utf-8")


class RatesStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def require(self) -> None:
        """Raise the one error for a store that has not been filled yet, naming it and how to fill it."""
        if not self.path.exists():
            raise CptpubError(
                "the rates store does not exist yet",
                where=self.path,
                hint="fill it with `cptpub ingest tic ...` and `cptpub ingest pfs ...` (make demo does this)",
            )

    def connect(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if read_only:
            self.require()
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise CptpubError(f"cannot open the rates store: {exc}", where=self.path) from exc
        if not read_only:
            con.execute(SCHEMA_SQL)
        return con

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction: committed on success, rolled back on any error."""
        con = self.connect()
        try:
            con.execute("BEGIN TRANSACTION")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
