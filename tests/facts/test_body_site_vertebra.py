"""QCT-1: the vertebra a per-vertebra QCT value belongs to, read from the body site's code or text."""

from __future__ import annotations

import pytest

from cds_service.facts.extract import _vertebra

SNOMED = "http://snomed.info/sct"


@pytest.mark.parametrize(
    ("body_site", "level"),
    [
        pytest.param({"text": "L1"}, "L1", id="QCT-1 text L1"),
        pytest.param({"text": "L1椎体"}, "L1", id="QCT-1 text L1椎体"),
        pytest.param({"text": "腰1"}, "L1", id="QCT-1 text 腰1"),
        pytest.param({"text": "第2腰椎"}, "L2", id="QCT-1 text 第2腰椎"),
        pytest.param({"text": "第二腰椎"}, "L2", id="QCT-1 text 第二腰椎"),
        pytest.param({"text": "第十二胸椎"}, "T12", id="QCT-1 text 第十二胸椎"),
        pytest.param({"text": "腰椎3"}, "L3", id="QCT-1 text 腰椎3"),
        pytest.param(
            {"coding": [{"system": SNOMED, "code": "14293000"}]}, "L2", id="QCT-1 SNOMED L2 vertebra"
        ),
        pytest.param(
            {"text": "L1", "coding": [{"system": "urn:local", "code": "V1", "display": "L1"}]},
            "L1",
            id="QCT-1 the same level in text and display is one vertebra",
        ),
        pytest.param({"text": "L1-L2"}, None, id="QCT-1 a range L1-L2 is a mean"),
        pytest.param({"text": "L1-2"}, None, id="QCT-1 a range L1-2 is a mean"),
        pytest.param({"text": "L1~L3"}, None, id="QCT-1 a range L1~L3 is a mean"),
        pytest.param({"text": "腰1至腰2"}, None, id="QCT-1 a range 腰1至腰2 is a mean"),
        pytest.param({"text": "L1 and L2"}, None, id="QCT-1 two levels are not one vertebra"),
        pytest.param({"text": "L6"}, None, id="QCT-1 L6 is not a lumbar vertebra"),
        pytest.param({"text": "lumbar spine"}, None, id="QCT-1 no level: the mean"),
        pytest.param(None, None, id="QCT-1 no body site"),
    ],
)
def test_vertebra_of_a_body_site(body_site: object, level: str | None) -> None:
    assert _vertebra(body_site) == level
