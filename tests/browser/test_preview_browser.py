"""The preview page in a real browser: Debian's Chromium driven by Playwright, against the app served by a
real WSGI server on a loopback port. Screenshots go to test-artifacts/ (and, with
OSTEO_CDS_UPDATE_SCREENSHOT=1, the README's docs/img/preview.png)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_service.api.app import create_app
from cds_service.preview import register_preview
from cds_service.preview.demos import Demo, load_catalogue
from cds_service.preview.draft_orders import load_draft_orders
from cds_service.settings import Settings
from cds_service.topics import TOPICS
from tests.builders import bundle, patient, t_score

CHROMIUM = "/usr/bin/chromium"
# As root, in a sandbox with a closed network (see .library/env/machines/python.md); Playwright gives
# every launch a new, empty profile of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_SCREENSHOT = ROOT / "docs" / "img" / "preview.png"
README_DEMO = "patients/he-yulan"  # severe osteoporosis + a recommendation with a suggestion: a full picture

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"Debian chromium is not installed at {CHROMIUM} (run: bash scripts/test-setup.sh)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")

HOSTILE_CONCLUSION = (
    "胸腰椎正侧位：L1椎体<script>window.__pwned=1</script>压缩骨折 "
    '<img src=x onerror="window.__pwned=1"> <svg onload="window.__pwned=1"></svg> '
    "[x](javascript:window.__pwned=1)。"
)


def demonstrations() -> list[Demo]:
    """The index's patients and the Synthea example requests (the Chinese patients' requests repeat them)."""
    catalogue = load_catalogue()
    patients = [d for d in catalogue.demos if d.group == "patients"]
    names = {d.path.stem for d in patients}
    requests = [
        d
        for d in catalogue.demos
        if d.group == "requests" and d.path.stem.removesuffix("-prefetch") not in names
    ]
    return patients + requests


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from werkzeug.serving import make_server

    app = create_app(Settings(auth="none", preview_enabled=True, today=date(2026, 11, 25)))
    register_preview(app)  # idempotent
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="preview-wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser page on the preview, with the console errors it logged."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, query: str = "") -> None:
        self.page.goto(f"{self.base_url}/{query}")
        self.page.wait_for_selector("body[data-ready=true]")

    def wait_done(self) -> None:
        # a selector, not a JavaScript predicate: the page's CSP (rightly) forbids eval
        self.page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=15000)

    def pick(self, demo_id: str) -> None:
        self.page.select_option("#demo", demo_id)  # the change handler marks the body "loading" at once
        self.wait_done()

    def paste(self, text: str) -> None:
        self.page.fill("#document", text)
        self.page.click("#evaluate")
        self.wait_done()

    def card_topics(self) -> list[str]:
        return list(
            self.page.eval_on_selector_all("#cards article.card", "cards => cards.map(c => c.dataset.topic)")
        )

    def shot(self, name: str, selector: str = "main") -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.locator(selector).screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        yield Page(context.new_page(), base_url)
    finally:
        context.close()


# --- tests --------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_page_loads_and_lists_every_card(page: Page) -> None:
    page.open()
    assert page.page.title() == "osteo-cds preview"
    rows = page.page.eval_on_selector_all("table.topics tbody tr", "rows => rows.map(r => r.dataset.topic)")
    assert rows == list(TOPICS) and "severe-osteoporosis" in rows  # issue 15 adds the order topics
    # every indicator carries a word and an icon shape, not colour alone
    labels = page.page.eval_on_selector_all(".topics .indicator", "xs => xs.map(x => x.textContent.trim())")
    assert set(labels) == {"Critical", "Warning", "Info"}
    assert page.errors == []
    page.shot("preview-page", "body")


@pytest.mark.browser
def test_each_demonstration_shows_its_cards_and_chart(page: Page) -> None:
    demos = demonstrations()
    if not demos:
        pytest.skip("no demonstrations in examples/")
    page.open()
    wrong: list[str] = []
    for demo in demos:
        page.pick(demo.id)
        assert page.page.get_attribute("body", "data-state") == "done", demo.id
        topics = page.card_topics()
        if demo.expected_topics and sorted(topics) != sorted(demo.expected_topics):
            wrong.append(f"{demo.id}: {topics} != {list(demo.expected_topics)}")
        svg = page.page.locator("#chart svg")
        assert svg.count() == 1, demo.id
        assert svg.get_attribute("role") == "img"
        assert page.page.locator("#chart svg > title").count() == 1
        drawn = page.page.locator("#chart svg .panel, #chart svg .events, #chart svg .chart-empty").count()
        assert drawn >= 1, f"{demo.id}: nothing charted, and no word why"
        if page.page.locator("#chart svg .panel").count():
            assert page.page.locator("#chart svg line.threshold").count() >= 1
        if topics:
            indicator = page.page.locator("#cards article.card").first.get_attribute("data-indicator")
            assert (
                page.page.locator(f"#cards article.card .indicator-{indicator} .indicator-label").count() >= 1
            )
        page.shot(f"demo-{demo.id.replace('/', '-')}", "#results")
    assert wrong == []
    assert page.errors == []


@pytest.mark.browser
def test_the_language_switch_re_renders_in_chinese(page: Page) -> None:
    page.open("?lang=en")
    page.pick("patients/he-yulan")  # severe osteoporosis (Vicenta Maggio, deceased, now gets no card)
    english = page.page.text_content("#cards article.card .card-summary") or ""
    assert "Severe osteoporosis" in english
    page.page.click("nav.language a[data-lang='zh-CN']")
    page.page.wait_for_url("**/?lang=zh-CN")
    page.page.wait_for_selector("body[data-ready=true]")
    page.wait_done()  # the input came along and was evaluated again, in Chinese
    assert page.page.get_attribute("html", "lang") == "zh-CN"
    assert page.card_topics()[0] == "severe-osteoporosis"
    summary = page.page.text_content("#cards article.card .card-summary") or ""
    assert "严重骨质疏松" in summary
    assert "危急" in (page.page.text_content("#cards .indicator-label") or "")
    assert "骨质疏松" in (page.page.text_content("#chart svg") or "")
    assert "可能给出的卡片" in (page.page.text_content("#catalogue-heading") or "")
    page.shot("language-zh-CN")
    page.page.click("nav.language a[data-lang='en']")
    page.page.wait_for_url("**/?lang=en")
    page.wait_done()
    assert "Severe osteoporosis" in (page.page.text_content("#cards article.card .card-summary") or "")
    assert page.errors == []


@pytest.mark.browser
def test_hostile_report_text_stays_text(page: Page, tmp_path: Path) -> None:
    xr = {
        "resourceType": "DiagnosticReport",
        "id": "xr-hostile",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "24984-7"}]},
        "effectiveDateTime": "2025-02-03",
        "conclusion": HOSTILE_CONCLUSION,
    }
    hostile = json.dumps(bundle(patient(), t_score(-2.7, when="2024-01-10"), xr), ensure_ascii=False)
    page.open()
    page.paste(hostile)
    assert page.card_topics()[0] == "severe-osteoporosis"
    _assert_inert(page)
    # the report text is shown, as text
    assert "<script>window.__pwned=1</script>" in (page.page.text_content("#cards") or "")
    page.shot("hostile-bundle", "#results")
    # the same through the file upload
    upload = tmp_path / "hostile.json"
    upload.write_text(hostile, encoding="utf-8")
    page.page.click("#clear")
    page.page.set_input_files("#upload", str(upload))
    page.wait_done()
    assert page.card_topics()[0] == "severe-osteoporosis"
    _assert_inert(page)
    assert page.errors == []


def _assert_inert(page: Page) -> None:
    assert page.page.evaluate("typeof window.__pwned") == "undefined"
    # the page's own two scripts (preview.js and its JSON texts), none from the data
    assert page.page.locator("#results script, #results img, #results iframe").count() == 0
    assert page.page.locator("script").count() == 2
    handlers = page.page.evaluate(
        """() => [...document.querySelectorAll('*')].flatMap(
            el => [...el.attributes].map(a => a.name).filter(n => n.startsWith('on')))"""
    )
    assert handlers == []
    hrefs = page.page.eval_on_selector_all(
        "#results a[href]", "links => links.map(a => a.getAttribute('href'))"
    )
    assert all(h.startswith(("http://", "https://", "blob:")) for h in hrefs), hrefs


@pytest.mark.browser
def test_suggestions_show_what_they_would_create(page: Page) -> None:
    page.open()
    page.pick("requests/chad-quigley-prefetch")
    card = page.page.locator("#cards article.card[data-topic='spine-radiograph-recommended']")
    card.locator("button.suggestion").first.click()
    preview = card.locator(".suggestion-preview")
    assert preview.is_visible()
    text = preview.text_content() or ""
    assert "Would create: ServiceRequest" in text and '"status": "draft"' in text and "24984-7" in text
    card.locator(".card-override select").select_option(index=1)
    assert "feedback" in (card.locator(".card-override .note").text_content() or "")
    assert page.errors == []


@pytest.mark.browser
def test_the_orders_mode_shows_the_order_select_cards_of_each_demonstration(page: Page) -> None:
    """Issue 15: from the page to its orders mode, a patient and a draft order chosen, the cards shown (the
    orders mode loads no script; a plain GET form)."""
    demos = load_draft_orders().demos
    if not demos:
        pytest.skip("no draft orders in examples/")
    page.open("?lang=en")
    page.page.click("#orders-link")
    page.page.wait_for_selector("#orders-form")
    wrong: list[str] = []
    for demo in demos:
        page.page.select_option("#order-patient", demo.patient)
        page.page.select_option("#order-draft", demo.draft)
        with page.page.expect_navigation():
            page.page.click("#order-select")
        page.page.wait_for_selector("#order-results")
        topics = page.page.eval_on_selector_all(
            "#order-cards article.card", "cs => cs.map(c => c.dataset.topic)"
        )
        if sorted(topics) != sorted(demo.expected_topics):
            wrong.append(f"{demo.patient} + {demo.draft}: {topics} != {list(demo.expected_topics)}")
        page.shot(f"orders-{demo.patient}-{demo.draft}", "#order-results")
    assert wrong == []
    # the choice survives the language switch, and the card speaks Chinese
    page.page.click("nav.language a[hreflang='zh-CN']")
    page.page.wait_for_selector("#order-results")
    assert page.page.input_value("#order-patient") == demos[-1].patient
    summary = page.page.text_content("#order-cards article.card .card-summary") or ""
    assert "Z" in summary and any("\u4e00" <= c <= "\u9fff" for c in summary), summary
    assert page.page.locator("script").count() == 0
    assert page.errors == []


@pytest.mark.browser
def test_bad_input_is_reported_on_the_page(page: Page) -> None:
    page.open()
    page.page.fill("#document", "{not json")
    page.page.click("#evaluate")
    assert "not valid JSON" in (page.page.text_content("#status") or "")
    page.paste(json.dumps({"resourceType": "Bundle", "type": "collection"}))
    assert page.page.get_attribute("body", "data-state") == "error"
    assert "no Patient" in (page.page.text_content("#status") or "")
    assert page.page.locator("#results").is_hidden()


@pytest.mark.browser
def test_readme_screenshot(browser: Any, base_url: str) -> None:
    """One deliberate picture of the page for the README (docs/img/preview.png when asked for)."""
    if README_DEMO not in {d.id for d in load_catalogue().demos}:
        pytest.skip(f"{README_DEMO} is not among the demonstrations")
    context = browser.new_context(viewport={"width": 1320, "height": 900}, device_scale_factor=1)
    try:
        page = Page(context.new_page(), base_url)
        page.open("?lang=en")
        page.pick(README_DEMO)
        # down to the first card (the diagnosis) or the chart, whichever ends lower: small enough to keep
        bottom = page.page.evaluate(
            """() => Math.max(
                ...['#cards article.card', '.chart-column'].map(
                    s => document.querySelector(s).getBoundingClientRect().bottom + scrollY))"""
        )
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / "preview-readme.png"
        clip = {"x": 0, "y": 0, "width": 1320, "height": bottom + 6}
        page.page.screenshot(path=str(target), clip=clip, full_page=True)
        assert target.stat().st_size < 300_000
        if os.environ.get("OSTEO_CDS_UPDATE_SCREENSHOT") == "1":
            README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            README_SCREENSHOT.write_bytes(target.read_bytes())
        assert page.errors == []
    finally:
        context.close()
