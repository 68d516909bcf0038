"""Report bodies and values in the other places real systems put them (issue 14): presentedForm, imaging
notes (DocumentReference), Binary URLs, valueString; what cannot be read is a data note, never silent."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.facts.model import Measure, Modality, Region
from cds_service.facts.report_body import binary_key, html_text
from tests.builders import (
    attachment,
    b64,
    binary,
    diagnostic_report,
    facts_of,
    imaging_note,
    observation,
    patient,
    t_score,
)

P1 = patient()
DXA_TEXT = "腰椎L1-L4 BMD 0.812 g/cm²，T值 -2.8；左股骨颈 T值 -2.1，Z值 -0.9"


def _scores(facts: Any) -> list[tuple[str, str, float]]:
    return sorted((m.measure.value, m.region.value, m.value) for m in facts.measurements)


def _notes(facts: Any) -> list[tuple[str, str]]:
    return [(n.source, n.reason) for n in facts.notes]


EXPECTED = [
    ("abmd", "lumbar-spine", 0.812),
    ("t-score", "femoral-neck", -2.1),
    ("t-score", "lumbar-spine", -2.8),
    ("z-score", "femoral-neck", -0.9),
]


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([diagnostic_report(DXA_TEXT)], id="DXA-1 conclusion"),
        pytest.param(
            [diagnostic_report(presented=[attachment(DXA_TEXT)])], id="DXA-1 presentedForm base64 text"
        ),
        pytest.param(
            [diagnostic_report(presented=[attachment(DXA_TEXT, "text/plain; charset=utf-8")])],
            id="DXA-1 presentedForm with charset",
        ),
        pytest.param(
            [diagnostic_report(presented=[{"contentType": "text/plain", "data": b64(DXA_TEXT, "gb18030")}])],
            id="DXA-1 presentedForm GB18030 without charset",
        ),
        pytest.param(
            [
                diagnostic_report(
                    presented=[
                        attachment(
                            f"<html><head><title>T值 -9.9</title>"
                            f"<script>var t='T值 -9.9'</script></head>"
                            f"<body><p>{DXA_TEXT}</p></body></html>",
                            "text/html",
                        )
                    ]
                )
            ],
            id="DXA-1 presentedForm html stripped (script and title not read)",
        ),
        pytest.param(
            [diagnostic_report(presented=[attachment(url="Binary/b1")]), binary(DXA_TEXT, "b1")],
            id="DXA-1 presentedForm url to a Binary at hand",
        ),
        pytest.param([imaging_note(attachment(DXA_TEXT))], id="DXA-1 DocumentReference 18748-4 inline"),
        pytest.param(
            [
                imaging_note(attachment(url="https://ehr.example/fhir/Binary/b2/_history/3")),
                binary(DXA_TEXT, "b2"),
            ],
            id="DXA-1 DocumentReference absolute Binary url",
        ),
        pytest.param(
            [
                diagnostic_report(presented=[attachment(url="Binary/b1")]),
                imaging_note(attachment(url="Binary/b1")),
                binary(DXA_TEXT, "b1"),
            ],
            id="DXA-1 same URL in presentedForm and DocumentReference read once",
        ),
        pytest.param(
            [imaging_note(attachment(DXA_TEXT)), diagnostic_report(presented=[attachment(DXA_TEXT)])],
            id="DXA-1 same content read once (hash)",
        ),
        pytest.param(
            [
                diagnostic_report("骨量减少。", presented=[attachment(DXA_TEXT)]),
                imaging_note(attachment(f"<p>{DXA_TEXT}</p>", "text/html")),
            ],
            id="DXA-1 same exam in two formats counted once",
        ),
        pytest.param(
            [diagnostic_report(DXA_TEXT, presented=[attachment(DXA_TEXT)])],
            id="DXA-1 conclusion repeated in the body counted once",
        ),
    ],
)
def test_report_bodies_are_read_once(resources: list[Any]) -> None:
    facts = facts_of([P1, *resources])
    assert _scores(facts) == sorted(EXPECTED)
    assert all(m.quote for m in facts.measurements)
    assert not [n for n in facts.notes if n.reason.startswith("report-body")]


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        pytest.param(
            attachment(DXA_TEXT, "application/pdf"), "report-body-unreadable", "application/pdf", id="pdf"
        ),
        pytest.param(attachment(DXA_TEXT, "image/jpeg"), "report-body-unreadable", "image/jpeg", id="image"),
        pytest.param(
            {"contentType": "text/plain", "data": "@@not base64@@"},
            "report-body-unreadable",
            "base64",
            id="bad base64",
        ),
        pytest.param(
            {"contentType": "text/plain; charset=klingon", "data": b64("x")},
            "report-body-unreadable",
            "charset",
            id="unknown charset",
        ),
        pytest.param(attachment(url="Binary/missing"), "report-body-not-fetched", None, id="url not fetched"),
        pytest.param(
            attachment(url="https://pacs.example/report/7"),
            "report-body-not-fetched",
            None,
            id="url not a Binary",
        ),
    ],
)
def test_an_unreadable_body_is_a_data_note(body: dict[str, Any], reason: str, detail: str | None) -> None:
    facts = facts_of([P1, diagnostic_report(presented=[body], id="r")])
    assert facts.measurements == []
    assert [(n.source, n.reason, n.detail) for n in facts.notes] == [("DiagnosticReport/r", reason, detail)]


def test_a_lab_report_body_is_not_noted() -> None:
    lab = diagnostic_report(presented=[attachment("x", "application/pdf")], loinc="58410-2", code_text="CBC")
    assert facts_of([P1, lab]).notes == []


def test_binary_key_of_relative_and_absolute_urls() -> None:
    assert binary_key("Binary/1") == "Binary/1"
    assert binary_key("https://x/fhir/Binary/2/_history/1") == "Binary/2"
    assert binary_key("https://x/fhir/DocumentReference/2") is None


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        pytest.param("<p>T值 -2.8</p><p>Z值 -1.0</p>", "T值 -2.8\nZ值 -1.0", id="blocks"),
        pytest.param("a<br>b<br/>c", "a\nb\nc", id="br"),
        pytest.param("<script>T值 -9</script>ok", "ok", id="script dropped"),
        pytest.param("<style>p{}</style>ok", "ok", id="style dropped"),
        pytest.param(
            "&lt;script&gt; T&#20540; -2.5", "<script> T值 -2.5", id="references decoded, not markup"
        ),
        pytest.param("<scr<script>ipt>x</script>y", "ipt>xy", id="nested trick read as a browser shows it"),
        pytest.param("<!-- T值 -9 -->ok", "ok", id="comment"),
        pytest.param("<table><tr><td>L1-L4</td><td>-2.8</td></tr></table>", "L1-L4 -2.8", id="table cells"),
    ],
)
def test_html_is_reduced_to_its_text(markup: str, text: str) -> None:
    assert html_text(markup) == text


def test_a_clinical_note_is_not_an_imaging_report() -> None:
    note = imaging_note(attachment(DXA_TEXT), loinc="11506-3", display="Progress note")
    assert facts_of([P1, note]).measurements == []


def test_a_preliminary_imaging_note_is_noted() -> None:
    note = imaging_note(attachment(DXA_TEXT), id="d", docStatus="preliminary")
    facts = facts_of([P1, note])
    assert facts.measurements == [] and _notes(facts) == [("DocumentReference/d", "status")]


# --- valueString ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("-2.6", -2.6, id="DXA-3 plain"),
        pytest.param(" -2.6 ", -2.6, id="DXA-3 spaces"),
        pytest.param("－２．６", -2.6, id="DXA-3 full width"),
        pytest.param("\u22122.6", -2.6, id="DXA-3 unicode minus"),
        pytest.param("-2.6 SD", -2.6, id="DXA-3 with SD"),
        pytest.param("+0.4", 0.4, id="DXA-3 plus"),
    ],
)
def test_a_t_score_as_value_string_is_read(value: str, expected: float) -> None:
    facts = facts_of([P1, observation(loinc="38263-0", valueString=value)])
    assert [(m.region, m.value) for m in facts.measurements] == [(Region.FEMORAL_NECK, expected)]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("-25", "implausible", id="DXA-3 implausible as for valueQuantity"),
        pytest.param("-2.6 g/cm2", "unknown-unit", id="DXA-3 wrong unit as for valueQuantity"),
    ],
)
def test_a_value_string_follows_the_quantity_rules(value: str, reason: str) -> None:
    facts = facts_of([P1, observation(loinc="38263-0", valueString=value, id="o")])
    assert facts.measurements == [] and _notes(facts) == [("Observation/o", reason)]
    assert facts.unreadable_bmd == []


@pytest.mark.parametrize("value", ["<-2.5", "-2.x", "见报告", "", "T=-2.6"])
def test_a_value_string_that_is_no_number_is_unreadable(value: str) -> None:
    facts = facts_of([P1, observation(loinc="38263-0", valueString=value, id="o")])
    assert facts.measurements == [] and _notes(facts) == [("Observation/o", "unreadable-value")]
    assert [(u.modality, u.source) for u in facts.unreadable_bmd] == [(Modality.DXA, "Observation/o")]


def test_an_areal_bmd_value_string_with_its_unit() -> None:
    facts = facts_of([P1, observation(loinc="24701-5", valueString="0.612 g/cm2")])
    assert [(m.measure, m.value) for m in facts.measurements] == [(Measure.ABMD, 0.612)]


# --- discrete values win ------------------------------------------------------------------------


def test_discrete_observations_of_the_same_exam_win_over_the_text() -> None:
    facts = facts_of([P1, t_score(-2.0, id="o"), diagnostic_report(DXA_TEXT, id="r")])
    assert [(m.source, m.value) for m in facts.measurements] == [("Observation/o", -2.0)]
    assert ("DiagnosticReport/r", "bmd-text-discrete-wins") in _notes(facts)


def test_text_of_another_exam_is_read_beside_older_observations() -> None:
    facts = facts_of([P1, t_score(-2.0, when="2022-01-10"), diagnostic_report(DXA_TEXT)])
    assert len(facts.measurements) == 5


def test_an_unreadable_value_in_text_is_noted() -> None:
    facts = facts_of([P1, diagnostic_report("左股骨颈 T值 -2.x；腰椎 T值 -1.0", id="r")])
    assert ("DiagnosticReport/r", "bmd-text-unreadable") in _notes(facts)
    assert [(u.modality, u.quote) for u in facts.unreadable_bmd] == [(Modality.DXA, "左股骨颈 T值 -2.x")]


def test_a_not_measured_site_in_text_is_kept() -> None:
    facts = facts_of([P1, diagnostic_report("右髋骨折未测，左股骨颈 T值 -2.1", id="r")])
    assert [(s.region, s.laterality, s.dxa2_reason) for s in facts.unmeasured_sites] == [
        (Region.TOTAL_HIP, "right", False)
    ]


def test_an_implausible_text_value_follows_the_observation_rule() -> None:
    facts = facts_of([P1, diagnostic_report("股骨颈 T值 -25", id="r")])
    assert facts.measurements == [] and _notes(facts) == [("DiagnosticReport/r", "implausible")]


def test_a_qct_report_gives_qct_values() -> None:
    report = diagnostic_report("L1、L2椎体松质骨骨密度平均值 72.5 mg/cm³", loinc="95924-7")
    facts = facts_of([P1, report])
    assert [(m.modality, m.region, m.value) for m in facts.measurements] == [
        (Modality.QCT, Region.LUMBAR_SPINE, 72.5)
    ]


def test_a_report_of_another_patient_is_not_read() -> None:
    assert facts_of([P1, diagnostic_report(DXA_TEXT, patient="p2")]).measurements == []


def test_a_preliminary_report_does_not_hide_the_final_note_of_the_same_body() -> None:
    resources = [
        P1,
        diagnostic_report(presented=[attachment(url="Binary/b1")], status="preliminary"),
        imaging_note(attachment(url="Binary/b1")),
        binary(DXA_TEXT, "b1"),
    ]
    assert _scores(facts_of(resources)) == sorted(EXPECTED)


def test_a_superseded_imaging_note_is_passed_over_quietly() -> None:
    facts = facts_of([P1, imaging_note(attachment(DXA_TEXT), status="superseded")])
    assert facts.measurements == [] and facts.notes == []
