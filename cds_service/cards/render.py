"""Render findings as CDS Hooks 2.0 cards in one language; the wording comes from cards/<lang>.toml."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cds_service import CONSENSUS_REFERENCE, CONSENSUS_URL, RULESET_REVISION, __version__
from cds_service.cards.markdown import escape_markdown
from cds_service.cards.numbers import faithful
from cds_service.cards.resources import condition_resource, service_request_resource
from cds_service.cards.texts import card_texts
from cds_service.consensus.bmd import (
    QCT_NORMAL_ABOVE,
    QCT_OSTEOPOROSIS_BELOW,
    T_NORMAL_LOWER_BOUND,
    T_OSTEOPOROSIS_UPPER_BOUND,
    Z_BELOW_EXPECTED,
)
from cds_service.consensus.findings import Evidence, Finding
from cds_service.facts.model import DataNote
from cds_service.topics import Group

TOPIC_SYSTEM = "urn:osteo-cds:finding"
OVERRIDE_SYSTEM = "urn:osteo-cds:override-reason"
SUMMARY_LIMIT = 139  # the spec says "<140 characters"
_INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}
_COMPLEMENTARY_ORDERS = frozenset({"fracture-imaging-recommended"})
# CONSENSUS-RULES.md §7: settings whose default is the consensus's own number (the rest are choices).
CONSENSUS_VALUE_SETTINGS = frozenset({"OSTEO_CDS_SPINE_XR_AGE"})


class _Fill(dict[str, Any]):
    """format_map mapping that leaves unknown placeholders visible instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def render_cards(
    findings: Sequence[Finding],
    notes: Sequence[DataNote],
    *,
    language: str,
    patient_id: str,
    data_cut: bool = False,
) -> list[dict[str, Any]]:
    """Cards in display order: the diagnosis first, then recommendations by urgency."""
    texts = card_texts(language)
    ordered = sorted(findings, key=lambda f: (f.group is not Group.DIAGNOSIS, _INDICATOR_ORDER[f.indicator]))
    return [_card(f, notes, texts, patient_id, data_cut) for f in ordered]


