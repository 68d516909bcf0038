"""Draft orders for the order-select demonstrations: examples/draft-orders.json read, a draft ServiceRequest
built for a patient, and a patient-view request turned into the order-select request that selects it.

Used by the preview's orders mode and by scripts/demo.py (`make demo`, examples/requests/*-order-select.json).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.preview.demos import DEFAULT_EXAMPLES_DIR

log = logging.getLogger(__name__)

ORDER_SELECT_HOOK = "order-select"
# hookInstance of an order-select request: derived from the patient-view request's, so files are stable.
_HOOK_INSTANCE_NAMESPACE = uuid.UUID("0c6f3b52-8f0e-4a8e-9d4b-2a1f6e3c7d90")


@dataclass(frozen=True)
class DraftKind:
    """One kind of draft order the demonstrations offer (examples/draft-orders.json `drafts`)."""

    id: str  # "dxa", "chest-ct", ...
    title: str
    title_zh: str
    code: Mapping[str, Any]  # ServiceRequest.code

    def title_in(self, language: str) -> str:
        return self.title_zh if language == "zh-CN" and self.title_zh else self.title


@dataclass(frozen=True)
class OrderDemo:
    """One order-select demonstration: a patient (file stem), a draft kind, the expected topic codes."""

    patient: str
    draft: str
    expected_topics: tuple[str, ...]


@dataclass(frozen=True)
class DraftOrders:
    kinds: tuple[DraftKind, ...] = ()
    demos: tuple[OrderDemo, ...] = ()

    def kind(self, kind_id: str) -> DraftKind | None:
        return next((k for k in self.kinds if k.id == kind_id), None)


def load_draft_orders(examples_dir: Path = DEFAULT_EXAMPLES_DIR) -> DraftOrders:
    """examples/draft-orders.json; empty when absent or unreadable (an installed wheel has no examples)."""
    path = examples_dir / "draft-orders.json"
    if not path.is_file():
        return DraftOrders()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        kinds = tuple(
            DraftKind(kind_id, str(k["title"]), str(k.get("title_zh", "")), k["code"])
            for kind_id, k in raw["drafts"].items()
        )
        demos = tuple(
            OrderDemo(str(d["patient"]), str(d["draft"]), tuple(d["expectedTopics"]))
            for d in raw["orderSelect"]
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        log.warning("examples/draft-orders.json is not readable; no draft orders listed")
        return DraftOrders()
    return DraftOrders(kinds, demos)


def draft_service_request(kind: DraftKind, patient_id: str) -> dict[str, Any]:
    """A draft ServiceRequest of this kind for the patient, as an ordering screen puts it in draftOrders."""
    return {
        "resourceType": "ServiceRequest",
        "id": f"draft-{kind.id}",
        "status": "draft",
        "intent": "plan",
        "code": dict(kind.code),
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def order_select_request(patient_view: Mapping[str, Any], kind: DraftKind) -> dict[str, Any]:
    """The patient-view request (prefetch or fhirServer) as an order-select request selecting one draft."""
    context = patient_view["context"]
    draft = draft_service_request(kind, str(context["patientId"]))
    instance = uuid.uuid5(_HOOK_INSTANCE_NAMESPACE, f"{patient_view.get('hookInstance', '')}/{kind.id}")
    return {
        **patient_view,
        "hook": ORDER_SELECT_HOOK,
        "hookInstance": str(instance),
        "context": {
            **context,
            "selections": [f"ServiceRequest/{draft['id']}"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
        },
    }
