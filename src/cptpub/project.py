"""Where a cptpub project keeps its inputs and outputs.

A project is a folder with ``data/``, ``notebooks/`` and ``report/``; ``build/`` and ``dist/`` are generated.
Every command works on one ``Project``; paths are resolved once here so no module guesses them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cptpub.errors import UsageError

# A code is 5 letters or digits: CPT (20702), Category II/III (0042T) and HCPCS (J1234) alike.
CODE_PATTERN = re.compile(r"^[A-Za-z0-9]{5}$")


def check_code(code: str) -> str:
    """Return the code, upper-cased, or raise before any file is touched."""
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        raise UsageError(f"invalid code {code!r}: a code is exactly 5 letters or digits, e.g. 20702")
    return code.upper()


def read_codes_file(path: Path) -> list[str]:
    """Codes from a file: separated by whitespace or commas, ``#`` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the codes file: {exc.strerror or exc}", where=path) from exc
    codes = []
    for line in text.splitlines():
        codes += line.split("#", 1)[0].replace(",", " ").split()
    return codes


@dataclass(frozen=True)
class Project:
    root: Path

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
        return Path(os.environ.get("CPTPUB_STORE", self.build_dir / "rates.duckdb")).resolve()

    def record_path(self, code: str) -> Path:
        return self.codes_dir / f"{check_code(code)}.yaml"

    def code_build_dir(self, code: str) -> Path:
        return self.build_dir / check_code(code)

    def section_notebooks(self) -> list[Path]:
        """The section notebooks in publication order (their file names sort in that order)."""
        return sorted(p for p in self.notebooks_dir.glob("*.ipynb") if not p.name.startswith("_"))
