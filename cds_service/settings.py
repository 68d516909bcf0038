"""One typed settings object, read once from the environment (CONTRACT.md "Settings")."""

from __future__ import annotations

import json
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cds_service.facts.codemap import CodeMap, load_code_map
from cds_service.topics import TOPICS

LANGUAGES = ("en", "zh-CN")


# Runtime files default to ./var/ of the working directory (ignored by git): the audit store (a relative
# SQLite path, three slashes) beside the JWT replay store.
DEFAULT_DATABASE_URL = "sqlite:///var/osteo-cds.db"
DEFAULT_REPLAY_DB = "./var/jti.sqlite3"
MAX_WORKERS = 64
MAX_THREADS = 64


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; raised at start, never per request."""


@dataclass(frozen=True)
class ServerSettings:
    """gunicorn's settings for `osteo-cds serve`; docs/operations.md says why for each default (2 cores)."""

    workers: int | None = None  # None: min(2 x cores, 4), decided where the server starts
    threads: int = 4  # patient-view mostly waits on FHIR searches
    # A worker silent this long is stuck and restarted: far above the 2 s FHIR budget of a call.
    timeout: int = 30
    # SIGTERM: workers finish the calls they hold for up to this long (below Kubernetes' default 30 s).
    graceful_timeout: int = 20
    # Idle keep-alive connections are held this long (they wait in the poller, not in a thread).
    keepalive: int = 5
    # Recycling workers bounds slow leaks; 0 turns it off.
    max_requests: int = 2000
    # The jitter keeps the workers from all restarting at once.
    max_requests_jitter: int = 200

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        def get(name: str) -> str:
            return (env.get(name) or "").strip()

        workers = get("OSTEO_CDS_WORKERS")
        server = cls(
            workers=int_setting(get, "OSTEO_CDS_WORKERS", 0, 1, MAX_WORKERS) if workers else None,
            threads=int_setting(get, "OSTEO_CDS_THREADS", cls.threads, 1, MAX_THREADS),
            timeout=int_setting(get, "OSTEO_CDS_TIMEOUT", cls.timeout, 5, 3600),
            graceful_timeout=int_setting(get, "OSTEO_CDS_GRACEFUL_TIMEOUT", cls.graceful_timeout, 1, 3600),
            keepalive=int_setting(get, "OSTEO_CDS_KEEPALIVE", cls.keepalive, 0, 600),
            max_requests=int_setting(get, "OSTEO_CDS_MAX_REQUESTS", cls.max_requests, 0, 10_000_000),
            max_requests_jitter=int_setting(
                get, "OSTEO_CDS_MAX_REQUESTS_JITTER", cls.max_requests_jitter, 0, 1_000_000
            ),
        )
        if server.graceful_timeout > server.timeout:
            raise SettingsError("OSTEO_CDS_GRACEFUL_TIMEOUT must not exceed OSTEO_CDS_TIMEOUT")
        return server


@dataclass(frozen=True)
class ClinicalSettings:
    """CONSENSUS-RULES.md §7: implementation choices, each named on the cards that use it."""

    menopause_age: int = 50  # POP-4
    older_male_age: int = 50  # POP-1 reading of 老年男性
    low_bmi: float = 18.5  # REC-QCT, Chinese adult underweight cut-off
    severe_obesity_bmi: float = 35.0  # REC-QCT, WHO class II
    spine_radiograph_age: int = 60  # REC-SPINE-XR (consensus)
    spine_imaging_lookback_months: int = 36  # REC-SPINE-XR
    bmd_lookback_months: int | None = None  # None: most recent at any date
    doubtful_fracture_months: int = 6  # REC-CT-MRI: a doubtful fracture asks for CT/MRI while this recent
    # A normal or low-bone-mass result older than this no longer tells the current state: the diagnosis card
    # also advises re-measurement (issue 17; an implementation choice, named on the card).
    bmd_remeasure_months: int = 60
    glucocorticoid_months: int = 3  # POP-5: systemic glucocorticoid use that counts (fracture-risk tools)
    qct_ct_women_age: int = 65  # REC-QCT-CT: the BMD-testing ages of the consensus's reference [2]
    qct_ct_men_age: int = 70  # REC-QCT-CT
    qct_ct_lookback_months: int = 24  # REC-QCT-CT: no central BMD within (a choice)


