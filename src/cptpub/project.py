"""Where a cptpub project keeps its inputs and outputs.

A project is a folder with ``data/``, ``notebooks/`` and ``report/``; ``build/`` and ``dist/`` are generated.
Every command works on one ``Project``; paths are resolved once here so no module guesses them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cptpub.errors import AssemblyError, UsageError

# A code is 5 letters or digits: CPT (20702), Category II/III (0042T) and HCPCS (J1234) alike.
STORE_ENV = "CPTPUB_STORE"
CODE_PATTERN = re.compile(r"^[A-Za-z0-9]{5}$")


def known_codes(codes_dir: Path) -> list[str]:
    """Codes with a record file (file names are the upper-case code: ``0042T.yaml``)."""
    try:
        names = os.listdir(codes_dir)  # not glob: a catalogue may hold 10,000 records
    except (FileNotFoundError, NotADirectoryError):
        return []
    stems = (name[:-5] for name in names if name.endswith(".yaml"))
    return sorted(stem for stem in stems if CODE_PATTERN.fullmatch(stem) and stem == stem.upper())


def check_code(code: str) -> str:
    """Return the code, upper-cased, or raise before any file is touched."""
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        raise UsageError(f"invalid code {code!r}: a code is exactly 5 letters or digits, e.g. 20702")
    return code.upper()


def output_name(code: str, fmt: str) -> str:
    """``cpt-20702.html`` / ``cpt-20702.pdf``: the published file names, also used for cross-links."""
    if not CODE_PATTERN.fullmatch(code):
        raise AssemblyError(f"invalid code {code!r}: a code is exactly 5 letters or digits")
    return f"cpt-{code}.{fmt}"


MAX_CODES_FILE_BYTES = 16 << 20  # about 2.8 million codes: far more than any code set


def read_codes_file(path: Path) -> list[str]:
    """Codes from a file: separated by whitespace or commas, ``#`` starts a comment. A regular file of at most
    ``MAX_CODES_FILE_BYTES`` (``/dev/zero`` or a pipe would otherwise be read until memory runs out)."""
    import stat

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UsageError("the codes file is not a regular file (a device, pipe or folder)", where=path)
        if info.st_size > MAX_CODES_FILE_BYTES:
            raise UsageError(
                f"the codes file is {info.st_size:,} bytes, over the limit of {MAX_CODES_FILE_BYTES:,}", where=path
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_CODES_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the codes file: {exc.strerror or exc}", where=path) from exc
    if len(data) > MAX_CODES_FILE_BYTES:  # it grew while we read it
        raise UsageError(f"the codes file is over the limit of {MAX_CODES_FILE_BYTES:,} bytes", where=path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the codes file is not UTF-8 text (byte {exc.start:,})", where=path) from None
    codes = []
    for line in text.splitlines():
        codes += line.split("#", 1)[0].replace(",", " ").split()
    return codes


@dataclass(frozen=True)
class Project:
    root: Path
    store: Path | None = None  # a pinned version of the rates store (see RatesStore.pinned), else the usual one

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project at ``$CPTPUB_PROJECT``, or the nearest folder upwards that has ``data/codes``."""
        env = os.environ.get("CPTPUB_PROJECT")
        if env:
            return cls(Path(env).resolve())
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "data" / "codes").is_dir():
                return cls(folder)
        raise UsageError(
            f"no cptpub project found from {here}: expected a folder with data/codes/",
            hint="run cptpub inside a project, or set CPTPUB_PROJECT",
        )

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def codes_dir(self) -> Path:
        return self.data_dir / "codes"

    @property
    def payers_file(self) -> Path:
        return self.data_dir / "payers.yaml"

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def dist_dir(self) -> Path:
        return self.root / "dist"

    @property
    def store_path(self) -> Path:
        """The rates store (``$CPTPUB_STORE`` or ``build/rates.duckdb``), absolute: notebooks run in other folders."""
        if self.store is not None:
            return self.store
        return Path(os.environ.get(STORE_ENV, self.build_dir / "rates.duckdb")).resolve()

    def record_path(self, code: str) -> Path:
        return self.codes_dir / f"{check_code(code)}.yaml"

    def code_build_dir(self, code: str) -> Path:
        return self.build_dir / check_code(code)

    def section_notebooks(self) -> list[Path]:
        """The section notebooks in publication order (their file names sort in that order)."""
        return sorted(p for p in self.notebooks_dir.glob("*.ipynb") if not p.name.startswith("_"))
