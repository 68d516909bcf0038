"""Words of the preview page and its chart: cds_service/preview/texts/<language>.toml, loaded once."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from cds_service.settings import LANGUAGES

TEXTS_DIR = Path(__file__).resolve().parent / "texts"


@functools.cache
def preview_texts(language: str) -> dict[str, Any]:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    with (TEXTS_DIR / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)
