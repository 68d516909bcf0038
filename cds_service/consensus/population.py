"""Who is assessed how: POP-1 (T-score population), POP-2, POP-3 (Z-score population), POP-4."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from cds_service.facts.model import PatientFacts, Sex
from cds_service.settings import ClinicalSettings


class Population(StrEnum):
    T_SCORE = "POP-1"  # postmenopausal women and men ≥ 50: WHO T-score criteria
    Z_SCORE = "POP-3"  # children, adolescents, premenopausal women, men < 50
    UNKNOWN = "unknown"  # no birth date or sex to decide by


class Basis(StrEnum):
    POSTMENOPAUSAL_RECORDED = "postmenopausal-recorded"
    BILATERAL_OOPHORECTOMY = "bilateral-oophorectomy"  # POP-2
    ASSUMED_POSTMENOPAUSAL = "assumed-postmenopausal"  # POP-4
    OLDER_MALE = "older-male"  # POP-1
    PREMENOPAUSAL_RECORDED = "premenopausal-recorded"
    PREMENOPAUSAL_BY_AGE = "premenopausal-by-age"
    YOUNG_MALE = "young-male"
    UNKNOWN_AGE = "unknown-age"
    UNKNOWN_SEX = "unknown-sex"


@dataclass(frozen=True)
class PopulationJudgement:
    population: Population
    basis: Basis
    age: int | None  # age on the day judged

    @property
    def assumed(self) -> bool:
        return self.basis is Basis.ASSUMED_POSTMENOPAUSAL


def age_on(birth: date | None, day: date) -> int | None:
    if birth is None or day < birth:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def population_on(facts: PatientFacts, day: date, clinical: ClinicalSettings) -> PopulationJudgement:
    """The population the patient belonged to on `day` (the exam or fracture date: CONTRACT.md "Ages")."""
    age = age_on(facts.birth_date, day)
    if facts.sex is Sex.MALE:
        if age is None:
            return PopulationJudgement(Population.UNKNOWN, Basis.UNKNOWN_AGE, None)
        # POP-1: "50 岁以上男性"; 老年男性 read as the same age (a setting).
        if age >= clinical.older_male_age:
            return PopulationJudgement(Population.T_SCORE, Basis.OLDER_MALE, age)
        return PopulationJudgement(Population.Z_SCORE, Basis.YOUNG_MALE, age)
    if facts.sex is Sex.FEMALE:
        return _woman(facts, day, age, clinical)
    # Sex unknown: decidable only where both readings agree.
    if age is None:
        return PopulationJudgement(Population.UNKNOWN, Basis.UNKNOWN_SEX, None)
    if age >= max(clinical.menopause_age, clinical.older_male_age) and not _recorded_premenopausal(
        facts, day
    ):
        return PopulationJudgement(Population.T_SCORE, Basis.UNKNOWN_SEX, age)
    if age < min(clinical.menopause_age, clinical.older_male_age):
        return PopulationJudgement(Population.Z_SCORE, Basis.UNKNOWN_SEX, age)
    return PopulationJudgement(Population.UNKNOWN, Basis.UNKNOWN_SEX, age)


def _woman(
    facts: PatientFacts, day: date, age: int | None, clinical: ClinicalSettings
) -> PopulationJudgement:
    # POP-2: bilateral oophorectomy on or before the day "may be equated" with menopause.
    if any(_on_or_before(f.when, day) for f in facts.coded_of("bilateral-oophorectomy")):
        return PopulationJudgement(Population.T_SCORE, Basis.BILATERAL_OOPHORECTOMY, age)
    # POP-4: a coded postmenopausal state or menopause from the record.
    if any(_on_or_before(f.when, day) for f in facts.coded_of("postmenopausal")):
        return PopulationJudgement(Population.T_SCORE, Basis.POSTMENOPAUSAL_RECORDED, age)
    if _recorded_premenopausal(facts, day):
        return PopulationJudgement(Population.Z_SCORE, Basis.PREMENOPAUSAL_RECORDED, age)
    # POP-4 (choice): menopause recorded later, by a woman already of the assumed menopause age on the day,
    # confirms what the age would assume (He Yulan: M81.0 a week after her fracture at 85): nothing assumed.
    if age is not None and age >= clinical.menopause_age and facts.coded_of("postmenopausal"):
        return PopulationJudgement(Population.T_SCORE, Basis.POSTMENOPAUSAL_RECORDED, age)
    if age is None:
        return PopulationJudgement(Population.UNKNOWN, Basis.UNKNOWN_AGE, None)
    # POP-4: the record is silent; a woman at or above the setting's age is assumed postmenopausal.
    if age >= clinical.menopause_age:
        return PopulationJudgement(Population.T_SCORE, Basis.ASSUMED_POSTMENOPAUSAL, age)
    return PopulationJudgement(Population.Z_SCORE, Basis.PREMENOPAUSAL_BY_AGE, age)


def _recorded_premenopausal(facts: PatientFacts, day: date) -> bool:
    """A premenopausal state recorded on or after the day says she was premenopausal then."""
    return any(f.when is None or f.when >= day for f in facts.coded_of("premenopausal"))


def _on_or_before(when: date | None, day: date) -> bool:
    # An undated record of menopause or oophorectomy is taken to hold (the record says so, not when).
    return when is None or when <= day
