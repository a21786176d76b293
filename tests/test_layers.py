"""The package's layering, checked from the source: each stage imports only itself and earlier stages, and a name is
imported from the module that defines it (a package's ``__init__`` may re-export its public names)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

SRC = REPO / "src" / "cptpub"
# Pipeline stages in order (see cptpub/__init__.py); a module may import its own stage and earlier ones.
STAGE = {
    "errors": 0, "atomic": 0, "escape": 0, "project": 0, "yamlfile": 0, "dates": 0,
    "records": 1, "store": 1, "ingest": 1, "demo": 1,
    "analysis": 2, "sections": 2, "publishable": 2,
    "execute": 3, "cell_timeout": 3, "inline": 3, "running_cell": 3,
    "assemble": 4,
    "edition": 5, "batch": 5, "publish": 5, "validate": 5,
    "cli": 6,
}  # fmt: skip
# Within a stage: the demo generator writes what the ingest reads, never the other way round; the ingest commands
# do not reach into the batch builder.
FORBIDDEN = {("ingest", "cptpub.demo"), ("cli/ingest.py", "cptpub.batch")}


def modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(SRC.rglob("*.py"))}


def imports(tree: ast.Module) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import of a cptpub module, wherever it sits in the file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cptpub":
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "cptpub"]
    return found


def stage_of(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def test_every_module_imports_only_its_own_and_earlier_stages():
    problems = []
    for path, tree in modules().items():
        rel = path.relative_to(SRC)
        here = rel.parts[0].removesuffix(".py")
        if here in ("__init__", "py.typed"):
            continue
        assert here in STAGE, f"{rel}: a new top-level module; give it a stage in tests/test_layers.py"
        for module, _, line in imports(tree):
            there = stage_of(module)
            if there and STAGE.get(there, 99) > STAGE[here]:
                problems.append(f"{rel}:{line}: {here} (stage {STAGE[here]}) imports {module}")
            for scope, banned in FORBIDDEN:
                if (rel.as_posix() == scope or rel.parts[0] == scope) and module.startswith(banned):
                    problems.append(f"{rel}:{line}: imports {module}")
    assert not problems, "\n".join(problems)


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_names_are_imported_from_the_module_that_defines_them():
    trees = modules()
    problems = []
    for path, tree in trees.items():
        for module, names, line in imports(tree):
            source = SRC.parent / (module.replace(".", "/") + ".py")
            if not source.exists():  # a package: its __init__ may re-export
                continue
            defined = _defined_names(trees[source])
            for name in names:
                if name not in defined and not (SRC.parent / module.replace(".", "/") / f"{name}.py").exists():
                    problems.append(f"{path.relative_to(SRC)}:{line}: {name} is not defined in {module}")
    assert not problems, "\n".join(problems)
