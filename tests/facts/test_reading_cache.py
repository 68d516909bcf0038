"""The report-reading cache (facts/reading_cache.py): once per text, bounded, immutable results."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from cds_service.facts.reading_cache import CACHE_SIZE, MAX_CACHED_CHARS, read_once_per_text
from cds_service.facts.report_text import ReportReading, read_report, stated_trauma

REPORTS = [
    pytest.param(
        "L1椎体压缩性骨折，Genant 2度。脊柱侧弯。", id="FX-3 Chinese vertebral fracture with scoliosis"
    ),
    pytest.param("Wedge fracture of T12, no history of trauma.", id="FX-5 English wedge fracture"),
    pytest.param("未见明确骨折。", id="FX-6 negated"),
    pytest.param("", id="empty"),
]


@pytest.fixture
def counting() -> Iterator[list[str]]:
    calls: list[str] = []
    yield calls


def test_the_same_text_is_read_once(counting: list[str]) -> None:
    @read_once_per_text
    def read(text: str) -> str:
        counting.append(text)
        return text.upper()

    assert [read("a"), read("b"), read("a"), read("a")] == ["A", "B", "A", "A"]
    assert counting == ["a", "b"]


def test_the_cache_is_bounded(counting: list[str]) -> None:
    @read_once_per_text
    def read(text: str) -> int:
        counting.append(text)
        return len(text)

    for i in range(CACHE_SIZE + 10):
        read(str(i))
    assert read.cache_info().currsize == CACHE_SIZE
    read("0")  # the least recently used was dropped: read again
    assert counting.count("0") == 2


def test_a_text_longer_than_the_bound_is_read_and_not_kept(counting: list[str]) -> None:
    @read_once_per_text
    def read(text: str) -> int:
        counting.append(text)
        return len(text)

    at_bound, above = "x" * MAX_CACHED_CHARS, "x" * (MAX_CACHED_CHARS + 1)
    for text in (at_bound, at_bound, above, above):
        read(text)
    assert [len(t) for t in counting] == [MAX_CACHED_CHARS, MAX_CACHED_CHARS + 1, MAX_CACHED_CHARS + 1]
    assert read.cache_info().currsize == 1


@pytest.mark.parametrize("text", REPORTS)
def test_a_cached_reading_equals_a_fresh_one_and_is_shared(text: str) -> None:
    first = read_report(text)
    assert read_report(text) is first
    assert read_report.__wrapped__(text) == first


@pytest.mark.parametrize("text", REPORTS)
def test_a_reading_cannot_be_changed_by_its_caller(text: str) -> None:
    reading = read_report(text)
    hash(reading)  # hashable all the way down: tuples, strings, numbers and frozen dataclasses only
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.truncated = True  # type: ignore[misc]
    for item in (*reading.fractures, *reading.findings):
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.quote = ""  # type: ignore[misc]
    assert isinstance(reading, ReportReading)


TRAUMA_TEXTS = [
    pytest.param("右股骨颈骨折（家中平地跌倒）", id="FX-5 Chinese minor trauma"),
    pytest.param("Fracture of T12 after a motor vehicle accident", id="FX-1 English high-energy"),
    pytest.param("Fracture of wrist", id="FX-1 not stated"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("text", TRAUMA_TEXTS)
def test_a_condition_text_is_read_for_trauma_once_with_the_fresh_answer(text: str) -> None:
    stated_trauma.cache_clear()
    first = stated_trauma(text)
    assert stated_trauma(text) == first == stated_trauma.__wrapped__(text)
    assert stated_trauma.cache_info().hits == 1
