"""Typed facts that the consensus rules read; no FHIR shapes beyond a source reference string."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class Modality(StrEnum):
    DXA = "dxa"
    QCT = "qct"
    PERIPHERAL = "peripheral"  # pDXA, pQCT, SXA, RA (DX-4)
    QUS = "qus"  # quantitative ultrasound: not BMD at all (DX-4)
    TBS = "tbs"  # context only (DX-5)


class Measure(StrEnum):
    T_SCORE = "t-score"
    Z_SCORE = "z-score"
    ABMD = "abmd"  # areal BMD, g/cm2
    VBMD = "vbmd"  # volumetric BMD, mg/cm3
    INDEX = "index"  # TBS and other unitless indices


class Region(StrEnum):
    LUMBAR_SPINE = "lumbar-spine"  # DXA L1-L4, or QCT lumbar mean
    FEMORAL_NECK = "femoral-neck"
    TOTAL_HIP = "total-hip"
    FOREARM = "forearm"  # 1/3 (33 %) radius
    UNSPECIFIED = "unspecified"  # DXA-4
    VERTEBRA = "vertebra"  # one QCT vertebra, level in BmdMeasurement.vertebra
    HIP = "hip"  # QCT hip (CTXA)
    CALCANEUS = "calcaneus"
    OTHER = "other"


# One exam may be recorded over two days (spine one day, hip the next; or across local midnight): values
# within this many days of an exam's newest value belong to it (a choice; repeat exams are months apart).
# A BMD report and the Observations of its exam are dated within it too.
SAME_EXAM_DAYS = 7

# Diagnostic DXA regions of DXA-1.
CENTRAL_DXA_REGIONS = frozenset({Region.LUMBAR_SPINE, Region.FEMORAL_NECK, Region.TOTAL_HIP})


@dataclass(frozen=True)
class BmdMeasurement:
    modality: Modality
    measure: Measure
    region: Region
    value: float
    unit: str
    when: date
    source: str  # "Observation/123"
    vertebra: str | None = None  # "L1".."L5", "T12" for QCT per-vertebra values
    laterality: str | None = None  # "left" | "right"
    device: str | None = None  # manufacturer/model, for people (and DX-4 peripheral words)
    device_id: str | None = None  # DXA-5 identity: the Device reference, else the device's display
    reference_database: str | None = None  # DXA-6, when the record states it
    region_text: str | None = None  # what the record said, for the evidence table
    quote: str | None = None  # the report sentence the value was read from (values only in text)


@dataclass(frozen=True)
class UnmeasuredSite:
    """A BMD site a report states was not measured ("右髋骨折未测", "L1-L4 excluded")."""

    modality: Modality
    region: Region  # LUMBAR_SPINE, FEMORAL_NECK, TOTAL_HIP (hip: both), FOREARM, ...
    when: date
    source: str
    quote: str
    laterality: str | None = None
    dxa2_reason: bool = False  # DXA-2: deformity, fixation/instrumentation, implant or prosthesis stated


@dataclass(frozen=True)
class UnreadableBmd:
    """A BMD value present in the record but unreadable: its exam gives no category at all."""

    modality: Modality
    when: date
    source: str
    quote: str | None = None


@dataclass(frozen=True)
class MedicationUse:
    """A systemic glucocorticoid (or other secondary-cause drug) order or statement, with its time span."""

    drug_class: str  # "glucocorticoids"
    start: date
    end: date | None  # None with `ongoing`: still taken; None otherwise: duration not stated
    ongoing: bool
    source: str
    display: str | None = None


@dataclass(frozen=True)
class Bmi:
    value: float
    when: date
    source: str
    derived: bool = False  # from weight and height (no BMI recorded)


@dataclass(frozen=True)
class CodedFinding:
    """A coded Condition/Procedure the rules care about (menopause, secondary cause, spine problem...)."""

    concept: str  # e.g. "postmenopausal", "bilateral-oophorectomy", "secondary-cause:ckd"
    when: date | None
    source: str
    display: str | None = None
    active: bool = True


@dataclass(frozen=True)
class DataNote:
    """An item the facts layer skipped, and why. Never carries patient data beyond the resource reference."""

    source: str
    reason: str  # a key of the card texts' data-note reasons
    detail: str | None = None  # a code or unit, never free text from the record


@dataclass(frozen=True)
class ImagingReport:
    """An imaging DiagnosticReport (or its local equivalent), read later by the fracture rules."""

    source: str
    when: date | None
    codes: tuple[tuple[str, str], ...]  # (system, code) of DiagnosticReport.code
    code_text: str  # code text and displays, for recognising the study
    category_codes: tuple[str, ...]
    conclusion: str  # untrusted text
    conclusion_codes: tuple[tuple[str, str], ...]


class OrderKind(StrEnum):
    """What an order on record already is, for the cards that must not propose it again (facts/orders.py)."""

    SPINE_IMAGING = "spine-imaging"  # imaging of the thoracic and lumbar spine (REC-SPINE-XR)
    SPINE_CT_MR = "spine-ct-mr"  # CT or MRI of the spine (REC-CT-MRI)
    BMD = "bmd"  # any bone-density measurement (REC-BMD)
    QCT = "qct"  # (REC-QCT)
    FOREARM_DXA = "forearm-dxa"  # (REC-FOREARM)
    # CT or MRI of a non-spine fracture site (REC-CT-MRI)
    HIP_CT_MR = "hip-ct-mr"
    WRIST_CT_MR = "wrist-ct-mr"
    SHOULDER_CT_MR = "shoulder-ct-mr"
    PELVIS_CT_MR = "pelvis-ct-mr"
    CHEST_CT_MR = "chest-ct-mr"
    OTHER_CT_MR = "other-ct-mr"  # CT or MRI of an unspecified region (the generic codes for other sites)
    PET_CT = "pet-ct"  # a PET-CT, as an imaging report may advise (REC-CT-MRI)
    # What a draft order is, for the order hooks (consensus/orders.py):
    CENTRAL_DXA = "central-dxa"  # DXA of the spine or hip (DXA-1)
    PERIPHERAL_BMD = "peripheral-bmd"  # pDXA, pQCT, single-energy, radiographic absorptiometry (DX-4)
    QUS = "qus"  # quantitative ultrasound: not BMD at all (DX-4)
    SPINE_RADIOGRAPH = "spine-radiograph"  # any radiograph of the thoracic and/or lumbar spine
    CT_L1_L2 = "ct-l1-l2"  # a non-contrast CT whose range covers L1-L2 (REC-QCT-CT)


class ProposedOrder(StrEnum):
    """An order a card proposes; its codes are in facts/valuesets.py, its labels in the card texts."""

    SPINE_RADIOGRAPH = "spine-radiograph"
    DXA = "dxa"
    QCT_LUMBAR = "qct-lumbar"
    FOREARM_DXA = "forearm-dxa"
    CT_THORACIC = "ct-thoracic"
    MR_THORACIC = "mr-thoracic"
    CT_LUMBAR = "ct-lumbar"
    MR_LUMBAR = "mr-lumbar"
    # REC-CT-MRI, consensus 五.3: CT and MRI of the usual non-spine fracture sites
    CT_HIP = "ct-hip"
    MR_HIP = "mr-hip"
    CT_WRIST = "ct-wrist"
    MR_WRIST = "mr-wrist"
    CT_SHOULDER = "ct-shoulder"
    MR_SHOULDER = "mr-shoulder"
    CT_PELVIS = "ct-pelvis"
    MR_PELVIS = "mr-pelvis"
    CT_CHEST = "ct-chest"
    MR_CHEST = "mr-chest"
    CT_UNSPECIFIED = "ct-unspecified"  # a non-spine site with no regional code: the region goes in the note
    MR_UNSPECIFIED = "mr-unspecified"
    # REC-CT-MRI: what a report itself may advise beyond plain CT/MRI ("建议增强MRI", "建议PET-CT检查")
    MR_THORACIC_CONTRAST = "mr-thoracic-contrast"
    MR_LUMBAR_CONTRAST = "mr-lumbar-contrast"
    PET_CT = "pet-ct"


@dataclass(frozen=True)
class OpenOrder:
    """An active or draft ServiceRequest: the service proposes no duplicate of it."""

    source: str
    codes: tuple[tuple[str, str], ...]
    text: str
    # SNOMED CT codes of ServiceRequest.bodySite (e.g. the distal radius)
    body_sites: tuple[str, ...] = ()
    kinds: frozenset[OrderKind] = frozenset()  # what it already is (facts/orders.py reads it)
    status: str = "active"  # "active" | "draft"
    # The order's reasonCode/reasonReference/note give a new clinical reason (pain, trauma, a fall, fracture,
    # deformity, height loss): spine-imaging-on-record is then not given (facts/orders.py reads the words).
    new_clinical_reason: bool = False


@dataclass
class PatientFacts:
    patient_id: str
    sex: Sex = Sex.UNKNOWN
    birth_date: date | None = None
    deceased: bool = False
    measurements: list[BmdMeasurement] = field(default_factory=list)
    bmis: list[Bmi] = field(default_factory=list)
    coded: list[CodedFinding] = field(default_factory=list)
    reports: list[ImagingReport] = field(default_factory=list)
    fractures: list[Fracture] = field(default_factory=list)
    spine_imaging: list[SpineImaging] = field(default_factory=list)
    imaging_exams: list[ImagingExam] = field(default_factory=list)
    report_findings: list[ReportFinding] = field(default_factory=list)
    bmd_study_dates: list[date] = field(default_factory=list)  # DXA/QCT reports (REC-BMD: a BMD on record)
    open_orders: list[OpenOrder] = field(default_factory=list)
    unmeasured_sites: list[UnmeasuredSite] = field(default_factory=list)
    unreadable_bmd: list[UnreadableBmd] = field(default_factory=list)
    medications: list[MedicationUse] = field(default_factory=list)
    notes: list[DataNote] = field(default_factory=list)

    def has(self, concept: str) -> bool:
        return any(c.concept == concept for c in self.coded)

    def coded_of(self, concept_prefix: str) -> list[CodedFinding]:
        return [c for c in self.coded if c.concept.startswith(concept_prefix)]


@dataclass(frozen=True)
class Fracture:
    """A fracture on record (FX-6): from a coded Condition, an imaging report or a Genant grade."""

    site: str  # "vertebra" | "hip" | "distal-radius" | "proximal-humerus" | "rib" | "pelvis" | "other"
    when: date | None
    source: str
    vertebrae: tuple[str, ...] = ()
    certain: bool = True  # FX-6 certainty wording
    trauma: str = "not-stated"  # "high-energy" | "minor" | "none" | "not-stated" (FX-1, FX-5)
    pathological: bool = False  # FX-8
    genant_grade: int | None = None  # FX-3
    ecf: str = "not-stated"  # FX-4: "present" | "absent" | "not-stated"
    deformity_only: bool = False  # FX-4
    acuity: str = "unknown"  # FX-7: "new" | "old" | "unknown"
    quote: str | None = None
    from_condition: bool = False
    display: str | None = None
    advice: tuple[ReportAdvice, ...] = ()  # the further exams its report itself advises (REC-CT-MRI)

    @property
    def advised(self) -> frozenset[str]:
        """ "ct" | "mr": the plain CT or MRI its report advises without a condition (REC-CT-MRI)."""
        return frozenset(e for a in self.advice if not a.conditional for e in a.exams & {"ct", "mr"})


@dataclass(frozen=True)
class ReportAdvice:
    """A further exam an imaging report's conclusion itself advises ("建议增强MRI检查"), REC-CT-MRI."""

    # "ct" | "mr" | "contrast-mr" | "pet-ct"; "contrast": a contrast study of the report's own modality
    # ("建议增强扫描"); empty: a further exam without a name ("建议进一步检查").
    exams: frozenset[str]
    conditional: bool  # "如临床需要可行增强MRI", "if clinically indicated": advice, not a recommendation
    quote: str  # the advice's sentence, as written