@dataclass(frozen=True)
class Settings:
    auth: str = "jwt"
    trusted_issuers: Mapping[str, str] = field(default_factory=dict)
    public_url: str | None = None
    fhir_servers: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ("*",)
    language: str = "en"
    code_map_path: str | None = None
    code_map: CodeMap = field(default_factory=CodeMap)
    disabled_cards: frozenset[str] = frozenset()
    today: date | None = None
    tz: str = "Asia/Shanghai"
    database_url: str = DEFAULT_DATABASE_URL
    replay_db: str = DEFAULT_REPLAY_DB  # the per-machine SQLite JWT replay store (without Redis)
    redis_url: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    fhir_timeout_seconds: float = 1.5
    fhir_budget_seconds: float = 2.0
    fhir_max_pages: int = 10
    jwks_cache_seconds: int = 3600
    jwks_min_refresh_seconds: int = 60
    preview_enabled: bool = False
    metrics_enabled: bool = True
    # CONTRACT.md: the site offers QCT. Read by the order hooks (issue 15); false turns QCT suggestions
    # into a referral sentence.
    site_has_qct: bool = True
    # Go-live safety: cards are computed and recorded in the audit store, the EHR gets {"cards": []}.
    silent: bool = False
    # The SMART app (cds_service/smart/): on when a client id is set. The secret makes it a confidential
    # client; frame ancestors are the EHR origins allowed to frame it (CSP frame-ancestors).
    smart_client_id: str | None = None
    smart_client_secret: str | None = None
    smart_frame_ancestors: tuple[str, ...] = ()
    clinical: ClinicalSettings = field(default_factory=ClinicalSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    def today_date(self) -> date:
        """The date taken as today, in the configured time zone."""
        if self.today is not None:
            return self.today
        return datetime.now(zoneinfo.ZoneInfo(self.tz)).date()

    @property
    def smart_enabled(self) -> bool:
        return bool(self.smart_client_id)

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = env.get
        auth = get("OSTEO_CDS_AUTH", "jwt").strip().lower()
        if auth not in ("jwt", "none"):
            raise SettingsError("OSTEO_CDS_AUTH must be 'jwt' or 'none'")
        language = get("OSTEO_CDS_LANGUAGE", "en").strip()
        if language not in LANGUAGES:
            raise SettingsError(f"OSTEO_CDS_LANGUAGE must be one of {', '.join(LANGUAGES)}")
        tz = get("OSTEO_CDS_TZ", "Asia/Shanghai").strip()
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"OSTEO_CDS_TZ: unknown time zone {tz!r}") from exc
        today = None
        if get("OSTEO_CDS_TODAY"):
            try:
                today = date.fromisoformat(get("OSTEO_CDS_TODAY", "").strip())
            except ValueError as exc:
                raise SettingsError("OSTEO_CDS_TODAY must be YYYY-MM-DD") from exc
        disabled = frozenset(_csv(get("OSTEO_CDS_DISABLED_CARDS", "")))
        unknown = disabled - TOPICS.keys()
        if unknown:
            raise SettingsError(
                f"OSTEO_CDS_DISABLED_CARDS: unknown topic code(s) {', '.join(sorted(unknown))}"
            )
        code_map_path = get("OSTEO_CDS_CODE_MAP") or None
        code_map = load_code_map(Path(code_map_path)) if code_map_path else CodeMap()
        issuers_raw = get("OSTEO_CDS_TRUSTED_ISSUERS", "{}") or "{}"
        try:
            issuers = json.loads(issuers_raw)
        except json.JSONDecodeError as exc:
            raise SettingsError("OSTEO_CDS_TRUSTED_ISSUERS must be a JSON object issuer -> JWKS URL") from exc
        if not isinstance(issuers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in issuers.items()
        ):
            raise SettingsError("OSTEO_CDS_TRUSTED_ISSUERS must be a JSON object issuer -> JWKS URL")
        clinical = ClinicalSettings(
            menopause_age=int_setting(get, "OSTEO_CDS_MENOPAUSE_AGE", 50, 30, 70),
            older_male_age=int_setting(get, "OSTEO_CDS_OLDER_MALE_AGE", 50, 30, 90),
            low_bmi=_float(get, "OSTEO_CDS_LOW_BMI", 18.5, 10, 30),
            severe_obesity_bmi=_float(get, "OSTEO_CDS_SEVERE_OBESITY_BMI", 35.0, 25, 80),
            spine_radiograph_age=int_setting(get, "OSTEO_CDS_SPINE_XR_AGE", 60, 18, 120),
            spine_imaging_lookback_months=int_setting(
                get, "OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", 36, 1, 600
            ),
            bmd_lookback_months=_optional_int(get, "OSTEO_CDS_BMD_LOOKBACK_MONTHS", 1, 1200),
            doubtful_fracture_months=int_setting(get, "OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS", 6, 1, 600),
            bmd_remeasure_months=int_setting(get, "OSTEO_CDS_BMD_REMEASURE_MONTHS", 60, 1, 1200),
            glucocorticoid_months=int_setting(get, "OSTEO_CDS_GLUCOCORTICOID_MONTHS", 3, 1, 120),
            qct_ct_women_age=int_setting(get, "OSTEO_CDS_QCT_CT_WOMEN_AGE", 65, 18, 120),
            qct_ct_men_age=int_setting(get, "OSTEO_CDS_QCT_CT_MEN_AGE", 70, 18, 120),
            qct_ct_lookback_months=int_setting(get, "OSTEO_CDS_QCT_CT_LOOKBACK_MONTHS", 24, 1, 600),
        )
        smart_client_id = (get("OSTEO_CDS_SMART_CLIENT_ID") or "").strip() or None
        public_url = get("OSTEO_CDS_PUBLIC_URL") or None
        frame_ancestors = tuple(_csv(get("OSTEO_CDS_SMART_FRAME_ANCESTORS", "")))
        if smart_client_id and not public_url:
            raise SettingsError(
                "OSTEO_CDS_SMART_CLIENT_ID needs OSTEO_CDS_PUBLIC_URL (the app's redirect URI)"
            )
        for origin in frame_ancestors:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?", origin):
                raise SettingsError(
                    f"OSTEO_CDS_SMART_FRAME_ANCESTORS: {origin!r} is not an origin (scheme://host[:port])"
                )
        return cls(
            auth=auth,
            trusted_issuers=dict(issuers),
            public_url=public_url,
            fhir_servers=tuple(_csv(get("OSTEO_CDS_FHIR_SERVERS", ""))),
            cors_origins=tuple(_csv(get("OSTEO_CDS_CORS_ORIGINS", "*"))) or ("*",),
            language=language,
            code_map_path=code_map_path,
            code_map=code_map,
            disabled_cards=disabled,
            today=today,
            tz=tz,
            database_url=get("OSTEO_CDS_DATABASE_URL") or DEFAULT_DATABASE_URL,
            replay_db=get("OSTEO_CDS_REPLAY_DB") or DEFAULT_REPLAY_DB,
            redis_url=get("OSTEO_CDS_REDIS_URL") or None,
            max_body_bytes=int_setting(get, "OSTEO_CDS_MAX_BODY_BYTES", 5 * 1024 * 1024, 1024, 1 << 30),
            fhir_timeout_seconds=_float(get, "OSTEO_CDS_FHIR_TIMEOUT", 1.5, 0.05, 60),
            fhir_budget_seconds=_float(get, "OSTEO_CDS_FHIR_BUDGET", 2.0, 0.1, 120),
            fhir_max_pages=int_setting(get, "OSTEO_CDS_FHIR_MAX_PAGES", 10, 1, 1000),
            jwks_cache_seconds=int_setting(get, "OSTEO_CDS_JWKS_CACHE_SECONDS", 3600, 1, 86400 * 7),
            jwks_min_refresh_seconds=int_setting(get, "OSTEO_CDS_JWKS_MIN_REFRESH_SECONDS", 60, 1, 86400),
            preview_enabled=_bool(get, "OSTEO_CDS_PREVIEW", False),
            metrics_enabled=_bool(get, "OSTEO_CDS_METRICS", True),
            site_has_qct=_bool(get, "OSTEO_CDS_SITE_HAS_QCT", True),
            silent=_bool(get, "OSTEO_CDS_SILENT", False),
            smart_client_id=smart_client_id,
            smart_client_secret=(get("OSTEO_CDS_SMART_CLIENT_SECRET") or "").strip() or None,
            smart_frame_ancestors=frame_ancestors,
            clinical=clinical,
            server=ServerSettings.from_env(env),
        )


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def int_setting(get: Any, name: str, default: int, low: int, high: int) -> int:
    """An integer setting in [low, high]; default when unset or empty."""
    raw = get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}")
    return value


def _optional_int(get: Any, name: str, low: int, high: int) -> int | None:
    raw = get(name)
    if raw is None or raw.strip() in ("", "none"):
        return None
    return int_setting(get, name, 0, low, high)


def _float(get: Any, name: str, default: float, low: float, high: float) -> float:
    raw = get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}")
    return value


def _bool(get: Any, name: str, default: bool) -> bool:
    raw = get(name)
    if raw is None or raw == "":
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false")
