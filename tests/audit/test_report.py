"""`osteo-cds feedback-report`: counts and rates per topic code, as table or CSV, and argument errors."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds_service.audit.feedback import parse_feedback
from cds_service.audit.report import CSV_HEADER, feedback_report_main
from cds_service.audit.store import AuditStore

SERVICE = "osteoporosis-patient-view"


def card_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:test:card:{name}"))


@pytest.fixture
def url(tmp_path: Path) -> str:
    """Four spine-radiograph cards (1 accepted, 2 overridden) and two QCT cards (1 accepted) in March 2024,
    and one normal-bmd card on 2024-04-01 with no feedback."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    march = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    spine = [(card_id(f"spine{i}"), "spine-radiograph-recommended") for i in range(4)]
    qct = [(card_id(f"qct{i}"), "qct-recommended") for i in range(2)]
    store.record_issued("hook-1", SERVICE, spine + qct, "0.1.0", issued_at=march)
    store.record_issued(
        "hook-2",
        SERVICE,
        [(card_id("later"), "normal-bmd")],
        "0.1.0",
        issued_at=datetime(2024, 4, 1, 3, tzinfo=UTC),
    )
    reason = {"system": "urn:osteo-cds:override-reason", "code": "patient-declined"}
    at = "2024-03-10T13:00:00Z"
    store.record_feedback(
        SERVICE,
        parse_feedback(
            {
                "feedback": [
                    {
                        "card": spine[0][0],
                        "outcome": "accepted",
                        "acceptedSuggestions": [{"id": "s"}],
                        "outcomeTimestamp": at,
                    },
                    {
                        "card": spine[1][0],
                        "outcome": "overridden",
                        "overrideReason": {"reason": reason},
                        "outcomeTimestamp": at,
                    },
                    {"card": spine[2][0], "outcome": "overridden", "outcomeTimestamp": at},
                    {
                        "card": qct[0][0],
                        "outcome": "accepted",
                        "acceptedSuggestions": [{"id": "s"}],
                        "outcomeTimestamp": at,
                    },
                ]
            }
        ),
    )
    store.dispose()
    return url


def run(argv: list[str], url: str, tz: str = "UTC") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = feedback_report_main(argv, url, tz=tz, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def csv_rows(argv: list[str], url: str, tz: str = "UTC") -> dict[str, dict[str, str]]:
    code, out, err = run([*argv, "--format", "csv"], url, tz)
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0].keys()) == CSV_HEADER
    return {row["topic_code"]: row for row in rows}


def test_csv_counts_and_rates(url: str) -> None:
    rows = csv_rows(["--since", "2024-03-01", "--until", "2024-03-31"], url)
    assert list(rows) == ["qct-recommended", "spine-radiograph-recommended", "total"]
    spine = rows["spine-radiograph-recommended"]
    assert (spine["issued"], spine["accepted"], spine["overridden"]) == ("4", "1", "2")
    assert (spine["acceptance_rate"], spine["override_rate"]) == ("0.2500", "0.5000")
    assert spine["top_override_reasons"] == "patient-declined (1)"
    qct = rows["qct-recommended"]
    assert (qct["acceptance_rate"], qct["override_rate"]) == ("0.5000", "0.0000")
    total = rows["total"]
    assert (total["issued"], total["accepted"], total["overridden"]) == ("6", "2", "2")
    assert (total["acceptance_rate"], total["override_rate"]) == ("0.3333", "0.3333")


def test_whole_history_by_default(url: str) -> None:
    rows = csv_rows([], url)
    assert rows["normal-bmd"]["issued"] == "1"
    assert (rows["normal-bmd"]["acceptance_rate"], rows["normal-bmd"]["override_rate"]) == (
        "0.0000",
        "0.0000",
    )
    assert rows["total"]["issued"] == "7"


def test_until_is_inclusive(url: str) -> None:
    assert "normal-bmd" in csv_rows(["--since", "2024-04-01", "--until", "2024-04-01"], url)
    assert "normal-bmd" not in csv_rows(["--until", "2024-03-31"], url)


