"""Every standard code the service recognises, with where it was verified (../shared/reference/codes.md)."""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.facts.model import Measure, Modality, OrderKind, ProposedOrder, Region

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10_SYSTEMS = frozenset(
    {
        "http://hl7.org/fhir/sid/icd-10",
        ICD10_CM,
        "http://hl7.org/fhir/sid/icd-10-cn",
    }
)
ICD10_PCS = "http://www.cms.gov/Medicare/Coding/ICD10"

# Caveat 1 of codes.md: 38265-5 counts as forearm only when its body site or display says so.
FOREARM_T_AMBIGUOUS = "38265-5"

# codes.md A1/A2: LOINC bone-density codes → (modality, measure, region, laterality).
# 38263-0/38264-8 as femoral neck/total hip is a convention (codes.md caveat 2), not a rule.
DXA_LOINC: dict[str, tuple[Modality, Measure, Region, str | None]] = {
    "38267-1": (Modality.DXA, Measure.T_SCORE, Region.LUMBAR_SPINE, None),
    "104938-6": (Modality.DXA, Measure.T_SCORE, Region.LUMBAR_SPINE, None),  # "DXA Spine [T-score]"
    "85394-5": (Modality.DXA, Measure.Z_SCORE, Region.LUMBAR_SPINE, None),
    "24966-4": (Modality.DXA, Measure.ABMD, Region.LUMBAR_SPINE, None),
    "38263-0": (Modality.DXA, Measure.T_SCORE, Region.FEMORAL_NECK, None),
    "80934-3": (Modality.DXA, Measure.Z_SCORE, Region.FEMORAL_NECK, None),
    "24701-5": (Modality.DXA, Measure.ABMD, Region.FEMORAL_NECK, None),
    "80948-3": (Modality.DXA, Measure.T_SCORE, Region.FEMORAL_NECK, "left"),
    "80940-0": (Modality.DXA, Measure.Z_SCORE, Region.FEMORAL_NECK, "left"),
    "80954-1": (Modality.DXA, Measure.ABMD, Region.FEMORAL_NECK, "left"),
    "80947-5": (Modality.DXA, Measure.T_SCORE, Region.FEMORAL_NECK, "right"),
    "80939-2": (Modality.DXA, Measure.Z_SCORE, Region.FEMORAL_NECK, "right"),
    "80953-3": (Modality.DXA, Measure.ABMD, Region.FEMORAL_NECK, "right"),
    "38264-8": (Modality.DXA, Measure.T_SCORE, Region.TOTAL_HIP, None),
    "80933-5": (Modality.DXA, Measure.Z_SCORE, Region.TOTAL_HIP, None),
    "38261-4": (Modality.DXA, Measure.ABMD, Region.TOTAL_HIP, None),
    "80946-7": (Modality.DXA, Measure.T_SCORE, Region.TOTAL_HIP, "left"),
    "80938-4": (Modality.DXA, Measure.Z_SCORE, Region.TOTAL_HIP, "left"),
    "46278-8": (Modality.DXA, Measure.ABMD, Region.TOTAL_HIP, "left"),
    "80945-9": (Modality.DXA, Measure.T_SCORE, Region.TOTAL_HIP, "right"),
    "80937-6": (Modality.DXA, Measure.Z_SCORE, Region.TOTAL_HIP, "right"),
    "46279-6": (Modality.DXA, Measure.ABMD, Region.TOTAL_HIP, "right"),
    # 38265-5 is forearm, but Synthea sends it as a generic T-score: see FOREARM_T_AMBIGUOUS.
    FOREARM_T_AMBIGUOUS: (Modality.DXA, Measure.T_SCORE, Region.FOREARM, None),
    "80932-7": (Modality.DXA, Measure.Z_SCORE, Region.FOREARM, None),
    "24890-6": (Modality.DXA, Measure.ABMD, Region.FOREARM, None),
    "80944-2": (Modality.DXA, Measure.T_SCORE, Region.FOREARM, "left"),
    "80936-8": (Modality.DXA, Measure.Z_SCORE, Region.FOREARM, "left"),
    "80952-5": (Modality.DXA, Measure.ABMD, Region.FOREARM, "left"),
    "80943-4": (Modality.DXA, Measure.T_SCORE, Region.FOREARM, "right"),
    "80935-0": (Modality.DXA, Measure.Z_SCORE, Region.FOREARM, "right"),
    "80951-7": (Modality.DXA, Measure.ABMD, Region.FOREARM, "right"),
    "46383-6": (Modality.DXA, Measure.ABMD, Region.UNSPECIFIED, None),
    # Calcaneus DXA is peripheral (DX-4).
    "38266-3": (Modality.PERIPHERAL, Measure.T_SCORE, Region.CALCANEUS, None),
    "38262-2": (Modality.PERIPHERAL, Measure.ABMD, Region.CALCANEUS, None),
    "80950-9": (Modality.PERIPHERAL, Measure.T_SCORE, Region.CALCANEUS, "left"),
    "80942-6": (Modality.PERIPHERAL, Measure.Z_SCORE, Region.CALCANEUS, "left"),
    "80956-6": (Modality.PERIPHERAL, Measure.ABMD, Region.CALCANEUS, "left"),
    "80949-1": (Modality.PERIPHERAL, Measure.T_SCORE, Region.CALCANEUS, "right"),
    "80941-8": (Modality.PERIPHERAL, Measure.Z_SCORE, Region.CALCANEUS, "right"),
    "80955-8": (Modality.PERIPHERAL, Measure.ABMD, Region.CALCANEUS, "right"),
}


