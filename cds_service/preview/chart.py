"""The bone-density chart as server-side SVG: T-scores and lumbar QCT over time, bands, fractures, imaging.

Two steps, so that each can be tested alone: `chart_model` turns facts and the diagnosis into a
language-specific `ChartModel` (plain data); `render_svg` draws a model, `chart_layout` holds its
geometry (the scales the tests check the threshold lines against). Every text that reaches the SVG is
XML-escaped: sources, ids and report-derived words are untrusted.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from cds_service import engine
from cds_service.cards.numbers import faithful
from cds_service.cards.texts import card_texts
from cds_service.consensus.bmd import (
    QCT_NORMAL_ABOVE,
    QCT_OSTEOPOROSIS_BELOW,
    T_NORMAL_LOWER_BOUND,
    T_OSTEOPOROSIS_UPPER_BOUND,
    Z_BELOW_EXPECTED,
    lumbar_qct_value,
    qct_exams,
)
from cds_service.consensus.findings import Finding
from cds_service.consensus.fractures import FractureJudgement, Verdict, fractured_vertebrae
from cds_service.facts.model import BmdMeasurement, Measure, Modality, PatientFacts, Region
from cds_service.preview.texts import preview_texts
from cds_service.settings import Settings
from cds_service.topics import Group, topics_citing

Shape = Literal["circle", "square", "triangle", "triangle-down", "diamond", "cross"]
EventKind = Literal["fragility-fracture", "fracture", "spine-imaging"]

# Region → marker shape, colour (Okabe–Ito, safe for colour-blind readers) and line dash: the shape
# and the dash carry the meaning in black-and-white print, the colour only helps.
REGION_STYLE: dict[str, tuple[Shape, str, str | None]] = {
    Region.LUMBAR_SPINE.value: ("circle", "#0072B2", None),
    Region.FEMORAL_NECK.value: ("square", "#D55E00", "7 3"),
    Region.TOTAL_HIP.value: ("triangle", "#009E73", "2 3"),
    Region.FOREARM.value: ("diamond", "#CC79A7", "8 3 2 3"),
    Region.UNSPECIFIED.value: ("cross", "#000000", "1 4"),
    Region.HIP.value: ("triangle-down", "#E69F00", "4 2"),  # hip QCT (CTXA) T-score, QCT-3
}
QCT_STYLE: tuple[Shape, str, str | None] = ("circle", "#0072B2", None)
# Topics of the POP-3 population: the T-score and QCT bands do not apply to them.
POP3_TOPICS = topics_citing("POP-3")

FONT = "DejaVu Sans, Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, PingFang SC, Arial, sans-serif"
ID_PREFIX = "osteo-chart"


# --- the model: what the chart shows, in one language -------------------------------------------------


@dataclass(frozen=True)
class ChartPoint:
    when: date
    value: float
    sources: tuple[str, ...]  # untrusted: "Observation/<id>"
    used: bool = False  # an evidence row with used=True of the diagnosis card
    decisive: bool = False  # the value the diagnosis names
    context: bool = False  # drawn small and hollow (a single QCT vertebra)
    note: str | None = None  # written beside the point ("L1")


@dataclass(frozen=True)
class ChartSeries:
    key: str
    label: str
    shape: Shape
    colour: str
    dash: str | None
    points: tuple[ChartPoint, ...]  # in date order
    connect: bool = True


@dataclass(frozen=True)
class Band:
    key: str  # "normal" | "low" | "osteoporosis" | "within" | "below"
    lower: float | None  # None: the bottom of the panel
    upper: float | None  # None: the top of the panel
    label: str
    rule: str
    pattern: Literal["plain", "dots", "hatch"]


@dataclass(frozen=True)
class Threshold:
    key: str  # "normal" | "osteoporosis" | "below"
    value: float
    label: str


@dataclass(frozen=True)
class ChartPanel:
    key: str  # "t-score" | "z-score" | "qct"
    title: str
    domain: tuple[float, float]  # at least this range is shown
    tick_step: float
    bands: tuple[Band, ...]
    thresholds: tuple[Threshold, ...]
    series: tuple[ChartSeries, ...]
    decimals: int = 1


@dataclass(frozen=True)
class ChartEvent:
    kind: EventKind
    when: date | None
    label: str
    source: str


@dataclass(frozen=True)
class ChartModel:
    language: str
    title: str
    panels: tuple[ChartPanel, ...]
    events: tuple[ChartEvent, ...]
    notes: tuple[str, ...]
    words: Mapping[str, str]
    description: str


# --- from resources to a model -----------------------------------------------------------------------


def patient_chart_svg(
    resources: Iterable[Mapping[str, Any]], patient_id: str, settings: Settings, language: str
) -> str:
    """The chart of one patient's resources, as the engine sees them (engine.assess_record)."""
    return render_svg(patient_chart_model(resources, patient_id, settings, language))


def patient_chart_model(
    resources: Iterable[Mapping[str, Any]], patient_id: str, settings: Settings, language: str
) -> ChartModel:
    return assessment_chart_model(engine.assess_record(resources, patient_id, settings), language)


def assessment_chart_model(assessment: engine.Assessment, language: str) -> ChartModel:
    """The chart of what the engine concluded (same facts, same judgements, the findings it shows)."""
    return chart_model(assessment.facts, assessment.findings, assessment.judgements, language)


