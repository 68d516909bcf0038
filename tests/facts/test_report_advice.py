"""REC-CT-MRI: a report's own advice of a further exam ("建议增强MRI检查", "PET-CT recommended"), read
clause by clause with its negation (无需进一步检查: none) and its condition (如临床需要…: advice, not a
recommendation)."""

from __future__ import annotations

import pytest

from cds_service.facts.exam_names import read_advice

C, PET, CT, MR, CONTRAST = "contrast-mr", "pet-ct", "ct", "mr", "contrast"


@pytest.mark.parametrize(
    ("conclusion", "expected"),
    [
        pytest.param(
            "T11椎体压缩性骨折，转移瘤不除外，建议增强MRI检查。",
            [({C}, False)],
            id="REC-CT-MRI 建议增强MRI检查: contrast MRI",
        ),
        pytest.param(
            "T11椎体压缩性骨折，转移瘤不除外，建议增强MRI或PET/CT进一步检查。",
            [({C, PET}, False)],
            id="REC-CT-MRI 建议增强MRI或PET/CT: both",
        ),
        pytest.param("L2椎体压缩变扁，建议PET-CT检查。", [({PET}, False)], id="REC-CT-MRI 建议PET-CT检查"),
        pytest.param("L1椎体骨质破坏，建议增强扫描。", [({CONTRAST}, False)], id="REC-CT-MRI 建议增强扫描"),
        pytest.param("L1椎体骨折可能，建议进一步检查。", [(set(), False)], id="REC-CT-MRI 建议进一步检查"),
        pytest.param(
            "T12椎体变扁，信号异常，如临床需要可行增强MRI。",
            [({C}, True)],
            id="REC-CT-MRI conditional 如临床需要可行增强MRI",
        ),
        pytest.param(
            "T12椎体变扁，如临床需要，可行增强MRI检查。",
            [({C}, True)],
            id="REC-CT-MRI conditional clause before the exam",
        ),
        pytest.param(
            "L1压缩骨折可能，必要时MRI检查。", [({MR}, True)], id="REC-CT-MRI conditional 必要时MRI"
        ),
        pytest.param(
            "T11椎体病理性骨折可能，建议增强MRI检查，必要时PET-CT。",
            [({C}, False), ({PET}, True)],
            id="REC-CT-MRI 必要时 governs only what follows it",
        ),
        pytest.param("L1椎体陈旧性压缩骨折，无需进一步检查。", [], id="REC-CT-MRI negated 无需进一步检查"),
        pytest.param("L1椎体陈旧性骨折，不建议增强MRI。", [], id="REC-CT-MRI negated 不建议增强MRI"),
        pytest.param(
            "L1骨折可能，建议MRI检查，无需CT。",
            [({MR}, False)],
            id="REC-CT-MRI negated clause drops its exam only",
        ),
        pytest.param(
            "Pathologic fracture of T11 cannot be excluded. Recommend contrast-enhanced MRI.",
            [({C}, False)],
            id="REC-CT-MRI en recommend contrast-enhanced MRI",
        ),
        pytest.param(
            "L2 compression fracture, metastasis not excluded. PET-CT recommended.",
            [({PET}, False)],
            id="REC-CT-MRI en PET-CT recommended (exam before the advice word)",
        ),
        pytest.param(
            "Possible L1 fracture. Recommend MRI, if clinically indicated.",
            [({MR}, True)],
            id="REC-CT-MRI en trailing condition",
        ),
        pytest.param(
            "Chronic L1 compression deformity. No further imaging is needed.",
            [],
            id="REC-CT-MRI en negated no further imaging",
        ),
        pytest.param("L1 fracture. MRI is not recommended.", [], id="REC-CT-MRI en negated not recommended"),
        pytest.param(
            "L1 compression fracture, suggestive of metastasis.",
            [],
            id="REC-CT-MRI near-miss 'suggestive of' names no exam: no advice",
        ),
        pytest.param("MRI示L1椎体骨折可能。", [], id="REC-CT-MRI near-miss an exam named without advice"),
        pytest.param("建议3个月后复查。", [], id="REC-CT-MRI near-miss follow-up without an exam"),
    ],
)
def test_report_advice_is_read_with_its_negation_and_condition(
    conclusion: str, expected: list[tuple[set[str], bool]]
) -> None:
    assert [(set(a.exams), a.conditional) for a in read_advice(conclusion)] == expected


def test_advice_quotes_its_sentence() -> None:
    [advice] = read_advice("T11椎体压缩性骨折，转移瘤不除外。建议增强MRI检查。")
    assert advice.quote == "建议增强MRI检查"


def test_advice_is_bounded() -> None:
    assert len(read_advice("建议MRI检查。" * 1000)) == 8
