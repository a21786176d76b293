"""Hostile YAML: repeated keys, alias bombs, and mutated records (hypothesis) in every YAML file cptpub reads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cptpub.assemble.config import load_config
from cptpub.errors import AssemblyError, CptpubError, RecordError
from cptpub.records import load_payers, load_record
from cptpub.yamlfile import MAX_EXPANDED_VALUES

from .conftest import REPO, run_cptpub

# Ten nested aliases, each repeating the one before ten times (10^10 values once expanded), beside one value
# YAML cannot build: the probe that hung `validate`, `list` and `build` for about 25 minutes.
ALIAS_BOMB = (
    "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else ', '.join(['x'] * 10)}]\n" for i in range(10))
    + "edition_date: 2026-13-45\n"
)


def test_alias_bomb_is_small():
    assert len(ALIAS_BOMB.encode()) < 800


def test_repeated_key_in_a_record_names_the_file_and_both_lines(project: Path):
    path = project / "data" / "codes" / "20799.yaml"
    path.write_text("title: First title\nadd_on: true\ntitle: Second title\n", encoding="utf-8")
    with pytest.raises(RecordError) as err:
        load_record(project / "data" / "codes", "20799")
    assert str(err.value).startswith(f"{path}:3: key 'title' appears twice in one mapping, at lines 1 and 3")


def test_repeated_key_in_a_nested_mapping_of_the_payer_catalogue(tmp_path: Path):
    path = tmp_path / "payers.yaml"
    text = (REPO / "data" / "payers.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    name_line = next(i for i, line in enumerate(lines) if line.strip().startswith("- name:"))
    indent = lines[name_line].index("name:")
    lines.insert(name_line + 1, " " * indent + "name: Duplicate")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as err:
        load_payers(path)
    assert str(err.value).startswith(f"{path}:{name_line + 2}: key 'name' appears twice")
    assert f"at lines {name_line + 1} and {name_line + 2}" in str(err.value)


def test_repeated_key_in_the_report_settings(tmp_path: Path):
    report = tmp_path / "report"
    shutil.copytree(REPO / "report", report)
    path = report / "_quarto.yml"
    path.write_text(path.read_text(encoding="utf-8") + "lang: fr\nlang: de\n", encoding="utf-8")
    with pytest.raises(AssemblyError) as err:
        load_config(report)
    assert "key 'lang' appears twice" in str(err.value)
    assert str(err.value).startswith(f"{path}:")


def test_same_key_in_different_mappings_is_fine(project: Path):
    path = project / "data" / "codes" / "20799.yaml"
    path.write_text(
        "title: T\nmodifiers:\n  - {modifier: '59', description: a, when_to_use: x}\n"
        "  - {modifier: XS, description: b, when_to_use: y}\n",
        encoding="utf-8",
    )
    assert [m.modifier for m in load_record(project / "data" / "codes", "20799").modifiers] == ["59", "XS"]


def test_alias_bomb_is_refused_at_once_by_validate_list_and_build(project: Path):
    """The 700-byte bomb: each command answers within its timeout with the alias's line (it used to take ~25 min)."""
    path = project / "data" / "codes" / "20799.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    for args in (("validate",), ("build", "20799")):
        result = run_cptpub(project, *args, check=False, timeout=120)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert f"{path}:6:" in result.stderr  # l5's line: its *l4 is the first alias worth over 100,000 values
        assert f"the aliases expand to more than {MAX_EXPANDED_VALUES:,} values" in result.stderr, result.stderr
    listing = run_cptpub(project, "list", timeout=120)  # lists the record as invalid, and the others
    assert "20799" in listing.stdout and "20702" in listing.stdout


def test_aliases_that_expand_to_little_are_allowed_and_invalid_values_still_named(project: Path):
    path = project / "data" / "codes" / "20799.yaml"
    path.write_text(
        "title: &t Shared title\nservice_type: *t\nsites_of_service: &s [a, b]\nedition_date: 2026-13-45\n",
        encoding="utf-8",
    )
    with pytest.raises(RecordError) as err:
        load_record(project / "data" / "codes", "20799")
    assert str(err.value).startswith(f"{path}:4:")
    path.write_text("title: &t Shared title\nservice_type: *t\n", encoding="utf-8")
    record = load_record(project / "data" / "codes", "20799")
    assert record.service_type == "Shared title"


# --- property: a mutated record loads, or fails with `file:line: ...` (never an internal error, never a hang) --

