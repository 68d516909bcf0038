"""The audit records of one response, read back column by column on every write path of the store:
SQLite and PostgreSQL (their own INSERT … ON CONFLICT statements, compiled once per dialect) and the
generic path of other databases (insert unless present, read then write).

PostgreSQL runs when OSTEO_CDS_TEST_POSTGRES_URL names an empty database, or when the PostgreSQL server
programs (initdb, pg_ctl) are installed: a throwaway cluster on a Unix socket then lives for the session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cds_service.audit import onboarding
from cds_service.audit import store as audit_store
from cds_service.audit.onboarding import onboarding_rows, record_response
from cds_service.audit.store import MAX_HOOK_INSTANCE_LENGTH, AuditStore, Base

SERVICE = "osteoporosis-patient-view"
VERSION = "0.1.0"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
CODING = ("Observation", "code", "urn:local", "X-1", "local test")
OTHER = ("Condition", "code", "urn:local", "C-9", "")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get("OSTEO_CDS_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no PostgreSQL: set OSTEO_CDS_TEST_POSTGRES_URL or install the server programs")
    # The server refuses to run as root: there, it runs as the system's postgres user.
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL cannot run as root and there is no postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
    # Straight under the temporary directory: pytest's own is closed to other users.
    folder = Path(tempfile.mkdtemp(prefix="osteo-cds-postgres-"))
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data = folder / "data"
    options = f"-k {folder} -p 5432 -c listen_addresses='' -c fsync=off"
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "osteo", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://osteo@/postgres?host={folder}&port=5432"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql", "generic"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AuditStore]:
    if request.param == "postgresql":
        opened = AuditStore.from_url(request.getfixturevalue("postgres_url"))
    else:
        opened = AuditStore.from_url(f"sqlite:///{tmp_path / 'audit.db'}")
    if request.param == "generic":
        # A database with no INSERT … ON CONFLICT of SQLAlchemy's: the store's portable statements.
        monkeypatch.setattr(audit_store, "_insert_ignoring_repeats", lambda dialect, table: None)
        monkeypatch.setattr(onboarding, "_upsert", lambda dialect, table: None)
    try:
        yield opened
    finally:
        Base.metadata.drop_all(opened.engine)
        opened.dispose()


def issued_rows(store: AuditStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        columns = "card_uuid, hook_instance, service_id, topic_code, service_version, issued_at, silent"
        return sorted(tuple(row) for row in conn.execute(text(f"SELECT {columns} FROM issued_card")))


def as_naive_utc(value: object) -> datetime:
    """A stored time as the naive UTC datetime it stands for (SQLite hands back its text)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_a_response_is_recorded_whole(store: AuditStore) -> None:
    long_hook = "h" * (MAX_HOOK_INSTANCE_LENGTH + 20)
    upper = "4E0A3A1E-3283-4575-AB82-028D55FE2719"
    cards = [(upper, "osteoporosis-bmd"), ("b-2", "qct-recommended"), (upper.lower(), "normal-bmd")]
    before = datetime.now(UTC).replace(tzinfo=None)
    record_response(store, Counter({CODING: 2, OTHER: 1}), long_hook, SERVICE, cards, VERSION)
    after = datetime.now(UTC).replace(tzinfo=None)

    rows = issued_rows(store)
    # The uuid lower-cased, a repeat within the response stored once (the first), the hook instance cut.
    assert [row[:5] for row in rows] == [
        (upper.lower(), long_hook[:MAX_HOOK_INSTANCE_LENGTH], SERVICE, "osteoporosis-bmd", VERSION),
        ("b-2", long_hook[:MAX_HOOK_INSTANCE_LENGTH], SERVICE, "qct-recommended", VERSION),
    ]
    assert all(before <= as_naive_utc(row[5]) <= after for row in rows)  # stored as naive UTC
    assert [bool(row[6]) for row in rows] == [False, False]  # shown
    counted = {
        (r.resource_type, r.element, r.system, r.code, r.display): r.count for r in onboarding_rows(store)
    }
    assert counted == {CODING: 2, OTHER: 1}


def test_counts_add_up_and_a_card_issued_again_keeps_its_first_record(store: AuditStore) -> None:
    record_response(store, Counter({CODING: 2}), "hook-1", SERVICE, [("a-1", "normal-bmd")], VERSION)
    first_seen = onboarding_rows(store)[0].last_seen
    record_response(store, Counter({CODING: 3}), "hook-2", SERVICE, [("a-1", "osteoporosis-bmd")], VERSION)

    assert [row[:4] for row in issued_rows(store)] == [("a-1", "hook-1", SERVICE, "normal-bmd")]
    [row] = onboarding_rows(store)
    assert row.count == 5
    assert row.last_seen >= first_seen
    assert row.last_seen.tzinfo == UTC  # read back as aware UTC


@pytest.mark.parametrize(
    "issued_at",
    [
        pytest.param(T0, id="UTC"),
        pytest.param(T0.astimezone(timezone(timedelta(hours=8))), id="UTC+8-converted"),
        pytest.param(T0.replace(microsecond=250_000), id="fractional-seconds-kept"),
    ],
)
def test_an_issue_time_is_stored_as_the_utc_instant(store: AuditStore, issued_at: datetime) -> None:
    store.record_issued("hook-1", SERVICE, [("a-1", "normal-bmd")], VERSION, issued_at=issued_at)
    [row] = issued_rows(store)
    assert as_naive_utc(row[5]) == issued_at.astimezone(UTC).replace(tzinfo=None)
    assert [t.issued_at for t in store.issued_times()] == [issued_at.astimezone(UTC)]


def test_only_a_database_server_is_pre_pinged(store: AuditStore) -> None:
    # A server may have dropped a pooled connection; a SQLite file cannot.
    assert store.engine.pool._pre_ping == (store.engine.dialect.name != "sqlite")


def test_silent_cards_are_recorded_as_silent(store: AuditStore) -> None:
    record_response(store, Counter(), "hook-1", SERVICE, [("a-1", "normal-bmd")], VERSION, silent=True)
    record_response(store, Counter(), "hook-2", SERVICE, [("b-2", "normal-bmd")], VERSION)
    assert [(row[0], bool(row[6])) for row in issued_rows(store)] == [("a-1", True), ("b-2", False)]


def test_a_failed_write_leaves_nothing_behind_and_the_next_one_lands(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_response(store, Counter({CODING: 1}), "hook-0", SERVICE, [], VERSION)  # the table exists

    def broken(*args: Any) -> None:
        raise RuntimeError("the disk is full")

    with monkeypatch.context() as patch:  # the cards are written, then the counts fail: all is rolled back
        patch.setattr(onboarding, "_add_unrecognised", broken)
        with pytest.raises(RuntimeError):
            record_response(store, Counter({CODING: 2}), "hook-1", SERVICE, [("a-1", "normal-bmd")], VERSION)
    assert issued_rows(store) == []
    assert [row.count for row in onboarding_rows(store)] == [1]

    record_response(store, Counter({CODING: 2}), "hook-2", SERVICE, [("b-2", "normal-bmd")], VERSION)
    assert [row[:2] for row in issued_rows(store)] == [("b-2", "hook-2")]
    assert [row.count for row in onboarding_rows(store)] == [3]