def chart_model(
    facts: PatientFacts,
    findings: Sequence[Finding],
    judgements: Sequence[FractureJudgement],
    language: str,
) -> ChartModel:
    """What to draw: the measurements, the diagnosis's evidence highlighted, the events on the time axis."""
    words: dict[str, str] = preview_texts(language)["chart"]
    regions: dict[str, str] = card_texts(language)["regions"]
    diagnosis = next((f for f in findings if f.group is Group.DIAGNOSIS), None)
    used = {(e.source, e.when) for e in diagnosis.evidence if e.used} if diagnosis else set()
    decisive = _decisive_key(diagnosis)
    marks = _Marks(used, decisive)

    panels: list[ChartPanel] = []
    t_series = _score_series(facts.measurements, Measure.T_SCORE, marks, words, regions)
    if t_series:
        panels.append(_t_panel(words, t_series))
    # Z-scores only where they judge the patient (POP-3), or where no T-score is on record.
    pop3 = any(f.topic in POP3_TOPICS for f in findings)
    z_series = _score_series(facts.measurements, Measure.Z_SCORE, marks, words, regions)
    if z_series and (pop3 or not t_series):
        panels.append(_z_panel(words, z_series))
    qct_series = _qct_series(facts.measurements, fractured_vertebrae(judgements), marks, words)
    if qct_series:
        panels.append(_qct_panel(words, qct_series))

    events = _events(facts, judgements, words, regions)
    notes: list[str] = []
    if pop3 and any(p.key in ("t-score", "qct") for p in panels):
        notes.append(words["pop3_note"])
    if any(m.modality in (Modality.PERIPHERAL, Modality.QUS, Modality.TBS) for m in facts.measurements):
        notes.append(words["context_note"])  # DX-4, DX-5: they never decide a category
    notes.extend(words["undated"].format(label=e.label) for e in events if e.when is None)
    model = ChartModel(
        language=language,
        title=words["title"],
        panels=tuple(panels),
        events=tuple(events),
        notes=tuple(notes),
        words=words,
        description="",
    )
    return ChartModel(**{**model.__dict__, "description": _description(model)})


@dataclass(frozen=True)
class _Marks:
    used: set[tuple[str, date | None]]
    decisive: tuple[str, str, str, float] | None  # (evidence kind, region, ISO date, value)

    def point(self, m: BmdMeasurement, kind: str, **extra: Any) -> ChartPoint:
        region = m.vertebra or m.region.value
        is_decisive = self.decisive is not None and self.decisive[:3] == (kind, region, m.when.isoformat())
        is_decisive = is_decisive and self.decisive is not None and math.isclose(self.decisive[3], m.value)
        return ChartPoint(
            when=m.when,
            value=m.value,
            sources=(m.source,),
            used=(m.source, m.when) in self.used,
            decisive=is_decisive,
            **extra,
        )


def _decisive_key(diagnosis: Finding | None) -> tuple[str, str, str, float] | None:
    """The value a diagnosis card names (its summary's measure, region, date and value)."""
    if diagnosis is None:
        return None
    params = diagnosis.params
    value = params.get("value")
    if not isinstance(value, float | int):
        return None
    return (str(params.get("measure", "")), str(params.get("region", "")), str(params.get("date", "")), value)


def _score_kind(m: BmdMeasurement) -> str:
    """The evidence kind the assessment gives this measurement (see consensus/assessment.py `_row`)."""
    base = "t-score" if m.measure is Measure.T_SCORE else "z-score"
    return f"qct-{base}" if m.modality is Modality.QCT else base


def _score_series(
    measurements: Sequence[BmdMeasurement],
    measure: Measure,
    marks: _Marks,
    words: Mapping[str, str],
    regions: Mapping[str, str],
) -> list[ChartSeries]:
    """DXA T- or Z-scores (and hip QCT T-scores, QCT-3), one series per region and side."""
    groups: dict[tuple[str, str | None], list[BmdMeasurement]] = {}
    for m in measurements:
        central = m.modality is Modality.DXA or (m.modality is Modality.QCT and m.region is Region.HIP)
        if central and m.measure is measure and m.region.value in REGION_STYLE:
            groups.setdefault((m.region.value, m.laterality), []).append(m)
    order = list(REGION_STYLE)
    series = []
    for (region, side), items in sorted(
        groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] or "")
    ):
        shape, colour, dash = REGION_STYLE[region]
        label = words["qct_hip"] if region == Region.HIP.value else regions.get(region, region)
        if side in ("left", "right"):
            label = f"{label} ({words[side]})"
        items.sort(key=lambda m: (m.when, m.value))
        points = tuple(marks.point(m, _score_kind(m)) for m in items)
        key = region + (f"-{side}" if side else "")
        series.append(ChartSeries(key, label, shape, colour, dash, points))
    return series


def _qct_series(
    measurements: Sequence[BmdMeasurement],
    fractured: frozenset[str],
    marks: _Marks,
    words: Mapping[str, str],
) -> list[ChartSeries]:
    """QCT-1: the value each lumbar QCT exam gives (mean of two vertebrae, or the reported mean);
    the single vertebrae as small context points."""
    main: list[ChartPoint] = []
    single: list[ChartPoint] = []
    for exam in sorted(qct_exams(measurements), key=lambda e: e.when):
        if not exam.lumbar:
            continue
        lumbar = lumbar_qct_value(exam.lumbar, fractured)
        if lumbar.value is not None:
            sources = tuple(m.source for m in lumbar.used)
            if len(lumbar.used) == 2:
                decisive = marks.decisive is not None and marks.decisive[0] == "qct-mean"
                decisive = (
                    decisive and marks.decisive is not None and marks.decisive[2] == exam.when.isoformat()
                )
                note = "+".join(m.vertebra or "?" for m in lumbar.used)
            else:
                decisive = marks.point(lumbar.used[0], "qct-vbmd").decisive
                note = None
            main.append(
                ChartPoint(
                    when=exam.when,
                    value=lumbar.value,
                    sources=sources,
                    used=all((s, exam.when) in marks.used for s in sources),
                    decisive=decisive,
                    note=note,
                )
            )
        for m in sorted(exam.lumbar, key=lambda m: m.vertebra or ""):
            if m.vertebra:
                single.append(marks.point(m, "qct-vbmd", context=True, note=m.vertebra))
    series = []
    shape, colour, dash = QCT_STYLE
    if main:
        series.append(ChartSeries("qct-mean", words["qct_mean"], shape, colour, dash, tuple(main)))
    if single:
        series.append(
            ChartSeries("qct-vertebra", words["qct_vertebra"], shape, "#555555", None, tuple(single), False)
        )
    return series


