"""CDS Hooks JWT verification and jti replay stores (cds_service/api/auth.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import jwt
import pytest
import redis
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service.api.auth import (
    AuthError,
    JwtVerifier,
    RedisReplayStore,
    ReplayStoreUnavailable,
    SqliteReplayStore,
    build_jwt_verifier,
    build_replay_store,
    expected_audience,
)
from cds_service.settings import Settings

ISSUER = "https://ehr.example.org/fhir"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
OTHER_ISSUER = "https://other-ehr.example.net"
OTHER_JWKS_URL = "https://other-ehr.example.net/jwks"
AUDIENCE = "https://cds.example.org/cds-services/osteoporosis-imaging"
EC_KID = "ec-1"
RSA_KID = "rsa-1"
CACHE_SECONDS = 3600
MIN_REFRESH_SECONDS = 60
LEEWAY = 30

_EC_KEY = ec.generate_private_key(ec.SECP384R1())
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_EC_KEY = ec.generate_private_key(ec.SECP384R1())


# ---- builders -------------------------------------------------------------------------------------


def jwk(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
    to_jwk = ECAlgorithm.to_jwk if alg == "ES384" else RSAAlgorithm.to_jwk
    return {**to_jwk(public_key, as_dict=True), "kid": kid, "use": "sig", "alg": alg}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


STANDARD_JWKS = jwks(
    jwk(_EC_KEY.public_key(), EC_KID, "ES384"),
    jwk(_RSA_KEY.public_key(), RSA_KID, "RS384"),
)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(
    *,
    alg: str = "ES384",
    key: Any = None,
    kid: str | None = None,
    headers: dict[str, Any] | None = None,
    **claim_changes: Any,
) -> str:
    if key is None:
        key = _EC_KEY if alg == "ES384" else _RSA_KEY
    if kid is None:
        kid = EC_KID if alg == "ES384" else RSA_KID
    header = {"kid": kid, "typ": "JWT", **(headers or {})}
    return jwt.encode(claims(**claim_changes), key, algorithm=alg, headers=header)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_token(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token PyJWT would refuse to produce (alg none, HS256 keyed with a public key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def public_pem(private_key: Any) -> bytes:
    pem: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryReplayStore:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def add_if_new(self, key: str, expires_at: float) -> bool:
        if key in self.seen:
            return False
        self.seen[key] = expires_at
        return True


@dataclass
class Harness:
    verifier: JwtVerifier
    jwks_server: responses.RequestsMock
    clock: FakeClock
    replay_store: MemoryReplayStore

    def jwks_fetches(self, url: str = JWKS_URL) -> int:
        return sum(1 for call in self.jwks_server.calls if call.request.url == url)


@pytest.fixture
def jwks_server() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as server:
        server.get(JWKS_URL, json=STANDARD_JWKS)
        yield server


@pytest.fixture
def harness(jwks_server: responses.RequestsMock) -> Harness:
    clock = FakeClock()
    store = MemoryReplayStore()
    verifier = JwtVerifier(
        {ISSUER: JWKS_URL, OTHER_ISSUER: OTHER_JWKS_URL},
        store,
        cache_seconds=CACHE_SECONDS,
        min_refresh_seconds=MIN_REFRESH_SECONDS,
        leeway_seconds=LEEWAY,
        clock=clock,
    )
    return Harness(verifier, jwks_server, clock, store)


# ---- accepted tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: token(alg="ES384"), id="valid ES384"),
        pytest.param(lambda: token(alg="RS384"), id="valid RS384"),
        pytest.param(lambda: token(aud=[AUDIENCE]), id="aud as one-element array"),
        pytest.param(lambda: token(aud=["https://elsewhere.example", AUDIENCE]), id="aud array naming us"),
        pytest.param(lambda: token(headers={"typ": None}), id="typ absent"),
        pytest.param(lambda: token(headers={"jku": JWKS_URL}), id="jku equal to configured URL"),
        pytest.param(
            lambda: token(sub="client-id", nbf=int(time.time()) - 300, epic_extra={"x": 1}),
            id="Epic extra claims sub nbf and unknown claim",
        ),
        pytest.param(lambda: token(iat=int(time.time()) + LEEWAY - 5), id="iat slightly ahead within leeway"),
        pytest.param(lambda: token(exp=int(time.time()) - LEEWAY + 5), id="exp just past within leeway"),
    ],
)
def test_valid_tokens_are_accepted(harness: Harness, make_token: Callable[[], str]) -> None:
    verified = harness.verifier.verify(make_token(), AUDIENCE)
    assert verified.iss == ISSUER
    assert verified.tenant is None


def test_verified_claims_carry_tenant_jti_and_exp(harness: Harness) -> None:
    exp = int(time.time()) + 120
    verified = harness.verifier.verify(token(jti="abc-123", tenant="hospital-7", exp=exp), AUDIENCE)
    assert (verified.iss, verified.jti, verified.tenant, verified.exp) == (
        ISSUER,
        "abc-123",
        "hospital-7",
        exp,
    )
    assert harness.replay_store.seen == {f"{ISSUER}|abc-123": exp + LEEWAY}


# ---- rejected tokens ------------------------------------------------------------------------------


def _alg_none() -> str:
    return handmade_token({"alg": "none", "typ": "JWT", "kid": EC_KID}, claims(), lambda _: b"")


def _hs256_with_public_key_as_secret(private_key: Any) -> Callable[[], str]:
    # The classic confusion attack: HMAC keyed with the PEM a naive verifier would load as "the key".
    def make() -> str:
        secret = public_pem(private_key)
        return handmade_token(
            {"alg": "HS256", "typ": "JWT", "kid": EC_KID if private_key is _EC_KEY else RSA_KID},
            claims(),
            lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
        )

    return make


def _tampered_payload() -> str:
    header, _, signature = token().split(".")
    forged = _b64(json.dumps(claims(tenant="someone-else")).encode())
    return f"{header}.{forged}.{signature}"


REJECTED = [
    pytest.param(lambda: token(exp=int(time.time()) - 120), "ExpiredSignature", id="expired"),
    pytest.param(lambda: token(aud="https://cds.example.org/cds-services/other"), "aud", id="wrong aud"),
    pytest.param(lambda: token(aud=AUDIENCE + "/"), "aud", id="aud with trailing slash"),
    pytest.param(
        lambda: token(aud=["https://a.example", "https://b.example"]), "aud", id="aud array not naming us"
    ),
    pytest.param(lambda: token(iss="https://rogue.example.com"), "untrusted issuer", id="unknown iss"),
    pytest.param(lambda: token(iss=None), "untrusted issuer", id="iss missing"),
    pytest.param(lambda: token(key=_OTHER_EC_KEY), "InvalidSignature", id="bad signature same kid other key"),
    pytest.param(_tampered_payload, "InvalidSignature", id="payload tampered"),
    pytest.param(_alg_none, "alg 'none'", id="alg none"),
    pytest.param(
        _hs256_with_public_key_as_secret(_RSA_KEY), "alg 'HS256'", id="HS256 keyed with RSA public PEM"
    ),
    pytest.param(
        _hs256_with_public_key_as_secret(_EC_KEY), "alg 'HS256'", id="HS256 keyed with EC public PEM"
    ),
    pytest.param(
        lambda: token(alg="ES256", key=ec.generate_private_key(ec.SECP256R1())), "alg 'ES256'", id="ES256"
    ),
    pytest.param(lambda: token(alg="RS256"), "alg 'RS256'", id="RS256"),
    pytest.param(lambda: token(alg="RS384", kid=EC_KID), "does not fit alg", id="RS384 with kid of EC key"),
    pytest.param(lambda: token(iat=int(time.time()) + 600), "ImmatureSignature", id="iat in the future"),
    pytest.param(lambda: token(nbf=int(time.time()) + 600), "ImmatureSignature", id="nbf in the future"),
    pytest.param(lambda: token(jti=None), "jti", id="jti missing"),
    pytest.param(lambda: token(jti=42), "jti", id="jti not a string"),
    pytest.param(lambda: token(iat=None), "iat", id="iat missing"),
    pytest.param(lambda: token(exp=str(int(time.time()) + 300)), "exp is not a number", id="exp as string"),
    pytest.param(lambda: token(tenant=7), "tenant", id="tenant not a string"),
    pytest.param(lambda: token(headers={"typ": "at+jwt"}), "typ", id="typ not JWT"),
    pytest.param(lambda: token(kid=""), "kid missing", id="kid empty"),
    pytest.param(lambda: token(headers={"crit": ["exp"]}), "malformed token header", id="crit unknown"),
    pytest.param(lambda: "not-a-jwt", "malformed", id="garbage"),
    pytest.param(lambda: "", "empty", id="empty token"),
    pytest.param(lambda: "a" * 20000, "too long", id="oversized token"),
]


@pytest.mark.parametrize(("make_token", "reason"), REJECTED)
def test_invalid_tokens_are_rejected(harness: Harness, make_token: Callable[[], str], reason: str) -> None:
    bad = make_token()
    with pytest.raises(AuthError) as caught:
        harness.verifier.verify(bad, AUDIENCE)
    assert reason in caught.value.reason
    for segment in bad.split("."):  # the reason goes to logs: no part of the token may reach it
        assert len(segment) < 16 or segment[:16] not in caught.value.reason
    assert harness.replay_store.seen == {}


def test_kid_missing_from_header_is_rejected(harness: Harness) -> None:
    no_kid = jwt.encode(claims(), _EC_KEY, algorithm="ES384")
    with pytest.raises(AuthError, match="kid missing"):
        harness.verifier.verify(no_kid, AUDIENCE)


def test_rejection_before_signature_work_does_not_fetch_keys(harness: Harness) -> None:
    for make in (_alg_none, lambda: token(iss="https://rogue.example.com")):
        with pytest.raises(AuthError):
            harness.verifier.verify(make(), AUDIENCE)
    assert harness.jwks_fetches() == 0


# ---- replay ---------------------------------------------------------------------------------------


def test_replayed_jti_is_rejected(harness: Harness) -> None:
    once = token()
    harness.verifier.verify(once, AUDIENCE)
    with pytest.raises(AuthError, match="replayed jti"):
        harness.verifier.verify(once, AUDIENCE)


def test_same_jti_from_two_issuers_is_not_a_replay(harness: Harness) -> None:
    harness.jwks_server.get(OTHER_JWKS_URL, json=jwks(jwk(_OTHER_EC_KEY.public_key(), "o-1", "ES384")))
    harness.verifier.verify(token(jti="shared"), AUDIENCE)
    harness.verifier.verify(token(jti="shared", iss=OTHER_ISSUER, key=_OTHER_EC_KEY, kid="o-1"), AUDIENCE)


def test_replay_is_caught_across_two_verifiers_sharing_one_sqlite_file(
    jwks_server: responses.RequestsMock, tmp_path: Path
) -> None:
    def worker() -> JwtVerifier:
        return JwtVerifier(
            {ISSUER: JWKS_URL},
            SqliteReplayStore(tmp_path / "jti.sqlite3"),
            cache_seconds=CACHE_SECONDS,
            min_refresh_seconds=MIN_REFRESH_SECONDS,
        )

    once = token()
    worker().verify(once, AUDIENCE)
    with pytest.raises(AuthError, match="replayed jti"):
        worker().verify(once, AUDIENCE)


def test_replay_store_failure_fails_closed_and_is_distinguishable(
    jwks_server: responses.RequestsMock,
) -> None:
    class BrokenRedis(fakeredis.FakeRedis):
        def set(self, *args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("down")

    verifier = JwtVerifier(
        {ISSUER: JWKS_URL},
        RedisReplayStore(BrokenRedis()),
        cache_seconds=CACHE_SECONDS,
        min_refresh_seconds=MIN_REFRESH_SECONDS,
    )
    with pytest.raises(ReplayStoreUnavailable):
        verifier.verify(token(), AUDIENCE)


# ---- key discovery --------------------------------------------------------------------------------


def test_jwks_is_cached_for_cache_seconds(harness: Harness) -> None:
    harness.verifier.verify(token(), AUDIENCE)
    harness.clock.advance(CACHE_SECONDS - 1)
    harness.verifier.verify(token(alg="RS384"), AUDIENCE)
    assert harness.jwks_fetches() == 1
    harness.clock.advance(2)
    harness.verifier.verify(token(), AUDIENCE)
    assert harness.jwks_fetches() == 2


def test_unknown_kid_is_rejected(harness: Harness) -> None:
    with pytest.raises(AuthError, match="unknown kid"):
        harness.verifier.verify(token(kid="nobody"), AUDIENCE)


def test_random_unknown_kids_do_not_hammer_the_key_server(harness: Harness) -> None:
    harness.verifier.verify(token(), AUDIENCE)  # warm cache
    for _ in range(100):
        with pytest.raises(AuthError, match="unknown kid"):
            harness.verifier.verify(token(kid=uuid.uuid4().hex), AUDIENCE)
        harness.clock.advance((MIN_REFRESH_SECONDS - 1) / 100)
    assert harness.jwks_fetches() <= 2


def test_random_unknown_kids_on_a_cold_cache_fetch_once(harness: Harness) -> None:
    for _ in range(100):
        with pytest.raises(AuthError, match="unknown kid"):
            harness.verifier.verify(token(kid=uuid.uuid4().hex), AUDIENCE)
    assert harness.jwks_fetches() == 1


def test_rotated_key_is_found_after_the_refresh_interval(harness: Harness) -> None:
    harness.verifier.verify(token(), AUDIENCE)
    rotated = ec.generate_private_key(ec.SECP384R1())
    harness.jwks_server.replace(
        responses.GET, JWKS_URL, json=jwks(*STANDARD_JWKS["keys"], jwk(rotated.public_key(), "ec-2", "ES384"))
    )
    with pytest.raises(AuthError, match="unknown kid"):
        harness.verifier.verify(token(key=rotated, kid="ec-2"), AUDIENCE)
    harness.clock.advance(MIN_REFRESH_SECONDS)
    assert harness.verifier.verify(token(key=rotated, kid="ec-2"), AUDIENCE).iss == ISSUER
    assert harness.jwks_fetches() == 2


def test_concurrent_first_requests_share_one_fetch(harness: Harness) -> None:
    tokens = [token() for _ in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(tokens))

    def verify(one: str) -> None:
        start.wait()
        try:
            harness.verifier.verify(one, AUDIENCE)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=verify, args=(one,)) for one in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert harness.jwks_fetches() == 1


def test_jku_not_equal_to_configured_url_is_rejected_and_not_fetched(harness: Harness) -> None:
    evil = "https://attacker.example.com/jwks.json"
    harness.jwks_server.get(evil, json=jwks(jwk(_OTHER_EC_KEY.public_key(), EC_KID, "ES384")))
    forged = token(key=_OTHER_EC_KEY, headers={"jku": evil})
    with pytest.raises(AuthError, match="jku"):
        harness.verifier.verify(forged, AUDIENCE)
    assert len(harness.jwks_server.calls) == 0


@pytest.mark.parametrize(
    ("jwks_url", "allowed"),
    [
        pytest.param("https://ehr.example.org/jwks", True, id="https"),
        pytest.param("http://127.0.0.1:8000/jwks", True, id="http 127.0.0.1"),
        pytest.param("http://127.8.9.10/jwks", True, id="http 127/8"),
        pytest.param("http://localhost:9000/jwks", True, id="http localhost"),
        pytest.param("http://[::1]/jwks", True, id="http ::1"),
        pytest.param("http://ehr.example.org/jwks", False, id="http public host"),
        pytest.param("http://10.0.0.5/jwks", False, id="http private address"),
        pytest.param("http://localhost.attacker.example/jwks", False, id="http localhost lookalike"),
        pytest.param("ftp://ehr.example.org/jwks", False, id="ftp"),
        pytest.param("/jwks", False, id="relative URL"),
    ],
)
def test_jwks_url_scheme_is_checked_at_construction(jwks_url: str, allowed: bool) -> None:
    def build() -> JwtVerifier:
        return JwtVerifier(
            {ISSUER: jwks_url},
            MemoryReplayStore(),
            cache_seconds=CACHE_SECONDS,
            min_refresh_seconds=MIN_REFRESH_SECONDS,
        )

    if allowed:
        build()
    else:
        with pytest.raises(ValueError, match="https"):
            build()


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param({"body": requests.ConnectionError("refused")}, id="connection refused"),
        pytest.param({"body": requests.ConnectTimeout("slow")}, id="timeout"),
        pytest.param({"status": 503, "json": {"error": "down"}}, id="HTTP 503"),
        pytest.param({"status": 302, "headers": {"Location": "http://evil.example/jwks"}}, id="redirect"),
        pytest.param({"body": "<html>gateway</html>"}, id="junk not JSON"),
        pytest.param({"json": ["not", "an", "object"]}, id="JSON not an object"),
        pytest.param({"json": {"keys": "nope"}}, id="keys not an array"),
    ],
)
def test_jwks_server_failure_is_an_auth_error(harness: Harness, outage: dict[str, Any]) -> None:
    harness.jwks_server.replace(responses.GET, JWKS_URL, **outage)
    with pytest.raises(AuthError, match="JWKS"):
        harness.verifier.verify(token(), AUDIENCE)


def test_jwks_fetch_uses_a_short_timeout_and_no_redirects(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real_get = requests.get

    def spy(url: str, **kwargs: Any) -> requests.Response:
        seen.update(kwargs)
        return real_get(url, **kwargs)

    monkeypatch.setattr(requests, "get", spy)
    harness.verifier.verify(token(), AUDIENCE)
    assert seen["timeout"] == 2.0
    assert seen["allow_redirects"] is False


def test_after_a_failed_fetch_requests_fail_fast_then_retry(harness: Harness) -> None:
    harness.jwks_server.replace(responses.GET, JWKS_URL, status=500)
    for _ in range(10):
        with pytest.raises(AuthError, match="JWKS"):
            harness.verifier.verify(token(), AUDIENCE)
    assert harness.jwks_fetches() == 1
    harness.jwks_server.replace(responses.GET, JWKS_URL, json=STANDARD_JWKS)
    harness.clock.advance(MIN_REFRESH_SECONDS)
    assert harness.verifier.verify(token(), AUDIENCE).iss == ISSUER


def test_stale_cache_is_not_used_when_the_refetch_fails(harness: Harness) -> None:
    harness.verifier.verify(token(), AUDIENCE)
    harness.jwks_server.replace(responses.GET, JWKS_URL, status=500)
    harness.clock.advance(CACHE_SECONDS)
    with pytest.raises(AuthError, match="JWKS"):
        harness.verifier.verify(token(), AUDIENCE)


def test_failed_refetch_keeps_the_fresh_cache(harness: Harness) -> None:
    harness.verifier.verify(token(), AUDIENCE)
    harness.jwks_server.replace(responses.GET, JWKS_URL, status=500)
    harness.clock.advance(MIN_REFRESH_SECONDS)
    with pytest.raises(AuthError, match="JWKS"):
        harness.verifier.verify(token(kid="rotated"), AUDIENCE)
    assert harness.verifier.verify(token(), AUDIENCE).iss == ISSUER


@pytest.mark.parametrize(
    "bad_jwk",
    [
        pytest.param(
            lambda: jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), EC_KID, "ES384"), id="P-256"
        ),
        pytest.param(
            lambda: jwk(
                rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), RSA_KID, "RS384"
            ),
            id="RSA 1024",
        ),
        pytest.param(lambda: {**jwk(_EC_KEY.public_key(), EC_KID, "ES384"), "use": "enc"}, id="use enc"),
        pytest.param(
            lambda: {**jwk(_EC_KEY.public_key(), EC_KID, "ES384"), "alg": "RS384"}, id="jwk alg mismatch"
        ),
        pytest.param(
            lambda: {**ECAlgorithm.to_jwk(_EC_KEY, as_dict=True), "kid": EC_KID}, id="private key published"
        ),
        pytest.param(lambda: {"kty": "oct", "k": "c2VjcmV0", "kid": EC_KID}, id="symmetric key"),
        pytest.param(
            lambda: {"kty": "EC", "crv": "P-384", "kid": EC_KID, "x": "!!", "y": "??"}, id="junk EC"
        ),
    ],
)
def test_unusable_jwks_entries_are_ignored(harness: Harness, bad_jwk: Callable[[], dict[str, Any]]) -> None:
    harness.jwks_server.replace(
        responses.GET, JWKS_URL, json=jwks(bad_jwk(), jwk(_RSA_KEY.public_key(), "rsa-ok", "RS384"))
    )
    with pytest.raises(AuthError):
        harness.verifier.verify(token(alg="ES384", kid=EC_KID), AUDIENCE)
    with pytest.raises(AuthError):
        harness.verifier.verify(token(alg="RS384", kid=EC_KID), AUDIENCE)
    assert harness.verifier.verify(token(alg="RS384", kid="rsa-ok"), AUDIENCE).iss == ISSUER


# ---- expected audience ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "url_root", "path", "expected"),
    [
        pytest.param(
            "https://cds.example.org",
            "http://10.0.0.3:8080/",
            "/cds-services/x",
            "https://cds.example.org/cds-services/x",
            id="public URL wins over request",
        ),
        pytest.param(
            "https://cds.example.org/osteo/",
            "http://internal/",
            "/cds-services",
            "https://cds.example.org/osteo/cds-services",
            id="public URL with prefix and trailing slash",
        ),
        pytest.param(
            None,
            "https://cds.example.org/",
            "/cds-services/x/feedback",
            "https://cds.example.org/cds-services/x/feedback",
            id="derived from request root",
        ),
        pytest.param(
            "", "http://localhost:8080/", "/cds-services", "http://localhost:8080/cds-services", id="empty"
        ),
    ],
)
def test_expected_audience(public_url: str | None, url_root: str, path: str, expected: str) -> None:
    assert expected_audience(public_url, url_root, path) == expected


# ---- replay stores --------------------------------------------------------------------------------


def test_sqlite_store_is_shared_by_two_instances_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "jti.sqlite3"
    first, second = SqliteReplayStore(path), SqliteReplayStore(path)
    expires = time.time() + 300
    assert first.add_if_new("iss|a", expires) is True
    assert second.add_if_new("iss|a", expires) is False
    assert second.add_if_new("iss|b", expires) is True
    assert first.add_if_new("iss|b", expires) is False
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _claim_keys_in_another_process(path: str, keys: list[str]) -> int:
    store = SqliteReplayStore(path)
    return sum(store.add_if_new(key, time.time() + 300) for key in keys)


def test_sqlite_store_admits_each_key_once_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "var" / "jti.sqlite3")
    keys = [f"iss|{i}" for i in range(200)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        admitted = pool.starmap(_claim_keys_in_another_process, [(path, keys)] * 4)
    assert sum(admitted) == len(keys)


def test_sqlite_store_is_safe_across_threads(tmp_path: Path) -> None:
    store = SqliteReplayStore(tmp_path / "jti.sqlite3")
    keys = [f"iss|{i}" for i in range(100)]
    admitted: list[bool] = []
    lock = threading.Lock()

    def claim() -> None:
        for key in keys:
            result = store.add_if_new(key, time.time() + 300)
            with lock:
                admitted.append(result)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == len(keys)


def test_sqlite_store_purges_expired_entries(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "jti.sqlite3"
    store = SqliteReplayStore(path, purge_interval_seconds=60, clock=clock)
    for i in range(10):
        store.add_if_new(f"old|{i}", clock.now + 10)
    store.add_if_new("young", clock.now + 3600)
    clock.advance(61)
    store.add_if_new("trigger", clock.now + 3600)
    remaining = {row[0] for row in sqlite3.connect(path).execute("SELECT key FROM seen_jti")}
    assert remaining == {"young", "trigger"}


def test_sqlite_store_expired_but_unpurged_entry_is_not_a_replay(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteReplayStore(tmp_path / "jti.sqlite3", purge_interval_seconds=10**9, clock=clock)
    assert store.add_if_new("iss|a", clock.now + 10) is True
    assert store.add_if_new("iss|a", clock.now + 10) is False
    clock.advance(11)
    assert store.add_if_new("iss|a", clock.now + 10) is True
    assert store.add_if_new("iss|a", clock.now + 10) is False
    assert store.purge_expired() == 0


def test_sqlite_store_failure_is_replay_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "jti.sqlite3").write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(ReplayStoreUnavailable):
        SqliteReplayStore(tmp_path / "jti.sqlite3")


def test_redis_store_sets_nx_with_absolute_expiry() -> None:
    client = fakeredis.FakeRedis()
    store = RedisReplayStore(client)
    expires = time.time() + 120.2
    assert store.add_if_new("iss|a", expires) is True
    assert store.add_if_new("iss|a", expires) is False
    assert store.add_if_new("iss|b", expires) is True
    assert 119 <= client.ttl("osteo-cds:jti:iss|a") <= 121


def test_redis_store_shared_by_two_instances() -> None:
    server = fakeredis.FakeServer()
    first = RedisReplayStore(fakeredis.FakeRedis(server=server))
    second = RedisReplayStore(fakeredis.FakeRedis(server=server))
    assert first.add_if_new("iss|a", time.time() + 60) is True
    assert second.add_if_new("iss|a", time.time() + 60) is False


def test_redis_store_never_sets_an_expiry_in_the_past() -> None:
    client = fakeredis.FakeRedis()
    store = RedisReplayStore(client)
    assert store.add_if_new("iss|late", time.time() - 5) is True
    assert client.ttl("osteo-cds:jti:iss|late") > 0


def test_build_replay_store_prefers_redis_when_configured(tmp_path: Path) -> None:
    store = build_replay_store(Settings(redis_url="redis://localhost:6379/0"))
    assert isinstance(store, RedisReplayStore)


def test_build_replay_store_uses_sqlite_at_the_configured_path(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "jti.sqlite3"
    store = build_replay_store(Settings.from_env({"OSTEO_CDS_REPLAY_DB": str(path)}))
    assert isinstance(store, SqliteReplayStore)
    assert path.exists()


def test_build_replay_store_defaults_to_var_next_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert isinstance(build_replay_store(Settings.from_env({})), SqliteReplayStore)
    assert (tmp_path / "var" / "jti.sqlite3").exists()


def test_build_jwt_verifier_reads_settings(jwks_server: responses.RequestsMock) -> None:
    settings = Settings(trusted_issuers={ISSUER: JWKS_URL})
    verifier = build_jwt_verifier(settings, MemoryReplayStore())
    assert verifier.verify(token(), AUDIENCE).iss == ISSUER
    with pytest.raises(ValueError):
        build_jwt_verifier(
            Settings(trusted_issuers={ISSUER: "http://ehr.example.org/jwks"}), MemoryReplayStore()
        )