# Local-code concepts (CONTRACT.md "Local codes") → (modality, measure, region).
CONCEPT_MEASUREMENTS: dict[str, tuple[Modality, Measure, Region]] = {
    "dxa-t-lumbar-spine": (Modality.DXA, Measure.T_SCORE, Region.LUMBAR_SPINE),
    "dxa-t-femoral-neck": (Modality.DXA, Measure.T_SCORE, Region.FEMORAL_NECK),
    "dxa-t-total-hip": (Modality.DXA, Measure.T_SCORE, Region.TOTAL_HIP),
    "dxa-t-forearm": (Modality.DXA, Measure.T_SCORE, Region.FOREARM),
    "dxa-t-unspecified": (Modality.DXA, Measure.T_SCORE, Region.UNSPECIFIED),
    "dxa-z-lumbar-spine": (Modality.DXA, Measure.Z_SCORE, Region.LUMBAR_SPINE),
    "dxa-z-femoral-neck": (Modality.DXA, Measure.Z_SCORE, Region.FEMORAL_NECK),
    "dxa-z-total-hip": (Modality.DXA, Measure.Z_SCORE, Region.TOTAL_HIP),
    "dxa-z-forearm": (Modality.DXA, Measure.Z_SCORE, Region.FOREARM),
    "dxa-z-unspecified": (Modality.DXA, Measure.Z_SCORE, Region.UNSPECIFIED),
    "qct-lumbar-vbmd": (Modality.QCT, Measure.VBMD, Region.LUMBAR_SPINE),
    "qct-hip-t": (Modality.QCT, Measure.T_SCORE, Region.HIP),
    "tbs": (Modality.TBS, Measure.INDEX, Region.LUMBAR_SPINE),
}

# codes.md D: vitals.
BMI_LOINC = "39156-5"
WEIGHT_LOINC = "29463-7"
HEIGHT_LOINC = "8302-2"

# codes.md B: body sites (SNOMED CT) → region; vertebrae → level.
LUMBAR_SPINE_SNOMED = "122496007"
DISTAL_RADIUS_SNOMED = "75129005"
BODY_SITE_REGIONS: dict[str, Region] = {
    LUMBAR_SPINE_SNOMED: Region.LUMBAR_SPINE,
    "421060004": Region.LUMBAR_SPINE,  # "Spine": DXA spine is the lumbar spine
    "29627003": Region.FEMORAL_NECK,
    "71341001": Region.FEMORAL_NECK,  # Femur, as the FHIR core BMD example uses it
    "29836001": Region.TOTAL_HIP,
    "24136001": Region.TOTAL_HIP,
    "62413002": Region.FOREARM,
    DISTAL_RADIUS_SNOMED: Region.FOREARM,
    "110535000": Region.FOREARM,
    "14975008": Region.FOREARM,
    "80144004": Region.CALCANEUS,
}
VERTEBRA_SNOMED: dict[str, str] = {
    "66794005": "L1",
    "14293000": "L2",
    "36470004": "L3",
    "11994002": "L4",
    "49668003": "L5",
    "73071006": "T4",
    "56401006": "T5",
    "45296009": "T6",
    "62487009": "T7",
    "11068009": "T8",
    "82687006": "T9",
    "7610001": "T10",
    "12989004": "T11",
    "23215003": "T12",
}
LATERALITY_SNOMED = {"7771000": "left", "24028007": "right"}

# DICOM modality codes (codes.md B) as Observation.method.
DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM_QUS = "BDUS"

# codes.md C: conditions and procedures by concept. SNOMED codes match exactly; ICD-10 by prefix
# (caveat 6: WHO ICD-10 and ICD-10-CM, and Chinese 6-character extensions, all match by prefix).
OSTEOPOROSIS_SNOMED = "64859006"  # Osteoporosis (disorder); also the Condition the cards suggest
SNOMED_CONCEPTS: dict[str, str] = {
    # recorded osteoporosis
    OSTEOPOROSIS_SNOMED: "osteoporosis",
    "102447009": "osteoporosis",
    "18040001": "osteoporosis",
    "703264005": "osteoporosis",
    "390833005": "osteoporosis",
    "203433000": "osteoporosis",
    # menopause (POP-4) and POP-2
    "76498008": "postmenopausal",
    "373717006": "postmenopausal",  # premature menopause
    "22636003": "premenopausal",
    "29827000": "bilateral-oophorectomy",
    "76876009": "bilateral-oophorectomy",
    "86477000": "bilateral-oophorectomy",
    "29529008": "bilateral-oophorectomy",
    "441820006": "bilateral-oophorectomy",
    "609293001": "bilateral-oophorectomy",  # second side after the first (VSAC 1003.1048)
    "609294007": "bilateral-oophorectomy",
    "609295008": "bilateral-oophorectomy",
    "609296009": "bilateral-oophorectomy",
    # secondary causes (POP-5)
    "66999008": "secondary-cause:hyperparathyroidism",
    "36348003": "secondary-cause:hyperparathyroidism",
    "91478007": "secondary-cause:hyperparathyroidism",
    "90739004": "secondary-cause:hyperthyroidism",
    "34486009": "secondary-cause:hyperthyroidism",
    "47270006": "secondary-cause:cushing",
    "190502001": "secondary-cause:cushing",
    "69896004": "secondary-cause:rheumatoid-arthritis",
    "709044004": "secondary-cause:ckd",
    "433144002": "secondary-cause:ckd",
    "431857002": "secondary-cause:ckd",
    "433146000": "secondary-cause:ckd",
    "46177005": "secondary-cause:ckd",
    "431855005": "secondary-cause:ckd",
    "431856006": "secondary-cause:ckd",
    "197476001": "secondary-cause:malabsorption",
    "396331005": "secondary-cause:malabsorption",
    "109989006": "secondary-cause:myeloma",
    "56882008": "secondary-cause:anorexia",
    # REC-QCT: DXA unreliable
    "238136002": "severe-obesity",
    "83911000119104": "severe-obesity",
    "408512008": "severe-obesity",
    "819948005": "severe-obesity",
    "248342006": "underweight",
    "427090001": "underweight",
    "717933005": "underweight",
    "298382003": "scoliosis",
    "8847002": "spine-degeneration",
    "77547008": "spine-degeneration",
    # DXA-2: spine or hip cannot be measured
    "55705006": "spinal-fusion",
    "52734007": "hip-prosthesis",
}

