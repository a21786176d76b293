"""The demo generator writes real-format files, deterministically, marked as demo."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema

from cptpub.demo import DEMO_MARKER, write_demo_inputs
from cptpub.demo.generator import PPRRVU_FILE_NAME

from .conftest import FIXTURES


def test_demo_tic_files_are_valid_v2_in_network_files(demo_inputs: Path):
    schema = json.loads((FIXTURES / "tic" / "schemas-v2" / "in-network-rates" / "in-network-rates.json").read_text())
    files = sorted(demo_inputs.glob("*.json.gz"))
    assert len(files) == 4
    for path in files:
        document = json.loads(gzip.decompress(path.read_bytes()))
        jsonschema.validate(document, schema)
        assert document["reporting_entity_name"].startswith(DEMO_MARKER)
        assert DEMO_MARKER in document["plan_name"]


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path, demo_inputs: Path):
    again = write_demo_inputs(tmp_path / "again")
    for path in (*again.tic_files, again.pprrvu_file):
        assert path.read_bytes() == (demo_inputs / path.name).read_bytes(), path.name
    other = write_demo_inputs(tmp_path / "other", seed=1)
    assert other.tic_files[0].read_bytes() != again.tic_files[0].read_bytes()


def test_the_fee_schedule_file_is_cms_data_not_marked_demo(demo_inputs: Path):
    text = (demo_inputs / PPRRVU_FILE_NAME).read_text()
    assert DEMO_MARKER not in text
    assert text.splitlines()[0].split(",")[2] == "2026 National Physician Fee Schedule Relative Value File July Release"
