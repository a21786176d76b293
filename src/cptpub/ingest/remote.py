"""Read payer files over HTTP(S): streamed, never downloaded whole, resumed with a Range request when the
connection drops, and a cache (by URL) of the provider-reference files an in-network file points at.

A dropped connection, a timeout or a 5xx/429 answer is retried ``RETRIES`` times with a growing pause; each retry
asks for the bytes from where the last one stopped (``Range: bytes=N-``), so nothing is read twice. A server that
ignores the range (200 instead of 206) or a file that changed meanwhile (another ETag/Last-Modified) fails with an
error naming the URL rather than splicing two different files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cptpub.errors import IngestError

RETRIES = 5
TIMEOUT_SECONDS = 60.0
BACKOFF_SECONDS = 0.5
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_USER_AGENT = "cptpub (Transparency in Coverage ingest)"


def is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


class RemoteFile:
    """One URL's bytes as a stream of blocks; ``size`` (Content-Length) is known after the first response."""

    def __init__(self, url: str, *, block: int = 1 << 20):
        self.url = url
        self.block = block
        self.size: int | None = None
        self.resumed = 0  # how many times a dropped transfer was resumed

    def blocks(self) -> Iterator[bytes]:
        offset = 0
        failures = 0
        validator: str | None = None
        while True:
            headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                request = urllib.request.Request(self.url, headers=headers)
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                    validator = self._check_response(response, offset, validator)
                    while block := response.read(self.block):
                        offset += len(block)
                        failures = 0  # progress was made: the retry budget starts again
                        yield block
                if self.size is not None and offset < self.size:
                    raise http.client.IncompleteRead(b"", self.size - offset)
                return
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRY_STATUS:
                    raise IngestError(f"HTTP {exc.code} {exc.reason}", where=self.url) from None
                reason = f"HTTP {exc.code} {exc.reason}"
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            failures += 1
            if failures > RETRIES:
                raise IngestError(
                    f"download failed after {RETRIES} retries at byte {offset:,}: {reason}", where=self.url
                )
            if offset:
                self.resumed += 1
            time.sleep(BACKOFF_SECONDS * 2 ** (failures - 1))

    def _check_response(self, response, offset: int, validator: str | None) -> str | None:
        current = response.headers.get("ETag") or response.headers.get("Last-Modified")
        if offset == 0:
            length = response.headers.get("Content-Length")
            self.size = int(length) if length and length.isdigit() else None
            return current
        if response.status != 206:
            raise IngestError(
                f"the connection dropped at byte {offset:,} and the server does not resume (no HTTP Range support)",
                where=self.url,
                hint="download the file and ingest the local copy",
            )
        if validator and current and current != validator:
            raise IngestError(f"the file changed on the server while it was read (at byte {offset:,})", where=self.url)
        return validator


def cached(url: str, cache_dir: Path) -> Path:
    """A local copy of ``url`` in ``cache_dir`` (named by the URL's SHA-256), downloaded once."""
    target = cache_dir / hashlib.sha256(url.encode()).hexdigest()
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            for block in RemoteFile(url).blocks():
                handle.write(block)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
