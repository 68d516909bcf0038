"""Write openapi.yaml's topic schemas from the topic registry (cds_service/topics.py).

openapi.yaml is a static file; its topic parts sit between `# BEGIN topics-…` / `# END topics-…` markers
and are generated: a `<Group>Topic` enum per group, a `Topic` schema of them all, and one rule per
indicator in the Card schema. tests/test_topics.py fails when the file is not what this writes.

Usage: python scripts/openapi_topics.py   (rewrites openapi.yaml in place)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cds_service.topics import TOPICS, Group, Indicator, topics_of

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.yaml"
_NOTE = "generated from cds_service/topics.py by scripts/openapi_topics.py: do not edit"
_INDICATORS: tuple[Indicator, ...] = ("critical", "warning", "info")


def schema_name(group: Group) -> str:
    return f"{group.value.capitalize()}Topic"


def _schemas(indent: str) -> list[str]:
    lines: list[str] = []
    for group in Group:
        lines += [f"{schema_name(group)}:", "  enum:", *(f"    - {code}" for code in topics_of(group))]
    lines += ["Topic:", "  anyOf:"]
    lines += [f'    - $ref: "#/components/schemas/{schema_name(group)}"' for group in Group]
    return [indent + line for line in lines]


def _indicator_rules(indent: str) -> list[str]:
    lines: list[str] = []
    for indicator in _INDICATORS:
        codes = [code for code, topic in TOPICS.items() if topic.indicator == indicator]
        if not codes:
            continue
        lines += [
            "- if:",
            "    required: [source]",
            "    properties:",
            "      source:",
            "        required: [topic]",
            "        properties:",
            "          topic:",
            "            required: [code]",
            "            properties:",
            "              code:",
            "                enum:",
            *(f"                  - {code}" for code in codes),
            "  then:",
            "    properties:",
            "      indicator:",
            f"        const: {indicator}",
        ]
    return [indent + line for line in lines]


_REGIONS = {"topic-schemas": _schemas, "topic-indicators": _indicator_rules}
_REGION = re.compile(
    r"^( *)# BEGIN (?P<name>[a-z-]+)[^\n]*\n.*?^\1# END (?P=name)\n", re.MULTILINE | re.DOTALL
)


def with_topics(text: str) -> str:
    """The openapi.yaml text with every marked region rewritten from the registry."""
    found: set[str] = set()

    def region(match: re.Match[str]) -> str:
        indent, name = match.group(1), match.group("name")
        found.add(name)
        body = _REGIONS[name](indent)
        return "\n".join([f"{indent}# BEGIN {name}: {_NOTE}", *body, f"{indent}# END {name}"]) + "\n"

    result = _REGION.sub(region, text)
    missing = set(_REGIONS) - found
    if missing:
        raise ValueError(f"openapi.yaml lacks the markers of {', '.join(sorted(missing))}")
    return result


def main() -> int:
    OPENAPI.write_text(with_topics(OPENAPI.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
