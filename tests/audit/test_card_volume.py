"""`osteo-cds card-volume` (issue 17 go-live safety): cards issued per day and topic code, no patient data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds_service.audit.report import VOLUME_HEADER, card_volume_main
from cds_service.audit.store import AuditStore

SERVICE = "osteoporosis-patient-view"
PATIENT_MARKER = "PHI-PATIENT-4711"


@pytest.fixture
def url(tmp_path: Path) -> str:
    """2024-03-10 12:00 UTC: two spine cards and one QCT card; 2024-03-10 20:00 UTC (03-11 in Shanghai): one
    spine card; 2024-04-01: one normal-bmd card. The hook instance carries a marker never to be shown."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    cards = [
        ("00000000-0000-4000-8000-000000000001", "spine-radiograph-recommended", datetime(2024, 3, 10, 12)),
        ("00000000-0000-4000-8000-000000000002", "spine-radiograph-recommended", datetime(2024, 3, 10, 12)),
        ("00000000-0000-4000-8000-000000000003", "qct-recommended", datetime(2024, 3, 10, 12)),
        ("00000000-0000-4000-8000-000000000004", "spine-radiograph-recommended", datetime(2024, 3, 10, 20)),
        ("00000000-0000-4000-8000-000000000005", "normal-bmd", datetime(2024, 4, 1, 3)),
    ]
    for uuid, topic, when in cards:
        store.record_issued(
            PATIENT_MARKER, SERVICE, [(uuid, topic)], "0.1.0", issued_at=when.replace(tzinfo=UTC)
        )
    store.dispose()
    return url


def volume(argv: list[str], url: str, tz: str = "UTC") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = card_volume_main(argv, url, tz=tz, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "tz", "expected"),
    [
        pytest.param(
            [],
            "UTC",
            [
                ("2024-03-10", "qct-recommended", "1"),
                ("2024-03-10", "spine-radiograph-recommended", "3"),
                ("2024-04-01", "normal-bmd", "1"),
            ],
            id="whole history, per day and topic",
        ),
        pytest.param(
            [],
            "Asia/Shanghai",
            [
                ("2024-03-10", "qct-recommended", "1"),
                ("2024-03-10", "spine-radiograph-recommended", "2"),
                ("2024-03-11", "spine-radiograph-recommended", "1"),
                ("2024-04-01", "normal-bmd", "1"),
            ],
            id="days in the configured time zone",
        ),
        pytest.param(
            ["--since", "2024-03-11", "--until", "2024-04-01"],
            "UTC",
            [("2024-04-01", "normal-bmd", "1")],
            id="until inclusive, since excludes earlier days",
        ),
        pytest.param(["--since", "2025-01-01"], "UTC", [], id="empty period: header only"),
    ],
)
def test_card_volume_csv(argv: list[str], tz: str, expected: list[tuple[str, str, str]], url: str) -> None:
    code, out, err = volume([*argv, "--format", "csv"], url, tz)
    assert (code, err) == (0, "")
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == VOLUME_HEADER
    # The first three columns keep their meaning (issue 17 added shown and silent after them).
    assert [tuple(row[:3]) for row in rows[1:]] == expected
    assert all(row[3] == row[2] and row[4] == "0" for row in rows[1:])  # none silent in this store


def test_card_volume_table_has_a_total_and_no_patient_data(url: str) -> None:
    code, out, _ = volume([], url)
    assert code == 0
    assert out.splitlines()[-1] == "total 5 (shown 5, silent 0)"
    assert PATIENT_MARKER not in out and "00000000-0000" not in out


@pytest.mark.parametrize(
    "argv", [["--since", "2024-3-1"], ["--since", "2024-04-02", "--until", "2024-04-01"]]
)
def test_card_volume_bad_arguments_exit_2(argv: list[str], url: str) -> None:
    code, out, err = volume(argv, url)
    assert (code, out) == (2, "")
    assert err.startswith("osteo-cds card-volume: error:")


def test_card_volume_counts_silent_and_shown_cards_apart(tmp_path: Path) -> None:
    """OSTEO_CDS_SILENT (issue 17): cards computed silently are counted apart from the cards shown."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    when = datetime(2024, 3, 10, 12, tzinfo=UTC)
    shown = [("00000000-0000-4000-8000-000000000001", "qct-recommended")]
    silent = [
        ("00000000-0000-4000-8000-000000000002", "qct-recommended"),
        ("00000000-0000-4000-8000-000000000003", "normal-bmd"),
    ]
    store.record_issued("h1", SERVICE, shown, "0.1.0", issued_at=when)
    store.record_issued("h2", SERVICE, silent, "0.1.0", issued_at=when, silent=True)
    store.dispose()
    code, out, _ = volume(["--format", "csv"], url)
    assert code == 0
    assert list(csv.reader(io.StringIO(out)))[1:] == [
        ["2024-03-10", "normal-bmd", "1", "0", "1"],
        ["2024-03-10", "qct-recommended", "2", "1", "1"],
    ]
    code, out, _ = volume([], url)
    assert out.splitlines()[-1] == "total 3 (shown 1, silent 2)"
