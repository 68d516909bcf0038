"""POP-5: systemic glucocorticoids from MedicationRequest / MedicationStatement (ATC H02AB, RxNorm, names)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.builders import facts_of, medication, patient

P1 = patient()


def _uses(*resources: Any) -> list[tuple[str, date, date | None, bool]]:
    return [(u.drug_class, u.start, u.end, u.ongoing) for u in facts_of([P1, *resources]).medications]


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(medication(atc="H02AB07"), id="POP-5 ATC prednisone"),
        pytest.param(medication(atc="H02AB04"), id="POP-5 ATC methylprednisolone"),
        pytest.param(medication(atc="h02ab02"), id="POP-5 ATC lower case"),
        pytest.param(medication(rxnorm="312617"), id="POP-5 RxNorm prednisone 5 mg tablet"),
        pytest.param(medication("醋酸泼尼松片 5mg"), id="POP-5 泼尼松"),
        pytest.param(medication("泼尼松龙"), id="POP-5 泼尼松龙"),
        pytest.param(medication("甲泼尼龙片"), id="POP-5 甲泼尼龙"),
        pytest.param(medication("注射用甲泼尼龙琥珀酸钠", route="静脉滴注"), id="POP-5 甲泼尼龙 iv"),
        pytest.param(medication("地塞米松片"), id="POP-5 地塞米松"),
        pytest.param(medication("氢化可的松片"), id="POP-5 氢化可的松"),
        pytest.param(medication("倍他米松"), id="POP-5 倍他米松"),
        pytest.param(medication("强的松"), id="POP-5 强的松"),
        pytest.param(medication("美卓乐"), id="POP-5 美卓乐 (Medrol)"),
        pytest.param(medication("predniSONE 5 MG Oral Tablet"), id="POP-5 prednisone en"),
        pytest.param(medication("Prednisolone 5 mg", route="oral"), id="POP-5 prednisolone oral"),
        pytest.param(medication("Dexamethasone 0.75 mg tablet"), id="POP-5 dexamethasone"),
        pytest.param(medication("泼尼松", resource_type="MedicationStatement"), id="POP-5 statement"),
    ],
)
def test_systemic_glucocorticoids_are_read(resource: dict[str, Any]) -> None:
    assert [u[0] for u in _uses(resource)] == ["glucocorticoids"]


@pytest.mark.parametrize(
    ("resource", "note"),
    [
        pytest.param(
            medication(atc="R03BA02", text="布地奈德吸入剂"), None, id="POP-5 ATC inhaled budesonide"
        ),
        pytest.param(medication(atc="D07AC01", text="倍他米松乳膏"), None, id="POP-5 ATC skin betamethasone"),
        pytest.param(medication(atc="H02AA02"), None, id="POP-5 ATC fludrocortisone mineralocorticoid"),
        pytest.param(medication("丙酸氟替卡松吸入气雾剂"), None, id="POP-5 fluticasone not a systemic name"),
        pytest.param(
            medication("氢化可的松乳膏"), "medication-not-systemic", id="POP-5 hydrocortisone cream"
        ),
        pytest.param(
            medication("地塞米松滴眼液"), "medication-not-systemic", id="POP-5 dexamethasone eye drops"
        ),
        pytest.param(
            medication("Prednisolone", route="ophthalmic"), "medication-not-systemic", id="POP-5 eye route"
        ),
        pytest.param(
            medication("地塞米松", route="吸入"), "medication-not-systemic", id="POP-5 inhaled route"
        ),
        pytest.param(medication("曲安奈德", route="关节腔注射"), None, id="POP-5 triamcinolone not named"),
        pytest.param(
            medication("甲泼尼龙", route="关节腔注射"), "medication-not-systemic", id="POP-5 joint injection"
        ),
        pytest.param(medication("Hydrocortisone 1% cream"), "medication-not-systemic", id="POP-5 cream en"),
        pytest.param(medication("Aspirin 100 mg"), None, id="POP-5 another drug"),
        pytest.param(medication("泼尼松", status="entered-in-error"), "status", id="POP-5 entered in error"),
        pytest.param(medication("泼尼松", status="cancelled"), "status", id="POP-5 cancelled order"),
        pytest.param(medication("泼尼松", intent="proposal"), None, id="POP-5 a proposal is not therapy"),
        pytest.param(
            medication("泼尼松", resource_type="MedicationStatement", status="not-taken"),
            "status",
            id="POP-5 not taken",
        ),
        pytest.param(medication("泼尼松", start=None), "medication-duration-unknown", id="POP-5 no start"),
        pytest.param(
            medication("泼尼松", status="completed"),
            "medication-duration-unknown",
            id="POP-5 completed, no end",
        ),
    ],
)
def test_other_uses_do_not_count(resource: dict[str, Any], note: str | None) -> None:
    facts = facts_of([P1, resource])
    assert facts.medications == []
    assert [n.reason for n in facts.notes] == ([note] if note else [])


@pytest.mark.parametrize(
    ("resource", "span"),
    [
        pytest.param(medication("泼尼松"), (date(2024, 1, 1), None, True), id="POP-5 active order ongoing"),
        pytest.param(
            medication("泼尼松", status="completed", end="2024-06-30"),
            (date(2024, 1, 1), date(2024, 6, 30), False),
            id="POP-5 validity period",
        ),
        pytest.param(
            medication(
                "泼尼松",
                status="completed",
                dispenseRequest={
                    "expectedSupplyDuration": {"value": 30, "code": "d"},
                    "numberOfRepeatsAllowed": 2,
                },
            ),
            (date(2024, 1, 1), date(2024, 3, 31), False),
            id="POP-5 supply x (1 + repeats)",
        ),
        pytest.param(
            medication("泼尼松", resource_type="MedicationStatement", status="completed", end="2024-02-01"),
            (date(2024, 1, 1), date(2024, 2, 1), False),
            id="POP-5 statement period",
        ),
    ],
)
def test_the_time_span(resource: dict[str, Any], span: tuple[date, date | None, bool]) -> None:
    assert _uses(resource) == [("glucocorticoids", *span)]
