"""Card markdown → safe HTML: markdown-it-py with raw HTML off, then nh3; links only http/https."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# Raw HTML off: `<script>` in a card (or in report text quoted by one) stays text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)

# What card markdown needs, nothing more: no images (tracking pixels), no style, no ids.
_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_SCHEMES = {"http", "https"}
_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},
    attributes=_ATTRIBUTES,
    url_schemes=_SCHEMES,
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def markdown_to_safe_html(markdown: str) -> str:
    """HTML for `innerHTML`: markdown rendered without raw HTML, then sanitised by an allow-list."""
    return _CLEANER.clean(_MARKDOWN.render(markdown))


def is_web_url(url: object) -> bool:
    """Only absolute http(s) URLs are shown as links (no javascript:, data:, relative or smart links)."""
    if not isinstance(url, str):
        return False
    lowered = url.strip().lower()
    return (lowered.startswith("https://") or lowered.startswith("http://")) and len(url) <= 2048
