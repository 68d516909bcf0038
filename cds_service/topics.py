"""The topic registry (CONTRACT.md "Cards"): every card's code, group, indicator and rules, written once.

Everything else is derived from it: settings validation (OSTEO_CDS_DISABLED_CARDS), the engine (groups,
indicators, order cards), the preview's topic table and chart, and openapi.yaml's topic schemas
(scripts/openapi_topics.py). The card texts are keyed by the topic code (`[cards.<code>]` in both
cards/en.toml and cards/zh-CN.toml). tests/test_topics.py fails when any of them drifts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NamedTuple


class Group(StrEnum):
    DIAGNOSIS = "diagnosis"  # at most one card of this group per response
    RECOMMENDATION = "recommendation"
    ORDER = "order"  # the order hooks (order-select, order-sign): cards about the draft orders


Indicator = Literal["critical", "warning", "info"]


class Topic(NamedTuple):
    group: Group
    indicator: Indicator
    rules: tuple[str, ...]  # CONTRACT.md's "rules" column (CONSENSUS-RULES.md IDs)
    proposes_orders: bool = False  # CONTRACT.md suggestion table (orders-unknown note)
    # The report's own words decide the card (a hedged fracture, a radiograph's bone loss): it quotes them.
    quotes_report: bool = False


_D, _R, _O = Group.DIAGNOSIS, Group.RECOMMENDATION, Group.ORDER

TOPICS: dict[str, Topic] = {
    "severe-osteoporosis": Topic(_D, "critical", ("DX-2",)),
    "osteoporosis-bmd": Topic(_D, "warning", ("DXA-3", "QCT-2", "QCT-3")),
    "osteoporosis-fracture": Topic(_D, "warning", ("DX-3", "FX-2")),
    "low-bone-mass": Topic(_D, "info", ("DXA-3", "QCT-2")),
    "normal-bmd": Topic(_D, "info", ("DXA-3", "QCT-2")),
    "below-expected-range-for-age": Topic(_D, "warning", ("POP-3",)),
    "within-expected-range-for-age": Topic(_D, "info", ("POP-3",)),
    "z-score-required": Topic(_R, "warning", ("POP-3",)),
    "secondary-cause-workup": Topic(_R, "warning", ("POP-5", "DX-6", "QCT-6", "FX-1")),
    "qct-recommended": Topic(_R, "info", ("REC-QCT",), proposes_orders=True),
    "spine-radiograph-recommended": Topic(_R, "info", ("REC-SPINE-XR",), proposes_orders=True),
    "bmd-measurement-recommended": Topic(_R, "info", ("REC-BMD",), proposes_orders=True, quotes_report=True),
    "forearm-dxa-recommended": Topic(_R, "info", ("REC-FOREARM", "DXA-2"), proposes_orders=True),
    "fracture-imaging-recommended": Topic(
        _R, "info", ("REC-CT-MRI", "FX-6", "FX-8"), proposes_orders=True, quotes_report=True
    ),
    "peripheral-screening-only": Topic(_R, "info", ("DX-4", "REC-PERIPHERAL")),
    "vertebral-fracture-ecf-check": Topic(_R, "info", ("FX-4",), quotes_report=True),
    "cross-device-comparison": Topic(_R, "warning", ("DXA-5",)),
    # CONTRACT.md "Order hooks" (consensus/orders.py)
    "qct-instead-of-dxa": Topic(_O, "warning", ("REC-QCT",)),
    "qct-with-ct": Topic(_O, "info", ("REC-QCT-CT",)),
    "spine-imaging-on-record": Topic(_O, "info", ("REC-SPINE-XR",)),
    # CONTRACT.md: "the rule of the order's purpose"; each card names the one that applies
    "duplicate-order": Topic(_O, "warning", ("REC-BMD", "REC-QCT", "REC-FOREARM", "DX-4", "REC-SPINE-XR")),
}

TOPIC_CODES: tuple[str, ...] = tuple(TOPICS)
# The cards that exist to propose an order (even when, for a region without a verified code, the order
# cannot be coded).
ORDER_TOPICS = frozenset(code for code, topic in TOPICS.items() if topic.proposes_orders)


def topics_of(group: Group) -> tuple[str, ...]:
    return tuple(code for code, topic in TOPICS.items() if topic.group is group)


def topics_citing(rule: str) -> frozenset[str]:
    """The topics whose rules column names `rule` (e.g. POP-3: the cards that judge by Z-score)."""
    return frozenset(code for code, topic in TOPICS.items() if rule in topic.rules)
