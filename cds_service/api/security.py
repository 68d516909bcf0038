"""The JWT gate before the CDS Hooks calls (OSTEO_CDS_AUTH=jwt) and the start-up checks of its settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import orjson
from flask import Flask, Response, g, request

from cds_service.api import observability
from cds_service.api.auth import (
    AuthError,
    JwtVerifier,
    ReplayStore,
    ReplayStoreUnavailable,
    build_jwt_verifier,
    build_replay_store,
    expected_audience,
    is_allowed_jwks_url,
)
from cds_service.settings import Settings

log = logging.getLogger(__name__)

AUTH_KEY = "osteo_cds.auth"
# Every call below this prefix (service calls, feedback, and whatever is added there later) needs a JWT;
# discovery itself (`/cds-services`, no slash), health, readiness and metrics stay public.
PROTECTED_PREFIX = "/cds-services/"
# The public CDS Hooks sandbox signs with a key whose private half is published in its repository.
SANDBOX_HOSTS = frozenset({"sandbox.cds-hooks.org"})
# A key no verifier ever writes (theirs are "issuer|jti"), for the readiness probe of the replay store.
READINESS_PROBE_KEY = "\x00osteo-cds-readiness-probe"

# The same body for every refusal: a client learns nothing about which check failed.
_UNAUTHORIZED_BODY = orjson.dumps(
    {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
)
_UNAVAILABLE_BODY = orjson.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "transient",
                "diagnostics": "authentication is temporarily unavailable",
            }
        ],
    }
)

# AuthError reasons (free text for the log, see auth.py) → a closed set of classes for metrics. Matched
# on the start of the reason only: what follows may be peer-chosen text. PyJWT's errors come as "Name: …".
_REASON_CLASSES: tuple[tuple[str, str], ...] = (
    ("no bearer token", "missing"),
    ("replayed jti", "replay"),
    ("ExpiredSignatureError", "expired"),
    ("ImmatureSignatureError", "not-yet-valid"),
    ("InvalidIssuedAtError", "not-yet-valid"),
    ("InvalidSignatureError", "signature"),
    ("aud ", "audience"),
    ("InvalidAudienceError", "audience"),
    ("untrusted issuer", "issuer"),
    ("InvalidIssuerError", "issuer"),
    ("jku ", "issuer"),
    ("alg ", "algorithm"),
    ("InvalidAlgorithmError", "algorithm"),
    ("JWKS ", "jwks"),
    ("unknown kid", "key"),
    ("key ", "key"),
    ("jti ", "claims"),
    ("exp ", "claims"),
    ("iat ", "claims"),
    ("nbf ", "claims"),
    ("tenant ", "claims"),
    ("MissingRequiredClaimError", "claims"),
    ("malformed", "malformed"),
    ("DecodeError", "malformed"),
    ("token empty or too long", "malformed"),
    ("typ ", "malformed"),
    ("kid missing", "malformed"),
    ("critical header", "malformed"),
)


class AuthSettingsError(ValueError):
    """OSTEO_CDS_AUTH=jwt with settings under which the gate could not work; reported at start."""


def check_auth_settings(settings: Settings) -> None:
    """Refuse jwt mode when no call could ever be accepted, or when a key could come over plain http."""
    if settings.auth != "jwt":
        return
    if not settings.trusted_issuers:
        raise AuthSettingsError(
            "jwt mode needs the JWT check to trust at least one issuer, and OSTEO_CDS_TRUSTED_ISSUERS is "
            "empty: no call could ever be accepted (set it, or OSTEO_CDS_AUTH=none for development)"
        )
    refused = sorted(iss for iss, url in settings.trusted_issuers.items() if not is_allowed_jwks_url(url))
    if refused:
        raise AuthSettingsError(
            "OSTEO_CDS_TRUSTED_ISSUERS: the JWKS URL must be https (plain http only for a loopback host) "
            "for issuer(s) " + ", ".join(refused)
        )
    if not all(iss.strip() for iss in settings.trusted_issuers):
        raise AuthSettingsError("OSTEO_CDS_TRUSTED_ISSUERS: an issuer is empty")


def trusts_public_sandbox(settings: Settings) -> bool:
    """Whether an issuer or JWKS URL of the public CDS Hooks sandbox is configured as trusted."""
    return any(
        urlsplit(value).hostname in SANDBOX_HOSTS
        for pair in settings.trusted_issuers.items()
        for value in pair
    )


def reason_class(error: AuthError) -> str:
    """The metric label for a refusal: one of a closed set, whatever the reason's text."""
    if isinstance(error, ReplayStoreUnavailable):
        return "replay-store-unavailable"
    for fragment, label in _REASON_CLASSES:
        if error.reason.startswith(fragment):
            return label
    return "other"


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; AuthError without one."""
    if not authorization:
        raise AuthError("no bearer token (no Authorization header)")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthError("no bearer token (Authorization is not 'Bearer <token>')")
    return token


class JwtGate:
    """The verifier and its replay store: built on first use in each worker process, shared by its threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        build_store: Callable[[Settings], ReplayStore] = build_replay_store,
        build_verifier: Callable[[Settings, ReplayStore], JwtVerifier] = build_jwt_verifier,
    ) -> None:
        self._settings = settings
        self._build_store = build_store
        self._build_verifier = build_verifier
        self._lock = threading.Lock()
        self._store: ReplayStore | None = None
        self._verifier: JwtVerifier | None = None

    def replay_store(self) -> ReplayStore:
        """The jti store; ReplayStoreUnavailable when it cannot be opened (tried again on the next call)."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = self._build_store(self._settings)
                except ReplayStoreUnavailable:
                    raise
                except Exception as exc:  # e.g. a directory that cannot be created, a bad Redis URL
                    raise ReplayStoreUnavailable(f"replay store not opened ({type(exc).__name__})") from None
            return self._store

    def verifier(self) -> JwtVerifier:
        store = self.replay_store()
        with self._lock:
            if self._verifier is None:
                self._verifier = self._build_verifier(self._settings, store)
            return self._verifier

    def check_replay_store(self) -> None:
        """Readiness: the replay store opens and answers a write (raises ReplayStoreUnavailable)."""
        self.replay_store().add_if_new(READINESS_PROBE_KEY, expires_at=time.time() + 5)

    def authenticate(self) -> Response | None:
        """None when the current request may go on; else the 401 (or 503) to answer with."""
        try:
            token = bearer_token(request.headers.get("Authorization"))
            audience = expected_audience(self._settings.public_url, request.url_root, request.path)
            claims = self.verifier().verify(token, audience)
        except AuthError as exc:
            refusal = reason_class(exc)
            observability.count_auth_failure(refusal)
            # The reason names the failed check (and peer-chosen values, shortened); never the token.
            log.warning(
                "authentication refused (%s): %s",
                refusal,
                exc.reason,
                extra={"auth_failure": refusal},
            )
            if isinstance(exc, ReplayStoreUnavailable):
                return _answer(503, _UNAVAILABLE_BODY, {"Retry-After": "5"})
            return _answer(401, _UNAUTHORIZED_BODY, {"WWW-Authenticate": "Bearer"})
        # for the request's log line (CDS Hooks best practice: iss and tenant may be logged, the token never)
        g.auth_issuer = claims.iss
        if claims.tenant is not None:
            g.auth_tenant = claims.tenant[:80]
        return None


def _answer(status: int, body: bytes, headers: dict[str, str]) -> Response:
    response = Response(body, status=status, mimetype="application/json")
    response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def register_auth(app: Flask, settings: Settings) -> None:
    """In jwt mode, every non-preflight request below /cds-services/ must carry a verified JWT."""
    if settings.auth != "jwt":
        return
    if trusts_public_sandbox(settings):
        log.warning(
            "OSTEO_CDS_TRUSTED_ISSUERS trusts the public CDS Hooks sandbox: its signing key is published, "
            "so anyone can make tokens it accepts (testing only, never with real patient data)"
        )
    gate = JwtGate(settings)
    app.extensions[AUTH_KEY] = gate

    @app.before_request
    def _require_jwt() -> Response | None:
        # Preflights carry no credentials by design (CORS); flask-cors answers them.
        if request.method == "OPTIONS" or not request.path.startswith(PROTECTED_PREFIX):
            return None
        return gate.authenticate()


def auth_gate_of(app: Flask) -> JwtGate | None:
    """The app's JWT gate (None when OSTEO_CDS_AUTH=none)."""
    gate = app.extensions.get(AUTH_KEY)
    return gate if isinstance(gate, JwtGate) else None
