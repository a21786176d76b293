"""Atomic writes: what is published is synced before its rename; a build's scratch files are not waited for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cptpub.assemble import get_engine
from cptpub.atomic import write_atomic
from cptpub.edition import build_edition
from cptpub.execute import INPROCESS_ENGINE
from cptpub.project import Project


@pytest.fixture
def synced(monkeypatch) -> list[Path]:
    """Every file ``os.fsync`` is called on, in order."""
    files: list[Path] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        files.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return files


@pytest.mark.parametrize("durable", [True, False])
def test_write_atomic_replaces_the_file_whole_and_syncs_it_when_durable(tmp_path: Path, synced, durable):
    target = tmp_path / "out" / "cpt-20702.html"
    write_atomic(target, b"old")
    synced.clear()
    write_atomic(target, b"<p>new</p>", durable=durable)
    assert target.read_bytes() == b"<p>new</p>"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left beside it
    assert bool(synced) is durable
    assert all(p.name.startswith(".cpt-20702.html.") for p in synced)  # the temporary file, before its rename


def test_an_editions_scratch_files_are_not_synced_but_its_outputs_are(tmp_path: Path, ingested_project: Path, synced):
    workdir, out_dir = tmp_path / "work", tmp_path / "out"
    build_edition(
        Project(ingested_project),
        "20702",
        get_engine("builtin"),
        execution_engine=INPROCESS_ENGINE,
        workdir=workdir,
        out_dir=out_dir,
    )
    scratch = sorted(p.name for p in workdir.rglob("*") if p.is_file())
    assert "edition-context.pickle" in scratch and any(name.endswith(".svg") for name in scratch)
    assert not [p for p in synced if p.is_relative_to(workdir)], "scratch files of the build were synced"
    assert sorted(p.parent for p in synced) == [out_dir, out_dir]  # the page and the PDF, each before its rename


def test_a_batch_task_syncs_nothing_it_reads_back(tmp_path: Path, ingested_project: Path, synced):
    """A batch task renders into a staging folder and reads the files back at once: nothing is synced there (the
    main process publishes those bytes with ``replace_together``, which syncs each before its rename)."""
    from cptpub.batch.tasks import EditionTask, run_task

    project = Project(ingested_project)
    task = EditionTask(code="20702", key="k", formats=("html", "pdf"), engine="builtin", execution=INPROCESS_ENGINE)
    outcome = run_task(project, task, tmp_path / "work" / "20702")
    assert outcome.ok, outcome.failure
    assert synced == []
    assert {name for name, _ in outcome.files.values()} >= {"cpt-20702.html", "cpt-20702.pdf"}