# ICD-10 prefixes → concept. The longest matching prefix wins.
ICD10_PREFIX_CONCEPTS: dict[str, str] = {
    "M80": "osteoporosis",
    "M81": "osteoporosis",
    "Z87.310": "osteoporosis",
    "Z78.0": "postmenopausal",
    "N95.1": "postmenopausal",
    "E28.31": "postmenopausal",
    "E89.4": "postmenopausal",  # postprocedural ovarian failure
    "Z90.722": "bilateral-oophorectomy",
    "E21": "secondary-cause:hyperparathyroidism",
    "E05": "secondary-cause:hyperthyroidism",
    "E24": "secondary-cause:cushing",
    "E29.1": "secondary-cause:hypogonadism",
    "E23.0": "secondary-cause:hypogonadism",
    "M05": "secondary-cause:rheumatoid-arthritis",
    "M06": "secondary-cause:rheumatoid-arthritis",
    "N18": "secondary-cause:ckd",
    "K90.0": "secondary-cause:malabsorption",
    "K90.9": "secondary-cause:malabsorption",
    "C90.0": "secondary-cause:myeloma",
    "F50.0": "secondary-cause:anorexia",
    "Z79.52": "secondary-cause:glucocorticoids",
    "E66.01": "severe-obesity",
    "E66.2": "severe-obesity",
    "E66.812": "severe-obesity",
    "E66.813": "severe-obesity",
    "Z68.41": "severe-obesity",
    "Z68.42": "severe-obesity",
    "Z68.43": "severe-obesity",
    "Z68.44": "severe-obesity",
    "Z68.45": "severe-obesity",
    "R63.6": "underweight",
    "M41": "scoliosis",
    "M47": "spine-degeneration",
    "M51.3": "spine-degeneration",
    # codes.md lists Z98.1 "arthrodesis status" as spinal fusion status; it covers any joint, so a Condition
    # whose text names another joint or the cervical spine is not taken as a lumbar fusion (extract.py).
    "Z98.1": "spinal-fusion",
    "M43.2": "spinal-fusion",  # fusion of spine, site unspecified / thoracolumbar / lumbar / lumbosacral ...
    "M43.21": "spinal-fusion-above-lumbar",  # occipito-atlanto-axial
    "M43.22": "spinal-fusion-above-lumbar",  # cervical
    "M43.23": "spinal-fusion-above-lumbar",  # cervicothoracic
    "M43.24": "spinal-fusion-above-lumbar",  # thoracic
    "Z96.641": "hip-prosthesis:right",
    "Z96.642": "hip-prosthesis:left",
    "Z96.643": "hip-prosthesis:bilateral",
    "Z96.649": "hip-prosthesis",
}

ICD10_PCS_CONCEPTS: dict[str, str] = {
    "0UT20ZZ": "bilateral-oophorectomy",
    "0UT24ZZ": "bilateral-oophorectomy",
    "0UT27ZZ": "bilateral-oophorectomy",
    "0UT28ZZ": "bilateral-oophorectomy",
    "0UT2FZZ": "bilateral-oophorectomy",
}


# POP-4: codes that imply a postmenopausal woman, keyed on the code system (codes.md caveat 6). In WHO
# ICD-10 and the Chinese editions built on it (GB/T 14396, 国家临床版 extensions such as M81.000 sit under
# these) M81.0 is postmenopausal osteoporosis and M80.0 postmenopausal osteoporosis with pathological
# fracture; in ICD-10-CM the same codes are "age-related" osteoporosis and imply nothing.
POSTMENOPAUSAL_WHO_ICD10_PREFIXES = ("M81.0", "M80.0")
# codes.md C: 102447009 Postmenopausal osteoporosis (VSAC 113.12.1038), 203453001 Postmenopausal osteoporosis
# with pathological fracture (VSAC 113.12.1050).
POSTMENOPAUSAL_SNOMED = frozenset({"102447009", "203453001"})


def is_icd10_cm(system: str) -> bool:
    """ICD-10-CM (the US clinical modification), whose M80/M81 meanings differ from WHO ICD-10 (caveat 6)."""
    flat = system.lower().replace("-", "").replace("_", "")
    return "icd10cm" in flat


