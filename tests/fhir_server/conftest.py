"""Shared by the FHIR-server tests: the settings of examples/patients/index.json, and an app on them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cds_service.api.app import create_app
from cds_service.facts.codemap import load_code_map
from cds_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INDEX = ROOT / "examples" / "patients" / "index.json"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    index = json.loads(INDEX.read_text(encoding="utf-8"))["settings"]
    return Settings(
        auth="none",
        today=date.fromisoformat(index["OSTEO_CDS_TODAY"]),
        code_map=load_code_map(ROOT / index["OSTEO_CDS_CODE_MAP"]),
        database_url=f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.sqlite3'}",
        metrics_enabled=False,
        fhir_timeout_seconds=10.0,  # a loaded CI machine; the real budget is not what is tested here
        fhir_budget_seconds=20.0,
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()
