"""Card texts as data: cards/<language>.toml, loaded once per process."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from cds_service.settings import LANGUAGES


def _texts_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "card_texts", package.parent / "cards"):
        if (candidate / "en.toml").is_file():
            return candidate
    raise FileNotFoundError("card texts (cards/en.toml) not found beside the package")


@functools.cache
def card_texts(language: str) -> dict[str, Any]:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    with (_texts_dir() / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)
