"""YAML files are parsed by libyaml when they have no aliases or repeated keys, with the data PyYAML's own parser
gives; anything else goes through PyYAML's parser, whose checks name the problem (``cptpub.yamlfile``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cptpub import yamlfile
from cptpub.errors import RecordError

REPO = Path(__file__).resolve().parents[1]
PROJECT_YAML = sorted([*(REPO / "data").rglob("*.yaml"), REPO / "report" / "_quarto.yml"])


def pure_python(text: str) -> object:
    return yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 (SafeLoader)


@pytest.mark.parametrize("path", PROJECT_YAML, ids=lambda path: str(path.relative_to(REPO)))
def test_the_projects_files_take_the_libyaml_path_with_the_same_data(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    parsed = yamlfile._parse_plain_with_libyaml(text)
    assert parsed is not None, "parsed by libyaml"
    assert parsed[0] == pure_python(text)
    data, root = yamlfile.read_yaml(path, RecordError)
    assert data == pure_python(text)
    # Error messages name lines from the node tree: libyaml's marks are PyYAML's.
    assert places(root) == places(yaml.compose(text, Loader=yaml.SafeLoader))


def places(node: yaml.Node | None) -> list[tuple[int, int, int, int]]:
    """Where every node starts and ends, in document order."""
    if node is None:
        return []
    here = [(node.start_mark.line, node.start_mark.column, node.end_mark.line, node.end_mark.column)]
    if isinstance(node, yaml.SequenceNode):
        return here + [place for child in node.value for place in places(child)]
    if isinstance(node, yaml.MappingNode):
        return here + [place for pair in node.value for child in pair for place in places(child)]
    return here


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=values, style=st.sampled_from([None, '"', "'", "|", ">"]), flow=st.booleans())
def test_any_dumped_data_reads_back_as_pythons_parser_reads_it(tmp_path_factory, value, style, flow) -> None:
    text = yaml.safe_dump({"key": value}, default_style=style, default_flow_style=flow, allow_unicode=True)
    path = tmp_path_factory.mktemp("yaml") / "data.yaml"
    path.write_text(text, encoding="utf-8")
    assert yamlfile.read_yaml(path, RecordError)[0] == pure_python(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &x [1, 2]\nb: *x\n", None),  # an alias: parsed by PyYAML's parser, which sizes the aliases
        ("title: one\ntitle: two\n", "key 'title' appears twice in one mapping, at lines 1 and 2"),
        ("a: [1, 2\n", "YAML syntax error"),
        ("day: 2026-13-45\n", "invalid value '2026-13-45'"),
        ("a: \x07\n", "is not allowed in YAML"),
    ],
)
def test_what_libyaml_does_not_vouch_for_goes_to_pythons_parser(tmp_path: Path, text: str, problem: str | None) -> None:
    assert yamlfile._parse_plain_with_libyaml(text) is None
    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    if problem is None:
        assert yamlfile.read_yaml(path, RecordError)[0] == pure_python(text)
    else:
        with pytest.raises(RecordError, match=problem):
            yamlfile.read_yaml(path, RecordError)