@dataclass(frozen=True)
class SpineImaging:
    """Imaging that covers part of the spine (REC-SPINE-XR): which parts, when, from which study."""

    when: date | None
    parts: frozenset[str]  # {"thoracic", "lumbar"}
    source: str


@dataclass(frozen=True)
class ReportFinding:
    """A non-fracture finding stated in an imaging report (bone loss, scoliosis, degeneration, ...)."""

    # "bone-loss" | "scoliosis" | "spine-degeneration" | "aortic-calcification" | "linear-uptake-band"
    kind: str
    when: date | None
    source: str
    quote: str
    radiograph: bool
    spine: bool


@dataclass(frozen=True)
class ImagingExam:
    """An imaging report's study (REC-CT-MRI): its modalities and the regions it shows."""

    when: date | None
    source: str
    modalities: frozenset[str]  # "ct" | "mr" | "radiograph" | "nuclear" | "vfa" | "scout" | "bone-density"
    # Named as fracture sites: "thoracic", "lumbar" (the spine), "hip", "pelvis", "distal-radius",
    # "proximal-humerus", "rib".
    regions: frozenset[str]

    @property
    def cross_sectional(self) -> bool:
        """A diagnostic CT or MRI: what answers a doubtful fracture (REC-CT-MRI)."""
        return bool({"ct", "mr"} & self.modalities)