_BASE = (REPO / "data" / "codes" / "20702.yaml").read_text(encoding="utf-8")
_LINES = _BASE.splitlines(keepends=True)
_YAML_BITS = [
    ":",
    "- ",
    "&a ",
    "*a",
    "*nope",
    "<<: *a\n",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "\t",
    "#",
    "!!python/object:os.system ",
    "!!binary ",
    "? ",
    "|",
    ">-",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "\\",
    "2026-13-45",
    "\x00",
    "\ud800",
    "\u202e",
    "\ufeff",
    "~",
    "1e309",
    "9" * 5000,
    "title: again\n",
]
_LOCATED = re.compile(r"^\s*(?P<path>.+?\.yaml):\d+(:\d+)?: \S")


@st.composite
def mutated_records(draw) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "swap", "text", "indent"]))
        if kind == "insert":
            line = lines[where]
            at = draw(st.integers(0, len(line)))
            bit = draw(st.one_of(st.sampled_from(_YAML_BITS), st.text(max_size=20)))
            lines[where] = line[:at] + bit + line[at:]
        elif kind == "delete" and len(lines) > 1:
            del lines[where]
        elif kind == "duplicate":
            lines.insert(where, lines[where])
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[where], lines[other] = lines[other], lines[where]
        elif kind == "text":
            lines[where] = draw(st.text(max_size=60)) + "\n"
        else:
            lines[where] = " " * draw(st.integers(1, 6)) + lines[where]
    return "".join(lines)


@settings(
    max_examples=150,
    deadline=5000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated_records())
def test_mutated_records_load_or_fail_with_file_and_line(tmp_path: Path, text: str):
    codes = tmp_path / "codes"
    codes.mkdir(exist_ok=True)
    path = codes / "20702.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        record = load_record(codes, "20702")
    except CptpubError as exc:
        lines = str(exc).splitlines()
        assert lines, exc
        for line in lines:
            if line.strip().startswith("hint:"):
                continue
            match = _LOCATED.match(line)
            assert match and match["path"] == str(path), f"not located: {line!r}"
    else:
        assert record.title is None or isinstance(record.title, str)


def test_bytes_that_are_not_utf8_or_not_allowed_in_yaml_are_named_with_their_line(project: Path):
    path = project / "data" / "codes" / "20799.yaml"
    cases = ((b"title: ok\nsummary: caf\xe9\n", ":2: not UTF-8 text"), (b"title: ok\n\x01x: 1\n", ":2:1:"))
    for data, expected in cases:
        path.write_bytes(data)
        with pytest.raises(RecordError) as err:
            load_record(project / "data" / "codes", "20799")
        assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


def test_a_value_yaml_cannot_build_is_one_line_naming_its_line(project: Path):
    """Found by hypothesis: a ConstructorError's text quotes the file over several lines."""
    path = project / "data" / "codes" / "20799.yaml"
    for text in ("title: ok\nsummary: !!binary T84.620A\n", "title: ok\nsummary: !!python/object:os.system x\n"):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(RecordError) as err:
            load_record(project / "data" / "codes", "20799")
        assert str(err.value).startswith(f"{path}:2:") and "\n" not in str(err.value), str(err.value)


def test_an_edited_payer_catalogue_and_report_config_are_seen_by_the_next_edition(tmp_path):
    """A worker parses the payer catalogue and ``_quarto.yml`` once per version of the file: an edit is seen at
    the next read, even one of the same size within the same file time (an editor saving twice in a tick)."""
    import os

    from cptpub.analysis.changes import load_thresholds

    payers = tmp_path / "payers.yaml"
    shutil.copy(REPO / "data" / "payers.yaml", payers)
    config = tmp_path / "_quarto.yml"
    config.write_text("cptpub:\n  changes:\n    median-percent: 5\n", encoding="utf-8")
    assert load_payers(payers).payers[0].name == "Aetna"
    assert load_thresholds(tmp_path).median_percent == 5

    for path, old, new in ((payers, "name: Aetna", "name: Aetnx"), (config, "median-percent: 5", "median-percent: 7")):
        times = path.stat()
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))  # same size, same modification time
        assert path.stat().st_size == times.st_size
    assert load_payers(payers).payers[0].name == "Aetnx"
    assert load_thresholds(tmp_path).median_percent == 7


def test_each_reader_of_a_yaml_file_gets_its_own_data(tmp_path):
    from cptpub.yamlfile import read_yaml

    path = tmp_path / "settings.yml"
    path.write_text("format:\n  html:\n    toc: true\n", encoding="utf-8")
    first, _ = read_yaml(path)
    first["format"]["html"]["toc"] = False  # a caller changing what it was given
    assert read_yaml(path)[0] == {"format": {"html": {"toc": True}}}
