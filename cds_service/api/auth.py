"""CDS Hooks JWT verification (spec §Trusting CDS Clients) and its jti replay stores; no Flask here."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ec import SECP384R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

if TYPE_CHECKING:
    import redis

    from cds_service.settings import Settings

# The spec forbids `none` and symmetric algorithms and recommends exactly these two; nothing else is accepted.
ACCEPTED_ALGORITHMS = frozenset({"ES384", "RS384"})
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
JWKS_TIMEOUT_SECONDS = 2.0
# Bounds on attacker- or peer-controlled input, checked before any parsing work.
MAX_TOKEN_CHARS = 16 * 1024
MAX_JWKS_BYTES = 1024 * 1024
MIN_RSA_KEY_BITS = 2048
# After a failed JWKS fetch, requests fail fast for this long instead of each waiting out its own timeout.
FAILED_FETCH_RETRY_SECONDS = 5.0
REDIS_KEY_PREFIX = "osteo-cds:jti:"
REDIS_TIMEOUT_SECONDS = 1.0

VerificationKey = EllipticCurvePublicKey | RSAPublicKey


class AuthError(Exception):
    """The request is not authenticated. `reason` is for logs only: it never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplayStoreUnavailable(AuthError):
    """The jti store could not be reached: the request fails closed; callers may answer 503, not 401."""


@dataclass(frozen=True)
class VerifiedClaims:
    iss: str
    jti: str
    tenant: str | None
    exp: float


class ReplayStore(Protocol):
    def add_if_new(self, key: str, expires_at: float) -> bool:
        """Remember `key` until `expires_at` (epoch seconds); False when it is already remembered."""
        ...


def expected_audience(public_url: str | None, request_url_root: str, path: str) -> str:
    """The exact URL of the endpoint being called, which the JWT `aud` must name.

    With OSTEO_CDS_PUBLIC_URL configured it is `public_url + path`. Otherwise it is derived from the
    request root (Flask's `request.url_root`), which trusts the Host header and the scheme the WSGI server
    saw: behind a TLS-terminating proxy that is `http://internal-host/…`, and anyone can choose the Host
    they send. Set the public URL in production. `path` is the path below the app root (`request.path`).
    """
    base = public_url if public_url else request_url_root
    return base.rstrip("/") + path


def is_allowed_jwks_url(url: str) -> bool:
    """https anywhere; plain http only to a loopback host (local development and tests)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _fetch_jwks_over_http(url: str) -> requests.Response:
    # No redirects: the JWKS URL is configured exactly, and a redirect could downgrade https to http.
    return requests.get(
        url,
        timeout=JWKS_TIMEOUT_SECONDS,
        allow_redirects=False,
        headers={"Accept": "application/json"},
    )


def _show(value: object) -> str:
    """A peer-supplied value made safe and short for a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class _IssuerKeys:
    """One trusted issuer's JWKS cache; its lock also makes concurrent fetches for the issuer wait for one."""

    jwks_url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, list[tuple[VerificationKey, str | None]]] | None = None
    fetched_at: float = -math.inf
    attempted_at: float = -math.inf
    last_failure: str | None = None


