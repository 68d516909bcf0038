"""The preview routes: off by default, the page, POST /preview/evaluate and POST /chart.svg, their errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service import engine
from cds_service.preview import register_preview
from cds_service.preview.demos import load_catalogue
from cds_service.topics import TOPICS
from tests.builders import bundle, patient, t_score

MAX_BODY = 5 * 1024 * 1024  # Settings().max_body_bytes
HOSTILE_CONCLUSION = (
    "胸腰椎正侧位：L1椎体<script>window.__pwned=1</script>压缩骨折 "
    '<img src=x onerror="window.__pwned=1"> [x](javascript:alert(1))。'
)
CATALOGUE = load_catalogue()


def hostile_bundle() -> dict[str, Any]:
    xr = {
        "resourceType": "DiagnosticReport",
        "id": "xr-1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "24984-7"}]},
        "effectiveDateTime": "2025-02-03",
        "conclusion": HOSTILE_CONCLUSION,
    }
    return bundle(patient(), t_score(-2.7, when="2024-01-10"), xr)


def post_json(client: FlaskClient, url: str, body: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


# --- on only when the setting says so --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/"),
        ("POST", "/preview/evaluate"),
        ("POST", "/chart.svg"),
        ("GET", "/preview/examples/requests/chad-quigley-prefetch"),
        ("GET", "/preview/static/preview.js"),
    ],
)
def test_everything_is_404_when_the_preview_is_off(plain_client: FlaskClient, method: str, url: str) -> None:
    response = plain_client.open(url, method=method, data="{}", content_type="application/json")
    assert response.status_code == 404


def test_the_page_is_served_when_the_preview_is_on(preview_client: FlaskClient) -> None:
    response = preview_client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_register_preview_is_idempotent(preview_app: Flask) -> None:
    rules = sorted(str(r) for r in preview_app.url_map.iter_rules())
    register_preview(preview_app)
    register_preview(preview_app)
    assert sorted(str(r) for r in preview_app.url_map.iter_rules()) == rules
    assert preview_app.test_client().get("/").status_code == 200


def test_the_service_routes_still_answer(preview_client: FlaskClient) -> None:
    assert preview_client.get("/healthz").get_json() == {"status": "ok"}
    assert preview_client.get("/cds-services").status_code == 200


def test_static_files_are_served(preview_client: FlaskClient) -> None:
    for name in ("preview.js", "preview.css"):
        assert preview_client.get(f"/preview/static/{name}").status_code == 200


# --- the page -----------------------------------------------------------------------------------------


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.topics: list[str] = []
        self.options: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-topic"):
            self.topics.append(found["data-topic"] or "")
        if tag == "option" and found.get("value"):
            self.options.append(found["value"] or "")


def page_of(client: FlaskClient, query: str = "") -> _Rows:
    parser = _Rows()
    parser.feed(client.get(f"/{query}").get_data(as_text=True))
    return parser


def test_the_page_lists_every_card_with_its_rules(preview_client: FlaskClient) -> None:
    assert page_of(preview_client).topics == list(TOPICS)
    html = preview_client.get("/").get_data(as_text=True)
    assert "REC-SPINE-XR" in html and "DXA-3, QCT-2, QCT-3" in html


def test_every_topic_has_rules_from_the_contract() -> None:
    assert all(TOPICS[t].rules for t in TOPICS)


def test_the_page_lists_the_demonstrations_at_request_time(preview_client: FlaskClient) -> None:
    options = page_of(preview_client).options
    assert options == [d.id for d in CATALOGUE.demos]
    assert any(o.startswith("requests/") for o in options)


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        pytest.param("?lang=zh-CN", {}, "zh-CN", id="?lang=zh-CN"),
        pytest.param("?lang=en", {"Accept-Language": "zh-CN"}, "en", id="?lang wins over Accept-Language"),
        pytest.param("", {"Accept-Language": "zh-CN,zh;q=0.9"}, "zh-CN", id="Accept-Language"),
        pytest.param("", {}, "en", id="the setting"),
        pytest.param("?lang=fr", {}, "en", id="unknown ?lang falls back"),
    ],
)
def test_the_page_language(
    preview_client: FlaskClient, query: str, headers: dict[str, str], expected: str
) -> None:
    html = preview_client.get(f"/{query}", headers=headers).get_data(as_text=True)
    assert f'<html lang="{expected}">' in html


def test_the_chinese_page_uses_the_chinese_card_titles(preview_client: FlaskClient) -> None:
    html = preview_client.get("/?lang=zh-CN").get_data(as_text=True)
    assert "严重骨质疏松" in html and "可能给出的卡片" in html
    assert "髌" not in html


# --- POST /preview/evaluate ---------------------------------------------------------------------------


def test_evaluate_a_pasted_bundle(preview_client: FlaskClient) -> None:
    response = post_json(preview_client, "/preview/evaluate", {"document": hostile_bundle(), "lang": "en"})
    assert response.status_code == 200
    payload = response.get_json()
    # T -2.7 and a vertebral fracture: DX-2; the vertebral fracture makes DXA unreliable (REC-QCT)
    assert payload["topics"] == ["severe-osteoporosis", "qct-recommended"]
    card = payload["cards"][0]
    assert card["topic"] == "severe-osteoporosis" and card["indicator"] == "critical"
    assert card["raw"]["source"]["topic"]["code"] == "severe-osteoporosis"
    assert payload["chart_svg"].startswith("<svg")
    ET.fromstring(payload["chart_svg"])
    assert response.headers["Cache-Control"] == "no-store"


def test_evaluate_keeps_report_text_inert(preview_client: FlaskClient) -> None:
    payload = post_json(preview_client, "/preview/evaluate", {"document": hostile_bundle()}).get_json()
    for card in payload["cards"]:
        parser = _Tags()
        parser.feed(card["detail_html"])
        assert "script" not in parser.tags and "img" not in parser.tags
        assert not any(a.startswith("on") for a in parser.attributes)
        assert not any(h and not h.startswith(("http://", "https://")) for h in parser.hrefs)
    assert "<script" not in payload["chart_svg"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self.hrefs.extend(value for name, value in attrs if name == "href")


def test_evaluate_a_hook_request_posted_as_it_is(preview_client: FlaskClient) -> None:
    request = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "p1", "userId": "Practitioner/x"},
        "prefetch": {"patient": patient(), "observations": bundle(t_score(-1.4), type="searchset")},
    }
    payload = post_json(preview_client, "/preview/evaluate?lang=zh-CN", request).get_json()
    assert payload["topics"][0] == "low-bone-mass"
    assert payload["lang"] == "zh-CN"
    assert "低骨量" in payload["cards"][0]["summary"]


def test_a_hook_request_without_prefetch_says_the_preview_fetches_nothing(
    preview_client: FlaskClient,
) -> None:
    request = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "http://127.0.0.1:9/fhir",
        "context": {"patientId": "p1"},
    }
    payload = post_json(preview_client, "/preview/evaluate", {"document": request}).get_json()
    assert payload["cards"] == [] and payload["notes"] == ["no_prefetch"]


@pytest.mark.parametrize("demo", CATALOGUE.demos, ids=lambda d: d.id)
def test_every_demonstration_gets_the_cards_its_index_promises(
    preview_client: FlaskClient, demo: Any
) -> None:
    response = post_json(preview_client, "/preview/evaluate", {"example": demo.id, "lang": "en"})
    assert response.status_code == 200
    topics = response.get_json()["topics"]
    if demo.expected_topics:
        assert sorted(topics) == sorted(demo.expected_topics)
    ET.fromstring(response.get_json()["chart_svg"])


def test_a_demonstration_can_be_read(preview_client: FlaskClient) -> None:
    if not CATALOGUE.demos:
        pytest.skip("no demonstrations in examples/")
    demo = CATALOGUE.demos[0]
    response = preview_client.get(f"/preview/examples/{demo.id}")
    assert response.status_code == 200
    assert response.get_json()["resourceType"] in ("Bundle", None) or "hook" in response.get_json()


@pytest.mark.parametrize(
    "demo_id", ["nobody", "../../pyproject", "patients/../../pyproject", "requests/index", "/etc/passwd"]
)
def test_unknown_demonstrations_are_404(preview_client: FlaskClient, demo_id: str) -> None:
    assert preview_client.get(f"/preview/examples/{demo_id}", follow_redirects=True).status_code == 404
    response = post_json(preview_client, "/preview/evaluate", {"example": demo_id})
    assert response.status_code == 404
    assert "message" in response.get_json()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(b"{not json", 400, "not valid JSON", id="bad JSON"),
        pytest.param(b"", 400, "empty", id="empty body"),
        pytest.param(b"\xff\xfe", 400, "UTF-8", id="not UTF-8"),
        pytest.param(b"[1, 2]", 400, "JSON object", id="an array"),
        pytest.param(b'{"lang": "en"}', 400, "document", id="neither document nor example"),
        pytest.param(b'{"document": 42}', 400, "FHIR Bundle", id="document not an object"),
        pytest.param(
            b'{"document": {"resourceType": "Bundle"}}', 400, "Patient", id="Bundle without patient"
        ),
        pytest.param(
            b'{"document": {"hook": "patient-view", "context": {}}}', 400, "patientId", id="no patientId"
        ),
        pytest.param(
            b'{"document": {"resourceType": "Bundle"}, "lang": "fr"}', 400, "lang", id="unknown lang"
        ),
        pytest.param(
            b'{"document": {"resourceType": "Bundle"}, "lang": 3}', 400, "lang", id="lang not a string"
        ),
        pytest.param(b"[" * 100000 + b"]" * 100000, 400, "", id="deeply nested"),
    ],
)
def test_evaluate_errors_are_json_with_a_message(
    preview_client: FlaskClient, body: bytes, status: int, message: str
) -> None:
    response = preview_client.post("/preview/evaluate", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.mimetype == "application/json"
    payload = response.get_json()
    assert payload["status"] == status and message in payload["message"]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/preview/evaluate", "/chart.svg"])
def test_huge_bodies_are_refused_with_413(preview_client: FlaskClient, url: str) -> None:
    response = preview_client.post(url, data=b" " * (MAX_BODY + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert "larger than" in response.get_json()["message"]


def test_internal_errors_say_nothing_about_the_data(
    preview_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("patient Zhang San, id 110101195001011234")

    monkeypatch.setattr(engine, "evaluate", explode)
    response = post_json(preview_client, "/preview/evaluate", {"document": hostile_bundle()})
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "Zhang" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert response.get_json()["message"]


# --- POST /chart.svg ----------------------------------------------------------------------------------


def test_chart_svg_of_a_bundle(preview_client: FlaskClient) -> None:
    response = preview_client.post("/chart.svg", data=json.dumps(hostile_bundle()))
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_chart_svg_in_chinese(preview_client: FlaskClient) -> None:
    response = preview_client.post("/chart.svg?lang=zh-CN", data=json.dumps(hostile_bundle()))
    assert "骨质疏松" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "body", "status"),
    [
        pytest.param("", b"{oops", 400, id="bad JSON"),
        pytest.param("?lang=fr", b'{"resourceType": "Bundle"}', 400, id="unknown lang"),
        pytest.param("", b'{"resourceType": "Patient", "id": "p1"}', 400, id="neither Bundle nor request"),
    ],
)
def test_chart_svg_errors_are_json(preview_client: FlaskClient, query: str, body: bytes, status: int) -> None:
    response = preview_client.post(f"/chart.svg{query}", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["message"]


def test_chart_svg_only_takes_post(preview_client: FlaskClient) -> None:
    assert preview_client.get("/chart.svg").status_code == 405
