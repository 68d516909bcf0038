"""Settings from the environment (cds_service.settings, CONTRACT.md "Settings", CONSENSUS-RULES.md §7)."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_service.settings import ClinicalSettings, ServerSettings, Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.auth == "jwt"
    assert dict(settings.trusted_issuers) == {}
    assert settings.public_url is None
    assert settings.fhir_servers == ()  # any
    assert settings.cors_origins == ("*",)
    assert settings.language == "en"
    assert settings.code_map_path is None and not settings.code_map
    assert settings.disabled_cards == frozenset()
    assert settings.today is None
    assert settings.tz == "Asia/Shanghai"
    # Runtime files under ./var/ of the working directory (ignored by git), never beside the sources.
    assert settings.database_url == "sqlite:///var/osteo-cds.db"
    assert settings.replay_db == "./var/jti.sqlite3"
    assert settings.server == ServerSettings(workers=None, threads=4, timeout=30, graceful_timeout=20)
    assert settings.redis_url is None
    assert settings.clinical == ClinicalSettings()
    assert settings.site_has_qct is True  # CONTRACT.md


def test_clinical_defaults_are_those_of_consensus_rules_section_7() -> None:
    clinical = Settings.from_env({}).clinical
    assert clinical.menopause_age == 50
    assert clinical.older_male_age == 50
    assert clinical.low_bmi == 18.5
    assert clinical.severe_obesity_bmi == 35.0
    assert clinical.spine_radiograph_age == 60
    assert clinical.spine_imaging_lookback_months == 36
    assert clinical.bmd_lookback_months is None  # the most recent exam at any date


def test_today_defaults_to_the_real_date_in_the_time_zone() -> None:
    settings = Settings.from_env({})
    assert abs((settings.today_date() - date.today()).days) <= 1


@pytest.mark.parametrize(
    ("name", "raw", "read"),
    [
        pytest.param("OSTEO_CDS_AUTH", "none", lambda s: s.auth == "none", id="OSTEO_CDS_AUTH none"),
        pytest.param("OSTEO_CDS_AUTH", "JWT", lambda s: s.auth == "jwt", id="OSTEO_CDS_AUTH JWT any case"),
        pytest.param(
            "OSTEO_CDS_TRUSTED_ISSUERS",
            '{"https://ehr.example.org": "https://ehr.example.org/jwks.json"}',
            lambda s: (
                dict(s.trusted_issuers) == {"https://ehr.example.org": "https://ehr.example.org/jwks.json"}
            ),
            id="OSTEO_CDS_TRUSTED_ISSUERS object",
        ),
        pytest.param(
            "OSTEO_CDS_PUBLIC_URL",
            "https://cds.example.org",
            lambda s: s.public_url == "https://cds.example.org",
            id="OSTEO_CDS_PUBLIC_URL",
        ),
        pytest.param(
            "OSTEO_CDS_FHIR_SERVERS",
            "https://a.example.org/fhir, https://b.example.org/fhir",
            lambda s: s.fhir_servers == ("https://a.example.org/fhir", "https://b.example.org/fhir"),
            id="OSTEO_CDS_FHIR_SERVERS comma-separated",
        ),
        pytest.param(
            "OSTEO_CDS_CORS_ORIGINS",
            "https://ehr.example.org,https://sandbox.cds-hooks.org",
            lambda s: s.cors_origins == ("https://ehr.example.org", "https://sandbox.cds-hooks.org"),
            id="OSTEO_CDS_CORS_ORIGINS comma-separated",
        ),
        pytest.param(
            "OSTEO_CDS_LANGUAGE", "zh-CN", lambda s: s.language == "zh-CN", id="OSTEO_CDS_LANGUAGE zh-CN"
        ),
        pytest.param("OSTEO_CDS_LANGUAGE", "en", lambda s: s.language == "en", id="OSTEO_CDS_LANGUAGE en"),
        pytest.param(
            "OSTEO_CDS_DISABLED_CARDS",
            "spine-radiograph-recommended, qct-recommended",
            lambda s: s.disabled_cards == {"spine-radiograph-recommended", "qct-recommended"},
            id="OSTEO_CDS_DISABLED_CARDS comma-separated",
        ),
        pytest.param(
            "OSTEO_CDS_TODAY",
            "2026-11-25",
            lambda s: s.today_date() == date(2026, 11, 25),
            id="OSTEO_CDS_TODAY",
        ),
        pytest.param("OSTEO_CDS_TZ", "Europe/Berlin", lambda s: s.tz == "Europe/Berlin", id="OSTEO_CDS_TZ"),
        pytest.param(
            "OSTEO_CDS_DATABASE_URL",
            "postgresql://db/osteo",
            lambda s: s.database_url == "postgresql://db/osteo",
            id="OSTEO_CDS_DATABASE_URL",
        ),
        pytest.param(
            "OSTEO_CDS_REDIS_URL",
            "redis://cache:6379/0",
            lambda s: s.redis_url == "redis://cache:6379/0",
            id="OSTEO_CDS_REDIS_URL",
        ),
        pytest.param(
            "OSTEO_CDS_MENOPAUSE_AGE",
            "52",
            lambda s: s.clinical.menopause_age == 52,
            id="OSTEO_CDS_MENOPAUSE_AGE",
        ),
        pytest.param(
            "OSTEO_CDS_OLDER_MALE_AGE",
            "60",
            lambda s: s.clinical.older_male_age == 60,
            id="OSTEO_CDS_OLDER_MALE_AGE",
        ),
        pytest.param("OSTEO_CDS_LOW_BMI", "18", lambda s: s.clinical.low_bmi == 18.0, id="OSTEO_CDS_LOW_BMI"),
        pytest.param(
            "OSTEO_CDS_SEVERE_OBESITY_BMI",
            "32.5",
            lambda s: s.clinical.severe_obesity_bmi == 32.5,
            id="OSTEO_CDS_SEVERE_OBESITY_BMI Asian action point",
        ),
        pytest.param(
            "OSTEO_CDS_SPINE_XR_AGE",
            "65",
            lambda s: s.clinical.spine_radiograph_age == 65,
            id="OSTEO_CDS_SPINE_XR_AGE",
        ),
        pytest.param(
            "OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS",
            "24",
            lambda s: s.clinical.spine_imaging_lookback_months == 24,
            id="OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS",
        ),
        pytest.param(
            "OSTEO_CDS_BMD_LOOKBACK_MONTHS",
            "120",
            lambda s: s.clinical.bmd_lookback_months == 120,
            id="OSTEO_CDS_BMD_LOOKBACK_MONTHS",
        ),
        pytest.param(
            "OSTEO_CDS_BMD_LOOKBACK_MONTHS",
            "none",
            lambda s: s.clinical.bmd_lookback_months is None,
            id="OSTEO_CDS_BMD_LOOKBACK_MONTHS none",
        ),
        pytest.param(
            "OSTEO_CDS_GLUCOCORTICOID_MONTHS",
            "6",
            lambda s: s.clinical.glucocorticoid_months == 6,
            id="OSTEO_CDS_GLUCOCORTICOID_MONTHS",
        ),
        pytest.param("OSTEO_CDS_PREVIEW", "true", lambda s: s.preview_enabled, id="OSTEO_CDS_PREVIEW true"),
        pytest.param(
            "OSTEO_CDS_SITE_HAS_QCT", "false", lambda s: not s.site_has_qct, id="OSTEO_CDS_SITE_HAS_QCT false"
        ),
        pytest.param(
            "OSTEO_CDS_FHIR_MAX_PAGES", "3", lambda s: s.fhir_max_pages == 3, id="OSTEO_CDS_FHIR_MAX_PAGES"
        ),
        pytest.param(
            "OSTEO_CDS_FHIR_TIMEOUT",
            "0.5",
            lambda s: s.fhir_timeout_seconds == 0.5,
            id="OSTEO_CDS_FHIR_TIMEOUT",
        ),
        pytest.param(
            "OSTEO_CDS_REPLAY_DB",
            "/data/jti.sqlite3",
            lambda s: s.replay_db == "/data/jti.sqlite3",
            id="OSTEO_CDS_REPLAY_DB",
        ),
        pytest.param("OSTEO_CDS_WORKERS", "3", lambda s: s.server.workers == 3, id="OSTEO_CDS_WORKERS"),
        pytest.param("OSTEO_CDS_THREADS", "8", lambda s: s.server.threads == 8, id="OSTEO_CDS_THREADS"),
        pytest.param("OSTEO_CDS_TIMEOUT", "60", lambda s: s.server.timeout == 60, id="OSTEO_CDS_TIMEOUT"),
        pytest.param(
            "OSTEO_CDS_MAX_REQUESTS", "0", lambda s: s.server.max_requests == 0, id="OSTEO_CDS_MAX_REQUESTS 0"
        ),
    ],
)
def test_each_variable_is_read(name: str, raw: str, read: Any) -> None:
    assert read(Settings.from_env({name: raw}))


def test_empty_values_mean_the_default() -> None:
    names = [
        "OSTEO_CDS_TODAY",
        "OSTEO_CDS_CODE_MAP",
        "OSTEO_CDS_DISABLED_CARDS",
        "OSTEO_CDS_PUBLIC_URL",
        "OSTEO_CDS_MENOPAUSE_AGE",
        "OSTEO_CDS_LOW_BMI",
        "OSTEO_CDS_BMD_LOOKBACK_MONTHS",
        "OSTEO_CDS_REDIS_URL",
        "OSTEO_CDS_FHIR_SERVERS",
        "OSTEO_CDS_TRUSTED_ISSUERS",
        "OSTEO_CDS_DATABASE_URL",
        "OSTEO_CDS_REPLAY_DB",
        "OSTEO_CDS_WORKERS",
        "OSTEO_CDS_THREADS",
        "OSTEO_CDS_TIMEOUT",
    ]
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings.from_env({})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        pytest.param("OSTEO_CDS_AUTH", "basic", id="bad OSTEO_CDS_AUTH basic"),
        pytest.param("OSTEO_CDS_LANGUAGE", "fr", id="bad OSTEO_CDS_LANGUAGE fr"),
        pytest.param("OSTEO_CDS_LANGUAGE", "zh", id="bad OSTEO_CDS_LANGUAGE zh without region"),
        pytest.param("OSTEO_CDS_TZ", "Mars/Olympus", id="bad OSTEO_CDS_TZ unknown zone"),
        pytest.param("OSTEO_CDS_TODAY", "2026-13-01", id="bad OSTEO_CDS_TODAY month 13"),
        pytest.param("OSTEO_CDS_TODAY", "25/11/2026", id="bad OSTEO_CDS_TODAY not ISO"),
        pytest.param(
            "OSTEO_CDS_DISABLED_CARDS", "osteoporosis", id="bad OSTEO_CDS_DISABLED_CARDS unknown topic"
        ),
        pytest.param("OSTEO_CDS_TRUSTED_ISSUERS", "not json", id="bad OSTEO_CDS_TRUSTED_ISSUERS not JSON"),
        pytest.param("OSTEO_CDS_TRUSTED_ISSUERS", '["https://a"]', id="bad OSTEO_CDS_TRUSTED_ISSUERS a list"),
        pytest.param(
            "OSTEO_CDS_TRUSTED_ISSUERS", '{"https://a": 1}', id="bad OSTEO_CDS_TRUSTED_ISSUERS URL not string"
        ),
        pytest.param("OSTEO_CDS_MENOPAUSE_AGE", "fifty", id="bad OSTEO_CDS_MENOPAUSE_AGE not a number"),
        pytest.param("OSTEO_CDS_MENOPAUSE_AGE", "50.5", id="bad OSTEO_CDS_MENOPAUSE_AGE not an integer"),
        pytest.param("OSTEO_CDS_MENOPAUSE_AGE", "5", id="bad OSTEO_CDS_MENOPAUSE_AGE out of range"),
        pytest.param("OSTEO_CDS_OLDER_MALE_AGE", "-50", id="bad OSTEO_CDS_OLDER_MALE_AGE negative"),
        pytest.param("OSTEO_CDS_LOW_BMI", "low", id="bad OSTEO_CDS_LOW_BMI not a number"),
        pytest.param(
            "OSTEO_CDS_SEVERE_OBESITY_BMI", "500", id="bad OSTEO_CDS_SEVERE_OBESITY_BMI out of range"
        ),
        pytest.param("OSTEO_CDS_SPINE_XR_AGE", "sixty", id="bad OSTEO_CDS_SPINE_XR_AGE not a number"),
        pytest.param(
            "OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", "0", id="bad OSTEO_CDS_SPINE_IMAGING_LOOKBACK 0"
        ),
        pytest.param("OSTEO_CDS_BMD_LOOKBACK_MONTHS", "0", id="bad OSTEO_CDS_BMD_LOOKBACK_MONTHS 0"),
        pytest.param("OSTEO_CDS_GLUCOCORTICOID_MONTHS", "0", id="bad OSTEO_CDS_GLUCOCORTICOID_MONTHS 0"),
        pytest.param("OSTEO_CDS_BMD_LOOKBACK_MONTHS", "forever", id="bad OSTEO_CDS_BMD_LOOKBACK_MONTHS word"),
        pytest.param("OSTEO_CDS_PREVIEW", "maybe", id="bad OSTEO_CDS_PREVIEW not a boolean"),
        pytest.param("OSTEO_CDS_SITE_HAS_QCT", "maybe", id="bad OSTEO_CDS_SITE_HAS_QCT not a boolean"),
        pytest.param("OSTEO_CDS_FHIR_MAX_PAGES", "0", id="bad OSTEO_CDS_FHIR_MAX_PAGES 0"),
        pytest.param("OSTEO_CDS_FHIR_TIMEOUT", "soon", id="bad OSTEO_CDS_FHIR_TIMEOUT not a number"),
        pytest.param("OSTEO_CDS_WORKERS", "0", id="bad OSTEO_CDS_WORKERS 0"),
        pytest.param("OSTEO_CDS_THREADS", "65", id="bad OSTEO_CDS_THREADS above 64"),
        pytest.param(
            "OSTEO_CDS_GRACEFUL_TIMEOUT", "31", id="bad OSTEO_CDS_GRACEFUL_TIMEOUT above the timeout"
        ),
    ],
)
def test_bad_values_are_settings_errors(name: str, raw: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({name: raw})


def test_settings_error_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="OSTEO_CDS_MENOPAUSE_AGE"):
        Settings.from_env({"OSTEO_CDS_MENOPAUSE_AGE": "x"})


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTEO_CDS_LANGUAGE", "zh-CN")
    monkeypatch.setenv("OSTEO_CDS_TODAY", "2026-11-25")
    settings = Settings.from_env()
    assert (settings.language, settings.today) == ("zh-CN", date(2026, 11, 25))


def test_with_changes_keeps_the_rest() -> None:
    base = Settings.from_env({"OSTEO_CDS_LANGUAGE": "zh-CN"})
    changed = base.with_changes(today=date(2026, 11, 25))
    assert changed.language == "zh-CN" and changed.today == date(2026, 11, 25)
    assert base.today is None


def test_only_settings_py_reads_the_environment() -> None:
    # Every OSTEO_CDS_ setting is read in settings.py. The one exception is the metrics directory that
    # `osteo-cds serve` itself hands to its workers through PROMETHEUS_MULTIPROC_DIR (prometheus-client's).
    package = Path(__file__).resolve().parents[1] / "cds_service"
    readers = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "settings.py" and path.parent == package:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
            attributes = {n.attr for n in ast.walk(function) if isinstance(n, ast.Attribute)}
            if attributes & {"environ", "getenv"} and "MULTIPROC_ENV" not in names:
                readers.append(f"{path.relative_to(package)}:{function.name}")
    assert readers == []
