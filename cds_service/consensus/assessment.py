"""The consensus applied to one patient's facts: at most one diagnosis, and the recommendations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from cds_service.consensus.bmd import (
    EXAM_WINDOW_DAYS,
    Category,
    DxaExam,
    LumbarQct,
    QctExam,
    classify_lumbar_qct,
    classify_t_score,
    dxa_exams,
    is_below_expected_range,
    lowest,
    lumbar_qct_value,
    qct_exams,
    qct_low_in_young,
    unusable_sites,
)
from cds_service.consensus.findings import Evidence, Finding, SettingUse
from cds_service.consensus.fractures import (
    FractureJudgement,
    Verdict,
    awaits_ecf_check,
    fracture_group_row,
    fracture_notes,
    fracture_row,
    fractured_vertebrae,
    judge_all,
    same_fracture_groups,
)
from cds_service.consensus.lookback import months_before
from cds_service.consensus.population import Basis, Population, PopulationJudgement, population_on
from cds_service.consensus.recommendations import recommendations
from cds_service.facts.model import (
    BmdMeasurement,
    CodedFinding,
    Measure,
    Modality,
    PatientFacts,
    Region,
)
from cds_service.settings import ClinicalSettings

CATEGORY_TOPICS = {
    Category.NORMAL: "normal-bmd",
    Category.LOW_BONE_MASS: "low-bone-mass",
    Category.OSTEOPOROSIS: "osteoporosis-bmd",
}


@dataclass
class _Bmd:
    """What the BMD rules concluded, before fractures are merged in (DX-1)."""

    population: PopulationJudgement | None = None
    category: Category | None = None
    z_below: bool | None = None
    z_required: bool = False
    young_qct_low: bool = False
    when: date | None = None
    decisive: BmdMeasurement | None = None
    decisive_value: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, str | float] = field(default_factory=dict)


def assess(
    facts: PatientFacts,
    clinical: ClinicalSettings,
    today: date,
    disabled: frozenset[str] = frozenset(),
    judgements: Sequence[FractureJudgement] | None = None,
) -> list[Finding]:
    """All findings for the patient; the cards layer renders them (CONTRACT.md "Cards").

    `judgements` are the fractures judged by `judge_all` (given by a caller that needs them too)."""
    since = months_before(today, clinical.bmd_lookback_months) if clinical.bmd_lookback_months else None
    if judgements is None:
        judgements = judge_all(facts, clinical, today)
    fragility = [j for j in judgements if j.verdict is Verdict.FRAGILITY]
    young = [j for j in judgements if j.verdict is Verdict.YOUNG]
    bmd = _assess_bmd(facts, clinical, since, fractured_vertebrae(judgements))
    findings: list[Finding] = []
    diagnosis = _diagnosis(bmd, facts, clinical, fragility)
    if diagnosis is not None:
        diagnosis = _with_age_of_result(diagnosis, clinical, today)
        findings.append(diagnosis)
    if bmd.z_required and bmd.population is not None:
        findings.append(_z_score_required(bmd, clinical))
    workup = _secondary_cause_workup(
        bmd, facts, fragility, young, clinical, glucocorticoid_therapy(facts, clinical, today)
    )
    if workup is not None:
        findings.append(workup)
    peripheral = _peripheral_only(facts)
    if peripheral is not None:
        findings.append(peripheral)
    findings.extend(recommendations(facts, clinical, today, judgements, diagnosis, disabled))
    return findings


# --- BMD --------------------------------------------------------------------------------------


def _assess_bmd(
    facts: PatientFacts,
    clinical: ClinicalSettings,
    since: date | None,
    fractured_vertebrae: frozenset[str],
) -> _Bmd:
    dxa = [e for e in dxa_exams(facts.measurements, since) if _has_diagnostic_scores(e, facts)]
    qct = qct_exams(facts.measurements, since)
    latest_dxa = dxa[0] if dxa else None
    latest_qct = qct[0] if qct else None
    if latest_dxa is None and latest_qct is None:
        return _Bmd()
    # A value present but unreadable in the most recent exam of a modality: no category from it at all
    # (the remaining sites could err towards a milder category), and no older exam stands in for it.
    blocked = {
        modality
        for modality, latest in ((Modality.DXA, latest_dxa), (Modality.QCT, latest_qct))
        if latest is not None
        and any(
            u.modality is modality and (latest.when - u.when).days <= EXAM_WINDOW_DAYS
            for u in facts.unreadable_bmd
        )
    }
    # The population on the day of the most recent BMD exam decides how the patient is judged;
    # an exam of the other population is older and is not combined with it (DX-1 needs one population).
    newest = max(e.when for e in (latest_dxa, latest_qct) if e is not None)
    population = population_on(facts, newest, clinical)
    result = _Bmd(population=population, when=newest)
    if population.population is Population.UNKNOWN:
        result.notes.append("population-unknown")
        return result
    _population_notes(result, population, clinical)
    _unreadable(result, facts, blocked)
    if (
        latest_dxa is not None
        and Modality.DXA not in blocked
        and population_on(facts, latest_dxa.when, clinical).population is population.population
    ):
        _judge_dxa(result, latest_dxa, population, facts)
    if (
        latest_qct is not None
        and Modality.QCT not in blocked
        and population_on(facts, latest_qct.when, clinical).population is population.population
    ):
        _judge_qct(result, latest_qct, population, fractured_vertebrae)
    if any(e.quote and e.kind not in ("unreadable", "not-measured") for e in result.evidence):
        result.notes.append("bmd-from-text")
    result.evidence = _quoted_once(result.evidence)
    _context_rows(result, facts)
    return result


def _unreadable(result: _Bmd, facts: PatientFacts, blocked: set[Modality]) -> None:
    """The unreadable values that stop a category, shown with the words that held them."""
    if not blocked:
        return
    result.notes.append("bmd-unreadable-no-category")
    for u in facts.unreadable_bmd:
        if u.modality in blocked:
            result.evidence.append(
                Evidence(kind="unreadable", source=u.source, when=u.when, quote=u.quote, used=False)
            )


def _quoted_once(evidence: list[Evidence]) -> list[Evidence]:
    """One sentence often holds several values ("T值 -2.1，Z值 -0.9"): it is quoted once."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for e in evidence:
        if e.quote is not None and (e.source, e.quote) in seen:
            e = replace(e, quote=None)
        elif e.quote is not None:
            seen.add((e.source, e.quote))
        rows.append(e)
    return rows


