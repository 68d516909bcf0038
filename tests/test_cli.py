"""`osteo-cds evaluate FILE|-` (CONTRACT.md "Command line"): a Bundle or a CDS Hooks request in, cards out."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cds_service.cli import main
from tests.builders import (
    TOPIC_SYSTEM,
    born,
    bundle,
    card_topics,
    condition,
    diagnosis_topics,
    patient,
    t_score,
)

SYNTHEA = Path(__file__).resolve().parent / "fixtures" / "synthea"
CHAD = SYNTHEA / "Chad_Quigley_b9737c68-296c-46fa-9a3c-aca513681a73.json"

OLD_MAN = patient(gender="male", birth_date=born(70))
RECORD = [OLD_MAN, t_score(-2.8, id="t1"), condition(snomed="69896004")]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets: none of the machine's OSTEO_CDS_* settings leak in."""
    for name in list(os.environ):
        if name.startswith("OSTEO_CDS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OSTEO_CDS_TODAY", "2026-11-25")


def _write(tmp_path: Path, document: Any, name: str = "input.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else out), err


def _hook_request(patient_id: str, prefetch: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/1", "patientId": patient_id},
        "prefetch": prefetch,
    }


def _searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


# --- input forms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(bundle(*RECORD), id="cli collection Bundle"),
        pytest.param(bundle(*RECORD, urn=True), id="cli transaction Bundle with urn:uuid references"),
        pytest.param(bundle(*RECORD, type="searchset"), id="cli searchset Bundle"),
    ],
)
def test_bundle_file(document: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, body, err = _run(["evaluate", _write(tmp_path, document)], capsys)
    assert code == 0, err
    assert diagnosis_topics(body) == ["osteoporosis-bmd"]
    assert "secondary-cause-workup" in card_topics(body)
    assert all(card["source"]["topic"]["system"] == TOPIC_SYSTEM for card in body["cards"])


def test_synthea_bundle_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, body, err = _run(["evaluate", str(CHAD)], capsys)
    assert code == 0, err
    assert diagnosis_topics(body) == ["osteoporosis-bmd"]


FULL_KEYS_EMPTY = {"procedures": None, "reports": _searchset(), "serviceRequests": None}


@pytest.mark.parametrize(
    "prefetch",
    [
        pytest.param(
            {
                "patient": OLD_MAN,
                "observations": _searchset(RECORD[1]),
                "conditions": _searchset(RECORD[2]),
                **FULL_KEYS_EMPTY,
            },
            id="cli CDS Hooks request with prefetch Bundles",
        ),
        pytest.param(
            {
                "patient": OLD_MAN,
                "observations": _searchset(RECORD[1]),
                "conditions": _searchset(RECORD[2]),
                "procedures": None,
                "reports": _searchset(),
            },
            id="cli CDS Hooks request with null keys and serviceRequests (optional) absent",
        ),
    ],
)
def test_cds_hooks_request_file(
    prefetch: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, body, err = _run(["evaluate", _write(tmp_path, _hook_request("p1", prefetch))], capsys)
    assert code == 0, err
    assert diagnosis_topics(body) == ["osteoporosis-bmd"]
    assert "secondary-cause-workup" in card_topics(body)


def test_cds_hooks_request_missing_keys_without_fhir_server_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The service answers 412 here; the CLI says which data it could not have (exit 2, one line),
    # rather than a silently partial answer. Keys it does not know ("everything") are not read.
    prefetch = {"patient": OLD_MAN, "everything": _searchset(*RECORD[1:]), "procedures": None}
    code, body, err = _run(["evaluate", _write(tmp_path, _hook_request("p1", prefetch))], capsys)
    assert code == 2
    assert body == ""  # nothing on stdout
    assert err.count("\n") == 1
    for resource_type in ("Condition", "DiagnosticReport", "Observation"):
        assert resource_type in err


def test_cds_hooks_request_ignores_other_patients_in_prefetch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefetch = {
        "patient": OLD_MAN,
        "observations": _searchset(t_score(-0.5), t_score(-3.5, patient="p2")),
        "conditions": None,
        **FULL_KEYS_EMPTY,
    }
    code, body, _ = _run(["evaluate", _write(tmp_path, _hook_request("p1", prefetch))], capsys)
    assert code == 0
    assert diagnosis_topics(body) == ["normal-bmd"]


def test_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.dumps(bundle(*RECORD)).encode("utf-8")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, body, err = _run(["evaluate", "-"], capsys)
    assert code == 0, err
    assert diagnosis_topics(body) == ["osteoporosis-bmd"]


def test_nothing_about_bone_health_gives_no_cards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    young = patient(gender="female", birth_date=born(30))
    code, body, _ = _run(["evaluate", _write(tmp_path, bundle(young, condition(snomed="38341003")))], capsys)
    assert code == 0
    assert body == {"cards": []}


# --- language ---------------------------------------------------------------------------------------------


def test_lang_zh_cn_gives_the_same_topic_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, bundle(*RECORD))
    code_en, body_en, _ = _run(["evaluate", path, "--lang", "en"], capsys)
    code_zh, body_zh, _ = _run(["evaluate", path, "--lang", "zh-CN"], capsys)
    assert code_en == code_zh == 0
    assert card_topics(body_zh) == card_topics(body_en)
    assert [c["indicator"] for c in body_zh["cards"]] == [c["indicator"] for c in body_en["cards"]]
    assert [c["summary"] for c in body_zh["cards"]] != [c["summary"] for c in body_en["cards"]]


def test_language_setting_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, bundle(*RECORD))
    _, body_flag, _ = _run(["evaluate", path, "--lang", "zh-CN"], capsys)
    monkeypatch.setenv("OSTEO_CDS_LANGUAGE", "zh-CN")
    _, body_env, _ = _run(["evaluate", path], capsys)
    assert [c["summary"] for c in body_env["cards"]] == [c["summary"] for c in body_flag["cards"]]