def _t_panel(words: Mapping[str, str], series: Sequence[ChartSeries]) -> ChartPanel:
    # DXA-3 (table 1): normal T ≥ -1.0; low bone mass -2.5 < T < -1.0; osteoporosis T ≤ -2.5.
    return ChartPanel(
        key="t-score",
        title=words["t_panel"],
        domain=(-4.0, 1.0),
        tick_step=1.0,
        bands=(
            Band("normal", T_NORMAL_LOWER_BOUND, None, words["band_normal"], words["rule_t_normal"], "plain"),
            Band(
                "low",
                T_OSTEOPOROSIS_UPPER_BOUND,
                T_NORMAL_LOWER_BOUND,
                words["band_low"],
                words["rule_t_low"],
                "dots",
            ),
            Band(
                "osteoporosis",
                None,
                T_OSTEOPOROSIS_UPPER_BOUND,
                words["band_osteoporosis"],
                words["rule_t_osteoporosis"],
                "hatch",
            ),
        ),
        thresholds=(
            Threshold("normal", T_NORMAL_LOWER_BOUND, _signed(T_NORMAL_LOWER_BOUND, 1)),
            Threshold("osteoporosis", T_OSTEOPOROSIS_UPPER_BOUND, _signed(T_OSTEOPOROSIS_UPPER_BOUND, 1)),
        ),
        series=tuple(series),
    )


def _z_panel(words: Mapping[str, str], series: Sequence[ChartSeries]) -> ChartPanel:
    # POP-3: Z ≤ -2.0 is below the expected range for age.
    return ChartPanel(
        key="z-score",
        title=words["z_panel"],
        domain=(-4.0, 1.0),
        tick_step=1.0,
        bands=(
            Band("within", Z_BELOW_EXPECTED, None, words["band_within"], words["rule_z_within"], "plain"),
            Band("below", None, Z_BELOW_EXPECTED, words["band_below"], words["rule_z_below"], "hatch"),
        ),
        thresholds=(Threshold("below", Z_BELOW_EXPECTED, _signed(Z_BELOW_EXPECTED, 1)),),
        series=tuple(series),
    )


def _qct_panel(words: Mapping[str, str], series: Sequence[ChartSeries]) -> ChartPanel:
    # QCT-2 (table 2): normal > 120; low bone mass 80–120 inclusive; osteoporosis < 80 mg/cm³.
    return ChartPanel(
        key="qct",
        title=words["qct_panel"],
        domain=(40.0, 180.0),
        tick_step=20.0,
        bands=(
            Band("normal", QCT_NORMAL_ABOVE, None, words["band_normal"], words["rule_qct_normal"], "plain"),
            Band(
                "low",
                QCT_OSTEOPOROSIS_BELOW,
                QCT_NORMAL_ABOVE,
                words["band_low"],
                words["rule_qct_low"],
                "dots",
            ),
            Band(
                "osteoporosis",
                None,
                QCT_OSTEOPOROSIS_BELOW,
                words["band_osteoporosis"],
                words["rule_qct_osteoporosis"],
                "hatch",
            ),
        ),
        thresholds=(
            Threshold("normal", QCT_NORMAL_ABOVE, f"{QCT_NORMAL_ABOVE:.0f}"),
            Threshold("osteoporosis", QCT_OSTEOPOROSIS_BELOW, f"{QCT_OSTEOPOROSIS_BELOW:.0f}"),
        ),
        series=tuple(series),
    )


def _events(
    facts: PatientFacts,
    judgements: Sequence[FractureJudgement],
    words: Mapping[str, str],
    regions: Mapping[str, str],
) -> list[ChartEvent]:
    events: list[ChartEvent] = []
    for j in judgements:
        f = j.fracture
        site = regions.get(f.site, f.site) + (f" {'/'.join(f.vertebrae)}" if f.vertebrae else "")
        if j.verdict is Verdict.FRAGILITY:
            events.append(
                ChartEvent(
                    "fragility-fracture", f.when, words["fragility_fracture"].format(site=site), f.source
                )
            )
        else:
            reason = words.get(f"verdict_{j.verdict.value}", j.verdict.value)
            label = words["fracture_not_counted"].format(reason=reason, site=site)
            events.append(ChartEvent("fracture", f.when, label, f.source))
    for imaging in facts.spine_imaging:
        key = "+".join(sorted(imaging.parts))
        label = words["spine_imaging"].format(parts=regions.get(key, key))
        events.append(ChartEvent("spine-imaging", imaging.when, label, imaging.source))
    # One marker per fracture and day: a report and a coded diagnosis often record the same fracture.
    merged: dict[tuple[str, date | None, str], ChartEvent] = {}
    for e in events:
        same = (e.kind, e.when, e.label)
        if same in merged:
            merged[same] = ChartEvent(e.kind, e.when, e.label, f"{merged[same].source}, {e.source}")
        else:
            merged[same] = e
    return sorted(merged.values(), key=lambda e: (e.when or date.min, e.kind))