def implies_postmenopausal(system: str, code: str, icd10: bool) -> bool:
    """POP-4: the coding names postmenopausal osteoporosis in its own code system."""
    if system == SNOMED:
        return code in POSTMENOPAUSAL_SNOMED
    return (
        icd10
        and not is_icd10_cm(system)
        and code.strip().upper().startswith(POSTMENOPAUSAL_WHO_ICD10_PREFIXES)
    )


def icd10_concept(code: str) -> str | None:
    """The concept of an ICD-10 code by its longest known prefix (WHO, CM and Chinese extensions)."""
    normalised = code.strip().upper()
    best: tuple[int, str] | None = None
    for prefix, concept in ICD10_PREFIX_CONCEPTS.items():
        if normalised.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), concept)
    return best[1] if best else None


# codes.md C: fracture Conditions → (site, explicitly osteoporotic). FX-6: coded fracture Conditions
# are trusted as imaging-proven (a choice).
FRACTURE_SNOMED: dict[str, tuple[str, bool]] = {
    "443165006": (
        "unspecified",
        True,
    ),  # Osteoporotic fracture of bone (Synthea: pathological fracture due to OP)
    "11311601000119109": ("vertebra", True),
    "203450003": ("vertebra", True),
    "203451004": ("vertebra", True),
    "240198002": ("vertebra", True),
    "311890007": ("vertebra", True),
    "311891006": ("vertebra", True),
    "203453001": ("unspecified", True),  # postmenopausal osteoporosis with pathological fracture
    "431031001": ("hip", True),
    "704334005": ("hip", True),
    "704336007": ("distal-radius", True),
    "704335006": ("proximal-humerus", True),
    "42942008": ("vertebra", False),  # compression fracture of vertebral column, any cause
    "15724005": ("vertebra", False),
    "5913000": ("hip", False),
    "359817006": ("hip", False),
    "700097003": ("hip", False),
    "263199001": ("distal-radius", False),
    # Synthea's wrist and forearm fractures: the wrist is a usual site (FX-1, "腕部"); a forearm fracture
    # is read as a wrist/distal-forearm fracture (a choice, noted on the card).
    "263102004": ("distal-radius", False),
    "65966004": ("distal-radius", False),
    "58150001": ("other", False),  # clavicle
    "33737001": ("rib", False),
    "16114001": ("other", False),  # ankle
}

# ICD-10 fracture prefixes (codes.md caveat 6) → (site, explicitly osteoporotic); longest prefix wins.
FRACTURE_ICD10_PREFIXES: dict[str, tuple[str, bool]] = {
    "M80": ("unspecified", True),
    "M80.08": ("vertebra", True),
    "M80.05": ("hip", True),
    "M80.03": ("distal-radius", True),
    "M80.02": ("proximal-humerus", True),
    "Z87.310": ("unspecified", True),
    "M48.5": ("vertebra", False),
    "S22.0": ("vertebra", False),
    "S32.0": ("vertebra", False),
    "S72.0": ("hip", False),
    "S72.1": ("hip", False),
    "S52.5": ("distal-radius", False),
    "S42.2": ("proximal-humerus", False),
}


def icd10_fracture(code: str) -> tuple[str, bool] | None:
    normalised = code.strip().upper()
    best: tuple[int, tuple[str, bool]] | None = None
    for prefix, value in FRACTURE_ICD10_PREFIXES.items():
        if normalised.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), value)
    return best[1] if best else None


# codes.md D and A2: imaging studies by LOINC code, each code written once; the readers use the sets
# derived below it, and the cards propose orders by the names given here.
XR_THORACOLUMBAR_SPINE = "24984-7"  # XR Thoracic and lumbar spine 2 Views
CT_LUMBAR_SPINE = "24963-1"
MR_LUMBAR_SPINE = "24968-0"
CT_THORACIC_SPINE = "24978-9"
MR_THORACIC_SPINE = "24980-5"
DXA_STUDY = "38268-9"  # DXA Skeletal system Views for bone density
QCT_AXIAL_STUDY = "95925-4"  # CT Skeletal system.axial Multisection for bone density
# REC-CT-MRI, non-spine sites: verified in VSAC 198.12.1034 (see IMAGING_STUDIES below).
CT_HIP, MR_HIP = "36014-9", "36013-1"  # CT Hip; MR Hip
CT_WRIST, MR_WRIST = "37428-0", "25033-2"  # CT Wrist; MR Wrist
CT_SHOULDER, MR_SHOULDER = "36062-8", "24905-2"  # CT Shoulder; MR Shoulder
CT_PELVIS, MR_PELVIS = "24865-8", "24867-4"  # CT Pelvis; MR Pelvis
CT_CHEST, MR_CHEST = "24627-2", "24629-8"  # CT Chest; MR Chest
CT_UNSPECIFIED, MR_UNSPECIFIED = "25045-6", "25056-3"  # CT / MR Unspecified body region
# REC-CT-MRI, a report's own advice of a contrast MRI ("建议增强MRI"; 增强MRI is the plain and contrast
# sequences). Not in codes.md; verified (2026-12-07) in two published lists of LOINC imaging codes: the French
# ANS value set "JDV Code Document Imagerie CISIS" (https://smt.esante.gouv.fr/fhir/ValueSet/jdv-code-document-
# imagerie-cisis, OID 1.2.250.1.213.1.1.5.687, ans.fr.terminologies 1.12.0: 24981-3 "résonance magnétique
# rachis dorsal sans et avec contraste IV", 24967-2 "… rachis lombaire sans et avec contraste IV") and
# Microsoft Learn, Azure AI Health Insights, Radiology Insights "rad procedure" inference, appendix A
# (LOINC displays as below). No code for a contrast MRI of a non-spine site was found: there the site's MRI
# is proposed and the card's note asks for contrast.
MR_THORACIC_SPINE_CONTRAST = "24981-3"  # MR Thoracic spine WO and W contrast IV
MR_LUMBAR_SPINE_CONTRAST = "24967-2"  # MR Lumbar spine WO and W contrast IV
# No LOINC code for a PET-CT could be verified with the sources at hand: a report's PET-CT advice is
# proposed with the generic imaging-study code of codes.md D (18748-4 "Diagnostic imaging study", V2), the
# exam named in ServiceRequest.code.text and the card's order note.
DIAGNOSTIC_IMAGING_STUDY = "18748-4"


