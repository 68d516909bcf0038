"""Bone density by DXA (DXA-1…DXA-6) and QCT (QCT-1…QCT-7): exams, the decisive value, the category."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum
from statistics import mean

from cds_service.facts.model import (
    CENTRAL_DXA_REGIONS,
    SAME_EXAM_DAYS,
    BmdMeasurement,
    Measure,
    Modality,
    PatientFacts,
    Region,
)


class Category(IntEnum):
    """BMD categories, ordered so that max() is the worse (DX-1)."""

    NORMAL = 0
    LOW_BONE_MASS = 1
    OSTEOPOROSIS = 2


# DXA-3 (table 1): normal T ≥ -1.0; low bone mass -2.5 < T < -1.0; osteoporosis T ≤ -2.5.
T_NORMAL_LOWER_BOUND = -1.0
T_OSTEOPOROSIS_UPPER_BOUND = -2.5
# POP-3: Z ≤ -2.0 is below the expected range for age.
Z_BELOW_EXPECTED = -2.0
# QCT-2 (table 2): normal > 120; low bone mass 80–120 inclusive; osteoporosis < 80 (mg/cm³).
QCT_NORMAL_ABOVE = 120.0
QCT_OSTEOPOROSIS_BELOW = 80.0


def classify_t_score(t: float) -> Category:
    """DXA-3, and QCT-3 for hip QCT T-scores: -1.0 is normal, -2.5 is osteoporosis."""
    if t <= T_OSTEOPOROSIS_UPPER_BOUND:
        return Category.OSTEOPOROSIS
    if t < T_NORMAL_LOWER_BOUND:
        return Category.LOW_BONE_MASS
    return Category.NORMAL


def classify_lumbar_qct(vbmd: float) -> Category:
    """QCT-2: 120 and 80 mg/cm³ are both low bone mass."""
    if vbmd < QCT_OSTEOPOROSIS_BELOW:
        return Category.OSTEOPOROSIS
    if vbmd <= QCT_NORMAL_ABOVE:
        return Category.LOW_BONE_MASS
    return Category.NORMAL


def is_below_expected_range(z: float) -> bool:
    """POP-3: Z ≤ -2.0 is below the expected range for age."""
    return z <= Z_BELOW_EXPECTED


def qct_low_in_young(vbmd: float) -> bool:
    """QCT-6 / DX-6: in the POP-3 population vBMD ≤ 120 mg/cm³ is 骨密度降低 (no category)."""
    return vbmd <= QCT_NORMAL_ABOVE


@dataclass(frozen=True)
class UnusableSites:
    """DXA-2: regions that cannot be measured validly on a given day, and why."""

    spine: bool = False
    hip_sides: frozenset[str] = frozenset()  # "left", "right", or "both"
    reasons: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return self.spine or bool(self.hip_sides)

    def site_limited(self, measurements: Iterable[BmdMeasurement] = ()) -> bool:
        """DXA-2: one of the two sites is limited: the spine, or the hip (both sides replaced, or
        every hip value of the exam on a replaced side: "bilateral, or on the measured side")."""
        if self.spine or "both" in self.hip_sides:
            return True
        hips = [m for m in measurements if m.region in (Region.FEMORAL_NECK, Region.TOTAL_HIP)]
        return bool(hips) and all(self.excludes(m) for m in hips)

    def excludes(self, m: BmdMeasurement) -> bool:
        if m.region is Region.LUMBAR_SPINE and self.spine:
            return True
        if m.region in (Region.FEMORAL_NECK, Region.TOTAL_HIP) and self.hip_sides:
            return "both" in self.hip_sides or (m.laterality is not None and m.laterality in self.hip_sides)
        return False


def unusable_sites(facts: PatientFacts, day: date) -> UnusableSites:
    """DXA-2: spine or hip that cannot be measured validly (fusion/instrumentation, prosthesis)."""
    spine = False
    hips: set[str] = set()
    reasons: list[str] = []
    for finding in facts.coded:
        if finding.when is not None and finding.when > day:
            continue
        if finding.concept == "spinal-fusion":
            spine = True
            reasons.append("spinal-fusion")
        elif finding.concept.startswith("hip-prosthesis"):
            side = finding.concept.partition(":")[2]
            if side == "bilateral":
                hips.add("both")
            elif side in ("left", "right"):
                hips.add(side)
            if side:
                reasons.append("hip-prosthesis")
    for site in facts.unmeasured_sites:
        # DXA-2: a report stating a site was not measured because of deformity, fixation, an implant or
        # a prosthesis (on that exam, up to this day)
        if not site.dxa2_reason or site.when > day or site.modality is not Modality.DXA:
            continue
        if site.region is Region.LUMBAR_SPINE:
            spine = True
        elif site.region in (Region.FEMORAL_NECK, Region.TOTAL_HIP):
            hips.add(site.laterality or "both")
        else:
            continue
        reasons.append("reported-not-measurable")
    if {"left", "right"} <= hips:
        hips.add("both")
    return UnusableSites(spine=spine, hip_sides=frozenset(hips), reasons=tuple(dict.fromkeys(reasons)))


@dataclass(frozen=True)
class DxaExam:
    """One DXA exam: the DXA measurements of one day (modality + date)."""

    when: date
    measurements: tuple[BmdMeasurement, ...]

    def scores(self, measure: Measure, forearm_counts: bool, unusable: UnusableSites) -> list[BmdMeasurement]:
        """DXA-1/DXA-2/DXA-4: the scores at the diagnostic regions of this exam."""
        regions = set(CENTRAL_DXA_REGIONS) | {Region.UNSPECIFIED}
        if forearm_counts:
            regions.add(Region.FOREARM)
        return [
            m
            for m in self.measurements
            if m.measure is measure and m.region in regions and not unusable.excludes(m)
        ]

    @property
    def devices(self) -> frozenset[str]:
        """DXA-5: the devices of the exam, by Device reference (else by the device named)."""
        return frozenset(d for m in self.measurements if (d := m.device_id or m.device))


# One exam may be recorded over two days: values within this many days belong to it (facts/model.py).
EXAM_WINDOW_DAYS = SAME_EXAM_DAYS


def _exams(
    measurements: Iterable[BmdMeasurement], modality: Modality, since: date | None
) -> list[tuple[date, list[BmdMeasurement]]]:
    """The modality's measurements grouped into exams, newest first; within an exam, newest values first."""
    chosen = sorted(
        (m for m in measurements if m.modality is modality and (since is None or m.when >= since)),
        key=lambda m: m.when,
        reverse=True,
    )
    exams: list[tuple[date, list[BmdMeasurement]]] = []
    for m in chosen:
        if exams and (exams[-1][0] - m.when).days <= EXAM_WINDOW_DAYS:
            exams[-1][1].append(m)
        else:
            exams.append((m.when, [m]))
    return exams


