"""Card texts (cards/en.toml, cards/zh-CN.toml): both languages complete and interchangeable.

CONTRACT.md "Cards": `en` and `zh-CN` both complete, topic codes never change with language, summary < 140.
CONSENSUS-RULES.md errata: never 髌 for 髋. POP-3: in zh-CN, 低骨量 in the Z-score cards is qualified.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_service.cards.render import CONSENSUS_VALUE_SETTINGS, QUIET, explain, render_cards
from cds_service.consensus.findings import Evidence, Finding, SettingUse
from cds_service.facts.model import DataNote
from cds_service.topics import TOPIC_CODES

CARDS_DIR = Path(__file__).resolve().parents[2] / "cards"
LANGUAGES = ("en", "zh-CN")
SUMMARY_LIMIT = 140  # CONTRACT.md: summary shorter than 140 characters

# Strings whose zh-CN value may legitimately carry no Chinese characters (pure format strings).
NO_CJK_ALLOWED = {
    ("meta", key)
    for key in (
        "version_line",
        "evidence_dated",
        "evidence_dated_bare",
        "evidence_labelled",
        "evidence_quoted",
        "list_separator",
        "segment_separator",
    )
}

# Worst-case lengths of the values the Python fills into summary templates (the brief of the texts).
WORST_CASE_FILL = {
    "measure_name": "M" * 20,
    "region_name": "R" * 20,
    "value": "V" * 12,
    "date": "2024-12-31",
    "age": "100",
}

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


class _WorstCase(dict[str, str]):
    """Known placeholders at their longest; any other placeholder as a 20-character filler."""

    def __missing__(self, key: str) -> str:
        return "X" * 20


def _load(language: str) -> dict[str, Any]:
    with (CARDS_DIR / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="module")
def texts() -> dict[str, dict[str, Any]]:
    return {language: _load(language) for language in LANGUAGES}


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf value with its key path; list items get their index as a path element."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, str(index)))
    else:
        yield path, node


def _structure(node: Any) -> Any:
    """The shape of a TOML document: dict keys and list lengths, without the words."""
    if isinstance(node, dict):
        return {key: _structure(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_structure(value) for value in node]
    return type(node).__name__


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _value(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in path:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def test_same_key_structure(texts: dict[str, dict[str, Any]]) -> None:
    assert _structure(texts["zh-CN"]) == _structure(texts["en"])


def test_evidence_columns_same_length(texts: dict[str, dict[str, Any]]) -> None:
    en_columns = texts["en"]["meta"]["evidence_columns"]
    zh_columns = texts["zh-CN"]["meta"]["evidence_columns"]
    assert isinstance(zh_columns, list)
    assert len(zh_columns) == len(en_columns)


def test_same_placeholders_per_string(texts: dict[str, dict[str, Any]]) -> None:
    mismatches = []
    for path, en_value in _leaves(texts["en"]):
        zh_value = _value(texts["zh-CN"], path)
        assert isinstance(en_value, str) and isinstance(zh_value, str), path
        if _placeholders(en_value) != _placeholders(zh_value):
            mismatches.append((".".join(path), _placeholders(en_value), _placeholders(zh_value)))
    assert mismatches == []


def test_every_string_is_nonempty(texts: dict[str, dict[str, Any]]) -> None:
    for language, doc in texts.items():
        empty = [".".join(path) for path, value in _leaves(doc) if not str(value).strip()]
        assert empty == [], language


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("topic", TOPIC_CODES)
def test_every_topic_has_texts(texts: dict[str, dict[str, Any]], language: str, topic: str) -> None:
    card = texts[language]["cards"][topic]
    assert card["summary"].strip()
    assert card["detail"].strip()


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_cards_beyond_the_contract(texts: dict[str, dict[str, Any]], language: str) -> None:
    assert set(texts[language]["cards"]) <= set(TOPIC_CODES)


def test_zh_never_writes_patella_for_hip() -> None:
    # Errata of seed/consensus-2020-zh.txt: 髌 (patella) stands there for 髋 (hip).
    raw = (CARDS_DIR / "zh-CN.toml").read_text(encoding="utf-8")
    assert "髌" not in raw


def test_zh_strings_are_chinese(texts: dict[str, dict[str, Any]]) -> None:
    without = [
        ".".join(path)
        for path, value in _leaves(texts["zh-CN"])
        if path not in NO_CJK_ALLOWED and not CJK.search(str(value))
    ]
    assert without == []


def test_zh_z_score_cards_qualify_low_bone_mass(texts: dict[str, dict[str, Any]]) -> None:
    # POP-3: 低骨量 in a Z-score card must not read as the T-score category (DXA-3).
    for topic in ("below-expected-range-for-age", "within-expected-range-for-age", "z-score-required"):
        for text in texts["zh-CN"]["cards"][topic].values():
            assert text.count("低骨量") == text.count("低骨量（Z值判断）"), topic
    assert "低于同年龄段预期范围" in texts["zh-CN"]["cards"]["below-expected-range-for-age"]["summary"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_summaries_fit_with_worst_case_values(texts: dict[str, dict[str, Any]], language: str) -> None:
    for topic, card in texts[language]["cards"].items():
        summary = card["summary"].format_map(_WorstCase(WORST_CASE_FILL))
        assert len(summary) < SUMMARY_LIMIT, (topic, len(summary), summary)


def _finding(topic: str, extra_params: dict[str, str | float] | None = None, **extra: Any) -> Finding:
    params: dict[str, str | float] = {
        "value": -2.8,
        "region": "femoral-neck",
        "date": "2024-03-01",
        "measure": "t-score",
        "age": 67,
        "fracture_site": "hip",
        "fracture_date": "2023-11-02",
    }
    return Finding(topic=topic, rules=("DXA-3",), params=params | (extra_params or {}), **extra)


def _render(language: str, finding: Finding, notes: tuple[DataNote, ...] = ()) -> dict[str, Any]:
    cards = render_cards([finding], notes, language=language, patient_id="example", data_cut=False)
    assert len(cards) == 1
    return cards[0]


@pytest.mark.parametrize("topic", TOPIC_CODES)
def test_every_topic_renders_in_both_languages(topic: str) -> None:
    rendered = {language: _render(language, _finding(topic)) for language in LANGUAGES}
    for language, card in rendered.items():
        assert 0 < len(card["summary"]) < SUMMARY_LIMIT, (language, card["summary"])
        assert not card["summary"].endswith("…"), (language, card["summary"])  # not cut to fit
        assert "{" not in card["summary"] and "?" not in card["summary"], (language, card["summary"])
        assert card["detail"].strip(), language
        assert card["source"]["topic"]["code"] == topic
        assert card["source"]["topic"]["system"] == "urn:osteo-cds:finding"
        assert card["indicator"] == rendered["en"]["indicator"]
    zh_display = rendered["zh-CN"]["source"]["topic"]["display"]
    assert "{" not in zh_display and CJK.search(zh_display), zh_display


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_note_data_note_and_setting_renders(texts: dict[str, dict[str, Any]], language: str) -> None:
    doc = texts[language]
    setting_names = [name for name in doc["settings"] if name.startswith("OSTEO_CDS_")]
    finding = _finding(
        "osteoporosis-bmd",
        {"causes": "glucocorticoids, myeloma", "reference_database": "NHANES III"},
        notes=tuple(doc["notes"]),
        settings=tuple(SettingUse(name, "50") for name in setting_names),
        evidence=(
            Evidence("t-score", "Observation/1", date(2024, 3, 1), -2.8, None, "femoral-neck"),
            Evidence("tbs", "Observation/2", date(2024, 3, 1), 1.2, None, "lumbar-spine", used=False),
        ),
    )
    data_notes = tuple(
        DataNote(f"Observation/{i}", reason, "HU") for i, reason in enumerate(doc["data_notes"])
    )
    detail = _render(language, finding, data_notes)["detail"]
    [explanation] = explain([finding], data_notes, language=language)
    assert "{" not in detail and "{" not in explanation
    # The full explanation has every note, column and setting; the card has the short line of each note
    # that changes the reading, the count of each kind of data not used, and the implementation choices.
    for text in [*doc["notes"].values(), *doc["meta"]["evidence_columns"]]:
        assert text.split("{")[0] in explanation
    for name in setting_names:
        assert doc["settings"][name] in explanation
    for key, text in doc["brief_notes"].items():
        if key in doc["notes"] or key in doc["data_notes"]:
            assert text.split("{")[0] in detail, key
    for key, label in doc["data_note_labels"].items():
        assert (label in detail) is (key not in doc["brief_notes"] and key not in QUIET), key
    for name in setting_names:  # on the card in a few words with the value; named in full in the explanation
        short = doc["settings_short"][name].format(value="50")
        assert (short in detail) is (name not in CONSENSUS_VALUE_SETTINGS), name
