"""The screening report in a real browser (Debian Chromium via Playwright): it opens from disk, shows its
four charts, and asks for nothing from outside the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.screen.output import Summary
from tests.browser.test_preview_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")


def test_report_opens_with_its_charts_and_loads_nothing(screened: tuple[Path, Summary]) -> None:
    out, summary = screened
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto((out / "report.html").as_uri())
        charts = page.locator("figure svg")
        assert charts.count() == 4
        for i in range(4):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100
        assert page.locator("#cards tr").count() == len(summary.topics) + 1
        browser.close()
    assert [url for url in requests if not url.startswith("file://")] == []
