"""Report bodies as real systems send them: Attachments (presentedForm, DocumentReference.content) as
inline base64 text or HTML, or a `url` to a Binary → plain text, with what could not be read and why.

HTML is reduced to its text with the standard library's HTML parser (never with patterns): script and
style content is dropped, block elements become line breaks, character references are decoded.
A `url` is not fetched here (facts/ does no I/O): a Binary of the same server among the resources is
used (fhir/gather.py fetches them after the searches); otherwise a data note says the body was not fetched.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser

from cds_service.facts.fhirpath import JsonObject, as_dict, as_list, as_str

MAX_BODY_BYTES = 1_000_000  # a report body larger than this is not read (a note says so)
_TEXT_TYPES = frozenset({"text/plain", ""})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@dataclass(frozen=True)
class BodyProblem:
    reason: str  # a key of the card texts' data-note reasons
    detail: str | None = None  # a content type or a short code, never text from the record


@dataclass
class BodyReading:
    texts: list[str] = field(default_factory=list)
    problems: list[BodyProblem] = field(default_factory=list)


def binary_key(url: str) -> str | None:
    """ "Binary/123" of a relative or absolute Binary URL (its version dropped), else None."""
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    parts = path.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Binary" and parts[-1]:
        return f"Binary/{parts[-1]}"
    return None


def read_attachments(resource: JsonObject, binaries: Mapping[str, JsonObject], seen: set[str]) -> BodyReading:
    """The readable texts of a resource's attachments; one already read (same Binary URL or same
    content, in `seen`) is not read again: US Core exposes one report as a DiagnosticReport's
    presentedForm and as a DocumentReference at the same URL."""
    reading = BodyReading()
    for attachment in _attachments(resource):
        url = as_str(attachment.get("url"))
        key = binary_key(url) if url else None
        if key is not None and key in seen:
            continue
        content_type = as_str(attachment.get("contentType"))
        data = as_str(attachment.get("data"))
        if data is None and url:
            binary = binaries.get(key) if key else None
            if binary is None:
                reading.problems.append(BodyProblem("report-body-not-fetched"))
                continue
            data = as_str(binary.get("data"))
            content_type = as_str(binary.get("contentType")) or content_type
        if data is None:
            continue  # an attachment with a title only: nothing to read
        text = _decode(data, content_type, reading)
        if text is None:
            continue
        digest = "sha256:" + hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
        if key is not None:
            seen.add(key)
        if digest in seen:
            continue
        seen.add(digest)
        if text.strip():
            reading.texts.append(text)
    return reading


def _attachments(resource: JsonObject) -> Iterable[JsonObject]:
    if resource.get("resourceType") == "DocumentReference":
        for content in map(as_dict, as_list(resource.get("content"))):
            attachment = as_dict(content.get("attachment")) if content else None
            if attachment is not None:
                yield attachment
        return
    for attachment in map(as_dict, as_list(resource.get("presentedForm"))):
        if attachment is not None:
            yield attachment


def _decode(data: str, content_type: str | None, reading: BodyReading) -> str | None:
    mime, charset = _content_type(content_type)
    if mime not in _TEXT_TYPES and mime not in _HTML_TYPES:
        reading.problems.append(BodyProblem("report-body-unreadable", mime[:40]))
        return None
    if len(data) > MAX_BODY_BYTES * 4 // 3 + 4:
        reading.problems.append(BodyProblem("report-body-unreadable", "size"))
        return None
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        reading.problems.append(BodyProblem("report-body-unreadable", "base64"))
        return None
    text = _text_of(raw, charset)
    if text is None or "\x00" in text:
        reading.problems.append(BodyProblem("report-body-unreadable", "charset"))
        return None
    return html_text(text) if mime in _HTML_TYPES else text


def _content_type(content_type: str | None) -> tuple[str, str | None]:
    parts = [p.strip() for p in (content_type or "").split(";")]
    charset = next(
        (
            p.split("=", 1)[1].strip().strip('"').lower()
            for p in parts[1:]
            if p.lower().startswith("charset=")
        ),
        None,
    )
    return parts[0].lower(), charset


def _text_of(raw: bytes, charset: str | None) -> str | None:
    """Bytes as text: the stated charset; else UTF-8, then GB18030 (the Chinese national character set,
    a superset of GBK/GB2312, which Chinese RIS send without saying so)."""
    if charset is not None:
        try:
            return raw.decode(codecs.lookup(charset).name)
        except (LookupError, UnicodeDecodeError):
            return None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


class _HtmlText(HTMLParser):
    _HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript", "object", "iframe"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header", "footer"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "dd", "dt", "dl"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The text of an HTML document or fragment (what a reader sees, not what a script would do)."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
