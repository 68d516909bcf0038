"""The chart SVG: DXA-3 / QCT-2 lines at their y, points in date order, markers, highlighting, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

import pytest

from cds_service.preview.chart import (
    Band,
    ChartEvent,
    ChartModel,
    ChartPanel,
    ChartPoint,
    ChartSeries,
    Threshold,
    chart_layout,
    patient_chart_model,
    render_svg,
)
from cds_service.preview.texts import preview_texts
from tests.builders import (
    bundle,
    local,
    make_settings,
    observation,
    patient,
    qct,
    t_score,
    z_score,
)

SVG = "{http://www.w3.org/2000/svg}"
Resource = dict[str, Any]


def report(conclusion: str, when: str, id: str, loinc: str = "24984-7") -> Resource:
    """An imaging DiagnosticReport (default: XR thoracic and lumbar spine, 2 views)."""
    return {
        "resourceType": "DiagnosticReport",
        "id": id,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": when,
        "conclusion": conclusion,
    }


def older_woman() -> list[Resource]:
    """DXA in 2019, 2021 and 2024, lumbar QCT L1/L2 in 2023, a T12 fracture on a spine radiograph in 2025."""
    return [
        patient(birth_date="1950-03-01"),
        t_score(-1.8, when="2019-05-01", id="lumbar-2019"),
        t_score(-2.2, loinc="38263-0", when="2019-05-01", id="neck-2019"),
        t_score(-2.0, when="2024-01-10", id="lumbar-2024"),
        t_score(-2.8, loinc="38263-0", when="2024-01-10", id="neck-2024"),
        t_score(-2.4, loinc="38264-8", when="2024-01-10", id="hip-2024"),
        t_score(-1.5, when="2021-08-15", id="lumbar-2021"),
        qct(95.0, vertebra="L1", when="2023-03-01", id="qct-l1"),
        qct(85.0, vertebra="L2", when="2023-03-01", id="qct-l2"),
        report("胸腰椎正侧位：T12椎体压缩骨折。", "2025-02-03", id="xr-2025"),
    ]


def model_of(resources: list[Resource], language: str = "en", **changes: Any) -> ChartModel:
    return patient_chart_model(resources, "p1", make_settings(**changes), language)


def svg_of(resources: list[Resource], language: str = "en") -> ET.Element:
    return ET.fromstring(render_svg(model_of(resources, language)))


def by_id(root: ET.Element, ident: str) -> ET.Element:
    found = [e for e in root.iter() if e.get("id") == ident]
    assert len(found) == 1, f"{ident}: {len(found)} elements"
    return found[0]


def with_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def panel_box(model: ChartModel, key: str) -> Any:
    return next(box for box in chart_layout(model).panels if box.panel.key == key)


# --- thresholds and bands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("panel", "threshold", "value"),
    [
        pytest.param("t-score", "normal", -1.0, id="DXA-3 T=-1.0 line at its y"),
        pytest.param("t-score", "osteoporosis", -2.5, id="DXA-3 T=-2.5 line at its y"),
        pytest.param("qct", "normal", 120.0, id="QCT-2 120 mg/cm3 line at its y"),
        pytest.param("qct", "osteoporosis", 80.0, id="QCT-2 80 mg/cm3 line at its y"),
    ],
)
def test_threshold_lines_sit_at_the_scale_value(panel: str, threshold: str, value: float) -> None:
    model = model_of(older_woman())
    root = ET.fromstring(render_svg(model))
    line = by_id(root, f"osteo-chart-{panel}-threshold-{threshold}")
    scale = panel_box(model, panel).y
    assert "threshold" in line.get("class", "").split()
    assert float(line.get("data-value", "nan")) == value
    assert float(line.get("y1", "nan")) == pytest.approx(scale(value), abs=0.01)
    assert float(line.get("y2", "nan")) == pytest.approx(scale(value), abs=0.01)


def test_normal_line_is_above_the_osteoporosis_line() -> None:
    root = svg_of(older_woman())
    for panel in ("t-score", "qct"):
        normal = float(by_id(root, f"osteo-chart-{panel}-threshold-normal").get("y1", "nan"))
        osteoporosis = float(by_id(root, f"osteo-chart-{panel}-threshold-osteoporosis").get("y1", "nan"))
        assert normal < osteoporosis  # SVG y grows downwards


@pytest.mark.parametrize(
    ("panel", "band", "lower", "upper"),
    [
        pytest.param("t-score", "normal", -1.0, None, id="DXA-3 normal band from -1.0 up"),
        pytest.param("t-score", "low", -2.5, -1.0, id="DXA-3 low bone mass band -2.5 to -1.0"),
        pytest.param("t-score", "osteoporosis", None, -2.5, id="DXA-3 osteoporosis band up to -2.5"),
        pytest.param("qct", "normal", 120.0, None, id="QCT-2 normal band above 120"),
        pytest.param("qct", "low", 80.0, 120.0, id="QCT-2 low bone mass band 80-120"),
        pytest.param("qct", "osteoporosis", None, 80.0, id="QCT-2 osteoporosis band below 80"),
    ],
)
def test_bands_are_shaded_between_their_thresholds(
    panel: str, band: str, lower: float | None, upper: float | None
) -> None:
    model = model_of(older_woman())
    root = ET.fromstring(render_svg(model))
    rect = by_id(root, f"osteo-chart-{panel}-band-{band}")
    scale = panel_box(model, panel).y
    top = float(rect.get("y", "nan"))
    bottom = top + float(rect.get("height", "nan"))
    assert top == pytest.approx(scale(upper if upper is not None else scale.hi), abs=0.01)
    assert bottom == pytest.approx(scale(lower if lower is not None else scale.lo), abs=0.01)
    assert rect.get("fill", "").startswith("url(#osteo-chart-")  # a pattern: readable in black and white


def test_bands_are_labelled_in_words_and_rules() -> None:
    words = texts(svg_of(older_woman()))
    for label in (
        "Normal",
        "Low bone mass",
        "Osteoporosis",
        "T ≤ −2.5",
        "T ≥ −1.0",
        "< 80",
        "80–120",
        "> 120",
    ):
        assert label in words


def test_osteoporosis_and_low_bands_have_different_patterns() -> None:
    root = svg_of(older_woman())
    fills = {
        by_id(root, f"osteo-chart-t-score-band-{b}").get("fill") for b in ("normal", "low", "osteoporosis")
    }
    assert len(fills) == 3


def test_a_value_on_the_boundary_is_drawn_on_the_line() -> None:
    resources = [patient(), t_score(-2.5, id="on-the-line")]
    model = model_of(resources)
    root = ET.fromstring(render_svg(model))
    line_y = float(by_id(root, "osteo-chart-t-score-threshold-osteoporosis").get("y1", "nan"))
    point = next(g for g in with_class(root, "point") if g.get("data-source") == "Observation/on-the-line")
    marker = next(e for e in point.iter(f"{SVG}circle") if "marker" in (e.get("class") or ""))
    assert float(marker.get("cy", "nan")) == pytest.approx(line_y, abs=0.01)


def test_labels_never_round_a_value_across_a_boundary() -> None:
    words = texts(svg_of([patient(), t_score(-2.46)]))
    assert "−2.46 (diagnosis)" in words  # −2.5 would read as osteoporosis


# --- points -----------------------------------------------------------------------------------------


def series_points(root: ET.Element, key: str) -> list[ET.Element]:
    group = next(g for g in with_class(root, "series") if g.get("data-series") == key)
    return [g for g in group if "point" in (g.get("class") or "").split()]


def marker_x(point: ET.Element) -> float:
    marker = next(e for e in point.iter() if "marker" in (e.get("class") or "").split())
    if marker.tag == f"{SVG}circle":
        return float(marker.get("cx", "nan"))
    if marker.tag == f"{SVG}rect":
        return float(marker.get("x", "nan")) + float(marker.get("width", "nan")) / 2
    xs = [float(p.split(",")[0]) for p in marker.get("points", "").split()]
    return (min(xs) + max(xs)) / 2


def test_points_are_in_date_order_left_to_right() -> None:
    # the resources are deliberately not in date order
    root = svg_of(older_woman())
    points = series_points(root, "lumbar-spine")
    dates = [p.get("data-date") for p in points]
    assert dates == ["2019-05-01", "2021-08-15", "2024-01-10"]
    xs = [marker_x(p) for p in points]
    assert xs == sorted(xs) and len(set(xs)) == 3


def test_the_series_line_joins_the_points_in_date_order() -> None:
    root = svg_of(older_woman())
    group = next(g for g in with_class(root, "series") if g.get("data-series") == "lumbar-spine")
    line = next(e for e in group if e.tag == f"{SVG}polyline")
    xs = [float(pair.split(",")[0]) for pair in line.get("points", "").split()]
    assert xs == sorted(xs)


def test_each_region_has_its_own_shape() -> None:
    root = svg_of(older_woman())
    shapes = {g.get("data-series"): g.get("data-shape") for g in with_class(root, "series")}
    assert shapes["lumbar-spine"] == "circle"
    assert shapes["femoral-neck"] == "square"
    assert shapes["total-hip"] == "triangle"
    dxa = [shapes[k] for k in ("lumbar-spine", "femoral-neck", "total-hip")]
    assert len(set(dxa)) == 3


def test_forearm_is_a_diamond_and_an_unstated_region_a_cross() -> None:
    forearm = observation(code=local("dxa-t-forearm"), value=-2.0, unit_code="{T-score}", id="r33")
    unstated = observation(code=local("dxa-t-unspecified"), value=-1.2, unit_code="{T-score}", id="t")
    root = svg_of([patient(), forearm, unstated])
    shapes = {g.get("data-series"): g.get("data-shape") for g in with_class(root, "series")}
    assert shapes == {"forearm": "diamond", "unspecified": "cross"}


def test_qct_shows_the_qct1_mean_and_the_vertebrae() -> None:
    root = svg_of(older_woman())
    means = series_points(root, "qct-mean")
    assert [float(p.get("data-value", "nan")) for p in means] == [90.0]
    vertebrae = series_points(root, "qct-vertebra")
    assert sorted(float(p.get("data-value", "nan")) for p in vertebrae) == [85.0, 95.0]


def test_a_fractured_vertebra_is_left_out_of_the_qct_mean() -> None:
    resources = [r for r in older_woman() if r["id"] != "xr-2025"]
    resources.append(report("胸腰椎正侧位：L1椎体压缩骨折。", "2025-02-03", id="xr-l1"))
    root = svg_of(resources)
    # QCT-1: L1 left out, one vertebra left: no QCT-1 value, the vertebrae shown as context only
    assert not [g for g in with_class(root, "series") if g.get("data-series") == "qct-mean"]
    assert len(series_points(root, "qct-vertebra")) == 2


def test_the_diagnosis_measurements_are_highlighted() -> None:
    root = svg_of(older_woman())
    used = {(p.get("data-source"), p.get("data-date")) for p in with_class(root, "used")}
    # the latest DXA exam decided (DX-1); its three scores are counted, earlier exams are not
    assert ("Observation/neck-2024", "2024-01-10") in used
    assert ("Observation/lumbar-2024", "2024-01-10") in used
    assert ("Observation/lumbar-2019", "2019-05-01") not in used
    decisive = with_class(root, "decisive")
    assert [p.get("data-source") for p in decisive] == ["Observation/neck-2024"]  # the lowest T (DXA-1)
    assert with_class(decisive[0], "decisive-ring")


def test_z_scores_get_their_own_panel_with_the_pop3_line() -> None:
    resources = [patient(birth_date="1990-01-01"), z_score(-2.3, when="2024-01-10")]
    model = model_of(resources)
    root = ET.fromstring(render_svg(model))
    line = by_id(root, "osteo-chart-z-score-threshold-below")
    assert float(line.get("y1", "nan")) == pytest.approx(panel_box(model, "z-score").y(-2.0), abs=0.01)


def test_young_patients_are_told_the_t_bands_do_not_apply() -> None:
    resources = [patient(birth_date="1990-01-01"), t_score(-2.7, when="2024-01-10")]
    words = texts(svg_of(resources))
    assert any("POP-3" in w for w in words)


# --- events -----------------------------------------------------------------------------------------


def events(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in with_class(root, "event") if g.get("data-kind") == kind]


def test_fragility_fractures_are_marked_on_the_time_axis() -> None:
    root = svg_of(older_woman())
    fractures = events(root, "fragility-fracture")
    assert [f.get("data-date") for f in fractures] == ["2025-02-03"]
    assert any(e.tag == f"{SVG}polygon" for e in fractures[0].iter())  # a star, not a region shape
    assert any("Fragility fracture" in t for t in texts(root))
    assert with_class(root, "fracture-guide")  # the date carried through the BMD panels


def test_spine_imaging_is_marked_with_another_shape() -> None:
    root = svg_of(older_woman())
    imaging = events(root, "spine-imaging")
    assert [e.get("data-date") for e in imaging] == ["2025-02-03"]
    assert any(e.tag == f"{SVG}rect" for e in imaging[0].iter())
    assert any("Spine imaging" in t for t in texts(root))


def test_a_fracture_that_does_not_count_is_marked_and_says_why() -> None:
    resources = [
        patient(),
        t_score(-1.5),
        report("胸腰椎正侧位：L2椎体可疑压缩骨折。", "2024-06-01", "xr-doubt"),
    ]
    root = svg_of(resources)
    doubtful = events(root, "fracture")
    assert [e.get("data-date") for e in doubtful] == ["2024-06-01"]
    assert not events(root, "fragility-fracture")
    assert any("not counted" in t for t in texts(root))


def test_the_same_fracture_recorded_twice_on_a_day_is_one_marker() -> None:
    xr = report("胸腰椎正侧位：L1椎体压缩骨折。", "2025-02-03", "xr-a")
    again = report("胸腰椎正侧位：L1椎体压缩骨折。", "2025-02-03", "xr-b")
    root = svg_of([patient(), t_score(-2.0), xr, again])
    (fracture,) = events(root, "fragility-fracture")
    assert fracture.get("data-source") == "DiagnosticReport/xr-a, DiagnosticReport/xr-b"


# --- text, language, accessibility ----------------------------------------------------------------

HOSTILE = '<script>alert(1)</script>"><img src=x onerror="alert(2)"> & ]]> \x07'


def hostile_model() -> ChartModel:
    words = preview_texts("en")["chart"]
    point = ChartPoint(when=date(2024, 1, 10), value=-2.7, sources=(f"Observation/{HOSTILE}",), used=True)
    series = ChartSeries(HOSTILE, HOSTILE, "circle", '"red', None, (point,))
    panel = ChartPanel(
        key="t-score",
        title=HOSTILE,
        domain=(-4.0, 1.0),
        tick_step=1.0,
        bands=(Band("low", -2.5, -1.0, HOSTILE, HOSTILE, "dots"),),
        thresholds=(Threshold("osteoporosis", -2.5, HOSTILE),),
        series=(series,),
    )
    event = ChartEvent("fragility-fracture", date(2024, 2, 1), HOSTILE, HOSTILE)
    undated = ChartEvent("spine-imaging", None, HOSTILE, HOSTILE)
    return ChartModel("en", HOSTILE, (panel,), (event, undated), (HOSTILE,), words, HOSTILE)


def test_hostile_text_is_escaped() -> None:
    svg = render_svg(hostile_model())
    root = ET.fromstring(svg)  # well-formed XML: nothing broke out of a text or an attribute
    tags = {e.tag.removeprefix(SVG) for e in root.iter()}
    assert "script" not in tags and "img" not in tags
    assert not any(name.lower().startswith("on") for e in root.iter() for name in e.attrib)
    assert "<script>" not in svg and "<img" not in svg
    clean = HOSTILE.replace("\x07", "")
    assert clean in [t for t in texts(root)]  # shown as text, intact
    assert any(e.get("data-series") == clean for e in root.iter())


def test_hostile_ids_from_the_record_are_escaped() -> None:
    bad_id = '"><script>alert(1)</script>'
    resources = [patient(), t_score(-2.7, id=bad_id), report("L1椎体压缩骨折。", "2025-01-01", id=bad_id)]
    svg = render_svg(model_of(resources))
    root = ET.fromstring(svg)
    assert "<script>" not in svg
    assert any(p.get("data-source") == f"Observation/{bad_id}" for p in with_class(root, "point"))


def test_the_chart_has_a_title_and_a_description() -> None:
    root = svg_of(older_woman())
    assert root.get("role") == "img"
    title, desc = root[0], root[1]
    assert title.tag == f"{SVG}title" and desc.tag == f"{SVG}desc"
    assert set((root.get("aria-labelledby") or "").split()) == {title.get("id"), desc.get("id")}
    assert "femoral neck" in (desc.text or "") and "2024-01-10" in (desc.text or "")


def test_the_chart_speaks_chinese() -> None:
    words = texts(svg_of(older_woman(), language="zh-CN"))
    assert "骨质疏松" in words and "低骨量" in words
    assert any("脆性骨折" in w for w in words)
    assert not any("髌" in w for w in words)  # CONSENSUS-RULES.md errata: 髋, never 髌


def test_no_data_gives_a_small_valid_chart() -> None:
    root = svg_of([patient(), observation(loinc="8302-2", value=160, unit_code="cm")])
    assert any("No DXA or QCT results" in t for t in texts(root))
    assert not with_class(root, "panel")


def test_a_bundle_and_its_resources_chart_alike() -> None:
    # urn:uuid references (Synthea-style transaction Bundle) are resolved before the chart reads them
    from cds_service.facts.bundle import bundle_resources

    resources = older_woman()
    direct = render_svg(model_of(resources))
    via_bundle = render_svg(model_of(bundle_resources(bundle(*resources, urn=True))))
    assert direct == via_bundle


def test_z_scores_of_an_older_patient_are_not_charted() -> None:
    # POP-1: a postmenopausal woman is judged by T-scores; her Z-scores would only confuse the reader
    resources = [patient(birth_date="1950-03-01"), t_score(-1.8), z_score(-0.5)]
    root = svg_of(resources)
    assert [g.get("data-panel") for g in with_class(root, "panel")] == ["t-score"]


def test_peripheral_results_are_not_charted_and_the_chart_says_so() -> None:
    pdxa = observation(code=local("peripheral-bmd"), value=-2.9, unit_code="{T-score}", id="pdxa")
    root = svg_of([patient(), pdxa])
    assert not with_class(root, "panel")
    assert any("DX-4" in t for t in texts(root))
