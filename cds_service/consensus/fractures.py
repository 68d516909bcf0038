"""Fragility fractures (FX-1…FX-8): which fractures on record count, and for whom."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from cds_service.consensus.findings import Evidence
from cds_service.consensus.population import Population, PopulationJudgement, population_on
from cds_service.facts.model import Fracture, PatientFacts
from cds_service.settings import ClinicalSettings

# FX-1: the usual sites of fragility fractures (the consensus's list ends in 等).
USUAL_SITES = frozenset({"vertebra", "hip", "distal-radius", "proximal-humerus"})


class Verdict(StrEnum):
    FRAGILITY = "fragility"
    UNCERTAIN = "uncertain"  # FX-6: wording is not proof
    PATHOLOGICAL = "pathological"  # FX-8
    HIGH_ENERGY = "high-energy"  # FX-5
    DEFORMITY = "deformity"  # FX-4: no endplate/cortex fracture at grade 1
    OTHER_SITE = "other-site"  # FX-1a: no mechanism recorded at a site that is not usual
    TRAUMA_UNSPECIFIED = "trauma-unspecified"  # FX-1: a trauma of unstated energy: not assumed either way
    YOUNG = "young"  # POP-3: work-up, never a label
    YOUNG_NOT_COUNTED = "young-not-counted"
    POPULATION_UNKNOWN = "population-unknown"


@dataclass(frozen=True)
class FractureJudgement:
    fracture: Fracture
    verdict: Verdict
    mechanism_assumed: bool = False  # FX-1a
    population: PopulationJudgement | None = None


def judge_fracture(
    fracture: Fracture, facts: PatientFacts, clinical: ClinicalSettings, today: date
) -> FractureJudgement:
    # FX-4: ECF stated absent at grade 1 (or a deformity stated without fracture) is a deformity.
    if fracture.deformity_only or (fracture.genant_grade == 1 and fracture.ecf == "absent"):
        return FractureJudgement(fracture, Verdict.DEFORMITY)
    if not fracture.certain:
        return FractureJudgement(fracture, Verdict.UNCERTAIN)  # FX-6
    if fracture.pathological:
        return FractureJudgement(fracture, Verdict.PATHOLOGICAL)  # FX-8
    if fracture.trauma == "high-energy":
        return FractureJudgement(fracture, Verdict.HIGH_ENERGY)  # FX-5
    # Ages: the population on the day of the fracture (CONTRACT.md "Ages"); undated: today.
    population = population_on(facts, fracture.when or today, clinical)
    low_trauma = fracture.trauma in ("none", "minor")
    usual = fracture.site in USUAL_SITES or (fracture.from_condition and fracture.trauma == "none")
    if population.population is Population.Z_SCORE:
        # POP-3 / DX-6: no label, a work-up. Which fractures: as FX-1/FX-1a read for adults — low trauma
        # stated, or a usual site with no trauma recorded (high-energy ones were left out above).
        if low_trauma or (usual and fracture.trauma == "not-stated"):
            return FractureJudgement(
                fracture, Verdict.YOUNG, mechanism_assumed=not low_trauma, population=population
            )
        return FractureJudgement(fracture, Verdict.YOUNG_NOT_COUNTED, population=population)
    if population.population is Population.UNKNOWN:
        return FractureJudgement(fracture, Verdict.POPULATION_UNKNOWN, population=population)
    if low_trauma:
        return FractureJudgement(fracture, Verdict.FRAGILITY, population=population)
    if fracture.trauma == "unspecified":
        # FX-1a assumes a fragility fracture only when no trauma is recorded; "外伤后" records one.
        return FractureJudgement(fracture, Verdict.TRAUMA_UNSPECIFIED, population=population)
    if usual:
        # FX-1a: a usual site with no trauma recorded is taken as a fragility fracture.
        return FractureJudgement(fracture, Verdict.FRAGILITY, mechanism_assumed=True, population=population)
    return FractureJudgement(fracture, Verdict.OTHER_SITE, population=population)


# A coded fracture and a report of the same fracture: within this many days, at the same site (and level).
SAME_FRACTURE_DAYS = 90


def judge_all(facts: PatientFacts, clinical: ClinicalSettings, today: date) -> list[FractureJudgement]:
    """Every fracture judged; a coded fracture whose own report calls it pathological (FX-8) or high-energy
    (FX-5) takes the report's verdict: the code says a fracture, the report says what kind."""
    judged = [judge_fracture(f, facts, clinical, today) for f in _with_shared_mechanism(facts.fractures)]
    reported = [j for j in judged if not j.fracture.from_condition]
    return [_with_report_verdict(j, reported) if j.fracture.from_condition else j for j in judged]


# FX-5: when sources of one fracture state different mechanisms, the most energetic one is taken.
_MECHANISM_ORDER = ("none", "unspecified", "minor", "high-energy")


def _with_shared_mechanism(fractures: Sequence[Fracture]) -> list[Fracture]:
    """FX-1 / FX-1a: a mechanism stated by one source of a fracture (the Condition's "家中平地跌倒") holds
    for every source of the same fracture (the report that only names it), so none of them is "assumed"."""
    shared: list[Fracture] = []
    for fracture in fractures:
        stated = [
            other.trauma
            for other in fractures
            if other is not fracture and other.trauma in _MECHANISM_ORDER and _same_fracture(fracture, other)
        ]
        if fracture.trauma == "not-stated" and stated:
            fracture = replace(fracture, trauma=max(stated, key=_MECHANISM_ORDER.index))
        shared.append(fracture)
    return shared


