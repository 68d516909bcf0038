"""Imaging evidence: fracture Conditions, imaging reports (read as text) and Genant grades → facts (FX-6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from cds_service.facts.codemap import CodeMap
from cds_service.facts.exam_names import BONE_DENSITY, MR, RADIOGRAPH, VFA, read_advice, read_exam_name
from cds_service.facts.fhirpath import codings
from cds_service.facts.levels import vertebra_levels
from cds_service.facts.model import (
    Fracture,
    ImagingExam,
    ImagingReport,
    PatientFacts,
    ReportAdvice,
    ReportFinding,
    SpineImaging,
)
from cds_service.facts.report_text import FractureMention, read_report
from cds_service.facts.valuesets import (
    BMD_STUDY_LOINC,
    FRACTURE_SNOMED,
    ICD10_SYSTEMS,
    IMAGING_CATEGORY_CODES,
    IMAGING_REPORT_LOINC,
    IMAGING_STUDIES,
    LOINC,
    RADIOGRAPH_LOINC,
    SNOMED,
    SPINE_IMAGING_LOINC,
    icd10_fracture,
)

_LOW_TRAUMA_FRACTURE_WORDS = (
    "机能不全",
    "功能不全",
    "insufficiency",
    "脆性骨折",
    "fragility fracture",
    "骨质疏松性",
    "osteoporotic",
    # ICD-10 M80 titles (绝经后骨质疏松伴病理性骨折, osteoporosis with pathological fracture): FX-1/FX-2
    "骨质疏松伴",
    "骨质疏松症伴",
    "osteoporosis with",
)


def fracture_from_condition_codes(code: object) -> tuple[str, bool, str] | None:
    """(site, explicitly osteoporotic, code) of a coded fracture Condition, or None."""
    for system, value, _ in codings(code):
        if system == SNOMED and value in FRACTURE_SNOMED:
            site, osteoporotic = FRACTURE_SNOMED[value]
            return site, osteoporotic, value
        if system in ICD10_SYSTEMS or "icd-10" in system.lower() or "icd10" in system.lower():
            found = icd10_fracture(value)
            if found is not None:
                return found[0], found[1], value
    return None


def is_imaging_report(report: ImagingReport, code_map: CodeMap) -> bool:
    """An imaging report by code, local code (code map), category or the code's text."""
    spine_concept = any(code_map.concept_of(s, c) == "spine-imaging-report" for s, c in report.codes)
    return spine_concept or _is_imaging(report)


def read_imaging_reports(facts: PatientFacts, code_map: CodeMap) -> None:
    """Reports recognised as imaging are read for fractures, spine coverage and findings."""
    for report in facts.reports:
        spine_concept = any(code_map.concept_of(s, c) == "spine-imaging-report" for s, c in report.codes)
        if not (spine_concept or _is_imaging(report)):
            continue
        bmd_study = is_bmd_study(report)
        if bmd_study and report.when is not None:
            facts.bmd_study_dates.append(report.when)
        parts = frozenset() if bmd_study and not _is_vfa(report) else _spine_parts(report, spine_concept)
        if parts:
            facts.spine_imaging.append(SpineImaging(report.when, parts, report.source))
        facts.imaging_exams.append(_exam(report, parts, bmd_study))
        radiograph = not bmd_study and _is_radiograph(report)
        for code_fracture in (
            fracture_from_condition_codes({"coding": [{"system": s, "code": c}]})
            for s, c in report.conclusion_codes
        ):
            if code_fracture is not None:
                site, _, _ = code_fracture
                facts.fractures.append(Fracture(site=site, when=report.when, source=report.source))
        if not report.conclusion:
            continue
        reading = read_report(report.conclusion)
        advice = _advice(report, facts.imaging_exams[-1]) if reading.fractures else ()
        for mention in reading.fractures:
            fracture = fracture_from_mention(mention, report.when, report.source, quote=mention.quote)
            facts.fractures.append(replace(fracture, advice=advice) if advice else fracture)
        for finding in reading.findings:
            if finding.kind == "linear-uptake-band":
                band = _uptake_band_fracture(finding.quote, report)
                # The report's own words about a fracture there ("骨折可能") govern; the band adds none.
                stated = [m for m in reading.fractures if m.site == "vertebra"]
                if not any(not band.vertebrae or set(band.vertebrae) & set(m.vertebrae) for m in stated):
                    facts.fractures.append(band)
            facts.report_findings.append(
                ReportFinding(
                    kind=finding.kind,
                    when=report.when,
                    source=report.source,
                    quote=finding.quote,
                    radiograph=radiograph,
                    spine=bool(parts),
                )
            )


_UNCERTAIN_WORDS = (
    "可能",
    "可疑",
    "疑似",
    "不除外",
    "待排",
    "?",
    "？",
    "possible",
    "suspicious",
    "cannot exclude",
    "may represent",
    "questionable",
    "equivocal",
)


