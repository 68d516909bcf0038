"""Vertebral levels named in text, as Chinese and English records write them ("L1", "腰1", "第一腰椎")."""

from __future__ import annotations

import re

# One vertebra named in a body site's text: "L1", "T12", "腰1", "胸12", "第1腰椎", "第一腰椎", "腰椎1".
CN_NUMBERS = {  # Chinese numerals of vertebral levels (一 … 十二)
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
    "十一": 11,
    "十二": 12,
}
_VERTEBRA_TEXT = re.compile(
    r"(?<![A-Za-z])(?P<latin>[TL])\s?-?(?P<n1>\d{1,2})(?!\d)"
    r"|第\s?(?P<n2>\d{1,2}|十[一二]?|[一二三四五六七八九])\s?(?P<cn2>[胸腰])椎"
    r"|(?P<cn1>[胸腰])椎?\s?(?P<n3>\d{1,2})(?!\d)"
)


def vertebra_levels(text: str) -> list[str]:
    """The levels named in the text, in order, each once ("T12", "L1"); impossible levels are left out."""
    levels: list[str] = []
    for m in _VERTEBRA_TEXT.finditer(text):
        level = _vertebra_level(m)
        if level is not None and level not in levels:
            levels.append(level)
    return levels


def _vertebra_level(m: re.Match[str]) -> str | None:
    if m.group("latin"):
        prefix, raw = m.group("latin"), m.group("n1")
    elif m.group("cn2"):
        prefix, raw = ("T" if m.group("cn2") == "胸" else "L"), m.group("n2")
    else:
        prefix, raw = ("T" if m.group("cn1") == "胸" else "L"), m.group("n3")
    number = int(raw) if raw.isdigit() else CN_NUMBERS.get(raw)
    if number is None or not (1 <= number <= (12 if prefix == "T" else 5)):
        return None
    return f"{prefix}{number}"