def _with_report_verdict(
    coded: FractureJudgement, reported: Sequence[FractureJudgement]
) -> FractureJudgement:
    if coded.fracture.trauma != "not-stated":
        return coded  # an osteoporotic code states the mechanism itself
    for report in reported:
        if report.verdict in (Verdict.PATHOLOGICAL, Verdict.HIGH_ENERGY) and _same_fracture(
            coded.fracture, report.fracture
        ):
            return FractureJudgement(coded.fracture, report.verdict, population=coded.population)
    return coded


def _same_fracture(a: Fracture, b: Fracture) -> bool:
    if a.site != b.site and "unspecified" not in (a.site, b.site):
        return False
    if a.vertebrae and b.vertebrae and not set(a.vertebrae) & set(b.vertebrae):
        return False
    if a.when is None or b.when is None:
        return True
    return abs((a.when - b.when).days) <= SAME_FRACTURE_DAYS


def fractured_vertebrae(judgements: Sequence[FractureJudgement]) -> frozenset[str]:
    """QCT-1: vertebrae known to be fractured (certain, not a deformity) are left out of the QCT mean."""
    return frozenset(
        level
        for j in judgements
        if j.verdict not in (Verdict.DEFORMITY, Verdict.UNCERTAIN)
        for level in j.fracture.vertebrae
    )


def fracture_row(fracture: Fracture, *, used: bool = True) -> Evidence:
    region = fracture.site + (f" {'/'.join(fracture.vertebrae)}" if fracture.vertebrae else "")
    return Evidence(
        kind="fracture",
        source=fracture.source,
        when=fracture.when,
        region=region,
        quote=fracture.quote,
        used=used,
        value=float(fracture.genant_grade) if fracture.genant_grade is not None else None,
        unit="Genant" if fracture.genant_grade is not None else None,
    )


def same_fracture_groups(judgements: Sequence[FractureJudgement]) -> list[list[FractureJudgement]]:
    """The judgements of one fracture together (a Condition and a report of it, a VFA and a radiograph),
    each group ordered by its sources' dates, earliest first (the fracture's own date)."""
    groups: list[list[FractureJudgement]] = []
    for j in judgements:
        group = next((g for g in groups if any(_same_fracture(j.fracture, o.fracture) for o in g)), None)
        if group is None:
            groups.append([j])
        else:
            group.append(j)
    return [sorted(g, key=lambda j: (j.fracture.when is None, j.fracture.when or date.max)) for g in groups]


def fracture_group_row(group: Sequence[FractureJudgement]) -> Evidence:
    """One evidence row per fracture: the date is its own (the Condition's onset, or the first imaging that
    shows it), never a later exam's; every source is listed."""
    fractures = [j.fracture for j in group]
    first = fractures[0]
    site = next((f.site for f in fractures if f.site != "unspecified"), first.site)
    levels = sorted({v for f in fractures for v in f.vertebrae}, key=_spine_order)
    grades = [f.genant_grade for f in fractures if f.genant_grade is not None]
    quoted = next((f for f in fractures if f.quote), None)
    return Evidence(
        kind="fracture",
        source=first.source,
        when=first.when,
        region=site + (f" {'/'.join(levels)}" if levels else ""),
        quote=quoted.quote if quoted else None,
        quote_source=quoted.source if quoted and quoted is not first else None,
        value=float(max(grades)) if grades else None,
        unit="Genant" if grades else None,
        also_in=tuple(dict.fromkeys(f.source for f in fractures[1:] if f.source != first.source)),
    )


def awaits_ecf_check(group: Sequence[FractureJudgement]) -> bool:
    """FX-4: the fracture rests only on Genant grade 1 whose endplate/cortex (ECF) nobody described: it may
    be a deformity, so what it alone decides is provisional until the ECF is checked."""
    return all(j.fracture.genant_grade == 1 and j.fracture.ecf == "not-stated" for j in group)


def _spine_order(level: str) -> tuple[int, int]:
    return ("CTLS".find(level[:1]), int(level[1:]) if level[1:].isdigit() else 0)


def fracture_notes(judgements: Sequence[FractureJudgement]) -> list[str]:
    notes = ["fx-criteria"]
    fractures = [j.fracture for j in judgements]
    if any(j.mechanism_assumed for j in judgements):
        notes.append("mechanism-assumed")
    if any(f.from_condition for f in fractures):
        notes.append("fracture-condition-trusted")
    if any(f.display and "forearm" in f.display.lower() for f in fractures):
        notes.append("forearm-read-as-wrist")
    if any(f.genant_grade is not None for f in fractures):
        notes.append("genant-visual-error")
    vertebrae = {level for f in fractures if f.site == "vertebra" for level in f.vertebrae}
    # Distinct levels: one L1 fracture seen on a radiograph and again on a CT is one fracture.
    if len(vertebrae) >= 2 or any((f.genant_grade or 0) >= 3 for f in fractures):
        notes.append("multiple-vertebral-higher-risk")
    if any(f.acuity == "new" for f in fractures):
        notes.append("acuity-new")
    if any(f.acuity == "old" for f in fractures):
        notes.append("acuity-old")
    return notes