def _description(model: ChartModel) -> str:
    """The chart in sentences, for screen readers (<desc>)."""
    words = model.words
    parts: list[str] = []
    for panel in model.panels:
        for s in panel.series:
            if not s.connect:
                continue
            latest = s.points[-1]
            parts.append(
                words["desc_series"].format(
                    label=s.label,
                    count=len(s.points),
                    first=s.points[0].when.isoformat(),
                    last=latest.when.isoformat(),
                    latest=_signed(latest.value, panel.decimals, [t.value for t in panel.thresholds]),
                )
            )
            for p in s.points:
                if p.decisive:
                    parts.append(
                        words["desc_decisive"].format(
                            label=s.label,
                            value=_signed(p.value, panel.decimals, [t.value for t in panel.thresholds]),
                            when=p.when.isoformat(),
                        )
                    )
    dated = [e for e in model.events if e.when is not None]
    if dated:
        items = "; ".join(f"{e.label} ({e.when.isoformat() if e.when else ''})" for e in dated)
        parts.append(words["desc_events"].format(count=len(dated), items=items))
    parts.extend(model.notes)
    return " ".join(parts) or words["empty"]


# --- geometry ----------------------------------------------------------------------------------------

WIDTH = 790
PLOT_LEFT = 56
PLOT_RIGHT = 580  # the bands' labels go right of the plot
TITLE_HEIGHT = 34
PANEL_TITLE = 22
PANEL_HEIGHT = 200
AXIS_SPACE = 26
EVENTS_MARKERS = 46
LABEL_ROW = 16
MAX_LABEL_ROWS = 6
LEGEND_ROW = 20
NOTE_ROW = 17
MARKER = 5.5


@dataclass(frozen=True)
class LinearScale:
    """Values → y: `lo` at `bottom`, `hi` at `top` (SVG y grows downwards)."""

    lo: float
    hi: float
    bottom: float
    top: float

    def __call__(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)


@dataclass(frozen=True)
class TimeScale:
    start: date
    end: date
    left: float = PLOT_LEFT
    right: float = PLOT_RIGHT

    def __call__(self, day: date) -> float:
        span = max((self.end - self.start).days, 1)
        return self.left + (day - self.start).days / span * (self.right - self.left)


@dataclass(frozen=True)
class PanelBox:
    panel: ChartPanel
    top: float  # of the plot area (the title is above it)
    bottom: float
    y: LinearScale


@dataclass(frozen=True)
class ChartLayout:
    width: int
    height: int
    x: TimeScale | None  # None: nothing dated to draw
    panels: tuple[PanelBox, ...]
    events_top: float
    label_rows: Mapping[int, int]  # event index → label row (absent: no room for a label)
    legend_top: float
    legend_rows: int
    notes_top: float


def chart_layout(model: ChartModel) -> ChartLayout:
    dates = [p.when for panel in model.panels for s in panel.series for p in s.points]
    dates += [e.when for e in model.events if e.when is not None]
    x = _time_scale(dates) if dates else None
    top = float(TITLE_HEIGHT)
    boxes = []
    for panel in model.panels:
        plot_top = top + PANEL_TITLE
        plot_bottom = plot_top + PANEL_HEIGHT
        lo, hi = _value_domain(panel)
        boxes.append(PanelBox(panel, plot_top, plot_bottom, LinearScale(lo, hi, plot_bottom, plot_top)))
        top = plot_bottom + AXIS_SPACE
    events_top = top
    rows: dict[int, int] = {}
    dated = [(i, e) for i, e in enumerate(model.events) if e.when is not None]
    if dated and x is not None:
        rows = _label_rows([(i, x(e.when), e.label) for i, e in dated if e.when is not None])
        used_rows = max(rows.values(), default=-1) + 1
        top = events_top + PANEL_TITLE + EVENTS_MARKERS + used_rows * LABEL_ROW + AXIS_SPACE
    legend_items = _legend_items(model)
    legend_rows = _legend_row_count(legend_items) if legend_items else 0
    legend_top = top + 6
    notes_top = legend_top + legend_rows * LEGEND_ROW + 8
    height = notes_top + len(model.notes) * NOTE_ROW + 10
    if not model.panels and not dated:
        height = max(height, TITLE_HEIGHT + 40)
    return ChartLayout(
        width=WIDTH,
        height=math.ceil(height),
        x=x,
        panels=tuple(boxes),
        events_top=events_top,
        label_rows=rows,
        legend_top=legend_top,
        legend_rows=legend_rows,
        notes_top=notes_top,
    )


def _time_scale(dates: Sequence[date]) -> TimeScale:
    first, last = min(dates), max(dates)
    pad = max(timedelta(days=90), (last - first) * 0.05)
    return TimeScale(first - pad, last + pad)


def _value_domain(panel: ChartPanel) -> tuple[float, float]:
    lo, hi = panel.domain
    values = [p.value for s in panel.series for p in s.points]
    step = panel.tick_step
    if values:
        lo = min(lo, math.floor((min(values) - step / 2) / step) * step)
        hi = max(hi, math.ceil((max(values) + step / 2) / step) * step)
    return lo, hi


def _text_width(text: str, size: float = 12) -> float:
    """A rough width, enough to keep labels apart (CJK characters are about twice as wide)."""
    return sum(size if ord(c) > 0x2E80 else size * 0.6 for c in text)


def _label_rows(items: Sequence[tuple[int, float, str]]) -> dict[int, int]:
    """Greedy rows for event labels so that none overlap; labels that find no row are left out."""
    ends: list[float] = []
    rows: dict[int, int] = {}
    for index, x, label in sorted(items, key=lambda item: item[1]):
        start = _label_start(x, label)
        for row, end in enumerate(ends):
            if start > end + 10:
                ends[row] = start + _text_width(label)
                rows[index] = row
                break
        else:
            if len(ends) < MAX_LABEL_ROWS:
                ends.append(start + _text_width(label))
                rows[index] = len(ends) - 1
    return rows