def _card(
    finding: Finding, notes: Sequence[DataNote], texts: Mapping[str, Any], patient_id: str, data_cut: bool
) -> dict[str, Any]:
    words = texts["cards"][finding.topic]
    fill = _params(finding, texts)
    # A finding may name a variant of its summary ("summary_provisional") in the texts.
    variant = finding.params.get("summary_variant")
    summary = words.get(f"summary_{variant}", words["summary"]).format_map(fill)
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": finding.indicator,
        "detail": _detail(finding, notes, texts, fill, data_cut),
        "source": {
            "label": texts["meta"]["source_label"],
            "url": CONSENSUS_URL,
            "topic": {
                "system": TOPIC_SYSTEM,
                "code": finding.topic,
                "display": words["title"],
            },
        },
    }
    suggestions = _suggestions(finding, texts, patient_id)
    if suggestions:
        card["suggestions"] = suggestions
        # "CT and/or MRI" (REC-CT-MRI): both may be accepted; otherwise the suggestions are alternatives.
        card["selectionBehavior"] = "any" if finding.topic in _COMPLEMENTARY_ORDERS else "at-most-one"
    if finding.group is Group.RECOMMENDATION:
        card["overrideReasons"] = [
            {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
            for code, display in texts["override_reasons"].items()
        ]
    return card


def _params(finding: Finding, texts: Mapping[str, Any]) -> _Fill:
    fill = _Fill(finding.params)
    measure = str(finding.params.get("measure", ""))
    fill["measure_name"] = texts["measures"].get(measure, measure or texts["meta"]["unknown"])
    region = str(finding.params.get("region", ""))
    fill["region_name"] = texts["regions"].get(region, region or texts["meta"]["unknown"])
    value = finding.params.get("value")
    if isinstance(value, float):
        fill["value"] = _number(value, measure)
    site = str(finding.params.get("fracture_site", ""))
    fill["fracture_site_name"] = texts["regions"].get(site, site or texts["meta"]["unknown"])
    for key in ("date", "fracture_date"):
        years = finding.params.get(f"{key}_years")
        if isinstance(years, int) and years >= 1 and key in finding.params:
            # issue 17: an old decisive result says how old it is ("2016-03-01, 10 years ago").
            words = texts["meta"]["years_ago_one" if years == 1 else "years_ago"]
            fill[key] = words.format(date=finding.params[key], years=years)
    fill["age_when"] = texts["age_when"].get(str(finding.params.get("age_at", "exam")), "")
    causes = str(finding.params.get("causes", ""))
    fill["causes_names"] = ", ".join(texts["causes"].get(c, c) for c in causes.split(", ") if c)
    if "reference_database" in finding.params:
        fill["reference_database"] = escape_markdown(str(finding.params["reference_database"]), 60)
    return fill


# DXA-3 / POP-3 / QCT-2 boundaries: a shown value never crosses one by rounding.
_SCORE_BOUNDARIES = (T_NORMAL_LOWER_BOUND, Z_BELOW_EXPECTED, T_OSTEOPOROSIS_UPPER_BOUND)
_QCT_BOUNDARIES = (QCT_OSTEOPOROSIS_BELOW, QCT_NORMAL_ABOVE)


def _number(value: float, measure: str) -> str:
    if "vbmd" in measure or measure == "qct-mean":
        return f"{faithful(value, 1, _QCT_BOUNDARIES)} mg/cm³"
    if measure.endswith("abmd"):
        return f"{value:.3f} g/cm²"
    if measure.endswith("tbs"):
        return f"{value:.3f}"  # TBS is read to three decimals (context only, DX-5)
    return faithful(value, 1, _SCORE_BOUNDARIES if measure != "bmi" else ())


def _detail(
    finding: Finding, notes: Sequence[DataNote], texts: Mapping[str, Any], fill: _Fill, data_cut: bool
) -> str:
    meta = texts["meta"]
    parts: list[str] = [texts["cards"][finding.topic]["detail"].format_map(fill)]
    if finding.evidence:
        parts.append(f"**{meta['evidence_heading']}**\n\n" + _evidence_table(finding.evidence, texts))
    quotes = _distinct_quotes(finding.evidence)
    if quotes:
        lines = [
            f"> {escape_markdown(e.quote or '', 300)} ({escape_markdown(e.quote_source or e.source, 80)})"
            for e in quotes
        ]
        parts.append(f"**{meta['quote_heading']}**\n\n" + "\n>\n".join(lines))
    note_keys = list(finding.notes) + (["data-cut"] if data_cut else [])
    note_lines = [texts["notes"][key].format_map(fill) for key in note_keys if key in texts["notes"]]
    if note_lines:
        parts.append(f"**{meta['notes_heading']}**\n\n" + "\n".join(f"- {line}" for line in note_lines))
    parts.append(f"**{meta['rules_heading']}** " + ", ".join(finding.rules))
    if finding.settings:
        names = texts["settings"]
        lines = [
            f"- `{s.name}` = {escape_markdown(s.value, 40)}: {names.get(s.name, s.name)} "
            f"({names['consensus_value' if s.name in CONSENSUS_VALUE_SETTINGS else 'implementation_choice']})"
            for s in finding.settings
        ]
        parts.append(f"**{meta['settings_heading']}**\n\n" + "\n".join(lines))
    if notes:
        reasons = texts["data_notes"]
        lines = [
            f"- {escape_markdown(n.source, 100)}: "
            + reasons.get(n.reason, n.reason).format_map(_Fill(detail=escape_markdown(n.detail or "", 40)))
            for n in notes[:50]
        ]
        if len(notes) > 50:
            lines.append(f"- … (+{len(notes) - 50})")
        parts.append(f"**{meta['data_notes_heading']}**\n\n{meta['data_notes_intro']}\n\n" + "\n".join(lines))
    parts.append(
        "---\n"
        + meta["version_line"].format(
            version=__version__, ruleset=RULESET_REVISION, reference=CONSENSUS_REFERENCE
        )
    )
    return "\n\n".join(parts)


def _evidence_table(evidence: Sequence[Evidence], texts: Mapping[str, Any]) -> str:
    meta = texts["meta"]
    header = "| " + " | ".join(meta["evidence_columns"]) + " |"
    rule = "|" + "---|" * len(meta["evidence_columns"])
    rows = [header, rule]
    for e in evidence:
        kind = texts["measures"].get(e.kind, e.kind)
        if e.kind == "secondary-cause":
            site = texts["causes"].get(e.region or "", e.region or "")
        elif e.kind == "fracture":
            name, _, levels = (e.region or "").partition(" ")
            site = texts["regions"].get(name, name) + (f" {levels}" if levels else "")
        else:
            site = texts["regions"].get(e.region or "", e.region or "")
        if e.side in texts["sides"]:  # "右髋骨折未测": the right hip, while the left one was measured
            site = texts["sides"][e.side].format(site=site)
        if e.value is None:
            value = ""
        elif e.unit == "Genant":
            value = f"Genant {int(e.value)}"
        else:
            value = _number(e.value, e.kind)
        when = e.when.isoformat() if e.when else meta["unknown"]
        counted = meta["counted_yes"] if e.used else meta["counted_no"]
        sources = escape_markdown(", ".join((e.source, *e.also_in)), 100 * (1 + len(e.also_in)))
        cells = [kind, escape_markdown(site, 60), value, when, sources, counted]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _suggestions(finding: Finding, texts: Mapping[str, Any], patient_id: str) -> list[dict[str, Any]]:
    words = texts["suggestions"]
    rules = ", ".join(finding.rules)
    suggestions: list[dict[str, Any]] = []
    if finding.suggest_condition:
        suggestions.append(
            {
                "label": words["condition_label"],
                "uuid": str(uuid.uuid4()),
                "isRecommended": False,
                "actions": [
                    {
                        "type": "create",
                        "description": words["condition_action"],
                        "resource": condition_resource(
                            patient_id,
                            finding,
                            note=words["condition_note"].format(topic=finding.topic, rules=rules),
                            text=words["condition_text"],
                        ),
                    }
                ],
            }
        )
    for order in finding.orders:
        # Labels and notes in the card's language; the coding keeps LOINC's own display.
        order_words = texts["orders"][order.kind]
        suggestion: dict[str, Any] = {
            "label": order_words["label"],
            "uuid": str(uuid.uuid4()),
            "actions": [
                {
                    "type": "create",
                    "description": words["order_action"],
                    "resource": service_request_resource(
                        patient_id,
                        finding,
                        order,
                        note=words["order_note"].format(rules=rules),
                        order_note=order_words.get("note"),
                    ),
                }
            ],
        }
        if order.recommended:
            suggestion["isRecommended"] = True  # REC-CT-MRI: MRI first for the hip
        suggestions.append(suggestion)
    return suggestions


def _distinct_quotes(evidence: Sequence[Evidence]) -> list[Evidence]:
    """The quoted report sentences, each once: a quote repeated, or contained in another quote of the same
    report (the BMD sentence inside the whole conclusion), adds nothing to read."""
    quoted = [(e, e.quote_source or e.source, " ".join((e.quote or "").split())) for e in evidence if e.quote]
    kept: list[Evidence] = []
    for i, (e, source, text) in enumerate(quoted):
        covered = any(
            j != i and other_source == source and text in other and (text != other or j < i)
            for j, (_, other_source, other) in enumerate(quoted)
        )
        if not covered:
            kept.append(e)
    return kept
