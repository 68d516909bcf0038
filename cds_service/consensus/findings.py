"""What the rules conclude: a topic code, the rule IDs, and the evidence they used."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cds_service.facts.model import ProposedOrder
from cds_service.topics import TOPICS, Group, Indicator


@dataclass(frozen=True)
class Evidence:
    """One item a finding rests on, shown as a row of the card's evidence table."""

    kind: str  # a key of the card texts' evidence kinds: "t-score", "z-score", "vbmd", "fracture", ...
    source: str  # "Observation/123"
    when: date | None = None
    value: float | None = None
    unit: str | None = None
    region: str | None = None  # a key of the card texts' regions ("lumbar-spine", "L1", ...)
    side: str | None = None  # "left" / "right" when the source states it (a key of the card texts' sides)
    quote: str | None = None  # report text that proved it (escaped when rendered)
    used: bool = True  # False: shown as context, did not decide
    also_in: tuple[str, ...] = ()  # other sources of the same item (one fracture in a Condition and a report)
    quote_source: str | None = None  # where the quote is from, when not `source`


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
    recommended: bool = False  # the suggestion the card marks isRecommended (e.g. MRI first for the hip)


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
        return TOPICS[self.topic].group

    @property
    def indicator(self) -> Indicator:
        return TOPICS[self.topic].indicator
