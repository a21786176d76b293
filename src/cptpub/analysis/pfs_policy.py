"""What the payment-policy indicators of CMS's physician fee schedule file (PPRRVU) mean, in plain words.

The meanings follow CMS's description of the relative value file's fields (the RVU file's read-me, "Field
descriptions"); the sentences are our own. ``modifier_rows`` turns the indicators into the modifiers a biller may
append and the rule Medicare applies to each.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS_CODES = {
    "A": "Active: paid separately under the physician fee schedule.",
    "B": "Bundled: payment is included in other services; never paid separately.",
    "C": "Carrier priced: the Medicare contractor sets the payment; CMS publishes no national amount.",
    "D": "Deleted: the code was deleted, with a grace period for claims.",
    "E": "Excluded from the physician fee schedule by regulation.",
    "F": "Deleted: no grace period.",
    "G": "Not valid for Medicare: another code is used instead (grace period).",
    "H": "Deleted modifier: the code with this modifier is no longer valid.",
    "I": "Not valid for Medicare: Medicare uses another code.",
    "J": "Anesthesia service: paid by anesthesia base units, not relative values.",
    "M": "Measurement code: reported for quality programs only, no payment.",
    "N": "Non-covered service.",
    "P": "Bundled or excluded: no payment under the fee schedule unless it is incident to a physician's service.",
    "R": "Restricted coverage: paid only in special circumstances.",
    "T": "Paid only when no other fee-schedule service is billed on the same date by the same provider.",
    "X": "Excluded from the fee schedule by statute (paid, if at all, under another Medicare fee schedule).",
}

PCTC = {
    "0": "Physician service: the professional/technical split does not apply (no 26 or TC).",
    "1": "Diagnostic test with a professional and a technical component: 26 and TC apply.",
    "2": "Professional component only: the code itself is the interpretation; 26 and TC do not apply.",
    "3": "Technical component only: the code itself is the technical service; 26 and TC do not apply.",
    "4": "Global test only: separate codes exist for each component; 26 and TC do not apply.",
    "5": "Incident-to service (auxiliary personnel under a physician's supervision): 26 and TC do not apply.",
    "6": "Laboratory physician interpretation: payable for the interpretation; TC does not apply.",
    "7": "Physical therapy service: not payable when a physical therapist in private practice performs it.",
    "8": "Physician interpretation code: professional service only; TC does not apply.",
    "9": "The professional/technical component concept does not apply.",
}

GLOBAL_DAYS = {
    "000": "0-day global period: care related to the procedure on the day it is done is included in its payment.",
    "010": "10-day global period: related care on the day of the procedure and the 10 days after is included in "
    "its payment.",
    "090": "90-day global period: related care from the day before the procedure through the 90 days after is "
    "included in its payment.",
    "MMM": "Maternity code: the usual global surgery rules do not apply (the package is defined by CPT).",
    "XXX": "The global surgery concept does not apply: each service is paid on its own.",
    "YYY": "The Medicare contractor sets the global period.",
    "ZZZ": "Add-on service: paid within the global period of the primary procedure it is billed with.",
}

MULT_PROC = {
    "0": "No multiple-procedure reduction: paid in full alongside other procedures.",
    "1": "Multiple-procedure rules in force before 1996 apply (standard reduction of additional procedures).",
    "2": "Standard multiple-procedure reduction: 100% for the highest-valued procedure, 50% for each other one "
    "on the same day.",
    "3": "Endoscopic rule: with other endoscopies of the same family, the base endoscopy's value is subtracted.",
    "4": "Diagnostic imaging reduction: the technical (and professional) component of additional imaging of the "
    "same family in one session is reduced.",
    "5": "Therapy reduction: the practice expense of additional therapy services on one day is reduced.",
    "6": "Diagnostic cardiovascular reduction: the technical component of additional services is reduced.",
    "7": "Diagnostic ophthalmology reduction: the technical component of additional services is reduced.",
    "9": "The multiple-procedure concept does not apply.",
}

BILATERAL = {
    "0": "No bilateral adjustment: done on both sides, the code is paid at most 100% of one side's amount.",
    "1": "Bilateral adjustment: done on both sides in one session, Medicare pays 150% of one side's amount.",
    "2": "Already bilateral: the code's value covers both sides; no further payment for the second side.",
    "3": "Each side paid in full: done on both sides, Medicare pays 100% for each side.",
    "9": "The bilateral concept does not apply.",
}

ASSISTANT = {
    "0": "An assistant at surgery is paid only with documentation that one was medically necessary.",
    "1": "An assistant at surgery is never paid for this code (statutory restriction).",
    "2": "An assistant at surgery may be paid.",
    "9": "The assistant-at-surgery concept does not apply.",
}

CO_SURGEONS = {
    "0": "Co-surgeons are not paid for this code.",
    "1": "Co-surgeons may be paid with documentation that two surgeons were medically necessary.",
    "2": "Co-surgeons are paid (two surgeons of different specialties; no extra documentation needed).",
    "9": "The co-surgeon concept does not apply.",
}

TEAM = {
    "0": "Team surgery is not paid for this code.",
    "1": "Team surgery may be paid with documentation of medical necessity (priced by report).",
    "2": "Team surgery is paid (priced by report).",
    "9": "The team-surgery concept does not apply.",
}


@dataclass(frozen=True)
class ModifierRule:
    modifier: str
    description: str
    when_to_use: str
    indicator: str  # e.g. "bilateral surgery indicator 1"


def modifier_rules(
    *,
    pctc: str | None,
    mult_proc: str | None,
    bilat: str | None,
    asst: str | None,
    co_surg: str | None,
    team: str | None,
    endo_base: str | None = None,
    add_on: bool = False,
) -> list[ModifierRule]:
    """The modifiers the indicators speak about, each with the rule Medicare applies. Indicators that are 9 ("does
    not apply") or missing give no row; the others give a row even when the rule is "not paid", since a biller
    needs that answer too."""
    rows: list[ModifierRule] = []
    if pctc == "1":
        rows += [
            ModifierRule(
                "26",
                "Professional component",
                "Report 26 when you provide only the interpretation and report; the facility or another provider "
                "bills the equipment and staff (TC). Without 26 or TC the code means both components.",
                "PC/TC indicator 1",
            ),
            ModifierRule(
                "TC",
                "Technical component",
                "Report TC when you provide only the test itself (equipment, supplies, technologist) and another "
                "practitioner interprets it.",
                "PC/TC indicator 1",
            ),
        ]
    if bilat in ("0", "1", "2", "3"):
        use = {
            "0": "Medicare does not adjust for a bilateral procedure: with 50 (or RT and LT) both sides together "
            "are paid at most 100% of one side.",
            "1": "Report 50 (or RT and LT, as the contractor requires) when the procedure is done on both sides in "
            "the same session; Medicare pays 150% of one side.",
            "2": "Do not report 50: the code already describes the procedure on both sides.",
            "3": "Report 50 (or RT and LT) when done on both sides; Medicare pays each side in full (200%).",
        }[bilat]
        rows.append(ModifierRule("50", "Bilateral procedure", use, f"bilateral surgery indicator {bilat}"))
    if mult_proc in ("0", "1", "2", "3", "4", "5", "6", "7"):
        if mult_proc == "0":
            use = "Not needed: Medicare makes no multiple-procedure reduction for this code" + (
                " (add-on codes are exempt from it)." if add_on else "."
            )
        elif mult_proc == "3":
            base = f" (base code {endo_base})" if endo_base else ""
            use = (
                "Report 51 where the payer requires it when other procedures are done in the same session; with "
                f"related endoscopies Medicare subtracts the base endoscopy's value{base} from all but the "
                "highest-valued one."
            )
        else:
            use = (
                "Report 51 (where the payer requires it) on the additional procedures done by the same practitioner "
                "in the same session. " + MULT_PROC[mult_proc]
            )
        rows.append(ModifierRule("51", "Multiple procedures", use, f"multiple procedure indicator {mult_proc}"))
    if co_surg in ("0", "1", "2"):
        use = {
            "0": "Medicare does not pay co-surgeons for this code: do not report 62.",
            "1": "Two surgeons each report 62 when each performs a distinct part of the procedure; Medicare pays "
            "each 62.5% of the amount, with documentation that two surgeons were needed.",
            "2": "Two surgeons of different specialties each report 62 for their distinct parts; Medicare pays "
            "each 62.5% of the amount.",
        }[co_surg]
        rows.append(ModifierRule("62", "Two surgeons (co-surgery)", use, f"co-surgeon indicator {co_surg}"))
    if team in ("0", "1", "2"):
        use = {
            "0": "Medicare does not pay team surgery for this code: do not report 66.",
            "1": "Each surgeon of the team reports 66; the contractor prices it by report, with documentation of "
            "medical necessity.",
            "2": "Each surgeon of the team reports 66; the contractor prices it by report.",
        }[team]
        rows.append(ModifierRule("66", "Surgical team", use, f"team surgery indicator {team}"))
    if asst in ("0", "1", "2"):
        rule = {
            "0": "Medicare pays an assistant at surgery only with documentation that one was medically necessary.",
            "1": "Medicare never pays an assistant at surgery for this code, so do not report it.",
            "2": "Medicare pays an assistant at surgery for this code.",
        }[asst]
        paid = asst != "1"
        for modifier, description, who in (
            ("80", "Assistant surgeon", "a physician assists throughout the operation"),
            ("81", "Minimum assistant surgeon", "a physician assists for only part of the operation"),
            (
                "82",
                "Assistant surgeon (no qualified resident available)",
                "a physician assists in a teaching hospital where no qualified resident was available",
            ),  # fmt: skip
            (
                "AS",
                "Non-physician assistant at surgery",
                "a physician assistant, nurse practitioner or clinical nurse specialist assists",
            ),  # fmt: skip
        ):
            share = ""
            if paid:
                share = " Medicare pays 16% of the surgeon's amount" + (" x 85% for AS." if modifier == "AS" else ".")
            rows.append(
                ModifierRule(
                    modifier,
                    description,
                    f"Use when {who}. {rule}{share}",
                    f"assistant at surgery indicator {asst}",
                )
            )
    return rows


_GLOBAL_SENTENCES = {
    "000": "Medicare's global surgery period is 0 days (000): care related to the procedure on the day it is done "
    "is included in its payment.",
    "010": "Medicare's global surgery period is 10 days (010): related care on the day of the procedure and the 10 "
    "days after is included in its payment.",
    "090": "Medicare's global surgery period is 90 days (090): related care from the day before the procedure "
    "through the 90 days after is included in its payment.",
    "MMM": "A maternity code (global period MMM): the usual global surgery rules do not apply.",
    "XXX": "The global surgery concept does not apply to this code (XXX): it is paid on its own.",
    "YYY": "The Medicare contractor sets this code's global period (YYY).",
    "ZZZ": "An add-on service (global period ZZZ): paid within the global period of the primary procedure it is "
    "billed with.",
}


def global_period_sentence(global_days: str | None) -> str | None:
    """One sentence on the global surgery period, or None when the file gives none."""
    if not global_days:
        return None
    return _GLOBAL_SENTENCES.get(global_days, f"Medicare's global period indicator for this code is {global_days}.")