def _label_start(x: float, label: str) -> float:
    return max(4.0, min(x - 6, WIDTH - 8 - _text_width(label)))


def _time_ticks(scale: TimeScale) -> list[tuple[date, str]]:
    years = (scale.end - scale.start).days / 365.25
    if years <= 2.5:
        ticks = []
        month = date(scale.start.year, scale.start.month, 1)
        while month <= scale.end:
            if month >= scale.start and month.month in (1, 4, 7, 10):
                ticks.append(
                    (month, str(month.year) if month.month == 1 else f"{month.year}-{month.month:02d}")
                )
            month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        return ticks
    step = next(s for s in (1, 2, 5, 10, 20, 50) if years / s <= 10)
    first = scale.start.year + 1
    first += (-first) % step
    return [
        (date(y, 1, 1), str(y)) for y in range(first, scale.end.year + 1, step) if date(y, 1, 1) <= scale.end
    ]


def _value_ticks(y: LinearScale, step: float) -> list[float]:
    first = math.ceil(y.lo / step) * step
    count = round((y.hi - first) / step) + 1
    return [round(first + i * step, 6) for i in range(count) if first + i * step <= y.hi + 1e-9]


# --- SVG ---------------------------------------------------------------------------------------------

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(text: object) -> str:
    """XML text or attribute value: escaped, characters XML 1.0 forbids removed."""
    return html.escape(_INVALID_XML.sub("", str(text)), quote=True)


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _signed(value: float, decimals: int, boundaries: Sequence[float] = ()) -> str:
    """A number as the cards show it (never rounded across a category boundary), with a real minus
    sign (−), as in print."""
    return faithful(value, decimals, boundaries).replace("-", "−")


def _tag(name: str, attrs: Mapping[str, object], content: str | None = None) -> str:
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items() if v is not None
    )
    if content is None:
        return f"<{name}{rendered}/>"
    return f"<{name}{rendered}>{content}</{name}>"


def _text(x: float, y: float, text: str, **attrs: object) -> str:
    base: dict[str, object] = {"x": _n(x), "y": _n(y), "font_size": 12, "fill": "#222222"}
    base.update(attrs)
    return _tag("text", base, _esc(text))


def render_svg(model: ChartModel) -> str:
    """The chart as a standalone SVG document (also valid inline in HTML)."""
    layout = chart_layout(model)
    p = ID_PREFIX
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}" '
        f'viewBox="0 0 {layout.width} {layout.height}" role="img" lang="{_esc(model.language)}" '
        f'aria-labelledby="{p}-title {p}-desc" font-family="{_esc(FONT)}" class="osteo-chart">',
        _tag("title", {"id": f"{p}-title"}, _esc(model.title)),
        _tag("desc", {"id": f"{p}-desc"}, _esc(model.description)),
        _defs(),
        _tag("rect", {"x": 0, "y": 0, "width": layout.width, "height": layout.height, "fill": "#ffffff"}),
        _text(PLOT_LEFT, 22, model.title, font_size=16, font_weight="bold", class_="chart-title"),
    ]
    if layout.x is None:
        out.append(_text(PLOT_LEFT, TITLE_HEIGHT + 22, model.words["empty"], class_="chart-empty"))
    else:
        for box in layout.panels:
            out.append(_panel(box, layout.x, model))
        if any(e.when is not None for e in model.events):
            out.append(_events_lane(model, layout, layout.x))
    out.append(_legend(model, layout))
    for i, note in enumerate(model.notes):
        out.append(_text(PLOT_LEFT, layout.notes_top + 12 + i * NOTE_ROW, note, class_="chart-note"))
    out.append("</svg>")
    return "\n".join(out)


def _defs() -> str:
    """Band fills: patterns, so that the bands read in black-and-white print too."""
    p = ID_PREFIX
    return (
        "<defs>"
        f'<pattern id="{p}-hatch" patternUnits="userSpaceOnUse" width="7" height="7" '
        'patternTransform="rotate(45)">'
        '<rect width="7" height="7" fill="#fbe4e1"/>'
        '<line x1="0" y1="0" x2="0" y2="7" stroke="#9a4a44" stroke-width="1.6" stroke-opacity="0.45"/>'
        "</pattern>"
        f'<pattern id="{p}-dots" patternUnits="userSpaceOnUse" width="8" height="8">'
        '<rect width="8" height="8" fill="#fdf3d6"/>'
        '<circle cx="4" cy="4" r="1.1" fill="#7a6420" fill-opacity="0.55"/>'
        "</pattern>"
        f'<pattern id="{p}-plain" patternUnits="userSpaceOnUse" width="8" height="8">'
        '<rect width="8" height="8" fill="#eef6ee"/>'
        "</pattern>"
        "</defs>"
    )


