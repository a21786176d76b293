"""Publishing an edition's data: ``dist/data/cpt-CODE.json`` beside the HTML and PDF, and its archive copy.

The worker that builds an edition computes its figures from the very context the edition was written from
(:func:`cptpub.analysis.snapshot.current_figures`) and ships them with the HTML and PDF. The batch runner calls
:meth:`EditionData.publish` in the main process as it publishes the edition, before rewriting the manifest: the
figures are compared with the snapshot they replace (:func:`cptpub.analysis.changes.with_changes`) and written
atomically. The manifest entry gets ``data`` (file and
checksum) and ``changes`` (since, material, summary lines), which the catalogue and ``dist/feed.xml`` read.

``dist/data/history/cpt-CODE-DATE.json`` keeps a copy of each edition's snapshot by edition date (the newest build
of a date wins); ``cptpub changes --since DATE`` compares with it. No manifest entry claims the history, and
nothing removes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cptpub.analysis.changes import Thresholds, load_thresholds, summary_lines, with_changes
from cptpub.analysis.snapshot import (
    DATA_FOLDER,
    SNAPSHOT_FORMAT,
    read_snapshot,
    snapshot_bytes,
    snapshot_name,
    snapshot_path,
)
from cptpub.errors import CptpubError
from cptpub.project import Project

HISTORY_FOLDER = "history"


def history_path(dist_dir: Path, code: str, edition_date: str) -> Path:
    return Path(dist_dir) / DATA_FOLDER / HISTORY_FOLDER / f"cpt-{code}-{edition_date}.json"


def snapshot_as_of(dist_dir: Path, code: str, day: dt.date) -> dict[str, Any] | None:
    """The snapshot of the edition of ``code`` that was current on ``day``: the newest published one dated on or
    before it (the archive, then the current snapshot); None when there was none."""
    candidates: list[tuple[str, Path]] = []
    folder = Path(dist_dir) / DATA_FOLDER / HISTORY_FOLDER
    prefix = f"cpt-{code}-"
    if folder.is_dir():
        for path in folder.glob(f"{prefix}*.json"):
            stamp = path.name.removeprefix(prefix).removesuffix(".json")
            try:
                if dt.date.fromisoformat(stamp) <= day:
                    candidates.append((stamp, path))
            except ValueError:
                continue
    current = read_snapshot(snapshot_path(dist_dir, code))
    if current is not None and str(current.get("edition_date")) <= day.isoformat():
        candidates.append((str(current["edition_date"]), snapshot_path(dist_dir, code)))
    if not candidates:
        return None
    return read_snapshot(max(candidates)[1])


def previous_snapshot(dist_dir: Path, code: str) -> dict[str, Any] | None:
    """The published snapshot of ``code``; an unreadable one counts as none (the next edition is a first edition)."""
    try:
        return read_snapshot(snapshot_path(dist_dir, code))
    except CptpubError:
        return None


def manifest_changes(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a manifest entry says of an edition's changes: ``{"since", "material", "summary"}``, or None."""
    if changes is None:
        return None
    return {"since": changes.get("since"), "material": bool(changes.get("material")), "summary": summary_lines(changes)}


class EditionData:
    """Computes and writes each published edition's snapshot (one per batch, in the main process)."""

    def __init__(self, project: Project, thresholds: Thresholds | None = None):
        self.project = project
        self.thresholds = thresholds or load_thresholds(project.report_dir)

    def prepare(self, dist_dir: Path, code: str, figures: bytes) -> tuple[dict[Path, bytes], dict[str, Any]]:
        """``code``'s snapshot from ``figures`` (``snapshot_bytes(current_figures(ctx))`` of its build) and the
        previous snapshot: the files to write (the snapshot and its history copy, published together with the
        edition's other files) and the manifest fields ``data`` and ``changes``."""
        current = json.loads(figures)
        if not isinstance(current, dict) or current.get("format") != SNAPSHOT_FORMAT or current.get("code") != code:
            raise CptpubError(f"the build of {code} sent back figures of another shape", where=snapshot_name(code))
        snapshot = with_changes(previous_snapshot(dist_dir, code), current, self.thresholds)
        data = snapshot_bytes(snapshot)
        files = {snapshot_path(dist_dir, code): data, history_path(dist_dir, code, snapshot["edition_date"]): data}
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
        fields = {
            "data": {"file": snapshot_name(code), "sha256": hashlib.sha256(data).hexdigest()},
            "changes": manifest_changes(snapshot["changes"]),
        }
        return files, fields