def test_today_flag_does_not_change_the_population_at_the_exam(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A man of 49 at the exam is 50 a year later; "today" does not change the population at the exam.
    document = bundle(patient(gender="male", birth_date=born(49)), t_score(-2.8))
    path = _write(tmp_path, document)
    code, body, _ = _run(["evaluate", path, "--today", "2030-01-01"], capsys)
    assert code == 0
    assert diagnosis_topics(body) == []
    assert "z-score-required" in card_topics(body)


# --- bad input: exit 2, one line on stderr ----------------------------------------------------------------


def _one_line(err: str) -> bool:
    return err.endswith("\n") and err.count("\n") == 1 and len(err.strip()) > 0


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="cli error: bad JSON"),
        pytest.param(b"", id="cli error: empty file"),
        pytest.param(b"\xff\xfe{}", id="cli error: not UTF-8"),
        pytest.param(b"[]", id="cli error: a list, not an object"),
        pytest.param(b'"Bundle"', id="cli error: a string, not an object"),
        pytest.param(b"42", id="cli error: a number, not an object"),
        pytest.param(b'{"resourceType": "Patient", "id": "p1"}', id="cli error: a Patient, not a Bundle"),
        pytest.param(json.dumps(bundle(t_score(-2.8))).encode(), id="cli error: Bundle without a patient"),
        pytest.param(
            json.dumps(bundle(patient(id="p1"), patient(id="p2"))).encode(),
            id="cli error: Bundle with two patients",
        ),
        pytest.param(
            json.dumps({"hook": "patient-view", "context": {}, "prefetch": {}}).encode(),
            id="cli error: CDS Hooks request without patientId",
        ),
        pytest.param(
            json.dumps(_hook_request("p1", ["not", "an", "object"])).encode(),
            id="cli error: CDS Hooks prefetch not an object",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    code, out, err = _run(["evaluate", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert _one_line(err), repr(err)


def test_bad_json_on_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"{oops"), encoding="utf-8"))
    code, out, err = _run(["evaluate", "-"], capsys)
    assert (code, out) == (2, "")
    assert _one_line(err)


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["evaluate", str(tmp_path / "nope.json")], capsys)
    assert (code, out) == (2, "")
    assert _one_line(err)


def test_bad_today_flag_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["evaluate", _write(tmp_path, bundle(*RECORD)), "--today", "tomorrow"], capsys)
    assert (code, out) == (2, "")
    assert _one_line(err)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        pytest.param("OSTEO_CDS_LANGUAGE", "fr", id="cli error: bad setting"),
        pytest.param("OSTEO_CDS_CODE_MAP", "/nonexistent/codes.json", id="cli error: unreadable code map"),
    ],
)
def test_bad_settings_exit_2(
    name: str, raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, raw)
    code, out, err = _run(["evaluate", _write(tmp_path, bundle(*RECORD))], capsys)
    assert (code, out) == (2, "")
    assert _one_line(err)


@pytest.mark.parametrize(
    ("silent", "notice"),
    [
        pytest.param(None, False, id="OSTEO_CDS_SILENT unset: cards, nothing on stderr"),
        pytest.param("true", True, id="OSTEO_CDS_SILENT=true: the same cards, a notice on stderr"),
    ],
)
def test_evaluate_prints_the_cards_in_silent_mode_and_says_so(
    silent: str | None,
    notice: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17: `evaluate` is a local tool showing what the engine concludes (it records nothing), so silent
    mode does not empty its output; it says that the service would answer no cards."""
    if silent is not None:
        monkeypatch.setenv("OSTEO_CDS_SILENT", silent)
    code, body, err = _run(["evaluate", _write(tmp_path, bundle(*RECORD))], capsys)
    assert code == 0
    assert diagnosis_topics(body) == ["osteoporosis-bmd"]
    assert ("OSTEO_CDS_SILENT" in err) is notice
    assert err.count("\n") == (1 if notice else 0)
