"""Where an app keeps what it was built with: its settings and, when there is one, its audit store."""

from __future__ import annotations

import threading
from typing import cast

from flask import Flask, current_app

from cds_service.audit.store import AuditStore
from cds_service.settings import Settings

SETTINGS_KEY = "OSTEO_SETTINGS"


def settings_of(app: Flask) -> Settings:
    return cast(Settings, app.config[SETTINGS_KEY])


def current_settings() -> Settings:
    """The settings of the app handling the current request."""
    return settings_of(current_app)


AUDIT_KEY = "osteo_cds.audit"


class LazyAuditStore:
    """The audit store, opened on first use in each worker process (not in the process that built the app)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._store: AuditStore | None = None
        self._lock = threading.Lock()

    def get(self) -> AuditStore:
        with self._lock:
            if self._store is None:
                self._store = AuditStore.from_url(self._url)
            return self._store


def audit_store_of(app: Flask) -> LazyAuditStore | None:
    store = app.extensions.get(AUDIT_KEY)
    return store if isinstance(store, LazyAuditStore) else None
