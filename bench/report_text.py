"""Report reading (`facts.report_text.read_report`) on hostile input: CPU time per report, uncached.

The reader is linear in its bounded input (it reads at most MAX_REPORT_CHARS characters); this measures
that it stays so on inputs built to defeat that: a megabyte of fracture words, of punctuation, of nested
brackets, of cues, of level lists, of characters that NFKC expands. Goal: each under one second of CPU.
(This was a wall-clock assertion in tests/facts/test_report_text.py, which failed on a busy machine.)

    .venv/bin/python -m bench.report_text
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cds_service.facts.report_text import ReportReading, read_report

GOAL_SECONDS = 1.0

# name -> (repeated unit, repeats): about a million characters each.
HOSTILE: dict[str, tuple[str, int]] = {
    "fracture words 骨折骨折": ("骨折骨折", 250_000),
    "one letter": ("a", 10**6),
    "punctuation": ("（【《，。；;,.!?：:", 100_000),
    "open brackets": ("((((", 250_000),
    "many mentions": ("L1骨折伴水肿。", 150_000),
    "many cues": ("未见骨折无", 200_000),
    "level list": ("L1、", 350_000),
    "第 list": ("第1、", 350_000),
    "genant": ("genant ", 150_000),
    "NFKC expansion": ("\ufdfa", 10**6),
    "CJK spaces": ("椎 ", 500_000),
    "English cues": ("no not without cannot be excluded possible fracture ", 20_000),
    # issue 13: height-loss numbers and fractions, pseudo cues, advice, M80 titles
    "height-loss numbers": ("压缩30%1/3三分之一", 70_000),
    "pseudo cues": ("of indeterminate age likely osteoporotic ", 25_000),
    "advice": ("建议L1骨折新鲜", 125_000),
    "M80 titles": ("骨质疏松伴", 200_000),
}


def uncached(reader: Callable[[str], ReportReading]) -> Callable[[str], ReportReading]:
    """The reader behind a cache decorator, so every run reads."""
    inner: Callable[[str], ReportReading] = getattr(reader, "__wrapped__", reader)
    return inner


def hostile_reading_ms(runs: int = 3) -> dict[str, float]:
    """The largest CPU time in ms over `runs` readings of each hostile input."""
    read = uncached(read_report)
    worst: dict[str, float] = {}
    for name, (unit, repeats) in HOSTILE.items():
        text = unit * repeats
        samples = []
        for _ in range(runs):
            started = time.thread_time()
            read(text)
            samples.append(time.thread_time() - started)
        worst[name] = round(max(samples) * 1000, 1)
    return worst


def main() -> int:
    worst = hostile_reading_ms()
    for name, ms in worst.items():
        print(f"{name:28} {ms:8.1f} ms CPU (worst of 3)")
    met = max(worst.values()) <= GOAL_SECONDS * 1000
    print(f"goal: each under {GOAL_SECONDS:.0f} s: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