def _has_diagnostic_scores(exam: DxaExam, facts: PatientFacts) -> bool:
    """An exam with a T- or Z-score at a DXA-1 region (or DXA-4 unknown region, or DXA-2 forearm)."""
    unusable = unusable_sites(facts, exam.when)
    limited = unusable.site_limited(exam.measurements)
    return any(exam.scores(measure, limited, unusable) for measure in (Measure.T_SCORE, Measure.Z_SCORE))


def _population_notes(result: _Bmd, population: PopulationJudgement, clinical: ClinicalSettings) -> None:
    if population.population is Population.T_SCORE:
        result.rules.append("POP-1")
    else:
        result.rules.append("POP-3")
    if population.basis is Basis.ASSUMED_POSTMENOPAUSAL:
        result.rules.append("POP-4")
        result.notes.append("assumed-postmenopausal")
    elif population.basis is Basis.BILATERAL_OOPHORECTOMY:
        result.rules.append("POP-2")
        result.notes.append("bilateral-oophorectomy")
    elif population.basis is Basis.POSTMENOPAUSAL_RECORDED:
        result.notes.append("postmenopausal-recorded")
    elif population.basis is Basis.OLDER_MALE:
        result.notes.append("older-male")
    elif population.basis is Basis.UNKNOWN_SEX:
        result.notes.append("sex-unknown")
    elif population.basis is Basis.PREMENOPAUSAL_BY_AGE:
        result.notes.append("premenopausal-by-age")
    if population.age is not None:
        result.params["age"] = population.age
        result.params["age_at"] = "exam"  # the population is judged on the day of the exam