def _uptake_band_fracture(quote: str, report: ImagingReport) -> Fracture:
    """DX-8: a linear band of intense uptake in a vertebra on a bone scan is evidence of a compression
    fracture, under FX-6's certainty rules (a hedged statement is not proof)."""
    levels = vertebra_levels(quote)
    lowered = quote.lower()
    return Fracture(
        site="vertebra",
        when=report.when,
        source=report.source,
        vertebrae=tuple(levels),
        certain=not any(w in lowered for w in _UNCERTAIN_WORDS),
        quote=quote,
    )


def fracture_from_mention(
    mention: FractureMention,
    when: date | None,
    source: str,
    *,
    quote: str | None,
    unconfirmed: bool = False,
    from_condition: bool = False,
    display: str | None = None,
) -> Fracture:
    """A fracture read from text (a report's conclusion, or a text-only Condition) as a fact."""
    return Fracture(
        site=mention.site,
        when=when,
        source=source,
        vertebrae=mention.vertebrae,
        certain=mention.certain and not unconfirmed,
        trauma=low_trauma_if_named(mention.trauma, mention.quote),
        pathological=mention.pathological,
        genant_grade=mention.genant_grade,
        ecf=mention.ecf,
        deformity_only=mention.deformity_only,
        acuity=mention.acuity,
        quote=quote,
        from_condition=from_condition,
        display=display,
    )


def low_trauma_if_named(trauma: str, quote: str) -> str:
    """FX-1: an insufficiency (机能不全性) or fragility/osteoporotic fracture names its own mechanism."""
    if trauma == "not-stated" and any(w in quote.lower() for w in _LOW_TRAUMA_FRACTURE_WORDS):
        return "none"
    return trauma


def genant_fracture(grade: int, vertebra: str | None, when: date, source: str) -> Fracture | None:
    """FX-3: a Genant grade ≥ 1 is judged a fracture (ECF not stated: FX-4 asks to check)."""
    if grade < 1 or grade > 3:
        return None
    return Fracture(
        site="vertebra",
        when=when,
        source=source,
        vertebrae=(vertebra,) if vertebra else (),
        genant_grade=grade,
    )


def _is_imaging(report: ImagingReport) -> bool:
    if any(s == LOINC and (c in IMAGING_REPORT_LOINC) for s, c in report.codes):
        return True
    if any(c in IMAGING_CATEGORY_CODES for c in report.category_codes):
        return True
    return read_exam_name(report.code_text).imaging


def is_bmd_study(report: ImagingReport) -> bool:
    if any(s == LOINC and c in BMD_STUDY_LOINC for s, c in report.codes):
        return True
    return read_exam_name(report.code_text).bone_density


def _is_vfa(report: ImagingReport) -> bool:
    return VFA in read_exam_name(report.code_text).modalities


def _is_radiograph(report: ImagingReport) -> bool:
    if any(s == LOINC and c in RADIOGRAPH_LOINC for s, c in report.codes) or "RX" in report.category_codes:
        return True
    return RADIOGRAPH in read_exam_name(report.code_text).modalities


def _advice(report: ImagingReport, exam: ImagingExam) -> tuple[ReportAdvice, ...]:
    """REC-CT-MRI: the further exams the report advises; a contrast study of no named modality ("建议增强
    扫描") is a contrast MRI after an MRI, else advice of no exam the card can propose (still quoted)."""
    own = "contrast-mr" if MR in exam.modalities else None
    return tuple(
        replace(a, exams=(a.exams - {"contrast"}) | ({own} if own else set())) if "contrast" in a.exams else a
        for a in read_advice(report.conclusion)
    )


def _exam(report: ImagingReport, spine_parts: frozenset[str], bmd_study: bool) -> ImagingExam:
    """The study of a report: its modalities and regions, by its LOINC code and by its name."""
    name = read_exam_name(report.code_text)
    modalities = set(name.modalities)
    regions = set(name.regions) | spine_parts
    for system, code in report.codes:
        study = IMAGING_STUDIES.get(code) if system == LOINC else None
        if study is not None and study.modality is not None:
            modalities.add(study.modality)
            regions |= study.regions
    if bmd_study:
        modalities = (modalities & {VFA}) | {BONE_DENSITY}  # a DXA/QCT report is no CT of the region
    return ImagingExam(report.when, report.source, frozenset(modalities), frozenset(regions))


def _spine_parts(report: ImagingReport, spine_concept: bool) -> frozenset[str]:
    parts: set[str] = set()
    for system, code in report.codes:
        if system == LOINC and code in SPINE_IMAGING_LOINC:
            parts |= SPINE_IMAGING_LOINC[code]
    parts |= read_exam_name(report.code_text).spine_parts
    if spine_concept and not parts:
        parts = {"thoracic", "lumbar"}  # a local code mapped as a spine imaging report (code map)
    return frozenset(parts)
