"""Rate files for refresh tests, made from the demo generator's files by plain JSON edits (no cptpub code)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DOLLAR_TYPES = {"negotiated", "fee schedule", "derived"}


def rewrite_tic(source: Path, dest: Path, *, last_updated_on: str, price, codes: set[str] | None = None) -> Path:
    """A copy of the TiC file ``source`` dated ``last_updated_on``, each dollar price of ``codes`` (default: all)
    replaced by ``price(old)``."""
    document = json.loads(gzip.decompress(source.read_bytes()))
    document["last_updated_on"] = last_updated_on
    for item in document["in_network"]:
        if codes is not None and item["billing_code"] not in codes:
            continue
        for rate in item["negotiated_rates"]:
            for p in rate["negotiated_prices"]:
                if p["negotiated_type"] in DOLLAR_TYPES:
                    p["negotiated_rate"] = price(p["negotiated_rate"])
    dest.write_bytes(gzip.compress(json.dumps(document).encode(), mtime=0))
    return dest


def professional_rates(path: Path, code: str) -> list[tuple]:
    """The distinct professional fee-for-service dollar rates of ``code`` in a TiC file, one per provider group
    (EIN), type, amount, setting and places of service: read straight from the file, as a reader would."""
    document = json.loads(gzip.decompress(path.read_bytes()))
    groups = {}
    for ref in document.get("provider_references", []):
        groups[ref["provider_group_id"]] = [g["tin"]["value"] for g in ref["provider_groups"]]
    found = set()
    for item in document["in_network"]:
        if item["billing_code"] != code or item["negotiation_arrangement"] != "ffs":
            continue
        for rate in item["negotiated_rates"]:
            tins = [t for ref in rate.get("provider_references", []) for t in groups[ref]]
            for p in rate["negotiated_prices"]:
                if p["negotiated_type"] not in DOLLAR_TYPES or p.get("billing_code_modifier"):
                    continue
                if p["billing_class"] not in ("professional", "both"):
                    continue
                for tin in tins:
                    found.add(
                        (
                            tin,
                            p["negotiated_type"],
                            p["negotiated_rate"],
                            p.get("setting"),
                            tuple(sorted(p.get("service_code") or [])),
                        )
                    )
    return sorted(found, key=str)
