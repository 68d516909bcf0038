"""The SMART app's server-side sessions: launch state and tokens, keyed by an opaque session id.

The browser holds only the session id (a random 256-bit value, in an HttpOnly cookie); the table holds its
SHA-256, so a read of the database gives no usable cookie. Launch state (the `state`, the PKCE verifier,
the endpoints) and, after the token exchange, the access token, patient and fhirUser live here and never
in the page. Same database as the audit store, so every worker process sees them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, String, Table, Text, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cds_service.audit.store import UtcDateTime


class _Base(DeclarativeBase):
    pass


class SmartSession(_Base):
    __tablename__ = "smart_session"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the session id
    data: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


_TABLE = cast(Table, SmartSession.__table__)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _Base.metadata.create_all(engine)

    def create(self, data: dict[str, Any], lifetime: timedelta) -> str:
        """A new session holding `data` for `lifetime`; returns its id (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.expires_at < now))  # expired ones go
            conn.execute(
                _TABLE.insert(),
                [{"key": _key(session_id), "data": json.dumps(data), "expires_at": now + lifetime}],
            )
        return session_id

    def get(self, session_id: str | None) -> dict[str, Any] | None:
        if not session_id or len(session_id) > 128:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_TABLE.c.data, _TABLE.c.expires_at).where(_TABLE.c.key == _key(session_id))
            ).first()
        if row is None or row.expires_at < datetime.now(UTC):
            return None
        data = json.loads(row.data)
        return data if isinstance(data, dict) else None

    def delete(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.key == _key(session_id)))
