"""The SMART app end to end in a real browser (issue 17 item 2): the EHR (tests/browser/ehr_simulator.py:
Authlib's authorization server and the strict FHIR server) shows the app in an iframe at a card's `smart`
link; launch → authorize (PKCE S256) → token → the app reads the record with its token and draws the chart
and the card's full explanation. Screenshot: test-artifacts/smart-app.png (and, with
OSTEO_CDS_UPDATE_SCREENSHOT=1, the README's docs/img/smart-app.png)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from cds_service import engine
from cds_service.api.app import create_app
from cds_service.api.config import AUDIT_KEY, LazyAuditStore
from cds_service.facts.bundle import patient_data
from cds_service.preview.demos import demo_settings, load_catalogue, read_demo
from cds_service.settings import Settings
from tests.browser.ehr_simulator import USER, EhrSimulator
from tests.browser.test_preview_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")

CLIENT_ID = "osteo-cds-app"
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "smart-app.png"
DEMO = "patients/he-yulan"  # severe osteoporosis with a hip fracture: a chart with bands and events


class _Late:
    """A WSGI app set after the server is bound: the app's settings need its own URL."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


@pytest.fixture
def launched_app(tmp_path: Path) -> Iterator[tuple[EhrSimulator, Any, list[dict[str, Any]], str, str]]:
    from werkzeug.serving import make_server

    catalogue = load_catalogue()
    demo = catalogue.find(DEMO)
    assert demo is not None
    resources, patient_id = patient_data(read_demo(demo))
    late = _Late()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    public = f"http://127.0.0.1:{server.server_port}"
    with EhrSimulator(list(resources), CLIENT_ID, f"{public}/smart/callback") as ehr:
        settings = demo_settings(
            Settings(
                auth="none",
                today=date(2026, 11, 25),
                database_url=f"sqlite:///{tmp_path / 'audit.db'}",
                public_url=public,
                fhir_servers=(ehr.iss,),
                smart_client_id=CLIENT_ID,
                smart_frame_ancestors=(ehr.origin,),
            ),
            catalogue,
        )
        late.app = create_app(settings)
        thread = threading.Thread(target=server.serve_forever, name="smart-wsgi", daemon=True)
        thread.start()
        try:
            cards = engine.evaluate(resources, patient_id, settings).response["cards"]
            yield ehr, late.app, cards, patient_id, public
        finally:
            server.shutdown()


def test_a_card_link_launches_the_app_in_the_ehr_frame_and_it_shows_chart_and_explanation(
    browser: Any,  # noqa: F811 - the fixture imported from test_preview_browser
    launched_app: tuple[EhrSimulator, Any, list[dict[str, Any]], str, str],
) -> None:
    ehr, app, cards, patient_id, public = launched_app
    card = cards[0]
    (link,) = [link for link in card["links"] if link["type"] == "smart"]
    assert link["url"] == f"{public}/smart/launch"
    # The EHR mints a launch for the patient in context and the link's appContext, and opens the link.
    launch = ehr.launch(patient_id, link["appContext"])
    ehr.frame_url = f"{link['url']}?{urlencode({'iss': ehr.iss, 'launch': launch})}"

    context = browser.new_context(viewport={"width": 1280, "height": 1500}, locale="zh-CN")
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.goto(f"{ehr.origin}/ehr")
        frame = page.frame_locator("#app")
        frame.locator("#chart svg").wait_for(timeout=20000)
        topics = frame.locator("article.card").evaluate_all("cards => cards.map(c => c.dataset.topic)")
        assert topics == [link["appContext"]]  # appContext focuses the card it was opened from
        assert frame.locator("#show-all").count() == 1
        assert frame.locator("html").get_attribute("lang") == "zh-CN"
        assert frame.locator("article.card .explanation table").count() == 1  # the evidence table
        app_frame = next(f for f in page.frames if f.url.startswith(public))
        assert app_frame.url == f"{public}/smart/app"  # no patient, code or token in the URL
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "smart-app.png"), full_page=True)
        if os.environ.get("OSTEO_CDS_UPDATE_SCREENSHOT") == "1":
            page.screenshot(path=str(README_SCREENSHOT), full_page=True)
        # The whole assessment is one click away.
        with app_frame.expect_navigation():
            frame.locator("#show-all").click()
        frame.locator("#chart svg").wait_for()
        shown = frame.locator("article.card").evaluate_all("cards => cards.map(c => c.dataset.topic)")
        assert shown == [c["source"]["topic"]["code"] for c in cards]
        assert not [e for e in errors if "Content Security Policy" in e]
    finally:
        context.close()

    (asked,) = ehr.authorize_requests
    assert (
        asked["code_challenge_method"] == "S256" and asked["scope"] == "launch openid fhirUser patient/*.rs"
    )
    assert ehr.fhir_requests  # the record was read from the FHIR server with the token
    store = app.extensions[AUDIT_KEY]
    assert isinstance(store, LazyAuditStore)
    assert [(u, p) for u, p, _, _ in store.get().app_views()] == [(USER, patient_id)] * 2
