"""Render findings as CDS Hooks 2.0 cards in one language; the wording comes from cards/<lang>.toml."""

from __future__ import annotations

import uuid
from collections import Counter
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
from cds_service.topics import TOPICS, Group

TOPIC_SYSTEM = "urn:osteo-cds:finding"
OVERRIDE_SYSTEM = "urn:osteo-cds:override-reason"
SUMMARY_LIMIT = 139  # the spec says "<140 characters"
BRIEF_EVIDENCE = 6  # evidence items a card names in words; the rest are in the full explanation
QUOTE_LIMIT = 160  # characters of report text a card quotes
BRIEF_QUOTES = 2  # report sentences a card quotes (the finding's, and the radiologist's advice)
# Data notes the card does not count as data not used: the report's BMD sentence whose values the exam's
# discrete results already gave (nothing is missing; the explanation still lists it).
QUIET = frozenset({"bmd-text-discrete-wins"})
# Evidence kinds whose site names the item itself ("scoliosis", "hip prosthesis"), with no measure before it.
_SELF_NAMED = frozenset({"report", "condition", "device", "secondary-cause", "order"})
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
    variant: str = "",
    shown: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Cards in display order: the diagnosis first, then recommendations by urgency.

    Each card's detail is the five-second version (issue 17): what it is and what to do, the decisive
    evidence in words, the notes that change how it must be read (each once per response), the rules.
    The full explanation is `explain` (the SMART app, the preview). `variant` "order_" takes a topic's
    order-hook wording (`order_summary`, `order_lead`, `order_detail`) where it has one; `shown` holds the
    reading notes already on an earlier card of the response (a caller rendering a response card by card
    passes one set for all)."""
    texts = card_texts(language)
    shown = set() if shown is None else shown
    return [_card(f, notes, texts, patient_id, data_cut, shown, variant) for f in display_order(findings)]


def display_order(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.group is not Group.DIAGNOSIS, _INDICATOR_ORDER[f.indicator]))


def explain(
    findings: Sequence[Finding],
    notes: Sequence[DataNote],
    *,
    language: str,
    data_cut: bool = False,
    variant: str = "",
) -> list[str]:
    """The full explanation of each card, in `render_cards`'s order (markdown): the topic's whole text, the
    evidence table with sources, the report text, every note, the rules, the settings that decided it and
    the data not used. What the card's link (the SMART app) and the preview show."""
    texts = card_texts(language)
    return [
        _explanation(f, notes, texts, _params(f, texts), data_cut, variant) for f in display_order(findings)
    ]


