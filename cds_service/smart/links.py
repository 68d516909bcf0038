"""The cards' link to the SMART app (CDS Hooks 2.0 Link of type `smart`), and the app's words."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cds_service.settings import LANGUAGES, Settings

PREFIX = "/smart"
TEXTS_DIR = Path(__file__).resolve().parent / "texts"


@functools.cache
def smart_texts(language: str) -> dict[str, Any]:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    with (TEXTS_DIR / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)


def launch_url(settings: Settings) -> str:
    """`<public url>/smart/launch`: the launch URL of the cards' `smart` links."""
    return f"{(settings.public_url or '').rstrip('/')}{PREFIX}/launch"


def redirect_uri(settings: Settings) -> str:
    """`<public url>/smart/callback`: the redirect URI the EHR registers for the app."""
    return f"{(settings.public_url or '').rstrip('/')}{PREFIX}/callback"


def add_smart_links(cards: Iterable[dict[str, Any]], settings: Settings, language: str) -> None:
    """Give each card a link to the app when it is configured; `appContext` is the card's topic code,
    which the app reads back from the token response to show that card."""
    if not settings.smart_enabled or not settings.public_url:
        return
    label = smart_texts(language)["link_label"]
    url = launch_url(settings)
    for card in cards:
        link = {"label": label, "url": url, "type": "smart", "appContext": card["source"]["topic"]["code"]}
        card.setdefault("links", []).append(link)