def _judge_dxa(result: _Bmd, exam: DxaExam, population: PopulationJudgement, facts: PatientFacts) -> None:
    site_problem = unusable_sites(facts, exam.when)
    forearm_counts = site_problem.site_limited(exam.measurements)  # DXA-2
    measure = Measure.T_SCORE if population.population is Population.T_SCORE else Measure.Z_SCORE
    scores = exam.scores(measure, forearm_counts, site_problem)
    for m in exam.measurements:
        counted = m in scores
        result.evidence.append(_row(m, used=counted))
    unmeasured = [
        s
        for s in facts.unmeasured_sites
        if s.modality is Modality.DXA and abs((s.when - exam.when).days) <= EXAM_WINDOW_DAYS
    ]
    for site in unmeasured:
        # The report says a site was not measured: the category comes from the sites measured (DXA-1).
        region = site.region.value
        result.evidence.append(
            Evidence(
                kind="not-measured",
                source=site.source,
                when=site.when,
                region=region,
                side=site.laterality,
                quote=site.quote,
                used=False,
            )
        )
    if unmeasured:
        result.notes.append("site-not-measured")
    if site_problem.any:
        result.rules.append("DXA-2")
        result.notes.extend(f"site-unusable-{reason}" for reason in site_problem.reasons)
    if forearm_counts and any(m.region is Region.FOREARM for m in scores):
        result.notes.append("forearm-counts")
    if not scores:
        if population.population is Population.Z_SCORE and exam.scores(
            Measure.T_SCORE, forearm_counts, site_problem
        ):
            result.z_required = True  # POP-3: a T-score gives no category here
        return
    decisive = lowest(scores)
    result.rules.append("DXA-1")
    if any(m.region is Region.UNSPECIFIED for m in scores):
        result.rules.append("DXA-4")
        result.notes.append("region-unknown")
    references = {m.reference_database for m in exam.measurements if m.reference_database}
    foreign = sorted(r for r in references if r != "Chinese")
    if foreign:
        result.rules.append("DXA-6")
        result.notes.append("reference-database-not-chinese")
        result.params["reference_database"] = ", ".join(foreign)
    if population.population is Population.Z_SCORE and population.age is not None and population.age < 20:
        result.notes.append("paediatric-reference")  # DXA-6: Chinese paediatric references
    if measure is Measure.T_SCORE:
        category = classify_t_score(decisive.value)  # DXA-3
        result.rules.append("DXA-3")
        _take(result, category, decisive, decisive.value)
    else:
        below = is_below_expected_range(decisive.value)  # POP-3
        if result.z_below is None or below:
            result.z_below = below
            result.decisive = decisive
            result.decisive_value = decisive.value


def _judge_qct(
    result: _Bmd, exam: QctExam, population: PopulationJudgement, fractured_vertebrae: frozenset[str]
) -> None:
    lumbar = lumbar_qct_value(exam.lumbar, fractured_vertebrae) if exam.lumbar else None
    for m in exam.lumbar:
        used = lumbar is not None and m in lumbar.used and lumbar.value is not None
        result.evidence.append(_row(m, used=used))
    for m in exam.hip:
        result.evidence.append(_row(m, used=population.population is Population.T_SCORE))
    result.rules.append("QCT-1" if exam.lumbar else "QCT-3")
    if lumbar is not None:
        _lumbar_notes(result, lumbar)
    if population.population is Population.Z_SCORE:
        # QCT-6: no QCT category for the young; ≤ 120 mg/cm³ leads to the work-up (DX-6).
        result.rules.append("QCT-6")
        result.notes.append("qct-no-category-young")
        if lumbar is not None and lumbar.value is not None and qct_low_in_young(lumbar.value):
            result.young_qct_low = True
            result.params["qct_value"] = round(lumbar.value, 1)
        return
    decided = False
    if lumbar is not None and lumbar.value is not None:
        result.rules.extend(["QCT-2"])
        _take(result, classify_lumbar_qct(lumbar.value), lumbar.used[0], lumbar.value, qct_mean=lumbar)
        decided = True
    if exam.hip:
        hip = lowest(exam.hip)
        # QCT-3: hip QCT is judged by the DXA criteria, so the bands it applies are DXA-3's (CONTRACT.md
        # names DXA-3 / QCT-2 behind low-bone-mass and normal-bmd: the card must cite where its band is from).
        result.rules.extend(["QCT-3", "DXA-3"])
        _take(result, classify_t_score(hip.value), hip, hip.value)
        decided = True
    if decided:
        result.rules.extend(["QCT-4", "QCT-7"])
        result.notes.append("qct-mindways")


def _lumbar_notes(result: _Bmd, lumbar: LumbarQct) -> None:
    if lumbar.single_vertebra:
        result.notes.append("qct-single-vertebra")
    if lumbar.left_out_fractured:
        result.notes.append("qct-fractured-left-out")
    if len(lumbar.used) == 2 and lumbar.value is not None:
        result.params["qct_mean_of"] = "+".join(m.vertebra or "?" for m in lumbar.used)