def _card(
    finding: Finding,
    notes: Sequence[DataNote],
    texts: Mapping[str, Any],
    patient_id: str,
    data_cut: bool,
    shown: set[str],
    variant: str,
) -> dict[str, Any]:
    words = texts["cards"][finding.topic]
    fill = _params(finding, texts)
    # A finding may name a variant of its summary ("summary_provisional") in the texts.
    named = finding.params.get("summary_variant")
    summary_key = f"{variant}summary" if f"{variant}summary" in words else "summary"
    summary = words.get(f"summary_{named}", words[summary_key]).format_map(fill)
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": finding.indicator,
        "detail": _brief(finding, notes, texts, fill, data_cut, shown, variant),
        "source": {
            # The service and rule-set versions on every card (issue 17), where the source is named.
            "label": texts["meta"]["source_label"].format(version=__version__, ruleset=RULESET_REVISION),
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


def _brief(
    finding: Finding,
    notes: Sequence[DataNote],
    texts: Mapping[str, Any],
    fill: _Fill,
    data_cut: bool,
    shown: set[str],
    variant: str,
) -> str:
    """The card's detail (issue 17, CONTRACT.md "Cards"): what to do where the summary does not say it, the
    decisive evidence in words, one short line per note that changes the reading (each once per response),
    the data not used (counted, once per response), and one line of rule IDs. One paragraph, a line each
    (CommonMark hard breaks), so that it stays short in a narrow card column."""
    meta = texts["meta"]
    words = texts["cards"][finding.topic]
    lines = []
    lead = words.get(f"{variant}lead", words.get("lead", "")).format_map(fill)  # none: the summary says it
    if lead:
        lines.append(lead)
    evidence = _evidence_words(finding, texts)
    if evidence:
        lines.append(f"**{meta['evidence_label']}** {evidence}")
    for key in _reading_notes(finding, notes, data_cut, texts["brief_notes"]):
        if key not in shown:
            shown.add(key)
            lines.append("⚠ " + texts["brief_notes"][key].format_map(fill))
    if "data-notes" not in shown:  # counted once per response, on its first card
        unused = Counter(
            n.reason for n in notes if n.reason not in texts["brief_notes"] and n.reason not in QUIET
        )
        if unused:
            shown.add("data-notes")  # CONTRACT.md "Data the service reads": listed in full in the explanation
            labels = texts["data_note_labels"]
            counted = meta["list_separator"].join(
                f"{labels.get(r, r)} ({n})" for r, n in sorted(unused.items())
            )
            lines.append(meta["data_notes_line"].format(count=unused.total(), reasons=counted))
    lines.append(_rules_line(finding, texts))
    return "\\\n".join(lines)  # a CommonMark hard line break ends each line


def _reading_notes(
    finding: Finding, notes: Sequence[DataNote], data_cut: bool, reading: Mapping[str, str]
) -> list[str]:
    """The notes that change how the card must be read (an assumption, an incomplete exam, a provisional
    diagnosis, a FHIR query refused or cut): the keys of the texts' `[brief_notes]`, in a fixed order."""
    keys = [*finding.notes, *(n.reason for n in notes), *(["data-cut"] if data_cut else [])]
    return [key for key in dict.fromkeys(keys) if key in reading]


def _rules_line(finding: Finding, texts: Mapping[str, Any]) -> str:
    meta = texts["meta"]
    line = str(meta["rules_line"]).format(rules=meta["list_separator"].join(finding.rules))
    # Settings that are implementation choices are named as such on the card; the rest is in the app.
    choices = [s for s in finding.settings if s.name not in CONSENSUS_VALUE_SETTINGS]
    if choices:
        short = texts["settings_short"]
        named = meta["list_separator"].join(
            short.get(s.name, s.name + " = {value}").format(value=escape_markdown(s.value, 40))
            for s in choices
        )
        line += " · " + meta["choices_line"].format(settings=named)
    return line


def _evidence_words(finding: Finding, texts: Mapping[str, Any]) -> str:
    """The evidence that decided, in words: items of one kind, date and source type together
    ("T-score: femoral neck -3.1, total hip -2.6 — 2025-12-08, report"), at most BRIEF_EVIDENCE items, each
    once (one fracture from a Genant result and a report is one item with both sources); on a card the
    report's words decide, the sentence that made it follows its item, hedging and all."""
    meta = texts["meta"]
    used = [e for e in finding.evidence if e.used]
    quotes = _distinct_quotes(used) if TOPICS[finding.topic].quotes_report else []
    items: dict[tuple[str, str, str], tuple[dict[str, None], str | None]] = {}  # (label, item, when)
    for e in used:
        when = e.when.isoformat() if e.when else meta["unknown"]
        measure = str(texts["measures"].get(e.kind, e.kind))
        site = _site(e, texts)
        if e.kind in _SELF_NAMED:  # "scoliosis — 2026-04-22, report"; a bare report: "imaging report — …"
            label, item = "", escape_markdown(site or measure, 80)
        else:
            value = f" {_value(e)}" if e.value is not None else ""
            label, item = measure, escape_markdown(site, 80) + value
        sources, quote = items.setdefault((label, item, when), ({}, None))
        if site or e.kind not in _SELF_NAMED:
            sources.update(dict.fromkeys(_source_type(s, texts) for s in (e.source, *e.also_in)))
        if quote is None and any(e is q for q in quotes[:BRIEF_QUOTES]):
            items[(label, item, when)] = (sources, escape_markdown(e.quote or "", QUOTE_LIMIT))
    groups: dict[tuple[str, str, str], list[str]] = {}
    quote_of: dict[tuple[str, str, str], str] = {}
    for (label, item, when), (kinds, quote) in list(items.items())[:BRIEF_EVIDENCE]:
        key = (label, when, meta["list_separator"].join(kinds))
        groups.setdefault(key, []).append(item)
        if quote is not None:
            quote_of[key] = quote
    segments = []
    for key, grouped in groups.items():
        label, when, named = key
        template = meta["evidence_dated"] if named else meta["evidence_dated_bare"]
        segment = template.format(items=meta["list_separator"].join(grouped), date=when, sources=named)
        if label:
            segment = meta["evidence_labelled"].format(measure=label, rest=segment)
        if key in quote_of:
            segment = meta["evidence_quoted"].format(segment=segment, quote=quote_of[key])
        segments.append(segment)
    if len(items) > BRIEF_EVIDENCE:
        segments.append(meta["more_evidence"].format(count=len(items) - BRIEF_EVIDENCE))
    return str(meta["segment_separator"]).join(segments)


def _source_type(source: str, texts: Mapping[str, Any]) -> str:
    kind = source.partition("/")[0]
    return str(texts["source_types"].get(kind, escape_markdown(kind, 40)))


def _explanation(
    finding: Finding,
    notes: Sequence[DataNote],
    texts: Mapping[str, Any],
    fill: _Fill,
    data_cut: bool,
    variant: str,
) -> str:
    meta = texts["meta"]
    words = texts["cards"][finding.topic]
    parts: list[str] = [words.get(f"{variant}detail", words["detail"]).format_map(fill)]
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
        site = _site(e, texts)
        value = _value(e) if e.value is not None else ""
        when = e.when.isoformat() if e.when else meta["unknown"]
        counted = meta["counted_yes"] if e.used else meta["counted_no"]
        sources = escape_markdown(", ".join((e.source, *e.also_in)), 100 * (1 + len(e.also_in)))
        cells = [kind, escape_markdown(site, 60), value, when, sources, counted]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _site(e: Evidence, texts: Mapping[str, Any]) -> str:
    if e.kind == "secondary-cause":
        site = texts["causes"].get(e.region or "", e.region or "")
    elif e.kind == "fracture":
        name, _, levels = (e.region or "").partition(" ")
        site = texts["regions"].get(name, name) + (f" {levels}" if levels else "")
    else:
        site = texts["regions"].get(e.region or "", e.region or "")
    if e.side in texts["sides"]:  # "右髋骨折未测": the right hip, while the left one was measured
        site = texts["sides"][e.side].format(site=site)
    return str(site)


def _value(e: Evidence) -> str:
    assert e.value is not None
    return f"Genant {int(e.value)}" if e.unit == "Genant" else _number(e.value, e.kind)


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