@dataclass(frozen=True)
class ImagingStudy:
    """What a study's LOINC code tells the readers (facts/imaging.py, facts/orders.py)."""

    spine: frozenset[str] = frozenset()  # the parts of the spine it shows (REC-SPINE-XR coverage)
    radiograph: bool = False  # REC-BMD reads bone loss from radiographs
    bmd: bool = False  # a bone-density study: not spine imaging (unless a VFA), no radiograph
    report: bool = True  # a DiagnosticReport with this code is an imaging report
    # An active/draft order with this code already is one of these (no duplicate is proposed).
    order_kinds: frozenset[OrderKind] = frozenset()
    modality: str | None = None  # "ct" | "mr": a CT or MRI answers a doubtful fracture there (REC-CT-MRI)
    regions: frozenset[str] = frozenset()  # the non-spine fracture sites it shows (REC-CT-MRI)


_T, _L = frozenset({"thoracic"}), frozenset({"lumbar"})
_TL = _T | _L
_SPINE_XR_ORDER = frozenset({OrderKind.SPINE_IMAGING})
_SPINE_CT_MR_ORDER = frozenset({OrderKind.SPINE_CT_MR})
_BMD_ORDER = frozenset({OrderKind.BMD})
_QCT_ORDER = frozenset({OrderKind.BMD, OrderKind.QCT})
_HIP, _WRIST, _SHOULDER = frozenset({"hip"}), frozenset({"distal-radius"}), frozenset({"proximal-humerus"})
_PELVIS, _CHEST = frozenset({"pelvis", "hip"}), frozenset({"rib"})
_HIP_CT_MR_ORDER = frozenset({OrderKind.HIP_CT_MR})
_WRIST_CT_MR_ORDER = frozenset({OrderKind.WRIST_CT_MR})
_SHOULDER_CT_MR_ORDER = frozenset({OrderKind.SHOULDER_CT_MR})
_PELVIS_CT_MR_ORDER = frozenset({OrderKind.PELVIS_CT_MR, OrderKind.HIP_CT_MR})
_CHEST_CT_MR_ORDER = frozenset({OrderKind.CHEST_CT_MR})
_OTHER_CT_MR_ORDER = frozenset({OrderKind.OTHER_CT_MR})