def _take(
    result: _Bmd,
    category: Category,
    measurement: BmdMeasurement,
    value: float,
    qct_mean: LumbarQct | None = None,
) -> None:
    """DX-1: the patient's category is the worse of DXA and QCT."""
    if result.category is None or category > result.category:
        result.category = category
        result.decisive = measurement
        result.decisive_value = value
        if qct_mean is not None and len(qct_mean.used) == 2:
            result.params["decisive_kind"] = "qct-mean"
        else:
            result.params.pop("decisive_kind", None)


def _context_rows(result: _Bmd, facts: PatientFacts) -> None:
    """DX-5 / DX-4: TBS and peripheral results may be shown, never decide."""
    for modality, note in (
        (Modality.TBS, "tbs-context"),
        (Modality.PERIPHERAL, "peripheral-context"),
        (Modality.QUS, "qus-context"),
    ):
        items = [m for m in facts.measurements if m.modality is modality]
        if items:
            latest = max(items, key=lambda m: m.when)
            result.evidence.append(_row(latest, used=False))
            result.notes.append(note)
            result.rules.append("DX-5" if modality is Modality.TBS else "DX-4")


def _row(m: BmdMeasurement, *, used: bool) -> Evidence:
    region = m.vertebra or m.region.value
    kind = {
        Measure.T_SCORE: "t-score",
        Measure.Z_SCORE: "z-score",
        Measure.ABMD: "abmd",
        Measure.VBMD: "vbmd",
        Measure.INDEX: "tbs",
    }[m.measure]
    if m.modality is Modality.QUS:
        kind = "qus"  # DX-4: never called BMD
    elif m.modality is Modality.PERIPHERAL:
        kind = f"peripheral-{kind}"
    elif m.modality is Modality.QCT:
        kind = f"qct-{kind}"
    return Evidence(
        kind=kind,
        source=m.source,
        when=m.when,
        value=m.value,
        unit=m.unit,
        region=region,
        quote=m.quote,  # a value read from report text: the sentence is the evidence
        used=used,
    )


# --- findings ------------------------------------------------------------------------------------


def _settings_used(bmd: _Bmd, clinical: ClinicalSettings) -> tuple[SettingUse, ...]:
    used: list[SettingUse] = []
    if bmd.population is None:
        return ()
    if bmd.population.basis is Basis.ASSUMED_POSTMENOPAUSAL:
        used.append(SettingUse("OSTEO_CDS_MENOPAUSE_AGE", str(clinical.menopause_age)))
    if bmd.population.basis is Basis.UNKNOWN_SEX:
        used.append(SettingUse("OSTEO_CDS_MENOPAUSE_AGE", str(clinical.menopause_age)))
        used.append(SettingUse("OSTEO_CDS_OLDER_MALE_AGE", str(clinical.older_male_age)))
    if bmd.population.basis in (Basis.OLDER_MALE, Basis.YOUNG_MALE):
        used.append(SettingUse("OSTEO_CDS_OLDER_MALE_AGE", str(clinical.older_male_age)))
    if bmd.population.basis is Basis.PREMENOPAUSAL_BY_AGE:
        used.append(SettingUse("OSTEO_CDS_MENOPAUSE_AGE", str(clinical.menopause_age)))
    if clinical.bmd_lookback_months:
        used.append(SettingUse("OSTEO_CDS_BMD_LOOKBACK_MONTHS", str(clinical.bmd_lookback_months)))
    return tuple(used)


def _common_params(bmd: _Bmd) -> dict[str, str | float]:
    params = dict(bmd.params)
    if bmd.decisive is not None and bmd.decisive_value is not None:
        params["value"] = bmd.decisive_value  # rendered without crossing a category boundary
        params["region"] = bmd.decisive.vertebra or bmd.decisive.region.value
        params["date"] = bmd.decisive.when.isoformat()
        params["measure"] = _row(bmd.decisive, used=True).kind
        if params.get("decisive_kind") == "qct-mean":
            params["measure"] = "qct-mean"
            # QCT-1: name the two vertebrae the mean came from (e.g. "L1+L2"), not L1-L4
            params["region"] = str(params.get("qct_mean_of", "lumbar-spine"))
        elif bmd.decisive.modality is Modality.QCT and bmd.decisive.region is Region.LUMBAR_SPINE:
            params["region"] = "qct-mean-reported"  # QCT-1: a reported mean of two vertebrae, not L1-L4
    return params


