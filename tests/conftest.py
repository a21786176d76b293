"""Shared fixtures: a copy of the project in a temporary folder, and the demo built through the real commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cptpub.demo.generator import PPRRVU_FILE_NAME

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # copies of public files; see tests/fixtures/README.md
CPTPUB = [sys.executable, "-m", "cptpub.cli"]


def copy_project(dest: Path) -> Path:
    """A fresh project: the repository's data, notebooks and report template, without build outputs."""
    for name in ("data", "notebooks", "report"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("figures", ".ipynb_checkpoints"))
    return dest


def run_cptpub(project: Path, *args: str, check: bool = True, env: dict | None = None, timeout: float = 600):
    """Run the real CLI in ``project``; returns the CompletedProcess."""
    environment = {k: v for k, v in os.environ.items() if k != "CPTPUB_STORE"}
    environment.update({"CPTPUB_PROJECT": str(project), **(env or {})})
    result = subprocess.run(
        [*CPTPUB, *args], cwd=project, env=environment, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cptpub {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture
def bare_project(tmp_path: Path, monkeypatch) -> Path:
    """A project with the repository's payer catalogue and no code records yet, selected for in-process CLI calls."""
    root = tmp_path / "project"
    (root / "data" / "codes").mkdir(parents=True)
    shutil.copy(REPO / "data" / "payers.yaml", root / "data" / "payers.yaml")
    monkeypatch.setenv("CPTPUB_PROJECT", str(root))
    monkeypatch.delenv("CPTPUB_STORE", raising=False)
    return root


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory) -> Path:
    from cptpub.demo import write_demo_inputs

    folder = tmp_path_factory.mktemp("demo-inputs")
    write_demo_inputs(folder)
    return folder


@pytest.fixture(scope="session")
def ingested_project(tmp_path_factory, demo_inputs: Path) -> Path:
    """A project whose rates store holds the demo files, ingested with the commands `make demo` runs."""
    root = copy_project(tmp_path_factory.mktemp("ingested") / "project")
    run_cptpub(root, "ingest", "pfs", str(demo_inputs / PPRRVU_FILE_NAME))
    run_cptpub(root, "ingest", "tic", str(demo_inputs))
    return root


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory, ingested_project: Path) -> Path:
    """The demo publications of 20702 and 20705 built with the builtin engine (one of each record shape)."""
    root = copy_project(tmp_path_factory.mktemp("built") / "project")
    shutil.copytree(ingested_project / "build", root / "build")
    run_cptpub(root, "build", "20702", "20705", "--engine", "builtin")
    return root


# `make test` installs Chromium and poppler-utils, then sets CPTPUB_REQUIRE_SYSTEM_TOOLS=1: there, a test that
# would be skipped for a missing system tool fails instead, so a green run really ran the browser and PDF checks.
# Only Quarto's real-render test may still skip (Quarto cannot be installed from this project's registries).
SYSTEM_TOOL_HINTS = ("chromium", "pdftoppm", "playwright")


def _fail_skips_for_missing_tools(report) -> None:
    if report.skipped and os.environ.get("CPTPUB_REQUIRE_SYSTEM_TOOLS") == "1":
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if any(hint in reason.lower() for hint in SYSTEM_TOOL_HINTS):
            report.outcome = "failed"
            report.longrepr = f"required system tool missing under make test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skips_for_missing_tools(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skips_for_missing_tools(outcome.get_result())
