from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cds_service.screen import run_screen
from cds_service.screen.output import Summary
from cds_service.settings import Settings
from tests.screen.export import CODE_MAP, write_export

TODAY = date(2026, 11, 25)  # as examples/patients/index.json assumes


def screen_settings() -> Settings:
    """The settings examples/patients/index.json assumes: its code map, today 2026-11-25."""
    return Settings.from_env({"OSTEO_CDS_AUTH": "none", "OSTEO_CDS_CODE_MAP": str(CODE_MAP)}).with_changes(
        today=TODAY
    )


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example patients and Synthea fixtures as a Bulk Data NDJSON folder."""
    return write_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def screened(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Summary]:
    out = tmp_path_factory.mktemp("screened") / "out"
    return out, run_screen(export, out, screen_settings(), workers=2)
