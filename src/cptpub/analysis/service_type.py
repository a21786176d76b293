"""The service type of a code from its number alone: the CPT section and subsection its range belongs to, the
CPT category (II ends in F, III in T, proprietary laboratory analyses in U, multianalyte assays in M), or the
HCPCS Level II group of its letter.

The ranges are those of the CPT code set's sections (Evaluation and Management 99202-99499, Anesthesia
00100-01999, Surgery 10004-69990, Radiology 70010-79999, Pathology and Laboratory 80047-89398, Medicine
90281-99199 and 99500-99607) and of their main subsections; the first matching range wins.
"""

from __future__ import annotations

from dataclasses import dataclass

# (first, last, section, subsection) for Category I codes; subsections before their section's catch-all
_CATEGORY_I: tuple[tuple[int, int, str, str | None], ...] = (
    (99202, 99215, "Evaluation and Management", "Office or other outpatient services"),
    (99221, 99239, "Evaluation and Management", "Hospital inpatient and observation care"),
    (99242, 99255, "Evaluation and Management", "Consultations"),
    (99281, 99288, "Evaluation and Management", "Emergency department services"),
    (99291, 99292, "Evaluation and Management", "Critical care services"),
    (99304, 99316, "Evaluation and Management", "Nursing facility services"),
    (99341, 99350, "Evaluation and Management", "Home or residence services"),
    (99202, 99499, "Evaluation and Management", None),
    (100, 1999, "Anesthesia", None),
    (10004, 10021, "Surgery", "General"),
    (10030, 19499, "Surgery", "Integumentary System"),
    (20100, 29999, "Surgery", "Musculoskeletal System"),
    (30000, 32999, "Surgery", "Respiratory System"),
    (33016, 37799, "Surgery", "Cardiovascular System"),
    (38100, 38999, "Surgery", "Hemic and Lymphatic Systems"),
    (39000, 39599, "Surgery", "Mediastinum and Diaphragm"),
    (40490, 49999, "Surgery", "Digestive System"),
    (50010, 53899, "Surgery", "Urinary System"),
    (54000, 55899, "Surgery", "Male Genital System"),
    (55920, 55980, "Surgery", "Reproductive System and Intersex Procedures"),
    (56405, 58999, "Surgery", "Female Genital System"),
    (59000, 59899, "Surgery", "Maternity Care and Delivery"),
    (60000, 60699, "Surgery", "Endocrine System"),
    (61000, 64999, "Surgery", "Nervous System"),
    (65091, 68899, "Surgery", "Eye and Ocular Adnexa"),
    (69000, 69979, "Surgery", "Auditory System"),
    (69990, 69990, "Surgery", "Operating Microscope"),
    (10004, 69990, "Surgery", None),
    (70010, 76499, "Radiology", "Diagnostic Radiology (Diagnostic Imaging)"),
    (76506, 76999, "Radiology", "Diagnostic Ultrasound"),
    (77001, 77022, "Radiology", "Radiologic Guidance"),
    (77046, 77067, "Radiology", "Breast, Mammography"),
    (77071, 77092, "Radiology", "Bone/Joint Studies"),
    (77261, 77799, "Radiology", "Radiation Oncology"),
    (78012, 79999, "Radiology", "Nuclear Medicine"),
    (70010, 79999, "Radiology", None),
    (80047, 80081, "Pathology and Laboratory", "Organ or Disease Oriented Panels"),
    (80143, 80377, "Pathology and Laboratory", "Drug Assay and Therapeutic Drug Assays"),
    (81000, 81099, "Pathology and Laboratory", "Urinalysis"),
    (81105, 81479, "Pathology and Laboratory", "Molecular Pathology"),
    (81490, 81599, "Pathology and Laboratory", "Multianalyte Assays with Algorithmic Analyses"),
    (82009, 84999, "Pathology and Laboratory", "Chemistry"),
    (85002, 85999, "Pathology and Laboratory", "Hematology and Coagulation"),
    (86000, 86849, "Pathology and Laboratory", "Immunology"),
    (86850, 86999, "Pathology and Laboratory", "Transfusion Medicine"),
    (87003, 87999, "Pathology and Laboratory", "Microbiology"),
    (88104, 88199, "Pathology and Laboratory", "Cytopathology"),
    (88230, 88299, "Pathology and Laboratory", "Cytogenetic Studies"),
    (88300, 88399, "Pathology and Laboratory", "Surgical Pathology"),
    (80047, 89398, "Pathology and Laboratory", None),
    (90281, 90399, "Medicine", "Immune Globulins"),
    (90460, 90474, "Medicine", "Immunization Administration for Vaccines/Toxoids"),
    (90476, 90759, "Medicine", "Vaccines, Toxoids"),
    (90785, 90899, "Medicine", "Psychiatry"),
    (90935, 90999, "Medicine", "Dialysis"),
    (91010, 91299, "Medicine", "Gastroenterology"),
    (92002, 92499, "Medicine", "Ophthalmology"),
    (92502, 92700, "Medicine", "Special Otorhinolaryngologic Services"),
    (92920, 93799, "Medicine", "Cardiovascular"),
    (93880, 93998, "Medicine", "Noninvasive Vascular Diagnostic Studies"),
    (94002, 94799, "Medicine", "Pulmonary"),
    (95004, 95199, "Medicine", "Allergy and Clinical Immunology"),
    (95700, 96020, "Medicine", "Neurology and Neuromuscular Procedures"),
    (
        96360,
        96549,
        "Medicine",
        "Hydration, Therapeutic, Prophylactic, Diagnostic Injections and Infusions, and Chemotherapy",
    ),  # fmt: skip
    (96900, 96999, "Medicine", "Special Dermatological Procedures"),
    (97010, 97799, "Medicine", "Physical Medicine and Rehabilitation"),
    (98925, 98929, "Medicine", "Osteopathic Manipulative Treatment"),
    (98940, 98943, "Medicine", "Chiropractic Manipulative Treatment"),
    (99100, 99140, "Medicine", "Qualifying Circumstances for Anesthesia"),
    (99151, 99157, "Medicine", "Moderate (Conscious) Sedation"),
    (90281, 99199, "Medicine", None),
    (99500, 99607, "Medicine", "Home Health Procedures/Services and Medication Therapy Management"),
)

