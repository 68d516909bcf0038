"""OSTEO_CDS_SITE_HAS_QCT=false (CONTRACT.md): a QCT the cards would propose becomes a referral sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.engine import evaluate
from cds_service.facts.bundle import patient_data
from cds_service.facts.codemap import load_code_map
from cds_service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
INDEX = json.loads((ROOT / "examples" / "patients" / "index.json").read_text(encoding="utf-8"))
SETTINGS = Settings(
    auth="none",
    today=Settings.from_env(INDEX["settings"]).today,
    code_map=load_code_map(ROOT / INDEX["settings"]["OSTEO_CDS_CODE_MAP"]),
)


def cards(name: str, site_has_qct: bool) -> dict[str, dict[str, Any]]:
    bundle = json.loads((ROOT / "examples" / "patients" / f"{name}.json").read_text(encoding="utf-8"))
    resources, patient_id = patient_data(bundle)
    response = evaluate(resources, patient_id, SETTINGS.with_changes(site_has_qct=site_has_qct)).response
    return {card["source"]["topic"]["code"]: card for card in response["cards"]}


def qct_labels(card: dict[str, Any]) -> list[str]:
    return [s["label"] for s in card.get("suggestions", []) if "QCT" in s["label"]]


# Xu Fang no longer gets a QCT card: her only reason was a T8 fracture, outside L1–L4 (issue 17).
@pytest.mark.parametrize("name", ["ma-fengying"], ids=["REC-QCT ma-fengying"])
def test_without_qct_at_the_site_the_card_refers_instead_of_ordering(name: str) -> None:
    offered, referred = cards(name, True)["qct-recommended"], cards(name, False)["qct-recommended"]
    assert qct_labels(offered) and not qct_labels(referred)
    assert "SITE_HAS_QCT=false" in referred["detail"]
    assert "SITE_HAS_QCT" not in offered["detail"]
