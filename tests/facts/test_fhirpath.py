"""CodeableConcept readers of cds_service.facts.fhirpath: odd shapes give nothing, never an error."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from cds_service.facts.fhirpath import codings, concept_text

LOINC = "http://loinc.org"


class _Concept(Mapping[str, Any]):
    """A Mapping that is not a dict (as a caller's own JSON type might be)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(
    ("concept", "expected"),
    [
        pytest.param(
            {"coding": [{"system": LOINC, "code": "38263-6", "display": "DXA T-score"}]},
            ((LOINC, "38263-6", "DXA T-score"),),
            id="FHIR shape: a well-formed coding",
        ),
        pytest.param(
            {"coding": [{"code": " 38263-6\n"}]}, (("", "38263-6", None),), id="FHIR shape: code stripped"
        ),
        pytest.param(
            {"coding": [{"code": "   "}]}, (("", "", None),), id="FHIR shape: blank code kept empty"
        ),
        pytest.param({"coding": [{"system": LOINC, "display": "x"}]}, (), id="FHIR shape: no code"),
        pytest.param({"coding": [{"code": ""}]}, (), id="FHIR shape: empty code"),
        pytest.param({"coding": [{"code": 38263}]}, (), id="FHIR shape: numeric code"),
        pytest.param(
            {"coding": [{"code": "a", "system": 7, "display": ["x"]}]},
            (("", "a", None),),
            id="FHIR shape: wrongly typed system and display",
        ),
        pytest.param(
            {"coding": [{"code": "a", "display": ""}]}, (("", "a", None),), id="FHIR shape: empty display"
        ),
        pytest.param(
            {"coding": [None, "x", 3, [], {"code": "a"}]},
            (("", "a", None),),
            id="FHIR shape: junk codings passed over",
        ),
        pytest.param({"coding": {"code": "a"}}, (), id="FHIR shape: coding not a list"),
        pytest.param({"coding": []}, (), id="FHIR shape: empty coding list"),
        pytest.param({"text": "T-score"}, (), id="FHIR shape: text only"),
        pytest.param(None, (), id="FHIR shape: missing concept"),
        pytest.param("38263-6", (), id="FHIR shape: concept a string"),
        pytest.param([{"code": "a"}], (), id="FHIR shape: concept a list"),
        pytest.param(
            _Concept({"coding": [_Concept({"system": LOINC, "code": "a"})]}),
            ((LOINC, "a", None),),
            id="FHIR shape: Mappings that are not dicts",
        ),
    ],
)
def test_codings(concept: object, expected: tuple[tuple[str, str, str | None], ...]) -> None:
    assert tuple(codings(concept)) == expected


@pytest.mark.parametrize(
    ("concept", "expected"),
    [
        pytest.param(
            {"text": "Hip DXA", "coding": [{"code": "a", "display": "T-score"}, {"code": "b"}]},
            "Hip DXA T-score",
            id="FHIR shape: text then displays",
        ),
        pytest.param(
            {"coding": [{"code": "a", "display": "T-score"}]}, "T-score", id="FHIR shape: displays only"
        ),
        pytest.param(
            {"text": "", "coding": [{"display": "no code"}]},
            "",
            id="FHIR shape: display of a coding without code",
        ),
        pytest.param({"text": 5}, "", id="FHIR shape: text not a string"),
        pytest.param(None, "", id="FHIR shape: missing concept"),
        pytest.param(_Concept({"text": "QCT"}), "QCT", id="FHIR shape: a Mapping that is not a dict"),
    ],
)
def test_concept_text(concept: object, expected: str) -> None:
    assert concept_text(concept) == expected
