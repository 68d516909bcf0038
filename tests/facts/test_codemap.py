"""Local codes → concepts (cds_service.facts.codemap, CONTRACT.md "Local codes")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.facts.codemap import CONCEPTS, CodeMapError, load_code_map, parse_code_map
from cds_service.settings import Settings

# CONTRACT.md "Local codes": the closed list of concepts.
CONTRACT_CONCEPTS = {
    "dxa-t-lumbar-spine",
    "dxa-t-femoral-neck",
    "dxa-t-total-hip",
    "dxa-t-forearm",
    "dxa-t-unspecified",
    "dxa-z-lumbar-spine",
    "dxa-z-femoral-neck",
    "dxa-z-total-hip",
    "dxa-z-forearm",
    "dxa-z-unspecified",
    "qct-lumbar-vbmd",
    "qct-hip-t",
    "peripheral-bmd",
    "tbs",
    "genant-grade",
    "bmi",
    "spine-imaging-report",
    # issue 15: order kinds, for the order hooks' draft orders (README "Mapping a hospital's local codes")
    "order-central-dxa",
    "order-qct",
    "order-forearm-dxa",
    "order-peripheral-bmd",
    "order-qus",
    "order-spine-radiograph",
    "order-ct-l1-l2",
}


def test_the_concepts_are_the_contracts_closed_list() -> None:
    assert set(CONCEPTS) == CONTRACT_CONCEPTS


@pytest.mark.parametrize("concept", sorted(CONTRACT_CONCEPTS))
def test_every_contract_concept_can_be_mapped(concept: str) -> None:
    code_map = parse_code_map({concept: [{"system": "urn:local", "code": "X1"}]})
    assert code_map.concept_of("urn:local", "X1") == concept
    assert code_map.codings_of(concept) == [("urn:local", "X1")]


def test_lookup_needs_system_and_code() -> None:
    code_map = parse_code_map(
        {
            "qct-lumbar-vbmd": [{"system": "urn:a", "code": "QCT"}, {"system": "urn:a", "code": "QCT-MEAN"}],
            "tbs": [{"code": "TBS"}],  # no system: matched when the coding has none
        }
    )
    assert code_map.concept_of("urn:a", "QCT") == "qct-lumbar-vbmd"
    assert code_map.concept_of("urn:a", "QCT-MEAN") == "qct-lumbar-vbmd"
    assert code_map.concept_of("urn:b", "QCT") is None
    assert code_map.concept_of(None, "TBS") == "tbs"
    assert code_map.concept_of("", "TBS") == "tbs"
    assert code_map.concept_of("urn:a", None) is None
    assert bool(code_map)
    assert not parse_code_map({})


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"dxa-t-spine": [{"code": "X"}]}, id="codemap error: unknown concept"),
        pytest.param({"DXA-T-LUMBAR-SPINE": [{"code": "X"}]}, id="codemap error: concept in upper case"),
        pytest.param(
            {"osteoporosis": [{"code": "X"}]},
            id="codemap error: a condition concept is not a local-code concept",
        ),
        pytest.param(
            {"tbs": [{"code": "X"}], "fracture": [{"code": "Y"}]}, id="codemap error: one unknown among known"
        ),
    ],
)
def test_unknown_concept_is_an_error(raw: dict[str, Any]) -> None:
    with pytest.raises(CodeMapError, match="unknown concept"):
        parse_code_map(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([], id="codemap error: a list"),
        pytest.param("tbs", id="codemap error: a string"),
        pytest.param(None, id="codemap error: null"),
        pytest.param({"tbs": {"code": "X"}}, id="codemap error: concept maps to an object"),
        pytest.param({"tbs": "X"}, id="codemap error: concept maps to a string"),
        pytest.param({"tbs": ["X"]}, id="codemap error: coding is a string"),
        pytest.param({"tbs": [{"system": "urn:a"}]}, id="codemap error: coding without code"),
        pytest.param({"tbs": [{"system": "urn:a", "code": ""}]}, id="codemap error: empty code"),
        pytest.param({"tbs": [{"system": "urn:a", "code": 7}]}, id="codemap error: code a number"),
        pytest.param({"tbs": [{"system": 7, "code": "X"}]}, id="codemap error: system a number"),
        pytest.param(
            {"tbs": [{"system": "urn:a", "code": "X"}], "bmi": [{"system": "urn:a", "code": "X"}]},
            id="codemap error: one coding mapped to two concepts",
        ),
    ],
)
def test_bad_shapes_are_errors(raw: Any) -> None:
    with pytest.raises(CodeMapError):
        parse_code_map(raw)


def test_the_same_coding_twice_for_one_concept_is_fine() -> None:
    code_map = parse_code_map({"tbs": [{"system": "urn:a", "code": "X"}, {"system": "urn:a", "code": "X"}]})
    assert code_map.concept_of("urn:a", "X") == "tbs"


# --- the file -------------------------------------------------------------------------------------------


def test_load_code_map_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "codes.json"
    path.write_text(
        json.dumps({"qct-lumbar-vbmd": [{"system": "urn:his", "code": "定量CT腰椎"}]}), encoding="utf-8"
    )
    assert load_code_map(path).concept_of("urn:his", "定量CT腰椎") == "qct-lumbar-vbmd"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="codemap file error: missing file"),
        pytest.param(b"{not json", id="codemap file error: not JSON"),
        pytest.param(b"\xff\xfe\x00", id="codemap file error: not UTF-8"),
        pytest.param(b'{"tbs": "X"}', id="codemap file error: bad shape"),
        pytest.param(b'{"nonsense": []}', id="codemap file error: unknown concept"),
    ],
)
def test_bad_files_are_errors(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "codes.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CodeMapError):
        load_code_map(path)


def test_settings_load_the_code_map_at_start(tmp_path: Path) -> None:
    path = tmp_path / "codes.json"
    path.write_text(json.dumps({"tbs": [{"system": "urn:his", "code": "TBS"}]}), encoding="utf-8")
    settings = Settings.from_env({"OSTEO_CDS_CODE_MAP": str(path)})
    assert settings.code_map.concept_of("urn:his", "TBS") == "tbs"
    assert settings.code_map_path == str(path)


def test_settings_with_an_unknown_concept_fail_at_start(tmp_path: Path) -> None:
    path = tmp_path / "codes.json"
    path.write_text(json.dumps({"dxa-t-wards-triangle": [{"code": "W"}]}), encoding="utf-8")
    with pytest.raises(CodeMapError, match="unknown concept"):
        Settings.from_env({"OSTEO_CDS_CODE_MAP": str(path)})