def dxa_exams(measurements: Iterable[BmdMeasurement], since: date | None = None) -> list[DxaExam]:
    """DXA exams, newest first (DX-1: the most recent exam decides)."""
    return [DxaExam(day, tuple(items)) for day, items in _exams(measurements, Modality.DXA, since)]


def lowest(scores: Sequence[BmdMeasurement]) -> BmdMeasurement:
    """DXA-1: the lowest score; ties go to the first region in diagnostic order."""
    order = {Region.LUMBAR_SPINE: 0, Region.FEMORAL_NECK: 1, Region.TOTAL_HIP: 2, Region.FOREARM: 3}
    return min(scores, key=lambda m: (m.value, order.get(m.region, 9)))


@dataclass(frozen=True)
class QctExam:
    when: date
    lumbar: tuple[BmdMeasurement, ...]  # per-vertebra values or a mean
    hip: tuple[BmdMeasurement, ...]  # hip QCT (CTXA) T-scores


def qct_exams(measurements: Iterable[BmdMeasurement], since: date | None = None) -> list[QctExam]:
    exams = []
    for day, items in _exams(measurements, Modality.QCT, since):
        lumbar = tuple(m for m in items if m.measure is Measure.VBMD)
        hip = tuple(m for m in items if m.measure is Measure.T_SCORE and m.region is Region.HIP)
        if lumbar or hip:
            exams.append(QctExam(day, lumbar, hip))
    return exams


@dataclass(frozen=True)
class LumbarQct:
    """QCT-1: the value used (mean of two vertebrae, or the reported mean) and what it came from."""

    value: float | None
    used: tuple[BmdMeasurement, ...]
    left_out_fractured: tuple[BmdMeasurement, ...] = ()
    single_vertebra: bool = False
    notes: tuple[str, ...] = field(default=())


_LEVEL_ORDER = {f"T{n}": n for n in range(1, 13)} | {f"L{n}": 12 + n for n in range(1, 6)}


def lumbar_qct_value(values: Sequence[BmdMeasurement], fractured: frozenset[str]) -> LumbarQct:
    """QCT-1: a reported mean is used; else the mean of two vertebrae (L1+L2 first), fractured left out."""
    means = [m for m in values if m.region is Region.LUMBAR_SPINE]
    if means:
        return LumbarQct(value=means[0].value, used=(means[0],))
    per_vertebra: dict[str, BmdMeasurement] = {}
    for m in values:
        if m.vertebra and m.vertebra not in per_vertebra:
            per_vertebra[m.vertebra] = m
    left_out = tuple(m for level, m in per_vertebra.items() if level in fractured)
    usable = {level: m for level, m in per_vertebra.items() if level not in fractured}
    chosen: tuple[BmdMeasurement, ...]
    if "L1" in usable and "L2" in usable:
        chosen = (usable["L1"], usable["L2"])
    else:
        ordered = sorted(usable.values(), key=lambda m: _LEVEL_ORDER.get(m.vertebra or "", 99))
        # Lumbar levels first (QCT is measured at L1-L3), then thoracic.
        ordered.sort(key=lambda m: 0 if (m.vertebra or "").startswith("L") else 1)
        chosen = tuple(ordered[:2])
    if len(chosen) < 2:
        return LumbarQct(value=None, used=chosen, left_out_fractured=left_out, single_vertebra=bool(chosen))
    return LumbarQct(value=mean(m.value for m in chosen), used=chosen, left_out_fractured=left_out)
