"""The editorial record of one code (``data/codes/<code>.yaml``) and the payer catalogue (``data/payers.yaml``).

Every field of a record may be missing: the report then says "Data not available in the input for ..." using the
field's ``label``. Unknown keys are errors, so a typo never silently drops text.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cptpub.project import CODE_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Modifier(_Strict):
    modifier: str = Field(min_length=1, max_length=5)
    description: str
    when_to_use: str


class RelatedCode(_Strict):
    code: str
    title: str
    when_to_choose: str | None = None


class Icd10Pairing(_Strict):
    code: str
    description: str


class Taxonomy(_Strict):
    code: str = Field(description="NUCC provider taxonomy code, e.g. 207X00000X")
    classification: str


class BillingConsiderations(_Strict):
    documentation: list[str] | None = None
    sequencing: list[str] | None = None
    modifier_use: list[str] | None = None
    denial_causes: list[str] | None = None


class PayerNote(_Strict):
    payer: str = Field(description="a payer name of data/payers.yaml")
    topic: str | None = None
    note: str
    source: str | None = None


class PolicyUpdate(_Strict):
    date: dt.date
    payer: str
    summary: str
    source: str | None = None


class Clinical(_Strict):
    vignette: str | None = None
    workflow: list[str] | None = None


class CodeRecord(_Strict):
    code: str | None = Field(default=None, description="must equal the file name's code when given")
    title: str | None = Field(default=None, description="plain-language title, not the official descriptor")
    descriptor: str | None = Field(default=None, description="what the code covers, in our own words")
    national_significance: str | None = None
    add_on: bool | None = None
    primary_procedure: str | None = Field(default=None, description="for add-on codes: what it is reported with")
    service_type: str | None = None
    sites_of_service: list[str] | None = None
    clinical: Clinical | None = None
    modifiers: list[Modifier] | None = None
    related_codes: list[RelatedCode] | None = None
    icd10_pairings: list[Icd10Pairing] | None = None
    taxonomies: list[Taxonomy] | None = None
    billing_considerations: BillingConsiderations | None = None
    payer_notes: list[PayerNote] | None = None
    policy_updates: list[PolicyUpdate] | None = None
    last_reviewed: dt.date | None = Field(default=None, description="editorial review date; dates the edition")
    demo: bool = Field(default=False, description="true for the toolkit's demo records (not editorial advice)")

    @field_validator("code")
    @classmethod
    def _code_shape(cls, value: str | None) -> str | None:
        if value is not None and not CODE_PATTERN.fullmatch(value):
            raise ValueError("a code is exactly 5 letters or digits")
        return value.upper() if value else value


# The words the report uses for a missing field ("Data not available in the input for <label>.").
FIELD_LABELS: dict[str, str] = {
    "title": "the plain-language title",
    "descriptor": "the code descriptor",
    "national_significance": "national significance",
    "add_on": "the add-on status",
    "service_type": "the service type",
    "sites_of_service": "typical sites of service",
    "clinical.vignette": "a clinical vignette",
    "clinical.workflow": "the clinical workflow",
    "modifiers": "modifiers",
    "related_codes": "related codes",
    "icd10_pairings": "ICD-10 pairings",
    "taxonomies": "provider taxonomies",
    "billing_considerations": "billing considerations",
    "payer_notes": "payer notes",
    "policy_updates": "policy updates",
}


class Payer(_Strict):
    name: str = Field(description="the name publications use, e.g. 'Cigna Health'")
    kind: str = Field(pattern="^(commercial|medicare)$")
    entity_patterns: list[str] = Field(
        default_factory=list,
        description="case-insensitive regular expressions matched against a TiC file's reporting_entity_name",
    )


class PayerCatalogue(_Strict):
    payers: list[Payer]
