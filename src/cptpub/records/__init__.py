"""Editorial records and the payer catalogue: typed schemas and loaders that report file, line and field."""

from cptpub.records.load import (
    CodeNotFound,
    load_payers,
    load_record,
    load_record_or_empty,
    match_payer,
    payer_named,
)
from cptpub.records.schema import CodeRecord, Payer, PayerCatalogue

__all__ = [
    "CodeNotFound",
    "CodeRecord",
    "Payer",
    "PayerCatalogue",
    "load_payers",
    "load_record",
    "load_record_or_empty",
    "match_payer",
    "payer_named",
]