def test_days_are_in_the_given_time_zone(url: str) -> None:
    # 2024-04-01T03:00Z is 11:00 in Shanghai but 2024-03-31 23:00 in New York.
    assert "normal-bmd" in csv_rows(["--since", "2024-04-01"], url, tz="Asia/Shanghai")
    assert "normal-bmd" not in csv_rows(["--since", "2024-04-01"], url, tz="America/New_York")


def test_empty_period_gives_a_total_row_without_rates(url: str) -> None:
    rows = csv_rows(["--since", "2030-01-01"], url)
    assert list(rows) == ["total"]
    assert (rows["total"]["issued"], rows["total"]["acceptance_rate"], rows["total"]["override_rate"]) == (
        "0",
        "",
        "",
    )


def test_table_is_aligned_with_a_total_row(url: str) -> None:
    code, out, err = run(["--since", "2024-03-01", "--until", "2024-03-31"], url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "2024-03-01" in lines[0] and "2024-03-31" in lines[0]
    header, spine_line, rule, total_line = lines[1], lines[3], lines[4], lines[5]
    assert header.split()[:2] == ["topic", "issued"]
    assert spine_line.split()[:6] == ["spine-radiograph-recommended", "4", "1", "2", "25.0%", "50.0%"]
    assert spine_line.endswith("patient-declined (1)")
    assert set(rule) == {"-"}
    assert total_line.split()[:6] == ["total", "6", "2", "2", "33.3%", "33.3%"]
    # Numbers are right-aligned under their headings.
    for heading in ("issued", "accepted", "overridden", "accepted %", "overridden %"):
        end = header.index(heading) + len(heading)
        for line in (lines[2], spine_line, total_line):
            assert line[end - 1] != " ", (heading, line)
            assert end == len(line) or line[end] == " ", (heading, line)


def test_table_of_an_empty_store(tmp_path: Path) -> None:
    code, out, _ = run([], f"sqlite:///{tmp_path / 'new' / 'audit.db'}")
    assert code == 0
    # issue 17 added the silent column (before the override reasons)
    assert out.splitlines()[-1].split() == ["total", "0", "0", "0", "-", "-", "0"]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--since", "2024-13-01"], id="month 13"),
        pytest.param(["--since", "20240301"], id="compact date"),
        pytest.param(["--until", "2024-W10-1"], id="week date"),
        pytest.param(["--until", "yesterday"], id="word"),
        pytest.param(["--since", "2024-03-02", "--until", "2024-03-01"], id="since after until"),
        pytest.param(["--format", "xml"], id="unknown format"),
        pytest.param(["--since"], id="missing value"),
        pytest.param(["--verbose"], id="unknown option"),
        pytest.param(["extra"], id="positional argument"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(url: str, argv: list[str]) -> None:
    code, out, err = run(argv, url)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("osteo-cds feedback-report: error: ")


def test_help_exits_0(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert feedback_report_main(["--help"], url) == 0
    assert "--since" in capsys.readouterr().out


def test_silent_cards_are_reported_apart_and_left_out_of_the_rates(tmp_path: Path) -> None:
    """OSTEO_CDS_SILENT (issue 17): cards clinicians never saw are counted in `silent`, not in `issued` or the
    rates."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    when = datetime(2024, 3, 10, 12, tzinfo=UTC)
    shown = "00000000-0000-4000-8000-0000000000a1"
    store.record_issued(
        "h1", "osteoporosis-patient-view", [(shown, "qct-recommended")], "0.1.0", issued_at=when
    )
    quiet = [(f"00000000-0000-4000-8000-0000000000b{i}", "qct-recommended") for i in range(3)]
    store.record_issued("h2", "osteoporosis-patient-view", quiet, "0.1.0", issued_at=when, silent=True)
    at = "2024-03-10T13:00:00Z"
    store.record_feedback(
        "osteoporosis-patient-view",
        parse_feedback({"feedback": [{"card": shown, "outcome": "overridden", "outcomeTimestamp": at}]}),
    )
    store.dispose()
    rows = csv_rows([], url)
    qct = rows["qct-recommended"]
    assert (qct["issued"], qct["silent"], qct["overridden"], qct["override_rate"]) == (
        "1",
        "3",
        "1",
        "1.0000",
    )
    assert rows["total"]["silent"] == "3"
