"""README.zh-CN.md (issue 17): its card table lists exactly the topics of the registry, with their group and
indicator, and README.md links to it."""

from __future__ import annotations

import re
from pathlib import Path

from cds_service.topics import TOPICS, Group

REPO = Path(__file__).resolve().parents[1]
GROUP_WORDS = {"诊断": Group.DIAGNOSIS, "建议": Group.RECOMMENDATION, "医嘱": Group.ORDER}


def _card_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (REPO / "README.zh-CN.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`[a-z0-9-]+`", cells[0]) and cells[1] in GROUP_WORDS:
            assert cells[0].strip("`") not in rows, f"{cells[0]} listed twice"
            rows[cells[0].strip("`")] = (GROUP_WORDS[cells[1]].value, cells[2])
    return rows


def test_readme_zh_card_table_is_the_topic_registry() -> None:
    assert _card_rows() == {code: (t.group.value, t.indicator) for code, t in TOPICS.items()}


def test_readme_links_to_readme_zh() -> None:
    assert "(README.zh-CN.md)" in (REPO / "README.md").read_text(encoding="utf-8")
