"""Crafted payer files (issue 15): each a one-line error naming the file and the place, exit 1, the store
unchanged, and the files after it still ingested; the documented limits name themselves; mutated valid files never
give an internal error (hypothesis)."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cptpub.cli import main
from cptpub.errors import IngestError
from cptpub.ingest.jsonscan import MAX_DEPTH, MAX_NUMBER_CHARS, MAX_STRING_BYTES
from cptpub.ingest.tic import ingest_tic_file
from cptpub.ingest.toc import read_toc
from cptpub.records.load import load_payers
from cptpub.store import RatesStore

from .conftest import FIXTURES, REPO

TIC = FIXTURES / "tic"
FFS = TIC / "v2/in-network-rates-fee-for-service-single-plan-sample.json"
TOC = TIC / "v1/table-of-contents-sample.json"
GOOD = TIC / "v1/in-network-rates-no-npi.json"
PRICE = '"negotiated_rate": 123.45'
NAME = '"name": "Knee Replacement"'
CODE = '"billing_code": "27447"'
GROUP_ID = '"provider_group_id": 1,'
NETWORK = '"network_name": ["ACME Choice Provider Group"]'


def _crafted(text: str, name: str) -> str:
    return {
        "deep nesting in a wanted item": text.replace(NAME, NAME + ', "extra": ' + "[" * 100_000 + "]" * 100_000),
        "a 5,000-digit price": text.replace(PRICE, '"negotiated_rate": ' + "9" * 5000),
        "a 5,000-digit billing code": text.replace(CODE, '"billing_code": ' + "7" * 5000),
        "a 5,000-digit group id": text.replace(GROUP_ID, '"provider_group_id": ' + "1" * 5000 + ","),
        "a lone surrogate in a name": text.replace(NAME, '"name": "Knee \\ud800 Replacement"'),
        "NaN as a group id": text.replace(GROUP_ID, '"provider_group_id": NaN,'),
        "a repeated key": text.replace(CODE, CODE + ', "billing_code": "99999"'),
        "a repeated key in a price": text.replace(PRICE, PRICE + ', "negotiated_rate": 1.0', 1),
        "a repeated key in a provider reference": text.replace(NETWORK, NETWORK + ', "network_name": ["x"]', 1),
        "a line break inside a name": text.replace(NAME, '"name": "Knee\nReplacement"'),
        "a repeated header key": text.replace('"plan_name"', '"reporting_entity_name": "Cigna", "plan_name"'),
        "a 60 MB top-level string": text.replace('"version"', '"padding": "' + "x" * (60 << 20) + '", "version"'),
    }[name]


CRAFTED = [
    ("deep nesting in a wanted item", f"nesting deeper than the limit of {MAX_DEPTH} levels"),
    ("a 5,000-digit price", f"longer than the limit of {MAX_NUMBER_CHARS}"),
    ("a 5,000-digit billing code", f"longer than the limit of {MAX_NUMBER_CHARS}"),
    ("a 5,000-digit group id", f"longer than the limit of {MAX_NUMBER_CHARS}"),
    ("a lone surrogate in a name", "lone UTF-16 surrogate"),
    ("NaN as a group id", "NaN is not a JSON value"),
    ("a repeated key", "'billing_code' appears twice"),
    ("a repeated key in a price", "'negotiated_rate' appears twice"),
    ("a repeated key in a provider reference", "'network_name' appears twice"),
    ("a line break inside a name", "Invalid control character"),
    ("a repeated header key", "'reporting_entity_name' appears twice"),
    ("a 60 MB top-level string", f"a string longer than the limit of {MAX_STRING_BYTES >> 20} MiB"),
]


@pytest.mark.parametrize(("name", "message"), CRAFTED, ids=[name for name, _ in CRAFTED])
def test_a_crafted_file_fails_alone_with_a_one_line_error(name, message, bare_project, tmp_path, capsys):
    bad = tmp_path / "crafted.json"
    bad.write_text(_crafted(FFS.read_text(), name))
    started = time.monotonic()
    status = main(["ingest", "tic", str(GOOD), str(bad), str(FFS)])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert status == 1
    failed = [line for line in err.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and str(bad) in failed[0] and "byte " in failed[0] and message in failed[0], err
    assert "internal error" not in err
    con = RatesStore(bare_project / "build" / "rates.duckdb").connect(read_only=True)
    names = sorted(n for (n,) in con.execute("SELECT file_name FROM sources").fetchall())
    con.close()
    assert names == sorted([GOOD.name, FFS.name])  # the file after the bad one was ingested
    assert seconds < 60  # linear: a 60 MB string is refused after reading 16 MiB of it


@pytest.mark.parametrize(
    ("name", "replace", "by", "message"),
    [
        ("deep nesting", '"version": "1.4.0"', '"version": "1.4.0", "x": ' + "[" * 100_000, "nesting deeper"),
        ("huge number", '"plan_id": "1111111111"', '"plan_id": ' + "1" * 5000, "longer than the limit"),
        ("lone surrogate", '"plan_name": "medicaid"', '"plan_name": "\\ud800"', "lone UTF-16 surrogate"),
        ("NaN", '"plan_id": "1111111111"', '"plan_id": NaN', "NaN is not a JSON value"),
        ("repeated key", '"plan_name": "medicaid"', '"plan_name": "medicaid", "plan_name": "x"', "appears twice"),
    ],
)
def test_a_crafted_table_of_contents_fails_with_an_error_naming_it(name, replace, by, message, tmp_path):
    path = tmp_path / "toc.json"
    path.write_text(TOC.read_text().replace(replace, by))
    with pytest.raises(IngestError, match=message) as failure:
        read_toc(path)
    assert str(path) in str(failure.value) and "byte " in str(failure.value)


# --- mutated valid files: either ingested or a clean error naming the file -------------------------------------

MUTATIONS = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.sampled_from(["delete", "insert", "replace", "duplicate"]),
        st.sampled_from(['"', "[", "]", "{", "}", ",", ":", "0", "-1", "1e999", "NaN", "\\", "\\ud800", "null", " "]),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(text: str, mutations) -> str:
    for where, how, token in mutations:
        at = int(where * len(text))
        if how == "delete":
            text = text[:at] + text[at + 1 :]
        elif how == "insert":
            text = text[:at] + token + text[at:]
        elif how == "replace":
            text = text[:at] + token + text[at + len(token) :]
        else:
            text = text[:at] + text[at : at + 20] + text[at:]
    return text


CI = settings(max_examples=160, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@CI
@given(mutations=MUTATIONS, keep_all=st.booleans())
def test_a_mutated_in_network_file_is_ingested_or_refused_cleanly(tmp_path_factory, mutations, keep_all):
    folder = tmp_path_factory.mktemp("mutated")
    path = folder / "mutated.json"
    path.write_text(_mutate(FFS.read_text(), mutations))
    store = RatesStore(folder / "rates.duckdb")
    try:
        ingest_tic_file(
            store, path, codes=None if keep_all else {"27447"}, catalogue=_CATALOGUE, payer_override="Aetna"
        )
    except IngestError as exc:
        assert str(path) in str(exc)
        assert "\n" not in exc.message
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@CI
@given(mutations=MUTATIONS)
def test_a_mutated_table_of_contents_is_read_or_refused_cleanly(tmp_path_factory, mutations):
    folder = tmp_path_factory.mktemp("mutated-toc")
    path = folder / "toc.json"
    path.write_text(_mutate(TOC.read_text(), mutations))
    try:
        contents = read_toc(path)
        json.dumps(contents.as_json())
    except IngestError as exc:
        assert str(path) in str(exc)
        assert "\n" not in exc.message
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_CATALOGUE = load_payers(REPO / "data" / "payers.yaml")