IMAGING_STUDIES: dict[str, ImagingStudy] = {
    # radiographs of the spine
    "30753-8": ImagingStudy(spine=_T, radiograph=True, order_kinds=_SPINE_XR_ORDER),
    "24983-9": ImagingStudy(spine=_T, radiograph=True, order_kinds=_SPINE_XR_ORDER),
    "30752-0": ImagingStudy(spine=_T, radiograph=True),
    "30756-1": ImagingStudy(spine=_T, radiograph=True),
    "24970-6": ImagingStudy(spine=_L, radiograph=True, order_kinds=_SPINE_XR_ORDER),
    "24972-2": ImagingStudy(spine=_L, radiograph=True, order_kinds=_SPINE_XR_ORDER),
    "24969-8": ImagingStudy(spine=_L, radiograph=True),
    "30777-7": ImagingStudy(spine=_L, radiograph=True),
    "36670-8": ImagingStudy(spine=_L, radiograph=True),
    "30775-1": ImagingStudy(spine=_L, radiograph=True),
    XR_THORACOLUMBAR_SPINE: ImagingStudy(spine=_TL, radiograph=True, order_kinds=_SPINE_XR_ORDER),
    "24928-4": ImagingStudy(spine=_TL, radiograph=True, order_kinds=_SPINE_XR_ORDER),
    "30715-7": ImagingStudy(spine=_TL, radiograph=True),
    "39367-8": ImagingStudy(spine=_TL, radiograph=True),
    "24930-0": ImagingStudy(spine=_TL, radiograph=True),
    # CT and MRI of the spine
    CT_THORACIC_SPINE: ImagingStudy(modality="ct", spine=_T, order_kinds=_SPINE_CT_MR_ORDER),
    "30597-9": ImagingStudy(modality="ct", spine=_T, order_kinds=_SPINE_CT_MR_ORDER),
    MR_THORACIC_SPINE: ImagingStudy(modality="mr", spine=_T, order_kinds=_SPINE_CT_MR_ORDER),
    "36532-0": ImagingStudy(modality="mr", spine=_T, order_kinds=_SPINE_CT_MR_ORDER),
    CT_LUMBAR_SPINE: ImagingStudy(modality="ct", spine=_L, order_kinds=_SPINE_CT_MR_ORDER),
    "30620-9": ImagingStudy(modality="ct", spine=_L, order_kinds=_SPINE_CT_MR_ORDER),
    MR_LUMBAR_SPINE: ImagingStudy(modality="mr", spine=_L, order_kinds=_SPINE_CT_MR_ORDER),
    "30679-5": ImagingStudy(modality="mr", spine=_L, order_kinds=_SPINE_CT_MR_ORDER),
    "30854-4": ImagingStudy(modality="mr", spine=_TL, order_kinds=_SPINE_CT_MR_ORDER),
    # CT and MRI of the usual non-spine fracture sites (REC-CT-MRI, consensus 五.3). Verified in the VSAC
    # "XRay Study" expansion 2.16.840.1.113883.3.464.1003.198.12.1034 (cqframework/ecqm-content-qicore-2024
    # @9ebd48f input/vocabulary/valueset/external/, LOINC 2.76), the source codes.md D gives for the spine
    # CT/MR codes above; the displays are LOINC's own as listed there.
    CT_HIP: ImagingStudy(modality="ct", regions=_HIP, order_kinds=_HIP_CT_MR_ORDER),  # CT Hip
    MR_HIP: ImagingStudy(modality="mr", regions=_HIP, order_kinds=_HIP_CT_MR_ORDER),  # MR Hip
    CT_WRIST: ImagingStudy(modality="ct", regions=_WRIST, order_kinds=_WRIST_CT_MR_ORDER),  # CT Wrist
    MR_WRIST: ImagingStudy(modality="mr", regions=_WRIST, order_kinds=_WRIST_CT_MR_ORDER),  # MR Wrist
    CT_SHOULDER: ImagingStudy(modality="ct", regions=_SHOULDER, order_kinds=_SHOULDER_CT_MR_ORDER),
    MR_SHOULDER: ImagingStudy(modality="mr", regions=_SHOULDER, order_kinds=_SHOULDER_CT_MR_ORDER),
    # A pelvis CT/MRI shows both hips (cues/exam-names.toml says the same of the names).
    CT_PELVIS: ImagingStudy(modality="ct", regions=_PELVIS, order_kinds=_PELVIS_CT_MR_ORDER),
    MR_PELVIS: ImagingStudy(modality="mr", regions=_PELVIS, order_kinds=_PELVIS_CT_MR_ORDER),
    CT_CHEST: ImagingStudy(modality="ct", regions=_CHEST, order_kinds=_CHEST_CT_MR_ORDER),  # ribs
    MR_CHEST: ImagingStudy(modality="mr", regions=_CHEST, order_kinds=_CHEST_CT_MR_ORDER),
    # The generic codes proposed for a fracture site without a regional code: an order of one (e.g. an
    # accepted suggestion) answers that card; its region is in the order's note, so it answers no other site.
    CT_UNSPECIFIED: ImagingStudy(modality="ct", order_kinds=_OTHER_CT_MR_ORDER),
    MR_UNSPECIFIED: ImagingStudy(modality="mr", order_kinds=_OTHER_CT_MR_ORDER),
    # contrast MRI of the spine (REC-CT-MRI, a report's own advice; sources above)
    MR_THORACIC_SPINE_CONTRAST: ImagingStudy(modality="mr", spine=_T, order_kinds=_SPINE_CT_MR_ORDER),
    MR_LUMBAR_SPINE_CONTRAST: ImagingStudy(modality="mr", spine=_L, order_kinds=_SPINE_CT_MR_ORDER),
    # other radiographs read for fractures and bone loss: hip, radius-ulna, wrist, humerus, calcaneus
    "24762-7": ImagingStudy(radiograph=True),
    "24891-4": ImagingStudy(radiograph=True),
    "24619-9": ImagingStudy(radiograph=True),
    "24765-0": ImagingStudy(radiograph=True),
    "24612-4": ImagingStudy(radiograph=True),
    DIAGNOSTIC_IMAGING_STUDY: ImagingStudy(),  # generic diagnostic imaging study
    # bone-density studies (codes.md A2)
    DXA_STUDY: ImagingStudy(bmd=True, order_kinds=_BMD_ORDER),
    "83311-1": ImagingStudy(bmd=True),  # DXA panel
    "95924-7": ImagingStudy(bmd=True, order_kinds=_QCT_ORDER),
    QCT_AXIAL_STUDY: ImagingStudy(bmd=True, order_kinds=_QCT_ORDER),
    "95926-2": ImagingStudy(bmd=True, report=False),  # pQCT
    "95927-0": ImagingStudy(bmd=True, report=False),
    "95928-8": ImagingStudy(bmd=True, report=False),
    "95929-6": ImagingStudy(bmd=True, report=False),
    # DXA axial study: "U" in codes.md A2 (one third-party source), so only recognised as an order on record
    # (which then suppresses a proposal), never read as a report.
    "83012-5": ImagingStudy(report=False, order_kinds=_BMD_ORDER),
}