def _panel(box: PanelBox, x: TimeScale, model: ChartModel) -> str:
    panel, y = box.panel, box.y
    out = [f'<g class="panel" id="{ID_PREFIX}-panel-{_esc(panel.key)}" data-panel="{_esc(panel.key)}">']
    out.append(
        _text(PLOT_LEFT, box.top - 8, panel.title, font_size=13.5, font_weight="bold", class_="panel-title")
    )
    for band in panel.bands:
        upper = y.hi if band.upper is None else min(band.upper, y.hi)
        lower = y.lo if band.lower is None else max(band.lower, y.lo)
        if upper <= lower:
            continue
        top, bottom = y(upper), y(lower)
        out.append(
            _tag(
                "rect",
                {
                    "class": f"band band-{band.key}",
                    "id": f"{ID_PREFIX}-{panel.key}-band-{band.key}",
                    "x": PLOT_LEFT,
                    "y": _n(top),
                    "width": PLOT_RIGHT - PLOT_LEFT,
                    "height": _n(bottom - top),
                    "fill": f"url(#{ID_PREFIX}-{band.pattern})",
                },
            )
        )
        middle = (top + bottom) / 2
        out.append(_text(PLOT_RIGHT + 44, middle - 2, band.label, font_weight="bold", class_="band-label"))
        out.append(_text(PLOT_RIGHT + 44, middle + 13, band.rule, font_size=11.5, class_="band-rule"))
    # value grid and axis
    for value in _value_ticks(y, panel.tick_step):
        out.append(
            _tag(
                "line",
                {
                    "x1": PLOT_LEFT,
                    "x2": PLOT_RIGHT,
                    "y1": _n(y(value)),
                    "y2": _n(y(value)),
                    "stroke": "#ffffff",
                    "stroke_opacity": 0.9,
                    "stroke_width": 0.8,
                },
            )
        )
        label = _signed(value, 0 if panel.tick_step >= 1 and value == int(value) else 1)
        out.append(
            _text(PLOT_LEFT - 6, y(value) + 4, label, text_anchor="end", font_size=11.5, class_="tick")
        )
    for day, _label in _time_ticks(x):
        out.append(
            _tag(
                "line",
                {
                    "x1": _n(x(day)),
                    "x2": _n(x(day)),
                    "y1": _n(box.top),
                    "y2": _n(box.bottom),
                    "stroke": "#ffffff",
                    "stroke_opacity": 0.9,
                    "stroke_width": 0.8,
                },
            )
        )
    for threshold in panel.thresholds:
        ty = y(threshold.value)
        out.append(
            _tag(
                "line",
                {
                    "class": "threshold",
                    "id": f"{ID_PREFIX}-{panel.key}-threshold-{threshold.key}",
                    "data_value": threshold.value,
                    "x1": PLOT_LEFT,
                    "x2": PLOT_RIGHT,
                    "y1": _n(ty),
                    "y2": _n(ty),
                    "stroke": "#222222",
                    "stroke_width": 1.4,
                    "stroke_dasharray": "6 3",
                },
            )
        )
        out.append(
            _text(PLOT_RIGHT + 6, ty + 4, threshold.label, font_weight="bold", class_="threshold-label")
        )
    out.append(
        _tag(
            "rect",
            {
                "x": PLOT_LEFT,
                "y": _n(box.top),
                "width": PLOT_RIGHT - PLOT_LEFT,
                "height": _n(box.bottom - box.top),
                "fill": "none",
                "stroke": "#444444",
                "stroke_width": 1,
            },
        )
    )
    out.append(_time_axis(x, box.bottom))
    # fractures: a faint vertical line through the panel, to read BMD against them
    for event in model.events:
        if event.when is not None and event.kind != "spine-imaging":
            fx = _n(x(event.when))
            out.append(
                _tag(
                    "line",
                    {
                        "class": "fracture-guide",
                        "x1": fx,
                        "x2": fx,
                        "y1": _n(box.top),
                        "y2": _n(box.bottom),
                        "stroke": "#7a1f1f",
                        "stroke_width": 1,
                        "stroke_dasharray": "2 3",
                    },
                )
            )
    labelled = sum(len(s.points) for s in panel.series) <= 24
    placed = _placements(panel, x, y, labelled)
    for index, series in enumerate(panel.series):
        out.append(_series(index, series, panel, placed, model.words))
    out.append("</g>")
    return "".join(out)


def _time_axis(x: TimeScale, y: float) -> str:
    out = []
    for day, label in _time_ticks(x):
        out.append(
            _tag(
                "line",
                {"x1": _n(x(day)), "x2": _n(x(day)), "y1": _n(y), "y2": _n(y + 4), "stroke": "#444444"},
            )
        )
        out.append(_text(x(day), y + 16, label, text_anchor="middle", font_size=11.5, class_="tick"))
    return "".join(out)


DODGE = 8.0  # px between series that share a date, so that no marker hides another
LABEL_GAP = 12.0
LABEL_ROOM = 110.0  # the widest value label, "−2.75 (diagnosis)" or "诊断依据"


@dataclass(frozen=True)
class _Placed:
    x: float
    y: float
    label_x: float | None  # None: no value label
    label_y: float


def _placements(
    panel: ChartPanel, x: TimeScale, y: LinearScale, labelled: bool
) -> dict[tuple[int, int], _Placed]:
    """Where each point and its value label go: series dodged sideways when they share a date,
    labels of one date stacked so that they do not overlap."""
    days: dict[date, set[int]] = {}
    for i, s in enumerate(panel.series):
        for p in s.points:
            days.setdefault(p.when, set()).add(i)
    crowded = any(len(series) > 1 for series in days.values())
    count = len(panel.series)
    spots: dict[tuple[int, int], tuple[float, float]] = {}
    for i, s in enumerate(panel.series):
        offset = (i - (count - 1) / 2) * DODGE if crowded else 0.0
        for j, p in enumerate(s.points):
            spots[(i, j)] = (x(p.when) + offset, y(p.value))
    placed: dict[tuple[int, int], _Placed] = {}
    by_day: dict[date, list[tuple[int, int]]] = {}
    for (i, j), _spot in spots.items():
        by_day.setdefault(panel.series[i].points[j].when, []).append((i, j))
    for keys in by_day.values():
        shown = [k for k in keys if labelled or panel.series[k[0]].points[k[1]].used]
        right = max(spots[k][0] for k in keys) + 13
        # near the right edge the labels go left of the points (a negative x means "anchored at its end")
        label_x = right if right + LABEL_ROOM < PLOT_RIGHT else -(min(spots[k][0] for k in keys) - 13)
        last = -math.inf
        for key in sorted(shown, key=lambda k: spots[k][1]):
            label_y = max(spots[key][1] + 4, last + LABEL_GAP)
            last = label_y
            placed[key] = _Placed(spots[key][0], spots[key][1], label_x, label_y)
        for key in keys:
            if key not in placed:
                placed[key] = _Placed(spots[key][0], spots[key][1], None, 0.0)
    return placed


