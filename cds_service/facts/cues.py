"""Word lists of the text readers as reviewed data: the top-level cues/<name>.toml, loaded once."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from typing import Any

# A phrase is a regular expression run on untrusted text: only bounded repetition ({m,n} or ?) keeps the
# readers linear, so an unbounded * or + (outside a character class or an escape) is refused at load.
_UNBOUNDED_RE = re.compile(r"(?<!\\)[*+](?![^\[]*\])")


def cues_dir() -> Path:
    """The top-level cues/ folder (in the wheel: cds_service/cues), every text reader's word lists."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "cues", package.parent / "cues"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cue tables (cues/) not found beside the package")


@functools.cache
def cue_table(name: str) -> dict[str, Any]:
    """cues/<name>.toml as read; shipped in the wheel as cds_service/cues (pyproject.toml)."""
    with (cues_dir() / f"{name}.toml").open("rb") as handle:
        return tomllib.load(handle)


def alternation(phrases: list[str]) -> str:
    """One regex alternative per phrase, in the listed order (the first listed wins at one place)."""
    for phrase in phrases:
        if not phrase or _UNBOUNDED_RE.search(phrase):
            raise ValueError(f"cue phrase {phrase!r} is empty or has an unbounded * or +")
    return "|".join(phrases)
