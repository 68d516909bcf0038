"""Report-text reader: fracture mentions (FX-3…FX-8) and findings (REC-BMD, REC-QCT, DX-8), by rule."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.facts.report_text import (
    MAX_QUOTE_CHARS,
    MAX_REPORT_CHARS,
    FractureMention,
    ReportReading,
    read_report,
)


def fx(**fields: Any) -> dict[str, Any]:
    """The fields of one expected FractureMention (only those named are checked)."""
    return fields


def v(*levels: str) -> dict[str, Any]:
    return fx(site="vertebra", vertebrae=levels)


def assert_offsets(text: str, reading: ReportReading) -> None:
    spans = [(m.quote, m.start, m.end) for m in reading.fractures]
    spans += [(f.quote, f.start, f.end) for f in reading.findings]
    for quote, start, end in spans:
        assert quote == text[start:end]
        assert quote and quote in text
        assert len(quote) <= MAX_QUOTE_CHARS


def assert_fractures(text: str, expected: list[dict[str, Any]]) -> tuple[FractureMention, ...]:
    reading = read_report(text)
    assert_offsets(text, reading)
    assert not reading.truncated
    got = reading.fractures
    assert len(got) == len(expected), got
    for mention, fields in zip(got, expected, strict=True):
        for name, value in fields.items():
            assert getattr(mention, name) == value, (name, mention)
    return got


# --------------------------------------------------------------------------------------------------
# FX-6: stated, certain, uncertain, negated

CERTAINTY = [
    pytest.param("L1椎体压缩骨折", [v("L1") | fx(certain=True)], id="FX-6 L1椎体压缩骨折 is certain"),
    pytest.param("考虑L1椎体压缩骨折", [v("L1") | fx(certain=True)], id="FX-6 考虑 is certain"),
    pytest.param(
        "符合L1椎体骨质疏松性压缩骨折",
        [v("L1") | fx(certain=True)],
        id="FX-6 符合…骨质疏松性压缩骨折 is certain",
    ),
    pytest.param("L1椎体可见压缩骨折", [v("L1") | fx(certain=True)], id="FX-6 可见 is certain"),
    pytest.param("提示T12椎体压缩骨折", [v("T12") | fx(certain=True)], id="FX-6 提示 is certain"),
    pytest.param(
        "Findings compatible with T12 compression fracture.",
        [v("T12") | fx(certain=True)],
        id="FX-6 compatible with is certain",
    ),
    pytest.param(
        "Appearance consistent with an L2 compression fracture.",
        [v("L2") | fx(certain=True)],
        id="FX-6 consistent with is certain",
    ),
    pytest.param("L1椎体压缩骨折可能", [v("L1") | fx(certain=False)], id="FX-6 可能 after is uncertain"),
    pytest.param(
        "L1椎体骨折？", [v("L1") | fx(certain=False)], id="FX-6 full-width question mark is uncertain"
    ),
    pytest.param("疑L1骨折", [v("L1") | fx(certain=False)], id="FX-6 疑 before is uncertain"),
    pytest.param("不除外L1压缩骨折", [v("L1") | fx(certain=False)], id="FX-6 不除外 is uncertain"),
    pytest.param("L1椎体可疑压缩骨折", [v("L1") | fx(certain=False)], id="FX-6 可疑 is uncertain"),
    pytest.param("T12椎体压缩骨折待排", [v("T12") | fx(certain=False)], id="FX-6 待排 is uncertain"),
    pytest.param("疑似L2椎体压缩骨折", [v("L2") | fx(certain=False)], id="FX-6 疑似 is uncertain"),
    pytest.param("L1椎体压缩骨折可能性大", [v("L1") | fx(certain=False)], id="FX-6 可能性大 is uncertain"),
    pytest.param(
        "Suspicious for L1 compression fracture.", [v("L1") | fx(certain=False)], id="FX-6 suspicious for"
    ),
    pytest.param(
        "L1 compression fracture cannot be excluded.",
        [v("L1") | fx(certain=False)],
        id="FX-6 cannot be excluded",
    ),
    pytest.param("Possible T12 compression fracture.", [v("T12") | fx(certain=False)], id="FX-6 possible"),
    pytest.param("Questionable L3 fracture.", [v("L3") | fx(certain=False)], id="FX-6 questionable"),
    pytest.param(
        "Findings may represent an L1 compression fracture.",
        [v("L1") | fx(certain=False)],
        id="FX-6 may represent",
    ),
    pytest.param("Probable L2 compression fracture.", [v("L2") | fx(certain=False)], id="FX-6 probable"),
    pytest.param("L1 compression fracture is likely.", [v("L1") | fx(certain=False)], id="FX-6 likely"),
    pytest.param("?L1 fracture", [v("L1") | fx(certain=False)], id="FX-6 leading ? is uncertain"),
    pytest.param(
        "L1 compression fracture, likely osteoporotic.",
        [v("L1") | fx(certain=True)],
        id="FX-6 likely about the cause leaves the fracture certain",
    ),
]

NEGATED = [
    pytest.param("未见骨折", id="FX-6 未见骨折 is negated"),
    pytest.param("未见明显压缩骨折", id="FX-6 未见明显压缩骨折 is negated"),
    pytest.param("无压缩骨折", id="FX-6 无压缩骨折 is negated"),
    pytest.param("其余椎体未见明确骨折。", id="FX-6 其余椎体未见明确骨折 is negated"),
    pytest.param("No fracture.", id="FX-6 no fracture is negated"),
    pytest.param("No compression fracture.", id="FX-6 no compression fracture is negated"),
    pytest.param("Vertebral body heights are maintained without fracture.", id="FX-6 without fracture"),
    pytest.param("Negative for fracture.", id="FX-6 negative for fracture"),
    pytest.param("Fracture is not seen.", id="FX-6 fracture is not seen"),
    pytest.param(
        "No evidence of acute displaced fracture or dislocation.", id="FX-6 no evidence of fracture"
    ),
    pytest.param("L1 fracture unlikely.", id="FX-6 unlikely negates"),
    pytest.param("骨折可能性小", id="FX-6 可能性小 negates"),
    pytest.param("No acute fracture.", id="FX-6 no acute fracture alone yields nothing"),
    pytest.param("未见新鲜骨折", id="FX-6 未见新鲜骨折 yields nothing"),
    pytest.param("未见明显骨质破坏", id="FX-8 未见明显骨质破坏 is not a fracture"),
    pytest.param("骨折风险增加，建议骨密度检查", id="FX-6 骨折风险 is not a fracture"),
    pytest.param("Increased risk of fracture.", id="FX-6 risk of fracture is not a fracture"),
    pytest.param("椎体高度未见明显减低", id="FX-3 椎体高度未见减低 is no deformity"),
]

MIXED = [
    pytest.param(
        "L1椎体压缩骨折，余椎体未见骨折", [v("L1") | fx(certain=True)], id="FX-6 余椎体未见骨折 keeps L1"
    ),
    pytest.param(
        "L1椎体压缩骨折；其余椎体未见明确骨折。",
        [v("L1")],
        id="FX-6 full-width semicolon and 其余椎体未见明确骨折 keep L1",
    ),
    pytest.param(
        "L1 compression fracture. No other fractures.", [v("L1")], id="FX-6 no other fractures keeps L1"
    ),
    pytest.param(
        "No acute fracture. Chronic L1 compression fracture.",
        [v("L1") | fx(acuity="old", certain=True)],
        id="FX-6 no acute fracture keeps the old one",
    ),
    pytest.param(
        "未见新鲜骨折，L1椎体陈旧性压缩骨折",
        [v("L1") | fx(acuity="old")],
        id="FX-6 未见新鲜骨折 keeps 陈旧性",
    ),
    pytest.param(
        "无外伤史L1椎体压缩骨折",
        [v("L1") | fx(trauma="none", certain=True)],
        id="FX-6 无 governs 外伤史, not the fracture",
    ),
    pytest.param(
        "No interval change in the L1 compression fracture.",
        [v("L1")],
        id="FX-6 no interval change is not a negated fracture",
    ),
    pytest.param(
        "L1椎体压缩骨折，T12椎体可疑骨折",
        [v("L1") | fx(certain=True), v("T12") | fx(certain=False)],
        id="FX-6 certain and uncertain mentions kept apart",
    ),
    pytest.param(
        "L1椎体变扁，考虑压缩骨折",
        [v("L1") | fx(certain=True, deformity_only=False)],
        id="FX-6 考虑压缩骨折 continues L1椎体变扁",
    ),
    pytest.param(
        "L1椎体变扁，压缩骨折可能",
        [v("L1") | fx(certain=False)],
        id="FX-6 压缩骨折可能 continues L1椎体变扁 uncertain",
    ),
    pytest.param(
        "L1 compression fracture. Possible pathologic fracture.",
        [v("L1") | fx(certain=True, pathological=True)],
        id="FX-8 a bare second sentence continues the fracture",
    ),
]


# --------------------------------------------------------------------------------------------------
# Levels

LEVELS = [
    pytest.param("T12-L2椎体压缩骨折", [v("T12", "L1", "L2")], id="levels T12-L2 range"),
    pytest.param("胸12-腰2椎体压缩骨折", [v("T12", "L1", "L2")], id="levels 胸12-腰2 range"),
    pytest.param("L1～L3椎体压缩骨折", [v("L1", "L2", "L3")], id="levels L1～L3 full-width tilde"),
    pytest.param("L1-3椎体压缩骨折", [v("L1", "L2", "L3")], id="levels L1-3 short range"),
    pytest.param("第1腰椎压缩骨折", [v("L1")], id="levels 第1腰椎"),
    pytest.param("第12胸椎及第1腰椎压缩骨折", [v("T12", "L1")], id="levels 第12胸椎及第1腰椎"),
    pytest.param("第1、2腰椎压缩骨折", [v("L1", "L2")], id="levels 第1、2腰椎"),
    pytest.param("L1、L2椎体压缩骨折", [v("L1", "L2")], id="levels L1、L2"),
    pytest.param("腰1椎体压缩骨折", [v("L1")], id="levels 腰1"),
    pytest.param("Ｌ１椎体压缩骨折", [v("L1")], id="levels full-width Ｌ１"),
    pytest.param(
        "Compression fractures of T11, T12 and L1.", [v("T11", "T12", "L1")], id="levels English list"
    ),
    pytest.param(
        "T1WI低信号、T2WI压脂高信号，L1椎体压缩骨折",
        [v("L1") | fx(acuity="new")],
        id="levels T1WI and T2WI are MRI sequences, not vertebrae",
    ),
    pytest.param("Compression fracture.", [v()], id="levels compression fracture defaults to vertebra"),
]


# --------------------------------------------------------------------------------------------------
# FX-3 Genant grade, FX-4 ECF and deformity

GENANT_ECF = [
    pytest.param("L1椎体压缩骨折，Genant 2度", [v("L1") | fx(genant_grade=2)], id="FX-3 Genant 2度"),
    pytest.param("L1椎体压缩骨折（Genant Ⅱ度）", [v("L1") | fx(genant_grade=2)], id="FX-3 Genant Ⅱ度"),
    pytest.param("L1椎体压缩骨折，Genant II级", [v("L1") | fx(genant_grade=2)], id="FX-3 Genant II级"),
    pytest.param(
        "T12 compression fracture, Genant grade 3.", [v("T12") | fx(genant_grade=3)], id="FX-3 Genant grade 3"
    ),
    pytest.param("L1 compression fracture, grade 1.", [v("L1") | fx(genant_grade=1)], id="FX-3 grade 1"),
    pytest.param("L1椎体2度压缩骨折", [v("L1") | fx(genant_grade=2)], id="FX-3 2度压缩"),
    pytest.param("L2椎体重度压缩骨折", [v("L2") | fx(genant_grade=3)], id="FX-3 重度压缩 is 3"),
    pytest.param(
        "L1椎体轻度压缩变扁",
        [v("L1") | fx(genant_grade=1, deformity_only=False)],
        id="FX-3 轻度压缩变扁 is grade 1 and a fracture",
    ),
    pytest.param(
        "L1椎体中度楔形变", [v("L1") | fx(genant_grade=2, deformity_only=False)], id="FX-3 中度楔形变 is 2"
    ),
    pytest.param(
        "Mild compression deformity of L1.",
        [v("L1") | fx(genant_grade=1, deformity_only=False)],
        id="FX-3 mild compression deformity is grade 1",
    ),
    pytest.param(
        "Grade 1 anterolisthesis of L4 on L5. L1 compression fracture.",
        [v("L1") | fx(genant_grade=None)],
        id="FX-3 Meyerding grade is not a Genant grade",
    ),
    pytest.param(
        "L1椎体压缩骨折，上终板骨折", [v("L1") | fx(ecf="present")], id="FX-4 终板骨折 is ECF present"
    ),
    pytest.param(
        "L1椎体压缩骨折，终板塌陷", [v("L1") | fx(ecf="present")], id="FX-4 终板塌陷 is ECF present"
    ),
    pytest.param(
        "L1 compression fracture with cortical break.",
        [v("L1") | fx(ecf="present")],
        id="FX-4 cortical break",
    ),
    pytest.param(
        "L1 compression fracture with endplate fracture, grade 2.",
        [v("L1") | fx(ecf="present", genant_grade=2)],
        id="FX-4 endplate fracture with grade",
    ),
    pytest.param("L1椎体压缩骨折，终板完整", [v("L1") | fx(ecf="absent")], id="FX-4 终板完整 is ECF absent"),
    pytest.param(
        "T12 compression fracture, endplates intact.",
        [v("T12") | fx(ecf="absent")],
        id="FX-4 endplates intact",
    ),
    pytest.param("L1椎体压缩骨折", [v("L1") | fx(ecf="not-stated")], id="FX-4 ECF not stated"),
    pytest.param(
        "T12椎体楔形变，Genant 1度，未见终板骨折",
        [v("T12") | fx(genant_grade=1, ecf="absent", deformity_only=True)],
        id="FX-4 grade 1 without ECF is a deformity",
    ),
    pytest.param(
        "L1 compression deformity, grade 1, no endplate fracture.",
        [v("L1") | fx(genant_grade=1, ecf="absent", deformity_only=True)],
        id="FX-4 no endplate fracture is ECF absent",
    ),
    pytest.param(
        "L1 wedge deformity, no fracture.",
        [v("L1") | fx(deformity_only=True)],
        id="FX-4 wedge deformity with no fracture is deformity only",
    ),
    pytest.param(
        "L1椎体楔形变，Genant 1度，余椎体未见骨折",
        [v("L1") | fx(genant_grade=1, deformity_only=False)],
        id="FX-4 余椎体未见骨折 does not deny L1",
    ),
    pytest.param(
        "L1椎体楔形变", [v("L1") | fx(deformity_only=True)], id="FX-4 ungraded 楔形变 is deformity only"
    ),
    pytest.param(
        "L1椎体上终板骨折",
        [v("L1") | fx(ecf="present", deformity_only=False)],
        id="FX-4 an endplate fracture alone is a vertebral fracture",
    ),
    pytest.param(
        "L1椎体变扁，终板未见明确骨折线",
        [v("L1") | fx(ecf="absent", deformity_only=True)],
        id="FX-4 终板未见明确骨折线 is ECF absent",
    ),
    pytest.param(
        "Acute superior endplate compression fracture of L1.",
        [v("L1") | fx(ecf="present", acuity="new")],
        id="FX-4 endplate compression fracture is ECF present",
    ),
    pytest.param(
        "Chronic mild T12 compression deformity.",
        [v("T12") | fx(genant_grade=1, acuity="old", deformity_only=False)],
        id="FX-3 mild with the level in between is grade 1",
    ),
    pytest.param(
        "L3 vertebral body collapse.", [v("L3") | fx(deformity_only=True)], id="FX-4 collapse is a deformity"
    ),
    pytest.param("股骨头塌陷", [], id="FX-4 femoral head collapse is not a vertebral deformity"),
    pytest.param(
        "长期服用糖皮质激素，L1椎体压缩骨折",
        [v("L1") | fx(ecf="not-stated")],
        id="FX-4 糖皮质激素 is not a cortex",
    ),
]

REPEATS = [
    pytest.param(
        "Findings: T12 compression fracture. Impression: Possible T12 compression fracture.",
        [v("T12") | fx(certain=True)],
        id="FX-6 findings and impression of one vertebra are one mention",
    ),
    pytest.param(
        "检查所见：胸腰椎生理曲度存在，L1椎体变扁，呈楔形改变，终板未见明确骨折线，椎体内未见骨髓水肿。"
        "诊断意见：1. L1椎体楔形变，考虑陈旧性压缩骨折；2. 腰椎退行性变；3. 骨质疏松。",
        [v("L1") | fx(certain=True, deformity_only=False, acuity="old", ecf="absent")],
        id="FX-4 a whole Chinese report reads as one L1 fracture",
    ),
    pytest.param(
        "IMPRESSION: 1. Acute superior endplate compression fracture of L1 with approximately 30% height "
        "loss and bone marrow edema. No retropulsion. 2. Chronic mild T12 compression deformity. "
        "3. Multilevel degenerative disc disease.",
        [
            v("L1") | fx(acuity="new", ecf="present", deformity_only=False),
            v("T12") | fx(acuity="old", genant_grade=1, deformity_only=False),
        ],
        id="FX-7 a whole English impression reads as two fractures",
    ),
    pytest.param(
        "左侧第3-5肋骨骨折，L1椎体压缩骨折，骨质疏松",
        [fx(site="rib", vertebrae=()), v("L1")],
        id="FX-1 rib and vertebra in one sentence",
    ),
]


# --------------------------------------------------------------------------------------------------
# FX-5 trauma

TRAUMA = [
    pytest.param(
        "车祸伤后L1椎体爆裂骨折", [v("L1") | fx(trauma="high-energy")], id="FX-5 车祸 is high-energy"
    ),
    pytest.param(
        "高处坠落伤，L1椎体压缩骨折", [v("L1") | fx(trauma="high-energy")], id="FX-5 高处坠落 is high-energy"
    ),
    pytest.param(
        "History: MVA. Findings: L2 burst fracture.",
        [v("L2") | fx(trauma="high-energy")],
        id="FX-5 MVA elsewhere in the report is high-energy",
    ),
    pytest.param(
        "Fall from height; T12 compression fracture.",
        [v("T12") | fx(trauma="high-energy")],
        id="FX-5 fall from height is high-energy",
    ),
    pytest.param("平地摔倒后右股骨颈骨折", [fx(site="hip", trauma="minor")], id="FX-5 平地摔倒 is minor"),
    pytest.param(
        "Fall from standing height. Left distal radius fracture.",
        [fx(site="distal-radius", trauma="minor")],
        id="FX-5 fall from standing height is minor",
    ),
    pytest.param(
        "Patient slipped on ice: left Colles fracture.",
        [fx(site="distal-radius", trauma="minor")],
        id="FX-5 slipped is minor",
    ),
    pytest.param("轻微外伤后L1椎体压缩骨折", [v("L1") | fx(trauma="minor")], id="FX-5 轻微外伤 is minor"),
    pytest.param("无外伤史，L1椎体压缩骨折", [v("L1") | fx(trauma="none")], id="FX-5 无外伤史 is none"),
    pytest.param(
        "No history of trauma. L1 compression fracture.",
        [v("L1") | fx(trauma="none")],
        id="FX-5 no history of trauma is none",
    ),
    pytest.param(
        "Spontaneous onset of back pain. L1 compression fracture.",
        [v("L1") | fx(trauma="none")],
        id="FX-5 spontaneous is none",
    ),
    pytest.param(
        "外伤后L1椎体压缩骨折",
        [v("L1") | fx(trauma="unspecified")],
        id="FX-1 a trauma of unstated energy is recorded as unspecified",
    ),
    pytest.param("L1椎体压缩骨折", [v("L1") | fx(trauma="not-stated")], id="FX-5 nothing said is not stated"),
    pytest.param(
        "无明显外伤史，摔倒后腰痛，L1椎体压缩骨折",
        [v("L1") | fx(trauma="minor")],
        id="FX-5 the most energetic mechanism wins",
    ),
]


# --------------------------------------------------------------------------------------------------
# FX-8 pathological

PATHOLOGICAL = [
    pytest.param("L1椎体病理性骨折", [v("L1") | fx(pathological=True)], id="FX-8 病理性骨折"),
    pytest.param("L1椎体压缩骨折，考虑转移瘤", [v("L1") | fx(pathological=True)], id="FX-8 转移瘤"),
    pytest.param(
        "L2 compression fracture due to metastatic disease.",
        [v("L2") | fx(pathological=True)],
        id="FX-8 metastatic",
    ),
    pytest.param("L3椎体压缩骨折，多发性骨髓瘤", [v("L3") | fx(pathological=True)], id="FX-8 骨髓瘤"),
    pytest.param(
        "Pathologic fracture of T10 in multiple myeloma.",
        [v("T10") | fx(pathological=True)],
        id="FX-8 pathologic fracture in myeloma",
    ),
    pytest.param(
        "L1 compression fracture related to lymphoma.", [v("L1") | fx(pathological=True)], id="FX-8 lymphoma"
    ),
    pytest.param("L1椎体骨折，考虑结核", [v("L1") | fx(pathological=True)], id="FX-8 结核"),
    pytest.param("T12椎体骨折，椎间盘炎伴感染", [v("T12") | fx(pathological=True)], id="FX-8 感染"),
    pytest.param(
        "L4 fracture with spondylodiscitis.", [v("L4") | fx(pathological=True)], id="FX-8 spondylodiscitis"
    ),
    pytest.param(
        "L1 compression fracture. Osteomyelitis.",
        [v("L1") | fx(pathological=True)],
        id="FX-8 osteomyelitis in the next sentence",
    ),
    pytest.param("T11 tumor with pathologic fracture.", [v("T11") | fx(pathological=True)], id="FX-8 tumor"),
    pytest.param(
        "L1椎体压缩骨折伴骨质破坏", [v("L1") | fx(pathological=True)], id="FX-8 骨质破坏 at the fracture"
    ),
    pytest.param(
        "L1椎体压缩骨折，转移瘤不除外",
        [v("L1") | fx(pathological=True, certain=True)],
        id="FX-8 an uncertain lesion still asks for the differential",
    ),
    pytest.param("L1椎体压缩骨折，未见骨质破坏", [v("L1") | fx(pathological=False)], id="FX-8 未见骨质破坏"),
    pytest.param(
        "L1 compression fracture without evidence of underlying metastasis.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 without metastasis",
    ),
    pytest.param(
        "L1 fracture. No evidence of metastatic disease.",
        [v("L1") | fx(pathological=False)],
        id="FX-8 no metastatic disease",
    ),
    pytest.param("L1椎体非病理性骨折", [v("L1") | fx(pathological=False)], id="FX-8 非病理性骨折"),
    pytest.param(
        "L1椎体压缩骨折，肝脏多发转移瘤",
        [v("L1") | fx(pathological=False)],
        id="FX-8 a liver lesion is elsewhere",
    ),
    pytest.param(
        "L1椎体压缩骨折，T12椎体血管瘤",
        [v("L1") | fx(pathological=False)],
        id="FX-8 haemangioma is incidental",
    ),
]


# --------------------------------------------------------------------------------------------------
# FX-7 acuity

ACUITY = [
    pytest.param("L1椎体压缩骨折伴骨髓水肿", [v("L1") | fx(acuity="new")], id="FX-7 骨髓水肿 is new"),
    pytest.param("L1椎体压缩骨折，无骨髓水肿", [v("L1") | fx(acuity="old")], id="FX-7 无骨髓水肿 is old"),
    pytest.param(
        "未见骨髓水肿，L1椎体压缩骨折",
        [v("L1") | fx(acuity="old")],
        id="FX-7 未见骨髓水肿 is old, not negation",
    ),
    pytest.param("L1椎体陈旧性压缩骨折", [v("L1") | fx(acuity="old")], id="FX-7 陈旧性 is old"),
    pytest.param("L1椎体新鲜压缩骨折", [v("L1") | fx(acuity="new")], id="FX-7 新鲜 is new"),
    pytest.param("Acute L1 compression fracture.", [v("L1") | fx(acuity="new")], id="FX-7 acute is new"),
    pytest.param("Chronic L1 compression fracture.", [v("L1") | fx(acuity="old")], id="FX-7 chronic is old"),
    pytest.param(
        "L1 compression fracture with bone marrow edema.",
        [v("L1") | fx(acuity="new")],
        id="FX-7 marrow edema",
    ),
    pytest.param(
        "L1 compression fracture without marrow oedema.",
        [v("L1") | fx(acuity="old")],
        id="FX-7 no marrow oedema",
    ),
    pytest.param(
        "Healed fracture of the left 6th rib.", [fx(site="rib", acuity="old")], id="FX-7 healed is old"
    ),
    pytest.param(
        "L1椎体压缩骨折。MRI：L1椎体骨髓水肿。",
        [v("L1") | fx(acuity="new")],
        id="FX-7 oedema at the same level in another sentence",
    ),
    pytest.param(
        "L1椎体压缩骨折，T2WI压脂未见高信号", [v("L1") | fx(acuity="old")], id="FX-7 压脂未见高信号 is old"
    ),
    pytest.param(
        "陈旧性L1椎体压缩骨折伴骨髓水肿", [v("L1") | fx(acuity="new")], id="FX-7 oedema decides over 陈旧"
    ),
    pytest.param(
        "L1椎体压缩骨折。诸椎体未见骨髓水肿。", [v("L1") | fx(acuity="old")], id="FX-7 report-level no oedema"
    ),
    pytest.param("L1椎体压缩骨折", [v("L1") | fx(acuity="unknown")], id="FX-7 nothing said is unknown"),
    pytest.param(
        "80-year-old woman. L1 compression fracture.",
        [v("L1") | fx(acuity="unknown")],
        id="FX-7 year-old is not old",
    ),
]


# --------------------------------------------------------------------------------------------------
# FX-1 sites

SITES = [
    pytest.param("右侧股骨颈骨折", [fx(site="hip", vertebrae=())], id="FX-1 股骨颈骨折 is hip"),
    pytest.param("左股骨粗隆间骨折", [fx(site="hip")], id="FX-1 粗隆间骨折 is hip"),
    pytest.param("右髋部骨折", [fx(site="hip")], id="FX-1 髋部骨折 is hip"),
    pytest.param("Left intertrochanteric fracture.", [fx(site="hip")], id="FX-1 intertrochanteric is hip"),
    pytest.param("Right hip fracture.", [fx(site="hip")], id="FX-1 hip fracture"),
    pytest.param("左侧桡骨远端骨折", [fx(site="distal-radius")], id="FX-1 桡骨远端骨折"),
    pytest.param("科雷氏骨折", [fx(site="distal-radius")], id="FX-1 科雷氏骨折"),
    pytest.param("Colles骨折", [fx(site="distal-radius")], id="FX-1 Colles骨折"),
    pytest.param("Distal radius fracture.", [fx(site="distal-radius")], id="FX-1 distal radius fracture"),
    pytest.param("右肱骨外科颈骨折", [fx(site="proximal-humerus")], id="FX-1 肱骨外科颈骨折"),
    pytest.param(
        "Proximal humeral fracture.", [fx(site="proximal-humerus")], id="FX-1 proximal humeral fracture"
    ),
    pytest.param("右侧第5、6肋骨骨折", [fx(site="rib", vertebrae=())], id="FX-1 肋骨骨折 with numbers"),
    pytest.param("骶骨机能不全性骨折", [fx(site="pelvis")], id="FX-1 骶骨机能不全性骨折"),
    pytest.param(
        "Sacral insufficiency fracture.", [fx(site="pelvis")], id="FX-1 sacral insufficiency fracture"
    ),
    pytest.param("左侧耻骨上下支骨折", [fx(site="pelvis")], id="FX-1 耻骨骨折 is pelvis"),
    pytest.param("右侧髌骨骨折", [fx(site="other")], id="FX-1 髌骨 is patella, not hip"),
    pytest.param("L2右侧横突骨折", [fx(site="other", vertebrae=())], id="FX-1 横突 is a posterior element"),
    pytest.param("Fracture of the left clavicle.", [fx(site="other")], id="FX-1 clavicle is other"),
    pytest.param(
        "腰椎MRI示骶骨机能不全性骨折", [fx(site="pelvis")], id="FX-1 the study name is not the fracture site"
    ),
    pytest.param(
        "Lumbar spine radiograph: compression fracture.",
        [v()],
        id="FX-1 study heading then compression fracture",
    ),
    pytest.param("右股骨颈可见透亮线，考虑骨折", [fx(site="hip")], id="FX-1 site from the preceding clause"),
    pytest.param(
        "胸12椎体压缩骨折，右侧第10肋骨骨折",
        [v("T12"), fx(site="rib", vertebrae=())],
        id="FX-1 two sites two mentions",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CERTAINTY + MIXED + LEVELS + GENANT_ECF + REPEATS)
def test_fracture_mentions(text: str, expected: list[dict[str, Any]]) -> None:
    assert_fractures(text, expected)


@pytest.mark.parametrize(("text", "expected"), TRAUMA + PATHOLOGICAL + ACUITY + SITES)
def test_fracture_attributes(text: str, expected: list[dict[str, Any]]) -> None:
    assert_fractures(text, expected)


@pytest.mark.parametrize("text", NEGATED)
def test_negated_mentions_yield_no_fracture(text: str) -> None:
    reading = read_report(text)
    assert reading.fractures == ()
    assert_offsets(text, reading)


# --------------------------------------------------------------------------------------------------
# REC-BMD, REC-QCT, DX-8 findings

FINDINGS = [
    pytest.param("骨质疏松", {"bone-loss"}, id="REC-BMD 骨质疏松"),
    pytest.param("腰椎骨质疏松改变", {"bone-loss"}, id="REC-BMD 骨质疏松改变"),
    pytest.param("骨质密度减低", {"bone-loss"}, id="REC-BMD 骨质密度减低"),
    pytest.param("骨量减少", {"bone-loss"}, id="REC-BMD 骨量减少"),
    pytest.param("Osteopenia.", {"bone-loss"}, id="REC-BMD osteopenia"),
    pytest.param("Diffuse demineralization.", {"bone-loss"}, id="REC-BMD diffuse demineralization"),
    pytest.param("Decreased bone density.", {"bone-loss"}, id="REC-BMD decreased bone density"),
    pytest.param("未见明显骨质疏松", set(), id="REC-BMD negated bone loss"),
    pytest.param("符合骨质疏松性骨折", set(), id="REC-BMD osteoporotic fracture is not a bone-loss finding"),
    pytest.param("脊柱侧弯", {"scoliosis"}, id="REC-QCT 脊柱侧弯"),
    pytest.param("腰椎侧凸", {"scoliosis"}, id="REC-QCT 侧凸"),
    pytest.param("Mild dextroscoliosis.", {"scoliosis"}, id="REC-QCT scoliosis"),
    pytest.param("腰椎退行性变", {"spine-degeneration"}, id="REC-QCT 退行性变"),
    pytest.param("腰椎骨质增生", {"spine-degeneration"}, id="REC-QCT 骨质增生"),
    pytest.param("Lumbar spondylosis.", {"spine-degeneration"}, id="REC-QCT spondylosis"),
    pytest.param("Osteophytes at L3-L4.", {"spine-degeneration"}, id="REC-QCT osteophytes"),
    pytest.param("DISH.", {"spine-degeneration"}, id="REC-QCT DISH"),
    pytest.param("弥漫性特发性骨肥厚", {"spine-degeneration"}, id="REC-QCT 弥漫性特发性骨肥厚"),
    pytest.param("膝关节退行性变", set(), id="REC-QCT knee degeneration is not the spine"),
    pytest.param("腹主动脉钙化", {"aortic-calcification"}, id="REC-QCT 腹主动脉钙化"),
    pytest.param("Aortic calcification.", {"aortic-calcification"}, id="REC-QCT aortic calcification"),
    pytest.param(
        "Calcification of the abdominal aorta.",
        {"aortic-calcification"},
        id="REC-QCT calcification of the aorta",
    ),
    pytest.param("L1椎体见横行带状放射性浓聚", {"linear-uptake-band"}, id="DX-8 带状放射性浓聚"),
    pytest.param("较强的线状显像剂分布浓聚带", {"linear-uptake-band"}, id="DX-8 线状显像剂浓聚"),
    pytest.param("Linear intense uptake in L1.", {"linear-uptake-band"}, id="DX-8 linear uptake"),
    pytest.param("未见异常放射性浓聚", set(), id="DX-8 no uptake"),
    pytest.param("Focal uptake in the skull.", set(), id="DX-8 focal uptake is not a band"),
    pytest.param(
        "腰椎退行性变，骨质疏松，脊柱侧弯，腹主动脉钙化",
        {"spine-degeneration", "bone-loss", "scoliosis", "aortic-calcification"},
        id="REC-QCT several findings in one impression",
    ),
]


@pytest.mark.parametrize(("text", "kinds"), FINDINGS)
def test_findings(text: str, kinds: set[str]) -> None:
    reading = read_report(text)
    assert {f.kind for f in reading.findings} == kinds
    assert_offsets(text, reading)


def test_DX_8_band_uptake_with_fracture_wording() -> None:
    text = "Linear band-like intense uptake in L1, compatible with compression fracture."
    reading = read_report(text)
    assert [f.kind for f in reading.findings] == ["linear-uptake-band"]
    (mention,) = reading.fractures
    assert (mention.site, mention.vertebrae, mention.certain) == ("vertebra", ("L1",), True)


# --------------------------------------------------------------------------------------------------
# Offsets, bounds and adversarial input


def test_offsets_point_into_the_original_full_width_text() -> None:
    text = "印象：１．Ｌ１椎体压缩骨折（Genant Ⅱ度）；２．腰椎退行性变。"
    reading = read_report(text)
    (mention,) = reading.fractures
    assert mention.vertebrae == ("L1",)
    assert mention.genant_grade == 2
    assert text[mention.start : mention.end] == mention.quote
    assert "Ｌ１椎体压缩骨折" in mention.quote
    assert [f.kind for f in reading.findings] == ["spine-degeneration"]
    assert_offsets(text, reading)


def test_a_long_clause_gives_a_bounded_quote() -> None:
    text = "L1椎体压缩骨折" + "伴周围软组织稍肿胀" * 40
    reading = read_report(text)
    assert len(reading.fractures) == 1
    assert_offsets(text, reading)


def test_short_text_is_not_truncated_and_long_text_is() -> None:
    assert not read_report("L1椎体压缩骨折").truncated
    long_text = "L1椎体压缩骨折。" + "a" * MAX_REPORT_CHARS
    reading = read_report(long_text)
    assert reading.truncated
    assert [m.vertebrae for m in reading.fractures] == [("L1",)]


def test_empty_text() -> None:
    assert read_report("") == ReportReading(fractures=(), findings=(), truncated=False)


ADVERSARIAL = [
    pytest.param("骨折骨折" * 250_000, id="adversarial 10^6 characters of 骨折骨折"),
    pytest.param("a" * 10**6, id="adversarial a * 10^6"),
    pytest.param("（【《，。；;,.!?：:" * 100_000, id="adversarial punctuation"),
    pytest.param("((((" * 125_000 + "))))" * 125_000, id="adversarial nested brackets"),
    pytest.param("L1骨折伴水肿。" * 150_000, id="adversarial many mentions"),
    pytest.param("未见骨折无" * 200_000, id="adversarial many cues"),
    pytest.param("L1、" * 350_000, id="adversarial level list"),
    pytest.param("第1、" * 350_000, id="adversarial 第 list"),
    pytest.param("genant " * 150_000, id="adversarial genant"),
    pytest.param("\ufdfa" * 10**6, id="adversarial NFKC expansion"),
    pytest.param("椎 " * 500_000, id="adversarial CJK spaces"),
    pytest.param(
        "no not without cannot be excluded possible fracture " * 20_000, id="adversarial English cues"
    ),
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_adversarial_input_is_flagged(text: str) -> None:
    # How fast it is read is measured in bench/report_text.py, not asserted here.
    reading = read_report(text)
    assert reading.truncated
    assert_offsets(text, reading)
