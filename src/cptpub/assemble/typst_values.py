"""Python values as Typst source: how cptpub hands data to a Typst template without injection.

Strings become string literals with every quote, backslash and control character escaped, so text
from records or payers can never end a literal and run as Typst code. Only ``Length`` values, which
are checked against a strict pattern first, are written as bare code.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cptpub.escape import typst_string

_KEY = re.compile(r"^[a-z][a-z0-9-]*$")
LENGTH_PATTERN = re.compile(r"^\d+(\.\d+)?(pt|mm|cm|in|em)$")


@dataclass(frozen=True)
class Length:
    """A Typst length such as ``2.5cm``; rejected unless it is one number and one unit."""

    text: str

    def __post_init__(self) -> None:
        if not LENGTH_PATTERN.fullmatch(self.text):
            raise ValueError(f"not a Typst length: {self.text!r}")


def typst_value(value: object) -> str:
    """Typst source for ``value``: None, bool, int, str, date, Length, sequences and str-keyed mappings."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return typst_string(value)
    if isinstance(value, Length):
        return value.text
    if isinstance(value, datetime.date):
        return f"datetime(year: {value.year}, month: {value.month}, day: {value.day})"
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise ValueError(f"not a Typst dictionary key: {key!r}")
        return "(" + "".join(f"{key}: {typst_value(item)}, " for key, item in value.items()) + ")" if value else "(:)"
    if isinstance(value, Sequence):
        return "(" + "".join(f"{typst_value(item)}, " for item in value) + ")"
    raise TypeError(f"no Typst form for {type(value).__name__}")