class JwtVerifier:
    """Verifies CDS Hooks JWTs from an allowlist of issuers, each with its configured JWKS URL.

    Shared by the threads of a worker. `clock` drives the JWKS cache and refresh intervals; the time
    claims (exp, iat, nbf) are checked by PyJWT against the system clock, with `leeway_seconds`.
    """

    def __init__(
        self,
        trusted_issuers: Mapping[str, str],
        replay_store: ReplayStore,
        *,
        http_get: Callable[[str], requests.Response] | None = None,
        cache_seconds: int,
        min_refresh_seconds: int,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        refused = [url for url in trusted_issuers.values() if not is_allowed_jwks_url(url)]
        if refused:
            raise ValueError(
                "JWKS URLs must be https (plain http only for loopback hosts): " + ", ".join(refused)
            )
        self._issuers = {iss: _IssuerKeys(jwks_url=url) for iss, url in trusted_issuers.items()}
        self._replay_store = replay_store
        self._http_get = http_get or _fetch_jwks_over_http
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._leeway = leeway_seconds
        self._clock = clock

    def verify(self, token: str, expected_audience: str) -> VerifiedClaims:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise AuthError("token empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token header ({type(exc).__name__})") from None
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            raise AuthError(f"alg {_show(alg)} not accepted")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise AuthError(f"typ {_show(typ)} is not JWT")
        if "crit" in header or "b64" in header:
            raise AuthError("critical header extensions are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("kid missing")

        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token payload ({type(exc).__name__})") from None
        iss = unverified.get("iss")
        if not isinstance(iss, str) or iss not in self._issuers:
            raise AuthError(f"untrusted issuer {_show(iss)}")
        issuer = self._issuers[iss]
        jku = header.get("jku")
        if jku is not None and jku != issuer.jwks_url:
            # Never fetched: a token must not choose where its own keys come from.
            raise AuthError(f"jku {_show(jku)} is not the JWKS URL configured for {iss}")
        _check_claim_types(unverified)

        key = self._key_for(issuer, kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=expected_audience,
                issuer=iss,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidAudienceError:
            raise AuthError(f"aud {_show(unverified.get('aud'))} does not name {expected_audience}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"{type(exc).__name__}: {_show(str(exc))}") from None

        exp = float(claims["exp"])
        tenant = claims.get("tenant")
        jti = claims["jti"]
        if not self._replay_store.add_if_new(f"{iss}|{jti}", expires_at=exp + self._leeway):
            raise AuthError("replayed jti")
        return VerifiedClaims(iss=iss, jti=jti, tenant=tenant, exp=exp)

    def _key_for(self, issuer: _IssuerKeys, kid: str, alg: str) -> VerificationKey:
        with issuer.lock:
            now = self._clock()
            fresh = issuer.keys is not None and now - issuer.fetched_at < self._cache_seconds
            if not fresh:
                recently_failed = now - issuer.attempted_at < min(
                    FAILED_FETCH_RETRY_SECONDS, self._min_refresh_seconds
                )
                if issuer.last_failure is not None and recently_failed:
                    raise AuthError(f"JWKS unavailable for {issuer.jwks_url}: {issuer.last_failure}")
                self._refresh(issuer)
            assert issuer.keys is not None
            candidates = issuer.keys.get(kid)
            if candidates is None and fresh:
                # A kid we do not know may be a key rotation; random kids must not hammer the key server.
                if now - issuer.attempted_at < self._min_refresh_seconds:
                    raise AuthError(f"unknown kid {_show(kid)}")
                self._refresh(issuer)
                candidates = issuer.keys.get(kid)
            if candidates is None:
                raise AuthError(f"unknown kid {_show(kid)}")
        for key, key_alg in candidates:
            if key_alg is not None and key_alg != alg:
                continue
            if alg == "ES384" and isinstance(key, EllipticCurvePublicKey):
                return key
            if alg == "RS384" and isinstance(key, RSAPublicKey):
                return key
        raise AuthError(f"key {_show(kid)} does not fit alg {alg}")

    def _refresh(self, issuer: _IssuerKeys) -> None:
        """Fetch the issuer's JWKS (caller holds its lock); on failure keep the cache and raise AuthError."""
        try:
            keys = self._fetch(issuer.jwks_url)
        except AuthError as exc:
            issuer.attempted_at = self._clock()
            issuer.last_failure = exc.reason
            raise
        issuer.keys = keys
        issuer.fetched_at = issuer.attempted_at = self._clock()
        issuer.last_failure = None

    def _fetch(self, url: str) -> dict[str, list[tuple[VerificationKey, str | None]]]:
        try:
            response = self._http_get(url)
        except Exception as exc:  # a JWKS fetch must end in AuthError, whatever the transport raised
            raise AuthError(f"JWKS fetch from {url} failed ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AuthError(f"JWKS fetch from {url} answered HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise AuthError(f"JWKS from {url} is larger than {MAX_JWKS_BYTES} bytes")
        try:
            document = json.loads(response.content)
        except (ValueError, RecursionError):
            raise AuthError(f"JWKS from {url} is not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise AuthError(f"JWKS from {url} has no keys array")
        keys: dict[str, list[tuple[VerificationKey, str | None]]] = {}
        for jwk in document["keys"]:
            parsed = _signature_key(jwk)
            if parsed is not None:
                keys.setdefault(jwk["kid"], []).append(parsed)
        return keys


def _check_claim_types(payload: Mapping[str, Any]) -> None:
    """Cheap shape checks before the signature; PyJWT would coerce e.g. a string exp with int()."""
    jti = payload.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AuthError("jti missing or not a string")
    for claim in ("exp", "iat", "nbf"):
        if claim in payload and not _is_number(payload[claim]):
            raise AuthError(f"{claim} is not a number")
    if not _is_number(payload.get("exp")) or not _is_number(payload.get("iat")):
        raise AuthError("exp or iat missing")
    tenant = payload.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise AuthError("tenant is not a string")


def _signature_key(jwk: object) -> tuple[VerificationKey, str | None] | None:
    """A JWK we may verify CDS Hooks signatures with (EC P-384 or RSA ≥ 2048 public key), else None."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    if "d" in jwk:
        return None  # a published private key is a compromised key
    jwk_alg = jwk.get("alg")
    if jwk_alg is not None and jwk_alg not in ACCEPTED_ALGORITHMS:
        return None
    try:
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-384":
            ec_key = ECAlgorithm.from_jwk(jwk)
            if isinstance(ec_key, EllipticCurvePublicKey) and isinstance(ec_key.curve, SECP384R1):
                return ec_key, jwk_alg
        elif jwk.get("kty") == "RSA":
            rsa_key = RSAAlgorithm.from_jwk(jwk)
            if isinstance(rsa_key, RSAPublicKey) and rsa_key.key_size >= MIN_RSA_KEY_BITS:
                return rsa_key, jwk_alg
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    return None


class SqliteReplayStore:
    """jti store in one SQLite file (WAL), shared by all worker processes of one machine."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        purge_interval_seconds: float = 60.0,
        busy_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._purge_interval = purge_interval_seconds
        self._busy_timeout = busy_timeout_seconds
        self._clock = clock
        self._local = threading.local()
        self._purge_lock = threading.Lock()
        self._last_purge = -math.inf
        try:
            conn = self._connection()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS seen_jti (key TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
                " WITHOUT ROWID"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS seen_jti_expires_at ON seen_jti (expires_at)")
        except sqlite3.Error as exc:
            raise ReplayStoreUnavailable(f"replay store {self._path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and per process: an SQLite connection must not cross a fork
        # (gunicorn --preload) nor be shared between threads without a lock.
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != pid:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.pid = pid
        return conn

    def add_if_new(self, key: str, expires_at: float) -> bool:
        now = self._clock()
        try:
            self._purge_if_due(now)
            # A row that has expired but is not purged yet does not count as seen.
            cursor = self._connection().execute(
                "INSERT INTO seen_jti (key, expires_at) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
                " WHERE seen_jti.expires_at <= ?",
                (key, expires_at, now),
            )
        except sqlite3.Error as exc:
            raise ReplayStoreUnavailable(f"replay store {self._path}: {exc}") from exc
        return cursor.rowcount == 1

    def purge_expired(self) -> int:
        """Delete the rows whose time has passed; returns how many."""
        try:
            cursor = self._connection().execute(
                "DELETE FROM seen_jti WHERE expires_at <= ?", (self._clock(),)
            )
        except sqlite3.Error as exc:
            raise ReplayStoreUnavailable(f"replay store {self._path}: {exc}") from exc
        return cursor.rowcount

    def _purge_if_due(self, now: float) -> None:
        with self._purge_lock:
            if now - self._last_purge < self._purge_interval:
                return
            self._last_purge = now
        self.purge_expired()


class RedisReplayStore:
    """jti store in Redis (`SET key 1 NX EXAT`), shared by every machine that uses the same Redis."""

    def __init__(self, url_or_client: str | redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        # Imported here: redis is needed only with OSTEO_CDS_REDIS_URL, and costs start-up time otherwise.
        import redis

        self._redis_error: type[Exception] = redis.RedisError
        if isinstance(url_or_client, str):
            self._client: redis.Redis = redis.Redis.from_url(
                url_or_client,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        else:
            self._client = url_or_client
        self._clock = clock

    def add_if_new(self, key: str, expires_at: float) -> bool:
        # EXAT takes whole seconds; round up, and never into the past (Redis would drop the key at once).
        expire_at = max(math.ceil(expires_at), math.ceil(self._clock()) + 1)
        try:
            added = self._client.set(REDIS_KEY_PREFIX + key, b"1", nx=True, exat=expire_at)
        except self._redis_error as exc:
            raise ReplayStoreUnavailable(f"replay store redis: {type(exc).__name__}") from exc
        return bool(added)


def build_replay_store(settings: Settings) -> ReplayStore:
    """Redis when OSTEO_CDS_REDIS_URL is set (several machines), else the per-machine SQLite file
    at OSTEO_CDS_REPLAY_DB (default ./var/jti.sqlite3)."""
    if settings.redis_url:
        return RedisReplayStore(settings.redis_url)
    return SqliteReplayStore(settings.replay_db)


def build_jwt_verifier(settings: Settings, replay_store: ReplayStore) -> JwtVerifier:
    """The verifier for OSTEO_CDS_AUTH=jwt, from the trusted issuers and JWKS timings in settings."""
    return JwtVerifier(
        settings.trusted_issuers,
        replay_store,
        cache_seconds=settings.jwks_cache_seconds,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
    )
