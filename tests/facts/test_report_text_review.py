"""Report-text reader, issue 13: how radiologists write what the reader once misread, by rule and class.

Each table holds sentences in Chinese and English, and near-misses that must stay as they are (a real
fracture beside each exclusion). The words live in cues/report-text.toml; these sentences are the
specification of what the words must do.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from cds_service.facts.cues import alternation, cue_table
from cds_service.facts.report_text import read_report
from tests.builders import condition, diagnosis_of, findings_of, patient
from tests.facts.test_report_text import assert_fractures, fx, v

# --------------------------------------------------------------------------------------------------
# Class 1, FX-3: a height loss given as a number is graded (Genant 1993; the boundaries are a choice:
# [20, 25) -> 1, [25, 40) -> 2, >= 40 -> 3, under 20 -> 0, no fracture).

HEIGHT_LOSS = [
    pytest.param(
        "T12椎体楔形变，前缘高度减低约30%",
        [v("T12") | fx(genant_grade=2, deformity_only=False)],
        id="FX-3 前缘高度减低约30% is grade 2",
    ),
    pytest.param("L1椎体压缩约1/3", [v("L1") | fx(genant_grade=2)], id="FX-3 压缩约1/3 is 33% grade 2"),
    pytest.param("L1椎体压缩约三分之一", [v("L1") | fx(genant_grade=2)], id="FX-3 三分之一 is 33% grade 2"),
    pytest.param("L1椎体压缩约一半", [v("L1") | fx(genant_grade=3)], id="FX-3 压缩约一半 is grade 3"),
    pytest.param(
        "L2椎体前缘高度丢失约45%", [v("L2") | fx(genant_grade=3)], id="FX-3 高度丢失约45% is grade 3"
    ),
    pytest.param(
        "L3椎体压缩变扁，高度减低约22%",
        [v("L3") | fx(genant_grade=1, deformity_only=False)],
        id="FX-3 高度减低约22% is grade 1",
    ),
    pytest.param(
        "T12椎体楔形变，前缘高度减低约15%",
        [v("T12") | fx(genant_grade=0, deformity_only=True)],
        id="FX-3 boundary 15% is under 20: no fracture",
    ),
    pytest.param(
        "L1椎体楔形变，高度减低19.9%", [v("L1") | fx(genant_grade=0)], id="FX-3 boundary 19.9% is grade 0"
    ),
    pytest.param(
        "L1椎体楔形变，高度减低20%", [v("L1") | fx(genant_grade=1)], id="FX-3 boundary 20% is grade 1"
    ),
    pytest.param(
        "L1椎体楔形变，高度减低25%", [v("L1") | fx(genant_grade=2)], id="FX-3 boundary 25% is grade 2"
    ),
    pytest.param(
        "L1椎体楔形变，高度减低约39.5%", [v("L1") | fx(genant_grade=2)], id="FX-3 boundary 39.5% is grade 2"
    ),
    pytest.param(
        "L1椎体楔形变，高度减低约40%", [v("L1") | fx(genant_grade=3)], id="FX-3 boundary 40% is grade 3"
    ),
    pytest.param(
        "L1椎体高度减低至原来的2/3",
        [v("L1") | fx(genant_grade=2)],
        id="FX-3 减低至原来的2/3 leaves a loss of 1/3",
    ),
    pytest.param(
        "L1椎体轻度楔形变，前缘高度减低约30%",
        [v("L1") | fx(genant_grade=2)],
        id="FX-3 a stated number wins over 轻度",
    ),
    pytest.param(
        "L1椎体压缩骨折，Genant 1度，高度减低约30%",
        [v("L1") | fx(genant_grade=1)],
        id="FX-3 a stated Genant grade wins over a number",
    ),
    pytest.param(
        "L1椎体压缩约20%-30%", [v("L1") | fx(genant_grade=1)], id="FX-3 of a range the lower bound counts"
    ),
    pytest.param(
        "L1椎体前1/3见骨折线", [v("L1") | fx(genant_grade=None)], id="FX-3 near-miss 前1/3 is a place"
    ),
    pytest.param(
        "L4/5椎间盘突出，L1椎体压缩骨折",
        [v("L1") | fx(genant_grade=None)],
        id="FX-3 near-miss L4/5 is not a fraction",
    ),
    pytest.param(
        "L2 compression deformity with anterior height loss of about 45%.",
        [v("L2") | fx(genant_grade=3, deformity_only=False)],
        id="FX-3 anterior height loss of about 45% is grade 3",
    ),
    pytest.param(
        "L2 compression fracture, 22% height loss.",
        [v("L2") | fx(genant_grade=1)],
        id="FX-3 22% height loss is grade 1",
    ),
    pytest.param(
        "T12 wedge deformity with approximately 30% loss of anterior height.",
        [v("T12") | fx(genant_grade=2, deformity_only=False)],
        id="FX-3 30% loss of anterior height is grade 2",
    ),
    pytest.param(
        "L1 vertebral body compressed by one third.",
        [v("L1") | fx(genant_grade=2)],
        id="FX-3 compressed by one third is grade 2",
    ),
    pytest.param(
        "Loss of 35% of vertebral body height at L1.",
        [v("L1") | fx(genant_grade=2, deformity_only=False)],
        id="FX-3 loss of 35% of vertebral body height is grade 2",
    ),
    pytest.param(
        "L1 compression deformity with loss of anterior height of 30%.",
        [v("L1") | fx(genant_grade=2)],
        id="FX-3 loss of anterior height of 30% is grade 2",
    ),
    pytest.param(
        "T11 anterior wedging with 10% height loss.",
        [v("T11") | fx(genant_grade=0, deformity_only=True)],
        id="FX-3 10% height loss is no fracture",
    ),
    pytest.param(
        "Mild anterior wedging of T8 with 30% height loss.",
        [v("T8") | fx(genant_grade=2)],
        id="FX-3 a stated number wins over mild",
    ),
]

# --------------------------------------------------------------------------------------------------
# Class 2, FX-6/FX-7: a qualifier of the fracture's age or cause is no doubt about the fracture.

AGE_CAUSE = [
    pytest.param(
        "Compression fracture of L1 of indeterminate age.",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-6 of indeterminate age is certain",
    ),
    pytest.param(
        "L1 compression fracture of indeterminate age.",
        [v("L1") | fx(certain=True)],
        id="FX-6 L1 compression fracture of indeterminate age",
    ),
    pytest.param(
        "Age-indeterminate L1 compression fracture.",
        [v("L1") | fx(certain=True)],
        id="FX-6 age-indeterminate",
    ),
    pytest.param(
        "L1 compression fracture of uncertain chronicity.",
        [v("L1") | fx(certain=True)],
        id="FX-6 of uncertain chronicity",
    ),
    pytest.param(
        "L1 compression fracture acute versus chronic.",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-7 acute versus chronic is neither and no doubt",
    ),
    pytest.param(
        "Likely osteoporotic L1 compression fracture.",
        [v("L1") | fx(certain=True)],
        id="FX-6 likely osteoporotic before the fracture",
    ),
    pytest.param(
        "L1 compression fracture likely osteoporotic in nature.",
        [v("L1") | fx(certain=True)],
        id="FX-6 likely osteoporotic after the fracture",
    ),
    pytest.param(
        "Presumably osteoporotic T12 compression fracture.",
        [v("T12") | fx(certain=True)],
        id="FX-6 presumably osteoporotic",
    ),
    pytest.param(
        "L1 compression fracture probably chronic.",
        [v("L1") | fx(certain=True, acuity="old")],
        id="FX-7 probably chronic is an old fracture",
    ),
    pytest.param(
        "L2椎体压缩性骨折（新旧程度待定）",
        [v("L2") | fx(certain=True, acuity="unknown")],
        id="FX-6 新旧程度待定 is certain",
    ),
    pytest.param(
        "L2压缩性骨折，新旧程度难定", [v("L2") | fx(certain=True, acuity="unknown")], id="FX-6 新旧程度难定"
    ),
    pytest.param("L1椎体压缩骨折新旧不确定", [v("L1") | fx(certain=True)], id="FX-6 新旧不确定"),
    pytest.param("L1椎体压缩骨折新旧难以判断", [v("L1") | fx(certain=True)], id="FX-6 新旧难以判断"),
    pytest.param(
        "L1椎体压缩骨折（陈旧性可能）",
        [v("L1") | fx(certain=True, acuity="old")],
        id="FX-7 陈旧性可能 qualifies the age",
    ),
    pytest.param(
        "T12椎体压缩骨折倾向陈旧性",
        [v("T12") | fx(certain=True, acuity="old")],
        id="FX-7 倾向陈旧性 qualifies the age",
    ),
    pytest.param(
        "L1椎体压缩骨折（骨质疏松性可能）",
        [v("L1") | fx(certain=True)],
        id="FX-6 骨质疏松性可能 qualifies the cause",
    ),
    pytest.param(
        "L1椎体压缩骨折，是否为新鲜骨折待定",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-7 是否为新鲜骨折 asks the age",
    ),
    pytest.param(
        "Possible old L1 compression fracture.",
        [v("L1") | fx(certain=False)],
        id="FX-6 near-miss possible old fracture stays uncertain",
    ),
    pytest.param(
        "L1椎体陈旧性骨折可能",
        [v("L1") | fx(certain=False)],
        id="FX-6 near-miss 陈旧性骨折可能 stays uncertain",
    ),
    pytest.param(
        "L1椎体压缩骨折可能，新旧程度难定",
        [v("L1") | fx(certain=False)],
        id="FX-6 near-miss 压缩骨折可能 keeps its hedge",
    ),
    pytest.param(
        "Indeterminate L1 compression fracture.",
        [v("L1") | fx(certain=False)],
        id="FX-6 near-miss an indeterminate fracture is doubtful",
    ),
]

# FX-6 hedges added by "How to add a phrasing" (docs/architecture.md), with their near-miss.
HEDGES = [
    pytest.param(
        "L1椎体压缩骨折不能完全除外", [v("L1") | fx(certain=False)], id="FX-6 不能完全除外 is uncertain"
    ),
    pytest.param(
        "不能完全排除T12椎体压缩骨折", [v("T12") | fx(certain=False)], id="FX-6 不能完全排除 is uncertain"
    ),
    pytest.param(
        "L1椎体压缩骨折，余椎体未见骨折",
        [v("L1") | fx(certain=True)],
        id="FX-6 near-miss 余椎体未见骨折 stays",
    ),
]

# --------------------------------------------------------------------------------------------------
# Class 3, FX-8: pathology ruled out is not pathology, and no phantom fracture.

PATHOLOGY_EXCLUDED = [
    pytest.param(
        "L1椎体压缩骨折，病理性骨折依据不足",
        [v("L1") | fx(certain=True, pathological=False)],
        id="FX-8 病理性骨折依据不足",
    ),
    pytest.param(
        "L1椎体压缩骨折，暂不考虑病理性骨折", [v("L1") | fx(pathological=False)], id="FX-8 暂不考虑病理性骨折"
    ),
    pytest.param(
        "T12椎体压缩变扁，Genant 2度，病理性骨折依据不足",
        [v("T12") | fx(pathological=False, deformity_only=False, genant_grade=2)],
        id="FX-8 denying the pathology does not deny the graded fracture",
    ),
    pytest.param(
        "L1椎体压缩骨折，考虑骨质疏松性而非病理性骨折",
        [v("L1") | fx(pathological=False)],
        id="FX-8 骨质疏松性而非病理性",
    ),
    pytest.param(
        "L1椎体骨质疏松性而非转移性压缩骨折", [v("L1") | fx(pathological=False)], id="FX-8 而非转移性"
    ),
    pytest.param(
        "L1椎体压缩骨折，转移瘤依据不足", [v("L1") | fx(pathological=False)], id="FX-8 转移瘤依据不足"
    ),
    pytest.param("L1椎体压缩骨折，不支持转移", [v("L1") | fx(pathological=False)], id="FX-8 不支持转移"),
    pytest.param(
        "T12椎体压缩骨折，不符合病理性骨折", [v("T12") | fx(pathological=False)], id="FX-8 不符合病理性骨折"
    ),
    pytest.param(
        "Osteoporotic rather than pathologic L1 compression fracture.",
        [v("L1") | fx(certain=True, pathological=False)],
        id="FX-8 rather than pathologic",
    ),
    pytest.param(
        "L1 compression fracture, osteoporotic rather than pathological.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 osteoporotic rather than pathological after",
    ),
    pytest.param(
        "L1 compression fracture unlikely pathologic.",
        [v("L1") | fx(certain=True, pathological=False)],
        id="FX-8 unlikely pathologic keeps the fracture",
    ),
    pytest.param(
        "L1 compression fracture, unlikely to be pathologic.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 unlikely to be pathologic",
    ),
    pytest.param(
        "L1 compression fracture. No evidence of an underlying lesion.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 no evidence of an underlying lesion",
    ),
    pytest.param(
        "L1 compression fracture without an underlying osseous lesion.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 without an underlying osseous lesion",
    ),
    pytest.param(
        "L1 compression fracture; pathologic fracture is not favored.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 pathologic fracture is not favored",
    ),
    pytest.param(
        "L1椎体压缩骨折，转移瘤不除外",
        [v("L1") | fx(pathological=True)],
        id="FX-8 near-miss 转移瘤不除外 still asks for the differential",
    ),
    pytest.param(
        "L1 compression fracture, suspicious for an underlying lesion.",
        [v("L1") | fx(pathological=True)],
        id="FX-8 near-miss suspicious for an underlying lesion",
    ),
    pytest.param(
        "L1 pathologic fracture rather than osteoporotic.",
        [v("L1") | fx(pathological=True)],
        id="FX-8 near-miss pathologic rather than osteoporotic",
    ),
    pytest.param(
        "L2 compression fracture with an aggressive lesion.",
        [v("L2") | fx(pathological=True)],
        id="FX-8 near-miss an aggressive lesion",
    ),
]

PATHOLOGY_EXCLUDED_ALONE = [
    pytest.param("暂不考虑病理性骨折", id="FX-8 暂不考虑病理性骨折 alone is no phantom fracture"),
    pytest.param("病理性骨折依据不足。", id="FX-8 病理性骨折依据不足 alone is no phantom fracture"),
    pytest.param("Pathologic fracture unlikely.", id="FX-8 pathologic fracture unlikely alone"),
    pytest.param("No pathologic fracture.", id="FX-8 no pathologic fracture alone"),
]

# --------------------------------------------------------------------------------------------------
# Class 4, FX-1/FX-2: an ICD-10 M80 title ("osteoporosis with pathological fracture") names an osteoporotic
# fracture, not a tumour fracture.

M80_TITLES = [
    pytest.param(
        "绝经后骨质疏松伴病理性骨折",
        [fx(certain=True, pathological=False)],
        id="FX-2 绝经后骨质疏松伴病理性骨折 is osteoporotic",
    ),
    pytest.param("骨质疏松伴病理性骨折", [fx(pathological=False)], id="FX-2 骨质疏松伴病理性骨折"),
    pytest.param("骨质疏松症伴病理性骨折", [fx(pathological=False)], id="FX-2 骨质疏松症伴病理性骨折"),
    pytest.param(
        "老年性骨质疏松伴病理性骨折", [fx(pathological=False)], id="FX-2 老年性骨质疏松伴病理性骨折"
    ),
    pytest.param(
        "L1椎体骨质疏松伴病理性骨折", [v("L1") | fx(pathological=False)], id="FX-2 at L1, osteoporotic"
    ),
    pytest.param(
        "骨质疏松伴T12椎体病理性压缩骨折",
        [v("T12") | fx(pathological=False)],
        id="FX-2 骨质疏松伴 T12 病理性压缩骨折",
    ),
    pytest.param(
        "绝经后骨质疏松伴病理性骨折（腰椎）", [v() | fx(pathological=False)], id="FX-2 with the region"
    ),
    pytest.param(
        "Postmenopausal osteoporosis with current pathological fracture",
        [fx(pathological=False)],
        id="FX-2 postmenopausal osteoporosis with current pathological fracture",
    ),
    pytest.param(
        "Age-related osteoporosis with current pathological fracture, vertebra",
        [fx(site="other", pathological=False)],
        id="FX-2 age-related osteoporosis with current pathological fracture, vertebra",
    ),
    pytest.param(
        "Osteoporosis with pathological fracture of L1",
        [v("L1") | fx(pathological=False)],
        id="FX-2 osteoporosis with pathological fracture of L1",
    ),
    pytest.param(
        "L1椎体病理性骨折",
        [v("L1") | fx(pathological=True)],
        id="FX-8 near-miss 病理性骨折 alone is pathological",
    ),
    pytest.param(
        "骨质疏松，L1椎体病理性骨折，考虑转移瘤",
        [v("L1") | fx(pathological=True)],
        id="FX-8 near-miss osteoporosis beside a metastatic fracture",
    ),
    pytest.param(
        "骨质疏松伴L3椎体转移瘤所致病理性骨折",
        [v("L3") | fx(pathological=True)],
        id="FX-8 near-miss 骨质疏松伴 a metastatic fracture",
    ),
    pytest.param(
        "Pathological fracture of L1 due to metastasis.",
        [v("L1") | fx(pathological=True)],
        id="FX-8 near-miss pathological fracture due to metastasis",
    ),
    pytest.param(
        "Osteoporosis. Pathologic fracture of T12 from myeloma.",
        [v("T12") | fx(pathological=True)],
        id="FX-8 near-miss osteoporosis then a myeloma fracture",
    ),
]

WOMAN_68 = patient(gender="female", birth_date="1957-01-01")


def _diagnosis(*resources: dict[str, Any]) -> str | None:
    dx = diagnosis_of(findings_of([WOMAN_68, *resources]))
    return dx.topic if dx else None


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param(
            condition(text="绝经后骨质疏松伴病理性骨折", onset="2025-05-10"),
            "osteoporosis-fracture",
            id="FX-2 text-only Condition 绝经后骨质疏松伴病理性骨折",
        ),
        pytest.param(
            condition(
                text="Postmenopausal osteoporosis with current pathological fracture", onset="2025-05-10"
            ),
            "osteoporosis-fracture",
            id="FX-2 text-only Condition, English M80 title",
        ),
        pytest.param(
            condition(icd="M80.0", text="绝经后骨质疏松伴病理性骨折", onset="2025-05-10"),
            "osteoporosis-fracture",
            id="FX-2 ICD-10 M80.0 Condition with its Chinese title",
        ),
        pytest.param(
            condition(text="L1椎体病理性骨折", onset="2025-05-10"),
            None,
            id="FX-8 near-miss text-only Condition 病理性骨折 is no osteoporosis",
        ),
    ],
)
def test_m80_titles_in_conditions(resource: dict[str, Any], expected: str | None) -> None:
    assert _diagnosis(resource) == expected


# --------------------------------------------------------------------------------------------------
# Class 5, FX-1 criterion 2 / FX-3: physiological or developmental shapes are not fractures.

SHAPES = [
    pytest.param(
        "胸椎生理性楔形改变，L1椎体压缩骨折",
        [v("L1") | fx(deformity_only=False)],
        id="FX-1 near-miss 生理性楔形改变 beside a fracture",
    ),
    pytest.param(
        "T8椎体许莫氏结节，L1椎体压缩骨折", [v("L1")], id="FX-1 near-miss 许莫氏结节 before a fracture"
    ),
    pytest.param(
        "L1椎体压缩骨折，T8椎体许莫氏结节", [v("L1")], id="FX-1 near-miss 许莫氏结节 after a fracture"
    ),
    pytest.param(
        "T12椎体非生理性楔形变，Genant 2度",
        [v("T12") | fx(genant_grade=2, deformity_only=False)],
        id="FX-3 near-miss 非生理性 is a real deformity",
    ),
    pytest.param(
        "Mild anterior wedging of T7-T8, likely physiologic. Acute L1 compression fracture.",
        [v("L1") | fx(acuity="new")],
        id="FX-1 near-miss physiologic wedging, then a fracture",
    ),
    pytest.param(
        "Schmorl's nodes at T11-T12; T12 compression fracture.",
        [v("T12") | fx(deformity_only=False)],
        id="FX-1 near-miss Schmorl's nodes and a fracture at T12",
    ),
    pytest.param(
        "Compression fracture of T12 with Schmorl's node.",
        [v("T12") | fx(deformity_only=False)],
        id="FX-1 near-miss a fracture with a Schmorl's node",
    ),
    pytest.param(
        "T8 wedge deformity, non-physiologic, Genant grade 2.",
        [v("T8") | fx(genant_grade=2, deformity_only=False)],
        id="FX-3 near-miss non-physiologic is a real deformity",
    ),
]

SHAPES_NOT_FRACTURES = [
    pytest.param("胸椎生理性楔形改变", id="FX-1 胸椎生理性楔形改变"),
    pytest.param("T7、T8椎体轻度楔形变，考虑生理性", id="FX-1 轻度楔形变，考虑生理性"),
    pytest.param("T7-T9椎体楔形变，考虑休门氏病", id="FX-1 休门氏病"),
    pytest.param("L1椎体许莫氏结节", id="FX-1 许莫氏结节"),
    pytest.param("L2椎体上缘许莫氏结节，椎体略变扁", id="FX-1 许莫氏结节 with 变扁"),
    pytest.param("L4、L5椎体终板炎", id="FX-1 终板炎"),
    pytest.param("L3椎体血管瘤，椎体轻度变扁", id="FX-1 血管瘤 with 变扁"),
    pytest.param("T12半椎体畸形，椎体楔形变", id="FX-1 半椎体"),
    pytest.param("Mild anterior wedging of T7-T8, likely physiologic.", id="FX-1 likely physiologic wedging"),
    pytest.param("Mild anterior wedging of T7–T8, likely physiologic", id="FX-1 physiologic, en dash range"),
    pytest.param("Physiologic wedging of the mid-thoracic vertebrae.", id="FX-1 physiologic wedging"),
    pytest.param("Scheuermann disease with mild wedging of T7-T9.", id="FX-1 Scheuermann"),
    pytest.param("Schmorl's node at the L2 superior endplate.", id="FX-1 Schmorl's node"),
    pytest.param("Modic type 1 endplate changes at L4-L5.", id="FX-1 Modic changes"),
    pytest.param("Vertebral hemangioma at L3.", id="FX-1 hemangioma"),
    pytest.param("Mild wedging of T6 and T7, a normal variant.", id="FX-1 normal variant"),
]

# --------------------------------------------------------------------------------------------------
# Class 9, FX-7 and levels: MRI signal words and advice are not findings.

SIGNAL_ADVICE = [
    pytest.param("胸椎压缩骨折，短T1长T2信号", [v()], id="levels 短T1长T2信号 is no T1 vertebra"),
    pytest.param("T12椎体压缩骨折，呈短T1长T2信号", [v("T12")], id="levels 短T1长T2 keeps T12 alone"),
    pytest.param(
        "T12 compression fracture, T1 hypointense and T2 hyperintense.",
        [v("T12") | fx(acuity="unknown")],
        id="levels T1 and T2 signal are sequences",
    ),
    pytest.param(
        "L1椎体楔形变。建议MRI检查以明确是否为新鲜骨折",
        [v("L1") | fx(certain=False, acuity="unknown")],
        id="FX-7 advice to determine acuity makes nothing new",
    ),
    pytest.param(
        "L1椎体压缩骨折。建议MRI检查以明确是否为新鲜骨折",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-7 a stated fracture stays certain beside the advice",
    ),
    pytest.param(
        "L1椎体压缩骨折，建议进一步MRI检查明确是否为新鲜骨折",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-7 advice in the same sentence",
    ),
    pytest.param(
        "L1 compression fracture. Recommend MRI to assess acuity.",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-7 recommend MRI to assess acuity",
    ),
    pytest.param(
        "L1 compression deformity. MRI recommended to evaluate for acute fracture.",
        [v("L1") | fx(certain=False, acuity="unknown")],
        id="FX-7 MRI recommended to evaluate for acute fracture",
    ),
    pytest.param(
        "L1 compression fracture. Follow-up MRI is advised to determine whether the fracture is acute.",
        [v("L1") | fx(certain=True, acuity="unknown")],
        id="FX-7 advised to determine whether acute",
    ),
    pytest.param(
        "建议CT除外骨折",
        [fx(site="other", certain=False)],
        id="FX-6 建议CT除外骨折 is a doubt, not a fracture",
    ),
    pytest.param(
        "L1椎体压缩骨折，T2WI/STIR高信号",
        [v("L1") | fx(acuity="new")],
        id="FX-7 STIR high signal at the fracture is oedema",
    ),
    pytest.param(
        "L1椎体压缩骨折。L1椎体压脂序列呈高信号。",
        [v("L1") | fx(acuity="new")],
        id="FX-7 fat-suppressed high signal at the same level",
    ),
    pytest.param(
        "L1椎体压缩骨折。L4/5椎间盘T2WI/STIR高信号。",
        [v("L1") | fx(acuity="unknown")],
        id="FX-7 a disc's STIR high signal is not oedema",
    ),
    pytest.param(
        "L1椎体压缩骨折。腰背部皮下软组织STIR高信号。",
        [v("L1") | fx(acuity="unknown")],
        id="FX-7 soft tissue STIR high signal is not oedema",
    ),
    pytest.param(
        "L1椎体压缩骨折。STIR序列见高信号。",
        [v("L1") | fx(acuity="unknown")],
        id="FX-7 STIR high signal tied to nothing is not oedema",
    ),
    pytest.param(
        "L1 compression fracture. Disc at L4-L5 is hyperintense on STIR.",
        [v("L1") | fx(acuity="unknown")],
        id="FX-7 a disc hyperintense on STIR is not oedema",
    ),
    pytest.param(
        "L1 compression fracture. STIR hyperintensity in the paraspinal muscles.",
        [v("L1") | fx(acuity="unknown")],
        id="FX-7 paraspinal STIR hyperintensity is not oedema",
    ),
    pytest.param(
        "L1 compression fracture with high signal on STIR.",
        [v("L1") | fx(acuity="new")],
        id="FX-7 near-miss high signal on STIR at the fracture",
    ),
    pytest.param(
        "L1 compression fracture with marrow edema on STIR.",
        [v("L1") | fx(acuity="new")],
        id="FX-7 near-miss marrow edema stays new",
    ),
    pytest.param(
        "L1椎体压缩骨折，建议骨密度检查",
        [v("L1") | fx(certain=True)],
        id="FX-6 near-miss advice for BMD leaves the fracture certain",
    ),
    pytest.param(
        "Sagittal images obtained to evaluate the spine show an acute L1 compression fracture.",
        [v("L1") | fx(certain=True, acuity="new")],
        id="FX-7 near-miss 'to evaluate' in a finding is no advice",
    ),
    pytest.param("T1 compression fracture.", [v("T1")], id="levels near-miss a real T1 vertebra"),
    pytest.param("T2椎体压缩骨折", [v("T2")], id="levels near-miss a real T2 vertebra"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    HEIGHT_LOSS + AGE_CAUSE + HEDGES + PATHOLOGY_EXCLUDED + M80_TITLES + SHAPES + SIGNAL_ADVICE,
)
def test_review_sentences(text: str, expected: list[dict[str, Any]]) -> None:
    assert_fractures(text, expected)


@pytest.mark.parametrize("text", PATHOLOGY_EXCLUDED_ALONE + SHAPES_NOT_FRACTURES)
def test_review_sentences_yield_no_fracture(text: str) -> None:
    assert read_report(text).fractures == ()


# --------------------------------------------------------------------------------------------------
# The cue file is data a radiologist edits: a phrase that could make the reader super-linear is refused.


@pytest.mark.parametrize(
    ("phrase", "refused"),
    [
        pytest.param("骨折+", True, id="cues unbounded + is refused"),
        pytest.param("(?:压缩)*骨折", True, id="cues unbounded * is refused"),
        pytest.param("", True, id="cues an empty phrase is refused"),
        pytest.param(r"高度[^,;。]{0,6}?减低", False, id="cues bounded repetition is kept"),
        pytest.param(r"[*+]\s?骨折", False, id="cues * and + inside a character class are characters"),
        pytest.param(r"t2\*", False, id="cues an escaped * is a character"),
    ],
)
def test_cue_phrases_must_stay_bounded(phrase: str, refused: bool) -> None:
    if refused:
        with pytest.raises(ValueError):
            alternation([phrase])
    else:
        assert alternation([phrase]) == phrase


def test_every_cue_phrase_of_the_shipped_file_compiles_alone() -> None:
    table = cue_table("report-text")
    entries = [*table["hit"], *table["cue"], *table["site"]]
    phrases = [p for e in entries for p in e["phrases"]]
    phrases += [p for words in (*table["words"].values(), *table["levels"].values()) for p in words]
    assert len(phrases) > 400
    for phrase in phrases:
        re.compile(alternation([phrase]))
