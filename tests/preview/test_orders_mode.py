"""The preview's orders mode (`GET /preview/orders`, issue 15): a demonstration patient and a draft order kind
chosen in a plain form, the order-select cards rendered on the server (no script: the page CSP allows only
'self' scripts and this page loads none)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from cds_service.preview.draft_orders import OrderDemo, load_draft_orders

DEMOS = load_draft_orders().demos


def topics_on(html: str) -> list[str]:
    return re.findall(r'<article class="card [^"]*" data-topic="([^"]+)"', html)


@pytest.mark.parametrize("demo", DEMOS, ids=lambda d: f"{'+'.join(d.expected_topics)}-{d.patient}")
def test_each_order_demonstration_shows_its_cards(preview_client: FlaskClient, demo: OrderDemo) -> None:
    response = preview_client.get(
        "/preview/orders", query_string={"patient": demo.patient, "draft": demo.draft, "lang": "en"}
    )

    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert sorted(topics_on(html)) == sorted(demo.expected_topics)
    assert "<script" not in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_form_lists_patients_and_draft_kinds_and_shows_no_cards_yet(preview_client: FlaskClient) -> None:
    html = preview_client.get("/preview/orders?lang=en").get_data(as_text=True)

    assert '<form id="orders-form"' in html and 'method="get"' in html
    assert {d.patient for d in DEMOS} <= set(re.findall(r'<option value="([a-z-]+)"', html))
    assert {"dxa", "chest-ct", "spine-radiographs", "qus"} <= set(
        re.findall(r'<option value="([a-z-]+)"', html)
    )
    assert "order-results" not in html


def test_a_pair_without_cards_says_so_in_chinese(preview_client: FlaskClient) -> None:
    # 李建国 (M 56, normal DXA): a chest CT is no QCT occasion for a man under 70 (REC-QCT-CT).
    response = preview_client.get("/preview/orders?patient=li-jianguo&draft=chest-ct&lang=zh-CN")

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and topics_on(html) == []
    assert "该医嘱草稿没有卡片" in html


def test_the_main_page_links_to_the_orders_mode(preview_client: FlaskClient) -> None:
    html = preview_client.get("/?lang=en").get_data(as_text=True)
    assert 'id="orders-link" href="/preview/orders?lang=en"' in html


@pytest.mark.parametrize(
    "query", ["patient=nobody&draft=dxa", "patient=ma-fengying&draft=mri", "patient=../index&draft=dxa"]
)
def test_unknown_choices_are_404(preview_client: FlaskClient, query: str) -> None:
    assert preview_client.get(f"/preview/orders?{query}").status_code == 404


def test_the_orders_mode_is_404_when_the_preview_is_off(plain_client: FlaskClient) -> None:
    assert plain_client.get("/preview/orders?patient=ma-fengying&draft=dxa").status_code == 404
