"""Apps with the preview on (and off), as the brief of issue 9 builds them."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.api.app import create_app
from cds_service.preview import register_preview
from cds_service.settings import Settings

PREVIEW_TODAY = date(2026, 11, 25)


@pytest.fixture
def preview_app() -> Flask:
    app = create_app(Settings(auth="none", preview_enabled=True, today=PREVIEW_TODAY))
    register_preview(app)  # idempotent: a no-op when create_app has registered it already
    return app


@pytest.fixture
def preview_client(preview_app: Flask) -> FlaskClient:
    return preview_app.test_client()


@pytest.fixture
def plain_client() -> FlaskClient:
    """The service with the preview setting off (its default)."""
    return create_app(Settings(auth="none", today=PREVIEW_TODAY)).test_client()
