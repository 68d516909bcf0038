"""`osteo-cds feedback-report` (issued, accepted, overridden cards per topic code) and `osteo-cds card-volume`
(cards issued per day and topic code), as a table or CSV."""

from __future__ import annotations

import argparse
import csv
import re
import sys
import zoneinfo
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import NoReturn, TextIO, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from cds_service.audit.store import AuditStore, OverrideReasonCount, ReportRow, total_row

PROG = "osteo-cds feedback-report"
_T = TypeVar("_T")
VOLUME_PROG = "osteo-cds card-volume"
# issued = shown + silent; the two counts were added after `issued` (issue 17), so readers of the first
# three columns keep working.
VOLUME_HEADER = ("day", "topic_code", "issued", "shown", "silent")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CSV_HEADER = (
    "topic_code",
    "issued",
    "accepted",
    "overridden",
    "acceptance_rate",
    "override_rate",
    "top_override_reasons",
    "silent",
)
TABLE_HEADER = (
    "topic",
    "issued",
    "accepted",
    "overridden",
    "accepted %",
    "overridden %",
    "silent",
    "top override reasons",
)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def feedback_report_main(
    argv: list[str] | None,
    settings_database_url: str,
    *,
    tz: str = "UTC",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the command; 0 on success, 2 on bad arguments, 1 when the store cannot be read.

    Dates are whole days in `tz`; --until is inclusive. A card counts in the period it was issued in,
    with the latest feedback it received (at any time). `issued` and the rates count the cards clinicians
    were shown; cards computed in silent mode (OSTEO_CDS_SILENT) are counted apart, in `silent`.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = _Parser(prog=PROG, description="Card acceptance and override counts per topic code.")
    period = _parse_period(parser, argv, tz, err, PROG)
    if isinstance(period, int):
        return period
    args, since, until, start, end = period
    rows = _read_store(settings_database_url, lambda store: store.report(start, end), err, PROG)
    if rows is None:
        return 1

    if args.format == "csv":
        write_csv(rows, out)
    else:
        print(
            f"Cards issued from {_period_words(since, until, tz)}, each counted by the latest feedback on "
            "it; silent: computed under OSTEO_CDS_SILENT, not shown, in no rate",
            file=out,
        )
        write_table(rows, out)
    return 0


def card_volume_main(
    argv: list[str] | None,
    settings_database_url: str,
    *,
    tz: str = "UTC",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`osteo-cds card-volume`: cards issued per day and topic code (issue 17 go-live safety).

    What clinicians would see (or, with OSTEO_CDS_SILENT, would have seen) per day, before cards are
    switched on. Only topic codes and days are read from the audit store: no patient data. Exit codes as
    feedback-report.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = _Parser(prog=VOLUME_PROG, description="Cards issued per day and topic code.")
    period = _parse_period(parser, argv, tz, err, VOLUME_PROG)
    if isinstance(period, int):
        return period
    args, since, until, start, end = period
    zone = zoneinfo.ZoneInfo(tz)
    issued = _read_store(
        settings_database_url, lambda store: store.issued_times(start, end), err, VOLUME_PROG
    )
    if issued is None:
        return 1
    counts = Counter(
        (card.issued_at.astimezone(zone).date(), card.topic_code, card.silent) for card in issued
    )
    keys = sorted({(day, topic) for day, topic, _ in counts})
    rows = [
        (
            day.isoformat(),
            topic,
            counts[day, topic, False] + counts[day, topic, True],
            counts[day, topic, False],
        )
        for day, topic in keys
    ]
    cells = [(day, topic, str(total), str(shown), str(total - shown)) for day, topic, total, shown in rows]
    if args.format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(VOLUME_HEADER)
        writer.writerows(cells)
        return 0
    print(f"Cards issued per day from {_period_words(since, until, tz)}", file=out)
    print(
        "shown: returned to the EHR; silent: computed and recorded under OSTEO_CDS_SILENT, not shown",
        file=out,
    )
    table = [VOLUME_HEADER, *cells]
    widths = [max(len(line[i]) for line in table) for i in range(len(VOLUME_HEADER))]
    for line in table:
        left = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        print("  ".join(left + [v.rjust(w) for v, w in zip(line[2:], widths[2:], strict=True)]), file=out)
    silent = sum(n for (_, _, quiet), n in counts.items() if quiet)
    total = sum(counts.values())
    print(f"total {total} (shown {total - silent}, silent {silent})", file=out)
    return 0


def _read_store(url: str, read: Callable[[AuditStore], _T], err: TextIO, prog: str) -> _T | None:
    """What `read` returns from the audit store at `url`, or None (after one line on err) when unreadable."""
    try:
        store = AuditStore.from_url(url)
        try:
            return read(store)
        finally:
            store.dispose()
    except SQLAlchemyError as exc:
        print(f"{prog}: error: cannot read the audit store ({type(exc).__name__})", file=err)
        return None


def _parse_period(
    parser: _Parser, argv: list[str] | None, tz: str, err: TextIO, prog: str
) -> tuple[argparse.Namespace, date | None, date | None, datetime | None, datetime | None] | int:
    """--since/--until/--format of both reports: the days and the [start, end) instants in `tz`, or an
    exit code."""
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="first day (cards issued on or after)")
    parser.add_argument("--until", metavar="YYYY-MM-DD", help="last day, inclusive")
    parser.add_argument("--format", choices=("table", "csv"), default="table")
    zone = zoneinfo.ZoneInfo(tz)
    try:
        args = parser.parse_args(argv)
        since = _day(args.since, "--since")
        until = _day(args.until, "--until")
        if since and until and since > until:
            raise _UsageError("--since must not be after --until")
    except _UsageError as exc:
        print(f"{prog}: error: {exc}", file=err)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    start = datetime.combine(since, time(), zone) if since else None
    end = datetime.combine(until + timedelta(days=1), time(), zone) if until else None
    return args, since, until, start, end


def _period_words(since: date | None, until: date | None, tz: str) -> str:
    return f"{since or 'the first record'} to {until or 'today'} ({tz})"


def write_csv(rows: Sequence[ReportRow], out: TextIO) -> None:
    """One line per topic code and a total line; rates as fractions (4 decimals), empty when none issued."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in [*rows, total_row(rows)]:
        writer.writerow(
            (
                row.topic_code,
                row.issued,
                row.accepted,
                row.overridden,
                _fraction(row.acceptance_rate),
                _fraction(row.override_rate),
                _reasons(row.top_override_reasons),
                row.silent,
            )
        )


def write_table(rows: Sequence[ReportRow], out: TextIO) -> None:
    """An aligned text table: names left-aligned, numbers right-aligned, a total row under a rule."""
    cells = [
        (
            row.topic_code,
            str(row.issued),
            str(row.accepted),
            str(row.overridden),
            _percent(row.acceptance_rate),
            _percent(row.override_rate),
            str(row.silent),
            _reasons(row.top_override_reasons),
        )
        for row in [*rows, total_row(rows)]
    ]
    widths = [max(len(line[i]) for line in [TABLE_HEADER, *cells]) for i in range(len(TABLE_HEADER))]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.ljust(width) if i in (0, len(values) - 1) else value.rjust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(line(TABLE_HEADER), file=out)
    for values in cells[:-1]:
        print(line(values), file=out)
    print("-" * len(line(TABLE_HEADER)), file=out)
    print(line(cells[-1]), file=out)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    # date.fromisoformat alone would also take 20240101 or 2024-W01-1.
    if not _ISO_DATE.match(text):
        raise _UsageError(f"{option} must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise _UsageError(f"{option} is not a valid date") from exc


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _fraction(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.4f}"


def _reasons(reasons: Sequence[OverrideReasonCount]) -> str:
    return "; ".join(f"{reason.code} ({reason.count})" for reason in reasons)
