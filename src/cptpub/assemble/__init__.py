"""Assembly: executed section notebooks -> one HTML page and one PDF per code.

Two engines read the same ``report/`` template project: ``quarto`` (when Quarto >= 1.7.19 is
installed) and ``builtin`` (Pandoc + Typst from the Python dependencies).
"""

from __future__ import annotations

from cptpub.assemble.base import AssemblyJob, EditionMeta, Engine
from cptpub.assemble.builtin import BuiltinEngine
from cptpub.assemble.quarto import QuartoEngine, find_quarto
from cptpub.errors import UsageError

ENGINES: dict[str, type] = {"quarto": QuartoEngine, "builtin": BuiltinEngine}
ENGINE_CHOICES = ("auto", *ENGINES)


def get_engine(name: str) -> Engine:
    """The engine called ``name``; ``auto`` is Quarto when it is installed, else builtin.

    The chosen engine's ``name`` tells the caller which one ``auto`` picked.
    """
    if name == "auto":
        name = "quarto" if find_quarto() else "builtin"
    if name not in ENGINES:
        raise UsageError(f"unknown assembly engine {name!r}", hint=f"choose one of {', '.join(ENGINE_CHOICES)}")
    engine: Engine = ENGINES[name]()
    return engine


__all__ = [
    "ENGINES",
    "ENGINE_CHOICES",
    "AssemblyJob",
    "BuiltinEngine",
    "EditionMeta",
    "Engine",
    "QuartoEngine",
    "get_engine",
]
