"""bench/charts.py's imaging chart is what issue 12 describes: 60 resources, four cards, two ordering."""

from __future__ import annotations

import logging

import orjson

from bench.charts import imaging_chart
from bench.run import bench_settings, in_process_chart
from cds_service import engine
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES

FOUR_CARDS = {
    "osteoporosis-bmd",  # DX-1: femoral neck T -2.6
    "secondary-cause-workup",  # long-term glucocorticoids
    "qct-recommended",  # REC-QCT: scoliosis, spinal fusion
    "forearm-dxa-recommended",  # DXA-2: the lumbar spine is fused
}


def test_imaging_chart_gives_four_cards_two_with_service_requests() -> None:
    chart = imaging_chart()
    assert len(chart.resources) == 60
    reports = [r for r in chart.resources if r["resourceType"] == "DiagnosticReport"]
    assert len(reports) == 4 and all("椎" in r["conclusion"] for r in reports)
    cards = engine.evaluate(list(chart.resources), chart.patient_id, bench_settings()).response["cards"]
    ordering = [
        card["source"]["topic"]["code"]
        for card in cards
        if any(
            action.get("resource", {}).get("resourceType") == "ServiceRequest"
            for suggestion in card.get("suggestions", [])
            for action in suggestion.get("actions", [])
        )
    ]
    topics = [card["source"]["topic"]["code"] for card in cards]
    assert len(topics) == 4 and set(topics) == FOUR_CARDS
    assert sorted(ordering) == ["forearm-dxa-recommended", "qct-recommended"]


def test_imaging_chart_through_prefetch_gives_the_same_cards() -> None:
    logging.disable(logging.WARNING)
    try:
        chart = imaging_chart()
        request = chart.prefetch_request(PREFETCH_TEMPLATES)
        body = orjson.dumps(request)
        result = in_process_chart(chart, body, 1)
    finally:
        logging.disable(logging.NOTSET)
    prefetched = sum(
        len(value.get("entry", [])) if value.get("resourceType") == "Bundle" else 1
        for value in request["prefetch"].values()
        if value
    )
    # The query plan narrows Observations by code (and vitals to the recent past): the chart's labs are not
    # fetched, and the cards are those of the whole chart.
    assert 0 < result["resources"] <= prefetched < len(chart.resources)
    assert len(result["topics"]) == 4 and set(result["topics"]) == FOUR_CARDS