def _series(
    index: int,
    series: ChartSeries,
    panel: ChartPanel,
    placed: Mapping[tuple[int, int], _Placed],
    words: Mapping[str, str],
) -> str:
    out = [
        f'<g class="series" data-series="{_esc(series.key)}" data-shape="{series.shape}">',
        _tag("title", {}, _esc(series.label)),
    ]
    spots = [placed[(index, j)] for j in range(len(series.points))]
    if series.connect and len(series.points) > 1:
        coords = " ".join(f"{_n(spot.x)},{_n(spot.y)}" for spot in spots)
        out.append(
            _tag(
                "polyline",
                {
                    "points": coords,
                    "fill": "none",
                    "stroke": series.colour,
                    "stroke_width": 1.8,
                    "stroke_dasharray": series.dash,
                    "class": "series-line",
                },
            )
        )
    for point, spot in zip(series.points, spots, strict=True):
        px, py = spot.x, spot.y
        value = _signed(point.value, panel.decimals, [t.value for t in panel.thresholds])
        classes = "point" + (" used" if point.used else "") + (" decisive" if point.decisive else "")
        tooltip = f"{series.label} {value} · {point.when.isoformat()} · {', '.join(point.sources)}"
        out.append(
            f'<g class="{classes}" data-date="{point.when.isoformat()}" data-value="{_esc(point.value)}" '
            f'data-source="{_esc(" ".join(point.sources))}">'
        )
        out.append(_tag("title", {}, _esc(tooltip)))
        if point.used and not point.context:
            out.append(_ring("used-ring", px, py, 10, 2))
        if point.decisive:
            out.append(_ring("decisive-ring", px, py, 14, 1.5))
        size = MARKER * (0.7 if point.context else 1)
        fill = "#ffffff" if point.context else series.colour
        out.append(
            _shape(series.shape, px, py, size, fill, "#000000" if not point.context else series.colour)
        )
        if spot.label_x is not None:
            text = f"{point.note} {value}" if point.note and point.context else value
            if point.decisive:
                text = f"{text} ({words['decisive_label']})"
            out.append(
                _text(
                    abs(spot.label_x),
                    spot.label_y,
                    text,
                    text_anchor="end" if spot.label_x < 0 else None,
                    font_size=11.5 if point.decisive else 11,
                    font_weight="bold" if point.decisive else None,
                    fill="#111111" if point.decisive else "#333333",
                    stroke="#ffffff",
                    stroke_width=3,
                    paint_order="stroke",
                    stroke_linejoin="round",
                    class_="decisive-label" if point.decisive else "point-label",
                )
            )
        out.append("</g>")
    out.append("</g>")
    return "".join(out)


def _ring(name: str, cx: float, cy: float, r: float, width: float) -> str:
    attrs = {"class": name, "cx": _n(cx), "cy": _n(cy), "r": r, "fill": "none", "stroke": "#000000"}
    return _tag("circle", {**attrs, "stroke_width": width})


def _shape(shape: str, cx: float, cy: float, r: float, fill: str, stroke: str) -> str:
    common: dict[str, object] = {
        "fill": fill,
        "stroke": stroke,
        "stroke_width": 1.2,
        "class": f"marker marker-{shape}",
    }
    if shape == "circle":
        return _tag("circle", {"cx": _n(cx), "cy": _n(cy), "r": _n(r), **common})
    if shape == "square":
        side = r * 1.75
        return _tag(
            "rect",
            {"x": _n(cx - side / 2), "y": _n(cy - side / 2), "width": _n(side), "height": _n(side), **common},
        )
    if shape == "triangle":
        pts = [(cx, cy - r * 1.25), (cx + r * 1.15, cy + r * 0.8), (cx - r * 1.15, cy + r * 0.8)]
    elif shape == "triangle-down":
        pts = [(cx, cy + r * 1.25), (cx + r * 1.15, cy - r * 0.8), (cx - r * 1.15, cy - r * 0.8)]
    elif shape == "diamond":
        pts = [(cx, cy - r * 1.35), (cx + r * 1.1, cy), (cx, cy + r * 1.35), (cx - r * 1.1, cy)]
    elif shape == "star":
        pts = [
            (
                cx + (r * 1.5 if i % 2 == 0 else r * 0.65) * math.sin(i * math.pi / 5),
                cy - (r * 1.5 if i % 2 == 0 else r * 0.65) * math.cos(i * math.pi / 5),
            )
            for i in range(10)
        ]
    elif shape == "film":
        return _tag(
            "rect",
            {
                "x": _n(cx - r * 1.3),
                "y": _n(cy - r * 0.9),
                "width": _n(r * 2.6),
                "height": _n(r * 1.8),
                "rx": 1.5,
                **common,
            },
        )
    else:  # cross
        a, b, c, e = _n(cx - r), _n(cy - r), _n(cx + r), _n(cy + r)
        d = f"M{a},{b} L{c},{e} M{c},{b} L{a},{e}"
        return _tag(
            "path",
            {
                "d": d,
                "fill": "none",
                "stroke": fill if fill != "#ffffff" else stroke,
                "stroke_width": 2.6,
                "class": "marker marker-cross",
            },
        )
    return _tag("polygon", {"points": " ".join(f"{_n(a)},{_n(b)}" for a, b in pts), **common})


_EVENT_SHAPE: dict[str, tuple[str, str, str]] = {
    # kind → (shape, fill, stroke)
    "fragility-fracture": ("star", "#7a1f1f", "#000000"),
    "fracture": ("star", "#ffffff", "#7a1f1f"),
    "spine-imaging": ("film", "#d9d9d9", "#000000"),
}