HCPCS_GROUPS = {
    "A": "Transportation services, medical and surgical supplies, and miscellaneous items",
    "B": "Enteral and parenteral therapy",
    "C": "Outpatient prospective payment system (temporary hospital codes)",
    "D": "Dental procedures",
    "E": "Durable medical equipment",
    "G": "Procedures and professional services (temporary)",
    "H": "Behavioral health, alcohol and drug treatment services",
    "J": "Drugs administered other than by mouth, and chemotherapy drugs",
    "K": "Durable medical equipment (temporary codes)",
    "L": "Orthotic and prosthetic procedures and devices",
    "M": "Medical services and quality measures",
    "P": "Pathology and laboratory services",
    "Q": "Miscellaneous services (temporary codes)",
    "R": "Diagnostic radiology services",
    "S": "Temporary national codes (not used by Medicare)",
    "T": "National codes for state Medicaid agencies",
    "U": "Laboratory tests (coronavirus)",
    "V": "Vision, hearing and speech-language pathology services",
}


@dataclass(frozen=True)
class ServiceType:
    code_set: str  # 'CPT Category I' | 'CPT Category II' | 'CPT Category III' | 'CPT PLA' | 'HCPCS Level II'
    section: str | None  # e.g. 'Surgery'; the HCPCS group's name
    subsection: str | None  # e.g. 'Musculoskeletal System'
    basis: str  # how it was found, e.g. 'CPT Surgery range 10004-69990, subsection 20100-29999'

    @property
    def text(self) -> str:
        """E.g. 'Surgery: Musculoskeletal System (CPT Category I)'."""
        name = ": ".join(part for part in (self.section, self.subsection) if part)
        return f"{name} ({self.code_set})" if name else self.code_set


def _span(first: int, last: int) -> str:
    return f"{first:05d}" if first == last else f"{first:05d}-{last:05d}"


def service_type(code: str) -> ServiceType | None:
    """The service type of a 5-character code, or None when its shape fits no code set."""
    code = code.upper()
    if len(code) != 5:
        return None
    if code[:4].isdigit() and code[4] in "FTUM":
        if code[4] == "F":
            return ServiceType("CPT Category II", "Performance measurement", None, "a Category II code (####F)")
        if code[4] == "T":
            return ServiceType("CPT Category III", "Emerging technology", None, "a Category III code (####T)")
        if code[4] == "U":
            return ServiceType(
                "CPT PLA", "Pathology and Laboratory", "Proprietary Laboratory Analyses", "a PLA code (####U)"
            )
        return ServiceType(
            "CPT Category I",
            "Pathology and Laboratory",
            "Multianalyte Assays with Algorithmic Analyses",
            "an administrative MAAA code (####M)",
        )
    if code.isdigit():
        number = int(code)
        section_range: tuple[int, int] | None = None
        for first, last, section, subsection in _CATEGORY_I:
            if first <= number <= last:
                if subsection is None:
                    return ServiceType("CPT Category I", section, None, f"CPT {section} range {_span(first, last)}")
                section_range = next(
                    ((f, t) for f, t, s, sub in _CATEGORY_I if s == section and sub is None and f <= number <= t),
                    (first, last),
                )
                return ServiceType(
                    "CPT Category I",
                    section,
                    subsection,
                    f"CPT {section} range {_span(*section_range)}, subsection {_span(first, last)}",
                )
        return ServiceType("CPT Category I", None, None, "a numeric CPT code outside the published section ranges")
    letter = code[0]
    if letter in HCPCS_GROUPS and code[1:].isdigit():
        return ServiceType("HCPCS Level II", HCPCS_GROUPS[letter], None, f"HCPCS Level II {letter} codes")
    return None