def _diagnosis(
    bmd: _Bmd, facts: PatientFacts, clinical: ClinicalSettings, fragility: Sequence[FractureJudgement]
) -> Finding | None:
    if fragility:
        return _fracture_diagnosis(bmd, facts, clinical, fragility)
    if bmd.population is None:
        return None
    params = _common_params(bmd)
    notes = list(dict.fromkeys(bmd.notes))
    settings = _settings_used(bmd, clinical)
    if bmd.population.population is Population.T_SCORE and bmd.category is not None:
        topic = CATEGORY_TOPICS[bmd.category]
        if bmd.category is not Category.NORMAL:
            notes.append("densitometric-diagnosis")  # DX-9
        rules = [*bmd.rules, "DX-1"]
        if bmd.category is not Category.NORMAL:
            rules.append("DX-9")
        return Finding(
            topic=topic,
            rules=_unique(rules),
            evidence=tuple(bmd.evidence),
            notes=tuple(notes),
            settings=settings,
            params=params,
            suggest_condition=bmd.category is Category.OSTEOPOROSIS and not facts.has("osteoporosis"),
        )
    if bmd.population.population is Population.Z_SCORE and bmd.z_below is not None:
        topic = "below-expected-range-for-age" if bmd.z_below else "within-expected-range-for-age"
        return Finding(
            topic=topic,
            rules=_unique([*bmd.rules, "POP-3"]),
            evidence=tuple(bmd.evidence),
            notes=tuple(notes),
            settings=settings,
            params=params,
        )
    return None


def _fracture_diagnosis(
    bmd: _Bmd, facts: PatientFacts, clinical: ClinicalSettings, fragility: Sequence[FractureJudgement]
) -> Finding:
    """FX-2: a fragility fracture means osteoporosis whatever the BMD; DX-2: with BMD osteoporosis, severe."""
    bmd_osteoporosis = (
        bmd.population is not None
        and bmd.population.population is Population.T_SCORE
        and bmd.category is Category.OSTEOPOROSIS
    )
    topic = "severe-osteoporosis" if bmd_osteoporosis else "osteoporosis-fracture"
    rules = ["FX-1", "FX-2"]
    if any(j.mechanism_assumed for j in fragility):
        rules.append("FX-1a")
    if any(j.fracture.from_condition or j.fracture.quote for j in fragility):
        rules.append("FX-6")
    if any(j.fracture.genant_grade is not None for j in fragility):
        rules.extend(["FX-3", "FX-4"])
    if any(j.fracture.acuity != "unknown" for j in fragility):
        rules.append("FX-7")
    rules.extend(["DX-2"] if bmd_osteoporosis else ["DX-3"])
    if bmd.population is not None and bmd.population.population is Population.T_SCORE:
        rules = [*bmd.rules, *rules]
    rules.append("DX-9")
    # One row per fracture, dated by its own date (issue 17: not by a later report that mentions it).
    groups = sorted(
        same_fracture_groups(fragility), key=lambda g: g[0].fracture.when or date.min, reverse=True
    )
    ordered = [j for g in groups for j in g]
    evidence = [fracture_group_row(g) for g in groups]
    if bmd.population is not None and bmd.population.population is Population.T_SCORE:
        evidence.extend(bmd.evidence)
    notes = fracture_notes(ordered)
    # FX-4: a Genant grade 1 vertebra with ECF not described as the only fracture: the fracture-based
    # diagnosis (or, with BMD osteoporosis, only the severity) is provisional until the ECF check.
    provisional = all(awaits_ecf_check(g) for g in groups)
    if provisional:
        notes.append("severity-provisional-ecf" if bmd_osteoporosis else "diagnosis-provisional-ecf")
        rules.append("FX-4")
    population = groups[0][0].population
    settings: list[SettingUse] = list(_settings_used(bmd, clinical))
    if population is not None and population.basis is Basis.ASSUMED_POSTMENOPAUSAL:
        notes.append("assumed-postmenopausal-at-fracture")
        bmd.notes = [n for n in bmd.notes if n != "assumed-postmenopausal"]  # said once, for the fracture
        if not any(s.name == "OSTEO_CDS_MENOPAUSE_AGE" for s in settings):
            settings.append(SettingUse("OSTEO_CDS_MENOPAUSE_AGE", str(clinical.menopause_age)))
    if bmd_osteoporosis:
        notes.extend(n for n in bmd.notes if n not in notes)
    elif "bmd-unreadable-no-category" in bmd.notes:
        notes.append("bmd-unreadable-no-category")
        evidence.extend(e for e in bmd.evidence if e.kind == "unreadable")
    notes.append("densitometric-diagnosis")
    params = _common_params(bmd) if bmd_osteoporosis else {}
    latest = evidence[0]
    params["fracture_site"] = (latest.region or "").partition(" ")[0]
    params["fracture_date"] = latest.when.isoformat() if latest.when else "?"
    if population is not None and population.age is not None:
        params["age_at_fracture"] = population.age
    if provisional and not bmd_osteoporosis:
        params["summary_variant"] = "provisional"
    return Finding(
        topic=topic,
        rules=_unique(rules),
        evidence=tuple(evidence),
        notes=tuple(dict.fromkeys(notes)),
        settings=tuple(settings),
        params=params,
        # FX-4: no Condition for a diagnosis that rests on an unchecked grade 1 vertebra alone.
        suggest_condition=not facts.has("osteoporosis") and (bmd_osteoporosis or not provisional),
    )


