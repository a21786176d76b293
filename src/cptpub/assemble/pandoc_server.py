"""One long-lived Pandoc per engine (``pandoc lua pandoc_server.lua``): it reads an edition's Markdown once and
writes the Typst source and the HTML page (its resources not yet embedded) from it, with the same reader, filters and
templates as the command line, so the bytes are the same and Pandoc does not start twice per edition.

The process stops when its engine is closed or collected, or when the worker holding it exits (its stdin closes).
One that died between editions is started again for the next one.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from cptpub.assemble.pandoc import (
    PANDOC_TIMEOUT,
    READER,
    crossref_filter,
    pandoc_env,
    pandoc_path,
    pandoc_problem,
    safety_filter,
)
from cptpub.errors import AssemblyError

# A 16 MB heap instead of the binary's built-in 64 MB: 50 MB less memory per worker. An old generation of at least
# 16 MB (-O) halves the major collections (about one an edition otherwise), which cost 15-25 ms each whatever is
# live: ~0.015 s less CPU an edition for ~5 MB.
SERVER_RTS = "-H16m -A2m -O16m"
# Its memory creeps up by about 0.2 MB an edition (123 MB after 16, 143 MB after 96): a new Pandoc every so many
# editions keeps a worker's memory bounded in a batch of any length, for one start-up (~50 ms) each time.
JOBS_PER_PROCESS = 250


@dataclass(frozen=True)
class Filter:
    file: str  # a Lua filter
    globals: dict[str, str] | None = None  # global variables set while it runs (its options)


@dataclass(frozen=True)
class Output:
    format: str  # a Pandoc writer: "typst", "html5", or "json" (the filtered document, for a command-line run)
    filter_format: str  # the FORMAT global the filters see, as under `--to=<this>`
    file: str  # written in the build folder
    template: str | None = None  # standalone with this template
    metadata: bool = False  # gets the job's metadata file, as `--metadata-file`
    filters: tuple[Filter, ...] = ()  # run on this output's copy, after the job's filters
    # more of Pandoc's WriterOptions (Lua names), as other command-line options
    options: dict[str, object] | None = None


# cptpub's filters, as the command line runs them (`--lua-filter=crossref.lua --lua-filter=safety.lua`), split so
# that the long-lived Pandoc does the work both formats share once: crossref.lua's numbering and references, and
# the safety filter, on the document; only the HTML captions' "Figure N: " prefixes per output.
def shared_filters() -> list[Filter]:
    return [Filter(str(crossref_filter()), {"CPTPUB_CROSSREF": "numbers"}), Filter(str(safety_filter()))]


def output_filters() -> tuple[Filter, ...]:
    return (Filter(str(crossref_filter()), {"CPTPUB_CROSSREF": "labels"}),)


def _script() -> Path:
    return Path(str(resources.files("cptpub.assemble") / "pandoc_server.lua"))


class PandocServer:
    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr_file: IO[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()  # one job at a time on the pipe, should a worker run tasks in threads
        self._jobs = 0  # jobs the running process has taken

    @property
    def pid(self) -> int | None:
        """The running Pandoc's process id (``None`` before the first edition or after ``close``)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def convert(
        self, cwd: Path, markdown: str, outputs: list[Output], *, what: str, metadata: str | None = None
    ) -> None:
        """Convert ``markdown`` (written to the build folder ``cwd`` first, so a failure leaves it for debugging)
        into each of ``outputs``, with ``metadata`` (a YAML file in ``cwd``) for those that ask for it; ``what``
        names them in error messages."""
        markdown_file = "cptpub-edition.md"
        # As the command line does with its input: no carriage returns, tabs expanded to 4-column stops.
        (cwd / markdown_file).write_text(markdown.replace("\r", "").expandtabs(4), encoding="utf-8")
        job = {
            "dir": str(cwd),
            "markdown": markdown_file,
            "metadata": metadata,
            "filters": [asdict(f) for f in shared_filters()],
            "outputs": [asdict(output) for output in outputs],
        }
        with self._lock:
            answer = self._ask(json.dumps(job).encode("utf-8") + b"\n", cwd, what)
        if "error" in answer:
            raise AssemblyError(f"pandoc failed to write the {what}: {pandoc_problem(answer['error'])}", where=cwd)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._finalizer = self._stderr_file = None

    def _ask(self, request: bytes, cwd: Path, what: str) -> dict:
        process = self._running()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(request)
            process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: the read below says so
        line = _read_line(process.stdout.fileno(), time.monotonic() + PANDOC_TIMEOUT)
        if line is None:
            self.close()
            raise AssemblyError(f"pandoc did not finish the {what} within {PANDOC_TIMEOUT} s", where=cwd)
        if not line:
            status = process.wait()
            problem = _tail(self._stderr_file)
            self.close()
            raise AssemblyError(
                f"pandoc stopped while writing the {what} (exit status {status}){': ' + problem if problem else ''}",
                where=cwd,
                hint="the next edition starts a new pandoc",
            )
        try:
            answer: dict = json.loads(line)
        except ValueError:
            self.close()
            raise AssemblyError(f"pandoc answered the {what} job with {line[:200]!r}", where=cwd) from None
        return answer

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None and self._jobs < JOBS_PER_PROCESS:
            self._jobs += 1
            return self._process
        self.close()
        self._jobs = 1
        self._stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process; _stop closes it)
        self._process = subprocess.Popen(
            [pandoc_path(), "lua", str(_script()), READER],
            env=pandoc_env(SERVER_RTS),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
        )
        self._finalizer = weakref.finalize(self, _stop, self._process, self._stderr_file)
        return self._process


def _read_line(fd: int, deadline: float) -> bytes | None:
    """One line from ``fd``: ``b""`` at end of file, ``None`` when ``deadline`` passes first."""
    chunks = []
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                return b"".join(chunks)


def _tail(file: IO[bytes] | None) -> str:
    if file is None:
        return ""
    file.seek(0)
    return file.read().decode("utf-8", "replace").strip()[-2000:]


def _stop(process: subprocess.Popen[bytes], stderr_file: IO[bytes]) -> None:
    """End of stdin stops the server; one that does not stop within seconds is killed."""
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
    finally:
        if process.stdout is not None:
            process.stdout.close()
        stderr_file.close()
