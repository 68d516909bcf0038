"""REC-CT-MRI (FX-6, consensus 四.1, 五.3): a doubtful fracture asks for CT and/or MRI of its region while the
report is recent, until a later CT or MRI of that region answers it; non-spine sites get coded orders too."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cds_service.consensus.findings import Finding
from cds_service.facts.model import ProposedOrder
from tests.builders import LOINC, born, concept, findings_of, make_settings, patient

Resource = dict[str, Any]

DOUBT_DAY, LATER, EARLIER = "2026-07-10", "2026-07-20", "2026-07-01"
OLD_MAN = patient(gender="male", birth_date=born(75, on=DOUBT_DAY))
XR_SPINE, XR_HIP, XR_WRIST, XR_HUMERUS = "24984-7", "24762-7", "24619-9", "24765-0"
TOPIC = "fracture-imaging-recommended"

_ids = itertools.count(1)


def report(
    conclusion: str, *, name: str | None = None, loinc: str | None = XR_SPINE, when: str = DOUBT_DAY
) -> Resource:
    """An imaging DiagnosticReport coded by LOINC, or known by its RIS name only (loinc=None)."""
    return {
        "resourceType": "DiagnosticReport",
        "id": f"dr{next(_ids)}",
        "status": "final",
        "code": concept((LOINC, loinc) if loinc else None, name),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "conclusion": conclusion,
    }


def order(text: str, status: str = "active") -> Resource:
    return {
        "resourceType": "ServiceRequest",
        "id": f"sr{next(_ids)}",
        "status": status,
        "intent": "order",
        "code": {"text": text},
        "subject": {"reference": "Patient/p1"},
    }


def imaging_card(*resources: Resource, **settings: Any) -> Finding | None:
    findings = findings_of([OLD_MAN, *resources], settings=make_settings(**settings))
    return next((f for f in findings if f.topic == TOPIC), None)


# --- class 7: a doubt answered later needs no card ------------------------------------------------------

L1_DOUBT = report("L1压缩骨折可能")
HIP_DOUBT = report("右股骨颈骨折可能", loinc=XR_HIP)


@pytest.mark.parametrize(
    ("doubt", "later", "card"),
    [
        pytest.param(
            L1_DOUBT,
            report("L1椎体未见骨折", name="MR腰椎平扫", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI later negative MR腰椎平扫 answers L1可能",
        ),
        pytest.param(
            L1_DOUBT,
            report("L1椎体新鲜压缩骨折", name="MR腰椎平扫", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI later MRI confirming L1 answers it",
        ),
        pytest.param(
            L1_DOUBT,
            report("No fracture.", loinc="24963-1", when=LATER),
            False,
            id="REC-CT-MRI later negative CT Lumbar spine (LOINC only) answers it",
        ),
        pytest.param(
            L1_DOUBT,
            report("未见骨折", name="胸腰段CT三维重建", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI later 胸腰段CT三维重建 answers it",
        ),
        pytest.param(
            report("T12椎体压缩骨折可能"),
            report("未见骨折", name="MR胸椎平扫", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI T12 doubt answered by a thoracic MRI",
        ),
        pytest.param(
            report("possible L1 compression fracture"),
            report("No acute fracture.", name="MR Lumbar spine", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI English doubt answered by MR Lumbar spine",
        ),
        pytest.param(
            HIP_DOUBT,
            report("右髋关节未见骨折", name="右髋关节MR平扫", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI hip doubt answered by a hip MRI",
        ),
        pytest.param(
            HIP_DOUBT,
            report("未见骨折", name="骨盆CT平扫", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI hip doubt answered by a pelvis CT (shows the hips)",
        ),
        pytest.param(
            report("possible distal radius fracture", loinc=XR_WRIST),
            report("No fracture.", name="CT wrist left", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI wrist doubt answered by a wrist CT",
        ),
        pytest.param(
            report("肱骨近端骨折待排", loinc=XR_HUMERUS),
            report("未见骨折", name="右肩关节MRI", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI humerus doubt answered by a shoulder MRI",
        ),
        pytest.param(
            report("右侧第5肋骨骨折可能", loinc=None, name="胸部正位"),
            report("未见肋骨骨折", name="CT胸部平扫", loinc=None, when=LATER),
            False,
            id="REC-CT-MRI rib doubt answered by a chest CT",
        ),
        # near-misses: the question stays open
        pytest.param(
            report("T12椎体压缩骨折可能"),
            report("未见骨折", name="MR腰椎平扫", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss T12 doubt, lumbar MRI: other region",
        ),
        pytest.param(
            L1_DOUBT,
            report("未见骨折", name="DR腰椎正侧位", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss a later radiograph does not answer",
        ),
        pytest.param(
            L1_DOUBT,
            report("未见骨折", name="MR腰椎平扫", loinc=None, when=EARLIER),
            True,
            id="REC-CT-MRI near-miss an MRI before the doubt does not answer",
        ),
        pytest.param(
            L1_DOUBT,
            report("L1压缩骨折不除外", name="MR腰椎平扫", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss a later MRI that is doubtful too",
        ),
        pytest.param(
            HIP_DOUBT,
            report("未见骨折", name="腰椎MRI", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss hip doubt, lumbar MRI: other region",
        ),
        pytest.param(
            HIP_DOUBT,
            report("未见异常浓聚", name="全身骨显像 SPECT/CT", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss a bone scan (SPECT/CT) does not answer",
        ),
        pytest.param(
            L1_DOUBT,
            report("骨量减少", name="腰椎定量CT骨密度", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss a QCT is no CT of the region",
        ),
        pytest.param(
            report("T12、L1椎体压缩骨折可能"),
            report("未见骨折", name="CT胸椎", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss T12+L1 doubt, thoracic CT only: lumbar open",
        ),
        pytest.param(
            L1_DOUBT,
            report("未见骨折", name="Lactate, venous", loinc=None, when=LATER),
            True,
            id="REC-CT-MRI near-miss Lactate is no CT",
        ),
    ],
)
def test_a_later_ct_or_mri_of_the_region_answers_the_doubt(
    doubt: Resource, later: Resource, card: bool
) -> None:
    assert (imaging_card(doubt, later) is not None) == card


# --- class 8: a doubtful non-spine fracture gets coded CT and MRI -------------------------------------

P = ProposedOrder


@pytest.mark.parametrize(
    ("conclusion", "loinc", "orders", "recommended"),
    [
        pytest.param(
            "右股骨颈骨折可能", XR_HIP, [P.MR_HIP, P.CT_HIP], P.MR_HIP, id="REC-CT-MRI 股骨颈可能: MRI first"
        ),
        pytest.param(
            "right femoral neck fracture cannot be excluded",
            XR_HIP,
            [P.MR_HIP, P.CT_HIP],
            P.MR_HIP,
            id="REC-CT-MRI femoral neck cannot exclude: MRI first",
        ),
        pytest.param(
            "Suspicious for right hip fracture; MRI recommended.",
            XR_HIP,
            [P.MR_HIP, P.CT_HIP],
            P.MR_HIP,
            id="REC-CT-MRI hip, report advises MRI: MRI first",
        ),
        pytest.param(
            "右股骨颈骨折可能，建议CT进一步检查",
            XR_HIP,
            [P.CT_HIP, P.MR_HIP],
            P.CT_HIP,
            id="REC-CT-MRI hip, report advises CT: CT first",
        ),
        pytest.param(
            "Possible left hip fracture. Recommend CT.",
            XR_HIP,
            [P.CT_HIP, P.MR_HIP],
            P.CT_HIP,
            id="REC-CT-MRI hip, English advice of CT: CT first",
        ),
        pytest.param(
            "possible distal radius fracture",
            XR_WRIST,
            [P.CT_WRIST, P.MR_WRIST],
            None,
            id="REC-CT-MRI possible distal radius: wrist CT and MRI",
        ),
        pytest.param(
            "左桡骨远端骨折可疑", XR_WRIST, [P.CT_WRIST, P.MR_WRIST], None, id="REC-CT-MRI 桡骨远端可疑"
        ),
        pytest.param(
            "肱骨近端骨折待排",
            XR_HUMERUS,
            [P.CT_SHOULDER, P.MR_SHOULDER],
            None,
            id="REC-CT-MRI 肱骨近端待排: shoulder CT and MRI",
        ),
        pytest.param(
            "questionable proximal humerus fracture",
            XR_HUMERUS,
            [P.CT_SHOULDER, P.MR_SHOULDER],
            None,
            id="REC-CT-MRI questionable proximal humerus",
        ),
        pytest.param(
            "耻骨支骨折可能", XR_HIP, [P.CT_PELVIS, P.MR_PELVIS], None, id="REC-CT-MRI 耻骨支可能: pelvis"
        ),
        pytest.param(
            "possible sacral insufficiency fracture",
            XR_HIP,
            [P.CT_PELVIS, P.MR_PELVIS],
            None,
            id="REC-CT-MRI possible sacral fracture: pelvis",
        ),
        pytest.param(
            "右侧第5肋骨骨折可能", XR_SPINE, [P.CT_CHEST, P.MR_CHEST], None, id="REC-CT-MRI 肋骨可能: chest"
        ),
        pytest.param(
            "L1压缩骨折可能", XR_SPINE, [P.CT_LUMBAR, P.MR_LUMBAR], None, id="REC-CT-MRI L1 unchanged"
        ),
        pytest.param(
            "T12、L1椎体压缩骨折可能",
            XR_SPINE,
            [P.CT_THORACIC, P.MR_THORACIC, P.CT_LUMBAR, P.MR_LUMBAR],
            None,
            id="REC-CT-MRI T12+L1: both parts of the spine",
        ),
        pytest.param(
            "右股骨颈骨折可能；L1压缩骨折可能",
            XR_SPINE,
            [P.MR_HIP, P.CT_HIP, P.CT_LUMBAR, P.MR_LUMBAR],
            P.MR_HIP,
            id="REC-CT-MRI hip and L1 doubts: both regions",
        ),
    ],
)
def test_doubtful_fracture_gets_coded_ct_and_mri_of_its_region(
    conclusion: str, loinc: str, orders: list[ProposedOrder], recommended: ProposedOrder | None
) -> None:
    finding = imaging_card(report(conclusion, loinc=loinc))
    assert finding is not None
    assert [o.kind for o in finding.orders] == orders
    assert [o.kind for o in finding.orders if o.recommended] == ([recommended] if recommended else [])
    assert "order-region-unspecified" not in finding.notes


@pytest.mark.parametrize(
    ("resources", "settings", "card"),
    [
        pytest.param(
            [report("右股骨颈骨折", loinc=XR_HIP)],
            {},
            False,
            id="REC-CT-MRI near-miss a stated hip fracture needs no CT/MRI",
        ),
        pytest.param(
            [report("右股骨颈骨折可能", loinc=XR_HIP, when="2026-05-25")],
            {},
            True,
            id="REC-CT-MRI doubt 6 months ago (boundary): card",
        ),
        pytest.param(
            [report("右股骨颈骨折可能", loinc=XR_HIP, when="2026-04-25")],
            {},
            False,
            id="REC-CT-MRI near-miss doubt 7 months ago: no card",
        ),
        pytest.param(
            [report("右股骨颈骨折可能", loinc=XR_HIP, when="2026-04-25")],
            {"doubtful_fracture_months": 12},
            True,
            id="REC-CT-MRI OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS 12: 7 months ago card",
        ),
        pytest.param(
            [HIP_DOUBT, order("右髋关节MRI平扫")],
            {},
            False,
            id="REC-CT-MRI an open hip MRI order suppresses the hip card",
        ),
        pytest.param(
            [HIP_DOUBT, order("CT Hip right", status="draft")],
            {},
            False,
            id="REC-CT-MRI a draft hip CT order suppresses the hip card",
        ),
        pytest.param(
            [HIP_DOUBT, order("骨盆MR")], {}, False, id="REC-CT-MRI an open pelvis MRI covers the hip"
        ),
        pytest.param(
            [HIP_DOUBT, order("Lactate, venous")],
            {},
            True,
            id="REC-CT-MRI near-miss Lactate order suppresses nothing",
        ),
        pytest.param(
            [HIP_DOUBT, order("腰椎MRI")],
            {},
            True,
            id="REC-CT-MRI near-miss a lumbar MRI order does not cover the hip",
        ),
        pytest.param(
            [HIP_DOUBT, order("右髋关节MRI", status="completed")],
            {},
            True,
            id="REC-CT-MRI near-miss a completed order suppresses nothing",
        ),
        pytest.param(
            [L1_DOUBT, order("Doctor note: spine pain")],
            {},
            True,
            id="REC-CT-MRI near-miss a doctor's note is no spine CT order",
        ),
        pytest.param(
            [L1_DOUBT, order("MR腰椎平扫")],
            {},
            False,
            id="REC-CT-MRI an open MR腰椎平扫 order suppresses the spine card",
        ),
    ],
)
def test_recent_doubt_and_open_orders(
    resources: list[Resource], settings: dict[str, Any], card: bool
) -> None:
    clinical = make_settings().clinical
    changes = {"clinical": clinical.__class__(**{**clinical.__dict__, **settings})} if settings else {}
    finding = imaging_card(*resources, **changes)
    assert (finding is not None) == card
    if finding is not None:
        assert finding.orders, "REC-CT-MRI: never a card without an action"
        used = {s.name: s.value for s in finding.settings}
        assert used["OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS"] == str(settings.get("doubtful_fracture_months", 6))


def test_a_site_without_regional_code_gets_the_generic_coded_orders() -> None:
    finding = imaging_card(report("左锁骨骨折可能", loinc=None, name="DR左锁骨正位"))
    if finding is None:
        pytest.skip("FX-1a: a doubtful fracture at an 'other' site is not judged (no card to test)")
    assert [o.kind for o in finding.orders] == [P.CT_UNSPECIFIED, P.MR_UNSPECIFIED]
    assert "order-region-unspecified" in finding.notes


def coded_order(loinc: str) -> Resource:
    """An open order as an accepted suggestion leaves it: coded, no text."""
    return {
        "resourceType": "ServiceRequest",
        "id": f"sr{next(_ids)}",
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
    }


CLAVICLE_DOUBT = report("左锁骨骨折可能", loinc=None, name="DR左锁骨正位")


@pytest.mark.parametrize(
    ("resources", "card"),
    [
        pytest.param([CLAVICLE_DOUBT], True, id="REC-CT-MRI other site, nothing ordered: generic CT/MRI"),
        pytest.param(
            [CLAVICLE_DOUBT, coded_order("25045-6")],
            False,
            id="REC-CT-MRI other site, accepted generic CT (25045-6) is not proposed again",
        ),
        pytest.param(
            [CLAVICLE_DOUBT, coded_order("25056-3")],
            False,
            id="REC-CT-MRI other site, accepted generic MRI (25056-3) is not proposed again",
        ),
        pytest.param(
            [CLAVICLE_DOUBT, coded_order("24968-0")],
            True,
            id="REC-CT-MRI near-miss other site, a lumbar MRI order does not answer it",
        ),
        pytest.param(
            [L1_DOUBT, coded_order("25045-6")],
            True,
            id="REC-CT-MRI near-miss spine doubt, a generic CT order is not a spine CT",
        ),
    ],
)
def test_accepted_generic_orders_are_not_proposed_again(resources: list[Resource], card: bool) -> None:
    assert (imaging_card(*resources) is not None) == card


# REC-CT-MRI (issue 17): the modality not yet done for the region is offered — after an MRI, CT; after a CT,
# MRI; after a radiograph, both (the hip: MRI first). What is offered is the recommended suggestion.
@pytest.mark.parametrize(
    ("name", "conclusion", "offered"),
    [
        pytest.param(
            "MR胸椎平扫", "T11椎体压缩性骨折，转移瘤不除外", [P.CT_THORACIC], id="REC-CT-MRI after MRI: CT"
        ),
        pytest.param("CT胸椎平扫", "T11椎体压缩骨折可能", [P.MR_THORACIC], id="REC-CT-MRI after CT: MRI"),
        pytest.param(
            "Lumbar spine MRI", "Possible L2 compression fracture.", [P.CT_LUMBAR], id="REC-CT-MRI en MRI"
        ),
        pytest.param(
            "DR腰椎正侧位",
            "L1压缩骨折可能",
            [P.CT_LUMBAR, P.MR_LUMBAR],
            id="REC-CT-MRI near-miss after a radiograph: both",
        ),
        pytest.param("MR右髋关节平扫", "右股骨颈骨折可能", [P.CT_HIP], id="REC-CT-MRI hip after MRI: CT"),
        pytest.param(
            "DR右髋关节正位",
            "右股骨颈骨折可能",
            [P.MR_HIP, P.CT_HIP],
            id="REC-CT-MRI hip radiograph: MRI first",
        ),
    ],
)
def test_the_modality_not_yet_done_is_offered(
    name: str, conclusion: str, offered: list[ProposedOrder]
) -> None:
    finding = imaging_card(report(conclusion, loinc=None, name=name))
    assert finding is not None
    assert [o.kind for o in finding.orders] == offered
    if len(offered) == 1:
        assert finding.orders[0].recommended


def test_the_quote_keeps_the_words_that_make_the_fracture_possibly_pathological() -> None:
    finding = imaging_card(report("T11椎体压缩性骨折，转移瘤不除外", loinc=None, name="MR胸椎平扫"))
    assert finding is not None and "FX-8" in finding.rules
    assert any("转移瘤不除外" in (e.quote or "") for e in finding.evidence)


# REC-CT-MRI (issue 17): after an MRI, CT — or what the report itself advises. A contrast MRI of the spine
# or a PET-CT the report names is proposed and recommended (the default stays offered); a conditional advice
# is offered, not recommended; a negated one is none.
@pytest.mark.parametrize(
    ("name", "conclusion", "orders", "recommended", "note"),
    [
        pytest.param(
            "MR胸椎平扫",
            "T11椎体压缩性骨折，转移瘤不除外，建议增强MRI检查。",
            [P.MR_THORACIC_CONTRAST, P.CT_THORACIC],
            [P.MR_THORACIC_CONTRAST],
            "report-advice",
            id="REC-CT-MRI after MRI, 建议增强MRI: contrast MRI recommended, CT offered",
        ),
        pytest.param(
            "MR胸椎平扫",
            "T11椎体压缩性骨折，转移瘤不除外，建议增强MRI或PET/CT进一步检查。",
            [P.MR_THORACIC_CONTRAST, P.CT_THORACIC, P.PET_CT],
            [P.MR_THORACIC_CONTRAST, P.PET_CT],
            "report-advice",
            id="REC-CT-MRI after MRI, 增强MRI或PET/CT: both recommended",
        ),
        pytest.param(
            "MR腰椎平扫",
            "L2椎体压缩骨折，转移瘤不除外，建议PET-CT检查。",
            [P.CT_LUMBAR, P.PET_CT],
            [P.CT_LUMBAR, P.PET_CT],
            "report-advice",
            id="REC-CT-MRI after MRI, 建议PET-CT: PET-CT beside the recommended CT",
        ),
        pytest.param(
            "MR腰椎平扫",
            "L1椎体骨质破坏伴压缩骨折，建议增强扫描。",
            [P.MR_LUMBAR_CONTRAST, P.CT_LUMBAR],
            [P.MR_LUMBAR_CONTRAST],
            "report-advice",
            id="REC-CT-MRI after MRI, 建议增强扫描: contrast of the MRI",
        ),
        pytest.param(
            "MR胸椎平扫",
            "T12椎体压缩骨折，转移瘤不除外，如临床需要可行增强MRI。",
            [P.MR_THORACIC_CONTRAST, P.CT_THORACIC],
            [P.CT_THORACIC],
            "report-advice-conditional",
            id="REC-CT-MRI conditional 如临床需要可行增强MRI: offered, not recommended",
        ),
        pytest.param(
            "MR胸椎平扫",
            "T11椎体压缩性骨折，转移瘤不除外，无需进一步检查。",
            [P.CT_THORACIC],
            [P.CT_THORACIC],
            None,
            id="REC-CT-MRI negated 无需进一步检查: the default only",
        ),
        pytest.param(
            "MR胸椎平扫",
            "T11椎体压缩性骨折，转移瘤不除外，建议进一步检查。",
            [P.CT_THORACIC],
            [P.CT_THORACIC],
            None,
            id="REC-CT-MRI 建议进一步检查 names no exam: the default",
        ),
        pytest.param(
            "Thoracic spine MRI",
            "T11 compression fracture; metastasis cannot be excluded. Recommend contrast-enhanced MRI.",
            [P.MR_THORACIC_CONTRAST, P.CT_THORACIC],
            [P.MR_THORACIC_CONTRAST],
            "report-advice",
            id="REC-CT-MRI en recommend contrast-enhanced MRI",
        ),
        pytest.param(
            "DR腰椎正侧位",
            "L1压缩骨折可能，建议MRI检查。",
            [P.MR_LUMBAR, P.CT_LUMBAR],
            [P.MR_LUMBAR],
            "report-advice",
            id="REC-CT-MRI radiograph, 建议MRI: MRI recommended and first",
        ),
        pytest.param(
            "DR腰椎正侧位",
            "L1压缩骨折可能，必要时MRI检查。",
            [P.CT_LUMBAR, P.MR_LUMBAR],
            [],
            None,
            id="REC-CT-MRI near-miss radiograph, 必要时MRI: nothing recommended",
        ),
        pytest.param(
            "MR右髋关节平扫",
            "右股骨颈骨折，转移瘤不除外，建议增强MRI检查。",
            [P.MR_HIP, P.CT_HIP],
            [P.MR_HIP],
            "report-advice-contrast-site",
            id="REC-CT-MRI hip, 建议增强MRI: the hip MRI, contrast asked in a note",
        ),
    ],
)
def test_the_reports_own_advice_is_proposed(
    name: str,
    conclusion: str,
    orders: list[ProposedOrder],
    recommended: list[ProposedOrder],
    note: str | None,
) -> None:
    finding = imaging_card(report(conclusion, loinc=None, name=name))
    assert finding is not None
    assert [o.kind for o in finding.orders] == orders
    assert [o.kind for o in finding.orders if o.recommended] == recommended
    advice_notes = {n for n in finding.notes if n.startswith("report-advice")}
    assert (note in advice_notes) if note else not advice_notes


@pytest.mark.parametrize(
    ("conclusion", "quotes"),
    [
        pytest.param(
            "T11椎体压缩性骨折，转移瘤不除外。建议增强MRI检查。",
            [("fracture", "转移瘤不除外"), ("report", "建议增强MRI检查")],
            id="REC-CT-MRI advice in its own sentence: a row of the report quotes it",
        ),
        pytest.param(
            "T11椎体压缩性骨折，转移瘤不除外，建议增强MRI检查。",
            [("fracture", "转移瘤不除外，建议增强MRI检查")],
            id="REC-CT-MRI advice in the fracture's sentence: one row, hedge and advice quoted together",
        ),
    ],
)
def test_the_advice_sentence_is_quoted_in_the_evidence(
    conclusion: str, quotes: list[tuple[str, str]]
) -> None:
    finding = imaging_card(report(conclusion, loinc=None, name="MR胸椎平扫"))
    assert finding is not None
    assert len(finding.evidence) == len(quotes)
    for (kind, words), row in zip(quotes, finding.evidence, strict=True):
        assert row.kind == kind and words in (row.quote or "")


@pytest.mark.parametrize(
    ("open_order", "orders"),
    [
        pytest.param(
            order("PET-CT全身显像"),
            [P.MR_THORACIC_CONTRAST, P.CT_THORACIC],
            id="REC-CT-MRI an open PET-CT order is not proposed again",
        ),
        pytest.param(order("胸椎增强MRI"), None, id="REC-CT-MRI an open thoracic MRI order answers the card"),
    ],
)
def test_advised_orders_on_record_are_not_proposed_again(
    open_order: Resource, orders: list[ProposedOrder] | None
) -> None:
    doubt = report(
        "T11椎体压缩性骨折，转移瘤不除外，建议增强MRI或PET/CT进一步检查。", loinc=None, name="MR胸椎平扫"
    )
    finding = imaging_card(doubt, open_order)
    assert (None if finding is None else [o.kind for o in finding.orders]) == orders