# Categories whose result stops telling the current state with time (issue 17); an osteoporosis-range
# result or a fragility fracture keeps supporting the diagnosis whatever its age.
_REMEASURED_TOPICS = frozenset({"normal-bmd", "low-bone-mass"})


def _with_age_of_result(diagnosis: Finding, clinical: ClinicalSettings, today: date) -> Finding:
    """How old the decisive result is (whole years, for the summary), and for a normal or low-bone-mass
    result older than OSTEO_CDS_BMD_REMEASURE_MONTHS a re-measurement sentence (a choice, named)."""
    params = dict(diagnosis.params)
    for key in ("date", "fracture_date"):
        value = params.get(key)
        if isinstance(value, str) and value[:4].isdigit():
            params[f"{key}_years"] = _whole_years(date.fromisoformat(value), today)
    notes, settings = diagnosis.notes, diagnosis.settings
    when = params.get("date")
    if (
        diagnosis.topic in _REMEASURED_TOPICS
        and isinstance(when, str)
        and date.fromisoformat(when) < months_before(today, clinical.bmd_remeasure_months)
    ):
        notes = (*notes, "bmd-remeasure")
        settings = (
            *settings,
            SettingUse("OSTEO_CDS_BMD_REMEASURE_MONTHS", str(clinical.bmd_remeasure_months)),
        )
        params["remeasure_months"] = clinical.bmd_remeasure_months
    return replace(diagnosis, params=params, notes=notes, settings=settings)


def _whole_years(since: date, today: date) -> int:
    return max(0, today.year - since.year - ((today.month, today.day) < (since.month, since.day)))


def _z_score_required(bmd: _Bmd, clinical: ClinicalSettings) -> Finding:
    params = _common_params(bmd)
    if bmd.when is not None:
        params["date"] = bmd.when.isoformat()
    return Finding(
        topic="z-score-required",
        rules=_unique([*bmd.rules, "POP-3", "DXA-6"]),
        evidence=tuple(bmd.evidence),
        notes=tuple(dict.fromkeys(bmd.notes)),
        settings=_settings_used(bmd, clinical),
        params=params,
    )


# POP-5 names glucocorticoid therapy without a dose or a duration. Implementation choice: systemic use
# covering at least OSTEO_CDS_GLUCOCORTICOID_MONTHS months (default 3, the convention of fracture-risk tools),
# past, current or planned; a month counts as 365.25 / 12 days.
def glucocorticoid_therapy(
    facts: PatientFacts, clinical: ClinicalSettings, today: date
) -> list[CodedFinding]:
    """POP-5: systemic glucocorticoid orders/statements whose merged time spans reach the threshold."""
    uses = [u for u in facts.medications if u.drug_class == "glucocorticoids" and u.start <= today]
    spans = sorted((u.start, u.end if u.end is not None else today) for u in uses if u.start is not None)
    covered = 0
    current: tuple[date, date] | None = None
    for start, end in spans:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            covered += (current[1] - current[0]).days
        current = (start, end)
    if current is not None:
        covered += (current[1] - current[0]).days
    if covered < round(clinical.glucocorticoid_months * 365.25 / 12):
        return []
    return [CodedFinding("secondary-cause:glucocorticoids", u.start, u.source, u.display) for u in uses]


