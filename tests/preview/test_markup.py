"""Card markdown → HTML for the page: raw HTML stays text, links only http(s), nothing else slips through."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from cds_service.preview.markup import is_web_url, markdown_to_safe_html


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize(
    "markdown",
    [
        pytest.param("<script>window.__pwned=1</script>", id="script tag"),
        pytest.param('<img src=x onerror="window.__pwned=1">', id="img onerror"),
        pytest.param("<svg onload=alert(1)></svg>", id="svg onload"),
        pytest.param('<a href="javascript:alert(1)">x</a>', id="raw javascript link"),
        pytest.param("[x](javascript:alert(1))", id="markdown javascript link"),
        pytest.param("[x](data:text/html;base64,PHNjcmlwdD4=)", id="data link"),
        pytest.param("![x](https://tracker.example/p.png)", id="image"),
        pytest.param('<iframe src="https://evil.example"></iframe>', id="iframe"),
        pytest.param('<div style="background:url(javascript:alert(1))">x</div>', id="style"),
    ],
)
def test_nothing_active_survives(markdown: str) -> None:
    html = markdown_to_safe_html(f"Report: {markdown}")
    for tag, attrs in elements(html):
        assert tag not in {"script", "img", "svg", "iframe", "style", "div"}
        assert not any(name.startswith("on") or name == "style" for name in attrs)
        href = attrs.get("href")
        assert href is None or href.startswith(("http://", "https://"))


def test_card_markdown_keeps_its_structure() -> None:
    html = markdown_to_safe_html(
        "Text with **bold**.\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n- one\n- two\n\n> quote\n\n---\nend"
    )
    tags = [tag for tag, _ in elements(html)]
    for tag in ("strong", "table", "th", "td", "ul", "li", "blockquote", "hr"):
        assert tag in tags
    assert 'style="' not in html  # table alignment styles are dropped


def test_links_keep_http_and_https_only() -> None:
    html = markdown_to_safe_html("[doi](https://doi.org/10.3760/x) [rel](/local) [mail](mailto:a@b.c)")
    links = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert [a.get("href") for a in links] == ["https://doi.org/10.3760/x", None, None]
    assert all("noopener" in (a.get("rel") or "") for a in links)


def test_escaped_report_text_reads_as_written() -> None:
    # cards escape report text as markdown (cards/markdown.py); the page shows it as the report said
    html = markdown_to_safe_html(r"> L1椎体&lt;script&gt;x&lt;/script&gt;压缩骨折 \(DiagnosticReport/r1\)")
    assert "&lt;script&gt;" in html and "<script" not in html
    assert "(DiagnosticReport/r1)" in html


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://doi.org/x", True),
        ("http://example.org", True),
        ("HTTPS://EXAMPLE.ORG", True),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("/relative", False),
        ("//example.org", False),
        (None, False),
        (42, False),
    ],
)
def test_is_web_url(url: object, shown: bool) -> None:
    assert is_web_url(url) is shown