def _events_lane(model: ChartModel, layout: ChartLayout, x: TimeScale) -> str:
    top = layout.events_top
    lane_top = top + PANEL_TITLE
    fracture_y = lane_top + 12
    imaging_y = lane_top + 32
    label_top = imaging_y + 12 + 32  # below the time axis and its tick labels
    out = [
        f'<g class="events" id="{ID_PREFIX}-events">',
        _text(
            PLOT_LEFT,
            top + 14,
            model.words["events_panel"],
            font_size=13.5,
            font_weight="bold",
            class_="panel-title",
        ),
        _tag(
            "line",
            {
                "x1": PLOT_LEFT,
                "x2": PLOT_RIGHT,
                "y1": _n(imaging_y + 12),
                "y2": _n(imaging_y + 12),
                "stroke": "#444444",
                "stroke_width": 1,
            },
        ),
        _time_axis(x, imaging_y + 12),
    ]
    for index, event in enumerate(model.events):
        if event.when is None:
            continue
        ex = x(event.when)
        ey = imaging_y if event.kind == "spine-imaging" else fracture_y
        shape, fill, stroke = _EVENT_SHAPE[event.kind]
        out.append(
            f'<g class="event event-{event.kind}" data-kind="{event.kind}" '
            f'data-date="{event.when.isoformat()}" data-source="{_esc(event.source)}">'
        )
        out.append(_tag("title", {}, _esc(f"{event.label} · {event.when.isoformat()} · {event.source}")))
        out.append(_shape(shape, ex, ey, MARKER, fill, stroke))
        row = layout.label_rows.get(index)
        if row is not None:
            ly = label_top + row * LABEL_ROW
            out.append(
                _tag(
                    "line",
                    {
                        "x1": _n(ex),
                        "x2": _n(ex),
                        "y1": _n(ey + 8),
                        "y2": _n(ly - 10),
                        "stroke": "#888888",
                        "stroke_width": 0.8,
                        "stroke_dasharray": "1 2",
                    },
                )
            )
            out.append(
                _text(_label_start(ex, event.label), ly, event.label, font_size=12, class_="event-label")
            )
        out.append("</g>")
    out.append("</g>")
    return "".join(out)


@dataclass(frozen=True)
class _LegendItem:
    shape: str
    fill: str
    stroke: str
    label: str
    ring: int = 0  # 1: used ring, 2: decisive double ring


def _legend_items(model: ChartModel) -> list[_LegendItem]:
    items: list[_LegendItem] = []
    seen: set[str] = set()
    for panel in model.panels:
        for s in panel.series:
            if s.label in seen:
                continue
            seen.add(s.label)
            if s.connect:
                items.append(_LegendItem(s.shape, s.colour, "#000000", s.label))
            else:
                items.append(_LegendItem(s.shape, "#ffffff", s.colour, s.label))
    points = [p for panel in model.panels for s in panel.series for p in s.points]
    if any(p.used for p in points):
        items.append(_LegendItem("circle", "#ffffff", "#000000", model.words["legend_used"], ring=1))
    if any(p.decisive for p in points):
        items.append(_LegendItem("circle", "#ffffff", "#000000", model.words["legend_decisive"], ring=2))
    kinds = {e.kind for e in model.events if e.when is not None}
    example = {
        "fragility-fracture": model.words["fragility_fracture"].format(site="…"),
        "fracture": model.words["fracture_not_counted"].format(reason="…", site="…"),
        "spine-imaging": model.words["spine_imaging"].format(parts="…"),
    }
    for kind in ("fragility-fracture", "fracture", "spine-imaging"):
        if kind in kinds:
            shape, fill, stroke = _EVENT_SHAPE[kind]
            items.append(_LegendItem(shape, fill, stroke, example[kind]))
    return items


def _legend_positions(items: Sequence[_LegendItem]) -> list[tuple[float, int]]:
    """(x, row) of each legend item, flowing left to right."""
    positions: list[tuple[float, int]] = []
    x, row = float(PLOT_LEFT), 0
    for item in items:
        width = 26 + _text_width(item.label) + 18
        if x + width > WIDTH - 10 and x > PLOT_LEFT:
            x, row = float(PLOT_LEFT), row + 1
        positions.append((x, row))
        x += width
    return positions


def _legend_row_count(items: Sequence[_LegendItem]) -> int:
    return max((row for _, row in _legend_positions(items)), default=-1) + 1


def _legend(model: ChartModel, layout: ChartLayout) -> str:
    items = _legend_items(model)
    if not items:
        return ""
    out = [f'<g class="legend" id="{ID_PREFIX}-legend">']
    for item, (lx, row) in zip(items, _legend_positions(items), strict=True):
        cy = layout.legend_top + 10 + row * LEGEND_ROW
        cx = lx + 10
        out.append('<g class="legend-item">')
        if item.ring:
            out.append(
                _tag(
                    "circle",
                    {
                        "cx": _n(cx),
                        "cy": _n(cy),
                        "r": 7,
                        "fill": "none",
                        "stroke": "#000000",
                        "stroke_width": 2,
                    },
                )
            )
            if item.ring == 2:
                out.append(
                    _tag(
                        "circle",
                        {
                            "cx": _n(cx),
                            "cy": _n(cy),
                            "r": 9.5,
                            "fill": "none",
                            "stroke": "#000000",
                            "stroke_width": 1.2,
                        },
                    )
                )
        else:
            out.append(_shape(item.shape, cx, cy, MARKER, item.fill, item.stroke))
        out.append(_text(lx + 24, cy + 4, item.label, class_="legend-label"))
        out.append("</g>")
    out.append("</g>")
    return "".join(out)