# CPT codes of the orders the order hooks recognise (the sandbox's imaging-order screen sends CPT), read by
# facts/orders.py only with the CPT system (a local code may be any number). Not in codes.md: each was
# checked against the AMA descriptor quoted by the page named beside it (search tool, 2026-12-07).
CPT = "http://www.ama-assn.org/go/cpt"
_CENTRAL_DXA_ORDER = frozenset({OrderKind.BMD, OrderKind.CENTRAL_DXA})
_CT_L1_L2_ORDER = frozenset({OrderKind.CT_L1_L2})
CPT_ORDERS: dict[str, frozenset[OrderKind]] = {
    # "DXA, bone density study, 1 or more sites; axial skeleton" — codingahead.com/cpt/codes/77080
    "77080": _CENTRAL_DXA_ORDER,
    # "...; appendicular skeleton (peripheral) (eg, radius, wrist, heel)" — codingahead.com/cpt/codes/77081
    # (a peripheral DXA: DX-4; a forearm DXA under DXA-2 is read from the body site or text)
    "77081": frozenset({OrderKind.BMD, OrderKind.PERIPHERAL_BMD}),
    # "...; axial skeleton ..., including vertebral fracture assessment" — codingahead.com/cpt/codes/77085
    "77085": _CENTRAL_DXA_ORDER,
    # "Computed tomography, bone mineral density study, 1 or more sites; axial skeleton" —
    # medicarepaymentandreimbursement.com/2011/04/bone-mass-measurement-bmm-cpt-76977.html
    "77078": _QCT_ORDER,
    # "...; appendicular skeleton (peripheral)" (pQCT) — codingahead.com/cpt/codes/77079
    "77079": frozenset({OrderKind.BMD, OrderKind.PERIPHERAL_BMD}),
    # "Ultrasound bone density measurement and interpretation, peripheral site(s), any method" —
    # medicarepaymentandreimbursement.com (as 77078); iframe.ai/medical-coding/CPT/76977
    "76977": frozenset({OrderKind.QUS}),
    # thoracic spine, 2 views (AP + lateral) — mirahealth.care/reference/cpt/72070; 3 views —
    # medpayiq.com/cpt/72072; "Radiologic examination, spine; thoracic, minimum of 4 views" —
    # codingahead.com/cpt/codes/72074
    "72070": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    "72072": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    "72074": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    # "Radiologic examination, spine, lumbosacral; 2 or 3 views" (72110: 4 or more views, 72114: complete,
    # named on the same page) — codingahead.com/cpt/codes/72100
    "72100": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    "72110": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    "72114": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    # "Radiologic examination of the entire thoracic and lumbar spine ...; 2 or 3 views" —
    # iframe.ai/medical-coding/CPT/72082
    "72082": frozenset({OrderKind.SPINE_RADIOGRAPH, OrderKind.SPINE_IMAGING}),
    # "Computed tomography, thorax, diagnostic; without contrast material" — transcure.net (AMA wording)
    "71250": _CT_L1_L2_ORDER,
    # "Computed tomography, thorax, low dose for lung cancer screening, without contrast material(s)" —
    # codingahead.com/cpt-code-71271-...
    "71271": _CT_L1_L2_ORDER,
    # "Computed tomography, abdomen; without contrast material" — medcoder.ai/cptcode/74150
    "74150": _CT_L1_L2_ORDER,
    # "Computed tomography, abdomen and pelvis; without contrast material" — medcoder.ai/cptcode/74176
    "74176": _CT_L1_L2_ORDER,
    # "Computed tomography, lumbar spine; without contrast material" — codingahead.com/cpt/codes/72131
    "72131": frozenset({OrderKind.CT_L1_L2, OrderKind.SPINE_CT_MR}),
    # "Computed tomography, thoracic spine; without contrast material" — codingahead.com/cpt/codes/72128
    # (T1-T12: does not reach L1-L2)
    "72128": _SPINE_CT_MR_ORDER,
}

SPINE_IMAGING_LOINC: dict[str, frozenset[str]] = {c: s.spine for c, s in IMAGING_STUDIES.items() if s.spine}
IMAGING_REPORT_LOINC = frozenset(c for c, s in IMAGING_STUDIES.items() if s.report)
RADIOGRAPH_LOINC = frozenset(c for c, s in IMAGING_STUDIES.items() if s.radiograph)
BMD_STUDY_LOINC = frozenset(c for c, s in IMAGING_STUDIES.items() if s.bmd)


@dataclass(frozen=True)
class OrderCoding:
    """The coding of an order a card proposes (CONTRACT.md suggestion table, LOINC verified in codes.md)."""

    loinc: str
    display: str  # LOINC's own display
    body_site: str | None = None  # SNOMED CT
    body_site_display: str | None = None
    text: str | None = None  # ServiceRequest.code.text, when the code alone does not say what is ordered


# DiagnosticReport.category codes of imaging (US Core LP29684-5; v2-0074 RAD, CT, NMR, RX, RUS).
IMAGING_CATEGORY_CODES = frozenset({"LP29684-5", "RAD", "CT", "NMR", "RX", "RUS", "imaging"})
# DocumentReference.type of imaging notes (codes.md D, 18748-4 "Diagnostic imaging study"; US Core clinical
# notes): the `documents` search of the query plan (fhir/plan.py).
IMAGING_NOTE_TYPE_LOINC = DIAGNOSTIC_IMAGING_STUDY
# Radiograph reports (REC-BMD reads bone loss from radiographs).
RADIOGRAPH_CATEGORY_CODES = frozenset({"RX"})

