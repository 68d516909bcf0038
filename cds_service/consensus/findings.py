"""What the rules conclude: a topic code, the rule IDs, and the evidence they used."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from cds_service.facts.model import ProposedOrder


class Group(StrEnum):
    DIAGNOSIS = "diagnosis"
    RECOMMENDATION = "recommendation"


# CONTRACT.md "Cards": topic code → (group, indicator).
TOPICS: dict[str, tuple[Group, str]] = {
    "severe-osteoporosis": (Group.DIAGNOSIS, "critical"),
    "osteoporosis-bmd": (Group.DIAGNOSIS, "warning"),
    "osteoporosis-fracture": (Group.DIAGNOSIS, "warning"),
    "low-bone-mass": (Group.DIAGNOSIS, "info"),
    "normal-bmd": (Group.DIAGNOSIS, "info"),
    "below-expected-range-for-age": (Group.DIAGNOSIS, "warning"),
    "within-expected-range-for-age": (Group.DIAGNOSIS, "info"),
    "z-score-required": (Group.RECOMMENDATION, "warning"),
    "secondary-cause-workup": (Group.RECOMMENDATION, "warning"),
    "qct-recommended": (Group.RECOMMENDATION, "info"),
    "spine-radiograph-recommended": (Group.RECOMMENDATION, "info"),
    "bmd-measurement-recommended": (Group.RECOMMENDATION, "info"),
    "forearm-dxa-recommended": (Group.RECOMMENDATION, "info"),
    "fracture-imaging-recommended": (Group.RECOMMENDATION, "info"),
    "peripheral-screening-only": (Group.RECOMMENDATION, "info"),
    "vertebral-fracture-ecf-check": (Group.RECOMMENDATION, "info"),
    "cross-device-comparison": (Group.RECOMMENDATION, "warning"),
}


# CONTRACT.md suggestion table: the cards that exist to propose an order (even when, for a region without
# a verified code, the order cannot be coded). A deceased patient gets none of them.
ORDER_TOPICS = frozenset(
    {
        "spine-radiograph-recommended",
        "qct-recommended",
        "bmd-measurement-recommended",
        "forearm-dxa-recommended",
        "fracture-imaging-recommended",
    }
)


@dataclass(frozen=True)
class Evidence:
    """One item a finding rests on, shown as a row of the card's evidence table."""

    kind: str  # a key of the card texts' evidence kinds: "t-score", "z-score", "vbmd", "fracture", ...
    source: str  # "Observation/123"
    when: date | None = None
    value: float | None = None
    unit: str | None = None
    region: str | None = None  # a key of the card texts' regions ("lumbar-spine", "L1", ...)
    quote: str | None = None  # report text that proved it (escaped when rendered)
    used: bool = True  # False: shown as context, did not decide


@dataclass(frozen=True)
class SettingUse:
    """A setting (CONSENSUS-RULES.md §7) that decided the finding, named on the card."""

    name: str  # the environment variable
    value: str


@dataclass(frozen=True)
class OrderProposal:
    """A ServiceRequest the card proposes (CONTRACT.md suggestion table); cards/resources.py codes it."""

    kind: ProposedOrder
    reason: str | None = None  # key of the card texts' order reasons


@dataclass(frozen=True)
class Finding:
    topic: str
    rules: tuple[str, ...]
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()  # keys of the card texts' notes ("assumed-postmenopausal", ...)
    settings: tuple[SettingUse, ...] = ()
    params: dict[str, str | float] = field(default_factory=dict)  # filled into summary/detail templates
    orders: tuple[OrderProposal, ...] = ()
    suggest_condition: bool = False  # osteoporosis diagnosis with none recorded

    @property
    def group(self) -> Group:
        return TOPICS[self.topic][0]

    @property
    def indicator(self) -> str:
        return TOPICS[self.topic][1]