def _secondary_cause_workup(
    bmd: _Bmd,
    facts: PatientFacts,
    fragility: Sequence[FractureJudgement],
    young: Sequence[FractureJudgement],
    clinical: ClinicalSettings,
    glucocorticoids: Sequence[CodedFinding] = (),
) -> Finding | None:
    """POP-5, DX-6, QCT-6, FX-1: evaluate secondary osteoporosis."""
    causes = [c for c in facts.coded_of("secondary-cause:") if c.active] + list(glucocorticoids)
    rules: list[str] = []
    low_adult = (
        bmd.population is not None
        and bmd.population.population is Population.T_SCORE
        and bmd.category in (Category.LOW_BONE_MASS, Category.OSTEOPOROSIS)
    )
    young_low = bool(bmd.z_below) or bmd.young_qct_low
    if causes and (low_adult or young_low or fragility or young):
        rules.append("POP-5")
        if fragility:
            rules.append("FX-1")  # criterion 3: secondary osteoporosis excluded
    if young_low or young:
        rules.extend(["DX-6", "POP-3"])
        if bmd.young_qct_low:
            rules.append("QCT-6")
    if not rules:
        return None
    evidence = [
        Evidence(kind="secondary-cause", source=c.source, when=c.when, region=c.concept.partition(":")[2])
        for c in causes
    ]
    decisive = [e for e in bmd.evidence if e.used] + [fracture_row(j.fracture) for j in young]
    params = _common_params(bmd)
    params["causes"] = ", ".join(dict.fromkeys(c.concept.partition(":")[2] for c in causes))
    notes = ["secondary-causes-listed"] if causes else []
    settings: list[SettingUse] = []
    if glucocorticoids and "POP-5" in rules:
        notes.append("glucocorticoid-months")
        settings.append(SettingUse("OSTEO_CDS_GLUCOCORTICOID_MONTHS", str(clinical.glucocorticoid_months)))
    if young_low:
        notes.append("young-low-bmd")
    if young:
        notes.append("young-fracture")
    # Why the young population: the basis of the judgement that put the patient there (POP-3/POP-4).
    populations = (
        [bmd.population] if young_low and bmd.population else [j.population for j in young if j.population]
    )
    for population in populations:
        if population.basis is Basis.PREMENOPAUSAL_BY_AGE:
            notes.append("premenopausal-by-age")
            settings.append(SettingUse("OSTEO_CDS_MENOPAUSE_AGE", str(clinical.menopause_age)))
        elif population.basis is Basis.YOUNG_MALE:
            settings.append(SettingUse("OSTEO_CDS_OLDER_MALE_AGE", str(clinical.older_male_age)))
        if population.age is not None and "age" not in params:
            params["age"] = population.age
            params["age_at"] = "exam" if young_low else "fracture"
    return Finding(
        topic="secondary-cause-workup",
        rules=_unique(rules),
        evidence=tuple(evidence + decisive),
        notes=tuple(dict.fromkeys(notes)),
        settings=tuple(dict.fromkeys(settings)),
        params=params,
    )


def _peripheral_only(facts: PatientFacts) -> Finding | None:
    """DX-4 / REC-PERIPHERAL: only peripheral results (or QUS) on record."""
    central = [m for m in facts.measurements if m.modality in (Modality.DXA, Modality.QCT)]
    peripheral = [m for m in facts.measurements if m.modality in (Modality.PERIPHERAL, Modality.QUS)]
    if central or not peripheral:
        return None
    peripheral.sort(key=lambda m: m.when, reverse=True)
    notes = ["peripheral-screening-only"]
    if any(m.modality is Modality.QUS for m in peripheral):
        notes.append("qus-not-bmd")
    return Finding(
        topic="peripheral-screening-only",
        rules=("DX-4", "REC-PERIPHERAL"),
        evidence=tuple(_row(m, used=False) for m in peripheral[:6]),
        notes=tuple(notes),
        params={"date": peripheral[0].when.isoformat()},
    )


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
