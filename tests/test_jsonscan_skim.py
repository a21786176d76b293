"""Skimming (``select_elements(..., skim=True)``) steps over unwanted elements without indexing their bytes: it must
select exactly what the indexed reader selects, whatever the elements hold and wherever the chunks are cut."""

from __future__ import annotations

import json

import pytest

from cptpub.ingest.jsonscan import MISSING, JsonFormatError, JsonReader, index_chunks

ITEM = (
    '{{"negotiation_arrangement":"ffs","name":"{name}","billing_code":{code},'
    '"negotiated_rates":[{{"p":[1,{{"q":2}}]}}]}}'
)
ELEMENTS = [
    ITEM.format(name="plain", code='"A1"'),
    ITEM.format(name="plain", code='"WANT"'),
    # a billing_code inside a nested object before the element's own
    '{"negotiation_arrangement":"ffs","bundled_codes":[{"billing_code":"WANT"}],"billing_code":"B2"}',
    # the opening of the next element, written inside a string (escaped quotes)
    '{"negotiation_arrangement":"ffs","name":"x},{\\"negotiation_arrangement\\":","billing_code":"C3"}',
    # a string value that reads like the member name
    '{"negotiation_arrangement":"ffs","name":"billing_code","billing_code":"D4"}',
    # a repeated member: the first counts, as for the indexed reader, in either order
    '{"negotiation_arrangement":"ffs","billing_code":"E5","billing_code":"WANT"}',
    '{"negotiation_arrangement":"ffs","billing_code":"WANT","billing_code":"E6"}',
    # the wanted code inside a description string, with the opening of the next element before it
    '{"negotiation_arrangement":"ffs","description":"},{\\"billing_code\\":\\"WANT\\"","billing_code":"H8"}',
    # an escaped code, and a code that is null
    '{"negotiation_arrangement":"ffs","billing_code":"W\\u0041NT"}',
    '{"negotiation_arrangement":"ffs","billing_code":null}',
    '{"negotiation_arrangement":"ffs","name":"no code here"}',
    ITEM.format(name="a number", code="27447"),
    ITEM.format(name="brackets [in] {a} string", code='"F6"'),
    '{"negotiation_arrangement":"ffs","negotiated_rates":[],"billing_code":"WANT"}',
]


def _keep(value):
    return value == "WANT" or not isinstance(value, str)


def _selected(document: bytes, chunk: int, skim: bool) -> tuple[list, int]:
    pieces = [document[i : i + chunk] for i in range(0, len(document), chunk)]
    reader = JsonReader(pieces if skim else index_chunks(pieces))
    found = []
    for key in reader.iter_members():
        assert key == "in_network"
        for index, value in reader.select_elements("billing_code", _keep, skim=skim):
            found.append((index, "MISSING" if value is MISSING else value, reader.pos))
            if index % 2:  # the caller reads some of the elements it selects, and leaves the others
                reader.read_value()
        count = reader.element_index
    assert reader.at_end()
    return found, count


@pytest.mark.parametrize("separator", [",", ", ", ",\n  "])
@pytest.mark.parametrize("chunk", [7, 64, 1000, 1 << 20])
def test_skimming_selects_what_the_indexed_reader_selects(separator, chunk):
    elements = (ELEMENTS * 20)[:-3] + [ITEM.format(name="plain", code='"G7"')] * 200
    document = ('{"in_network":[' + separator.join(elements) + "]}").encode()
    json.loads(document)  # the document is valid JSON
    indexed = _selected(document, chunk, skim=False)
    skimmed = _selected(document, chunk, skim=True)
    assert skimmed == indexed
    assert indexed[1] == len(elements)
    assert {value for _, value, _ in indexed[0]} == {"WANT", 27447, "MISSING", None}


@pytest.mark.parametrize("separator", [",", ",\n  "])
@pytest.mark.parametrize("chunk", [7, 1000, 1 << 20])
def test_elements_a_skim_hands_to_pick_are_those_the_indexed_reader_selects(separator, chunk):
    """``pick`` gets the bytes, member and place of a wanted element a skim found whole; what it refuses is yielded. The
    elements picked and yielded, in order, are those the indexed reader yields, with the same bytes."""
    codes = ['"WANT"' if n % 37 == 5 else "27447" if n % 101 == 7 else f'"{n:05d}"' for n in range(600)]
    elements = [ITEM.format(name="plain", code=code) for code in codes]  # a number is yielded, never picked
    document = ('{"in_network":[' + separator.join(elements) + "]}").encode()

    def selected(skim: bool) -> tuple[list, int, int]:
        pieces = [document[i : i + chunk] for i in range(0, len(document), chunk)]
        reader = JsonReader(pieces if skim else index_chunks(pieces))
        found: list = []
        picked = 0

        def pick(data: bytes, value: str, index: int, offset: int) -> bool:  # takes every other element offered
            nonlocal picked
            assert elements[index].encode() == document[offset : offset + len(data)] == data  # its place
            if len(found) % 2:
                return False
            found.append((value, json.loads(data)))
            picked += 1
            return True

        for _ in reader.iter_members():
            for _, value in reader.select_elements("billing_code", _keep, skim=skim, pick=pick if skim else None):
                element = json.loads(bytes(reader.bounded_value(1 << 30)[0]))  # type: ignore[index]
                found.append(("MISSING" if value is MISSING else value, element))
        return found, reader.element_index, picked

    indexed, count, _ = selected(skim=False)
    skimmed, skimmed_count, picked = selected(skim=True)
    assert skimmed == indexed and skimmed_count == count == len(elements)
    if separator == "," and chunk >= 1000:  # runs of minified elements are skimmed once a chunk shows their opening
        assert picked >= 9 and len(indexed) == 23


