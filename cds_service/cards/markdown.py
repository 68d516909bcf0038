"""Markdown escaping for text that comes from the record (untrusted: the sandbox renders raw HTML)."""

from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_markdown(text: str, limit: int = 300) -> str:
    """Plain text safe inside a markdown paragraph or table cell: no HTML, no markup, one line."""
    text = _CONTROL.sub(" ", text).replace("\r", " ").replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = html.escape(text, quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)
