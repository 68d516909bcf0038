"""Quoted report text on a card: each sentence once (a quote inside a longer quote of the same report adds
nothing to read), while quotes of different reports all stay."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.cards.render import _distinct_quotes
from cds_service.consensus.findings import Evidence

WHOLE = "腰椎(L1-4) T值-2.8，左股骨颈T值-3.1（右髋骨折未测）"
PART = "左股骨颈T值-3.1（右髋骨折未测）"


def quote(text: str, source: str = "DiagnosticReport/r1") -> Evidence:
    return Evidence(kind="t-score", source=source, when=date(2025, 12, 8), quote=text)


@pytest.mark.parametrize(
    ("quotes", "kept"),
    [
        pytest.param(
            [quote(PART), quote(WHOLE)], [WHOLE], id="DXA-1 a sentence inside the whole conclusion: once"
        ),
        pytest.param([quote(WHOLE), quote(WHOLE)], [WHOLE], id="DXA-1 the same quote twice: once"),
        pytest.param(
            [quote(PART), quote(WHOLE, source="DiagnosticReport/r2")],
            [PART, WHOLE],
            id="DXA-1 near-miss the same words in two reports: both",
        ),
        pytest.param(
            [quote("L1压缩骨折可能"), quote(WHOLE)], ["L1压缩骨折可能", WHOLE], id="FX-6 different: both"
        ),
    ],
)
def test_each_quoted_sentence_once(quotes: list[Evidence], kept: list[str]) -> None:
    assert [e.quote for e in _distinct_quotes(quotes)] == kept