# The orders the cards propose (CONTRACT.md suggestion table; LOINC verified in codes.md).
PROPOSED_ORDERS: dict[ProposedOrder, OrderCoding] = {
    ProposedOrder.SPINE_RADIOGRAPH: OrderCoding(
        XR_THORACOLUMBAR_SPINE, "XR Thoracic and lumbar spine 2 Views"
    ),
    ProposedOrder.QCT_LUMBAR: OrderCoding(
        QCT_AXIAL_STUDY,
        "CT Skeletal system.axial Multisection for bone density",
        body_site=LUMBAR_SPINE_SNOMED,
        body_site_display="Lumbar spine",
    ),
    ProposedOrder.DXA: OrderCoding(DXA_STUDY, "DXA Skeletal system Views for bone density"),
    # The code is the generic DXA code: the text says forearm, so the order, once placed, is recognised as
    # this one (facts/orders.py reads the code text) and the card is not given again.
    ProposedOrder.FOREARM_DXA: OrderCoding(
        DXA_STUDY,
        "DXA Skeletal system Views for bone density",
        body_site=DISTAL_RADIUS_SNOMED,
        body_site_display="Distal radius",
        text="DXA forearm, 1/3 (33 %) radius",
    ),
    ProposedOrder.CT_LUMBAR: OrderCoding(CT_LUMBAR_SPINE, "CT Lumbar spine"),
    ProposedOrder.MR_LUMBAR: OrderCoding(MR_LUMBAR_SPINE, "MR Lumbar spine"),
    ProposedOrder.CT_THORACIC: OrderCoding(CT_THORACIC_SPINE, "CT Thoracic spine"),
    ProposedOrder.MR_THORACIC: OrderCoding(MR_THORACIC_SPINE, "MR Thoracic spine"),
    ProposedOrder.CT_HIP: OrderCoding(CT_HIP, "CT Hip"),
    ProposedOrder.MR_HIP: OrderCoding(MR_HIP, "MR Hip"),
    ProposedOrder.CT_WRIST: OrderCoding(CT_WRIST, "CT Wrist"),
    ProposedOrder.MR_WRIST: OrderCoding(MR_WRIST, "MR Wrist"),
    ProposedOrder.CT_SHOULDER: OrderCoding(CT_SHOULDER, "CT Shoulder"),
    ProposedOrder.MR_SHOULDER: OrderCoding(MR_SHOULDER, "MR Shoulder"),
    ProposedOrder.CT_PELVIS: OrderCoding(CT_PELVIS, "CT Pelvis"),
    ProposedOrder.MR_PELVIS: OrderCoding(MR_PELVIS, "MR Pelvis"),
    ProposedOrder.CT_CHEST: OrderCoding(CT_CHEST, "CT Chest"),
    ProposedOrder.MR_CHEST: OrderCoding(MR_CHEST, "MR Chest"),
    ProposedOrder.CT_UNSPECIFIED: OrderCoding(CT_UNSPECIFIED, "CT Unspecified body region"),
    ProposedOrder.MR_UNSPECIFIED: OrderCoding(MR_UNSPECIFIED, "MR Unspecified body region"),
    ProposedOrder.MR_THORACIC_CONTRAST: OrderCoding(
        MR_THORACIC_SPINE_CONTRAST, "MR Thoracic spine WO and W contrast IV"
    ),
    ProposedOrder.MR_LUMBAR_CONTRAST: OrderCoding(
        MR_LUMBAR_SPINE_CONTRAST, "MR Lumbar spine WO and W contrast IV"
    ),
    # The generic code (no PET-CT code verified): the text names the exam, so the order, once placed, is
    # recognised as a PET-CT (facts/orders.py reads the code text) and not proposed again.
    ProposedOrder.PET_CT: OrderCoding(DIAGNOSTIC_IMAGING_STUDY, "Diagnostic imaging study", text="PET-CT"),
}

# codes.md C: the Condition a diagnosis card suggests. M81.0 is written with the -CM system on purpose: in
# WHO ICD-10 M81.0 means postmenopausal osteoporosis, which would be wrong for a man.
OSTEOPOROSIS_DISPLAY = "Osteoporosis (disorder)"
BMD_ONLY_OSTEOPOROSIS_ICD10_CM = "M81.0"
BMD_ONLY_OSTEOPOROSIS_DISPLAY = "Age-related osteoporosis without current pathological fracture"

# Medications (POP-5: glucocorticoid therapy, the only drug among the secondary causes it names).
ATC = "http://www.whocc.no/atc"  # the WHO ATC system URI of the FHIR terminology registry
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# WHO ATC H02AB "Glucocorticoids", under H02 "Corticosteroids for systemic use" (H02A "..., plain"):
# verified in the WHO-ATC codes of FDA GSRS (openFDA substance API), e.g. UNII WI4X0X7BPJ hydrocortisone
# -> H02AB09, path "CORTICOSTEROIDS FOR SYSTEMIC USE | ..., PLAIN | Glucocorticoids",
# and UNII IF8PQP966U prednylidene -> H02AB11 (both linking whocc.no/atc_ddd_index). Matched as a prefix, so
# every plain systemic glucocorticoid (H02AB01 ...) counts and the H02AA mineralocorticoids (fludrocortisone)
# do not. The same drugs elsewhere in ATC (D07 skin, R01/R03 nose/inhaled, S01 eye, A07 gut) are not systemic.
ATC_SYSTEMIC_GLUCOCORTICOIDS = "H02AB"
# codes.md C: Synthea's oral glucocorticoid (VSAC 196.12.1266 "Glucocorticoids (oral only)").
RXNORM_GLUCOCORTICOIDS = frozenset({"312617"})  # predniSONE 5 MG Oral Tablet