def test_skimming_steps_over_runs_of_minified_elements_without_the_index(monkeypatch):
    """The comparison above is not vacuous: on a minified array most unwanted elements are skimmed."""
    stepped = []
    skim = JsonReader._skim

    def counted(self, *args):
        stepped.append(skim(self, *args))
        return stepped[-1]

    monkeypatch.setattr(JsonReader, "_skim", counted)
    elements = [ITEM.format(name="plain", code=f'"{n:05d}"') for n in range(500)]
    elements[250] = ITEM.format(name="plain", code='"WANT"')
    document = ('{"in_network":[' + ",".join(elements) + "]}").encode()
    found, count = _selected(document, 1000, skim=True)
    assert [value for _, value, _ in found] == ["WANT"] and found[0][0] == 250 and count == 500
    assert sum(stepped) > 400


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 20])
def test_after_a_skim_stops_the_rest_is_read_as_the_indexed_reader_reads_it(chunk, monkeypatch):
    """A skim that stops at a wanted element indexes that element only and gives back the bytes after it: what
    follows (more elements, wanted or not, the end of the array, the members after it) must still be read."""
    stops = []
    index_from = JsonReader._index_from

    def noted(self, offset, depth, until=None):
        stops.append(until)
        index_from(self, offset, depth, until)

    monkeypatch.setattr(JsonReader, "_index_from", noted)
    skipped = [ITEM.format(name="plain", code=f'"{n:05d}"') for n in range(50)]
    wanted = ITEM.format(name="plain", code='"WANT"')
    elements = [*skipped, wanted, *skipped, wanted, wanted, *skipped, wanted]
    document = ('{"in_network":[' + ",".join(elements) + '],"after":{"x":[1,{"y":"]"}]}}').encode()

    def selected(skim: bool) -> tuple[list, object]:
        pieces = [document[i : i + chunk] for i in range(0, len(document), chunk)]
        reader = JsonReader(pieces if skim else index_chunks(pieces))
        found, after = [], None
        for key in reader.iter_members():
            if key == "in_network":
                for index, value in reader.select_elements("billing_code", _keep, skim=skim):
                    found.append((index, "MISSING" if value is MISSING else value, reader.pos))
            else:
                after = (key, reader.read_value())
        assert reader.at_end()
        return found, after

    indexed = selected(skim=False)
    stops.clear()
    assert selected(skim=True) == indexed
    assert [index for index, _, _ in indexed[0]] == [50, 101, 102, 153]
    assert indexed[1] == ("after", {"x": [1, {"y": "]"}]})
    assert any(until is not None for until in stops)  # the skim did stop with bytes given back


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 20])
def test_a_bad_member_in_a_skimmed_run_is_reported_where_the_indexed_reader_reports_it(chunk):
    """A skimmed element's member is read from the run of elements msgspec checked, not from the window: an error
    in it must still name the byte of the document and the element, as the indexed reader does."""
    elements = [ITEM.format(name="plain", code=f'"{n:05d}"') for n in range(60)]
    elements[40] = ITEM.format(name="plain", code="1" * 150)  # a number longer than the limit
    document = ('{"in_network":[' + ",".join(elements) + "]}").encode()

    def failure(skim: bool) -> tuple[int, int, str]:
        pieces = [document[i : i + chunk] for i in range(0, len(document), chunk)]
        reader = JsonReader(pieces if skim else index_chunks(pieces))
        with pytest.raises(JsonFormatError) as raised:
            for _ in reader.iter_members():
                for _ in reader.select_elements("billing_code", _keep, skim=skim):
                    pass
        return raised.value.offset, reader.element_index, raised.value.message

    assert failure(skim=True) == failure(skim=False)
    offset, element, message = failure(skim=True)
    assert (offset, element) == (document.index(b"1" * 150), 40)
    assert "longer than the limit" in message


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 20])
def test_an_element_stepped_over_is_checked_as_json_when_its_run_is_not_valid(chunk):
    """A run of elements that msgspec refuses is read again by the indexed reader, which checks each element it
    steps over in that run as the skim did: the broken one is named with its byte, not stepped over."""
    elements = [ITEM.format(name="plain", code=f'"{n:05d}"') for n in range(60)]
    elements[40] = elements[40].replace('"p":[1,', '"p":[+1,')  # balanced brackets, not JSON
    document = ('{"in_network":[' + ",".join(elements) + "]}").encode()
    reader = JsonReader([document[i : i + chunk] for i in range(0, len(document), chunk)])
    with pytest.raises(JsonFormatError) as raised:
        for _ in reader.iter_members():
            for _ in reader.select_elements("billing_code", _keep, skim=True):
                pass
    assert (raised.value.offset, reader.element_index) == (document.index(b"+1"), 40)
    assert raised.value.message == "invalid JSON: invalid character"
