"""`osteo-cds screen https://…/$export`: a FHIR Bulk Data export (Bulk Data Access IG, STU2) downloaded into
the folder that `screen` then reads as any other export folder.

- Kick-off: GET `[base]/Patient/$export` or `[base]/Group/[id]/$export` with `Accept: application/fhir+json`,
  `Prefer: respond-async` and `_type` = the resource types the query plan searches (fhir/plan.py) that the
  screen's reader uses (ndjson.py): what the hooks would read, nothing the screen would only reject.
- No `_typeFilter`: the IG marks it optional for servers, and one without it fails the kick-off (or,
  lenient, ignores it); the plan's Observation code lists reach 1,800 characters per chunk (a GET kick-off
  over IIS's 2,048-byte default limit once combined) and hold commas, which the IG's comma-delimited
  `_typeFilter` value makes ambiguous. The screen reads an unfiltered export as it reads any export
  folder; the cost is a larger download.
- Status: polled honouring `Retry-After` (seconds or an HTTP date) on 202 and 429, else a growing interval;
  the total wait is bounded (`max_wait`); `X-Progress` is logged as its numbers only (free text may carry
  anything). The status URL is DELETEd at the end, whatever happened (the IG's cancel / "done with files").
- Download: each `output[].url` streamed into `<dest>/<n>.<Type>.ndjson` (0600), the total bounded by
  `max_bytes`; the bearer token is sent only when the manifest says `requiresAccessToken: true`, and then only
  to the export server's own origin. `error[]` files (OperationOutcomes) go to `<dest>-errors/`, out of the
  screen's input, and are counted.
- Auth (optional): SMART Backend Services client credentials, a JWT assertion signed with PyJWT (RS384 for an
  RSA key, ES384 for an EC key), token URL from `[base]/.well-known/smart-configuration`, scope `system/*.rs`
  (SMART v2, when the server lists `permission-v2`) else `system/*.read`.
The export server must match OSTEO_CDS_FHIR_SERVERS when that is set (fhir/client.check_fhir_server).
Logs hold counts and status codes only: no URLs with tokens, no bodies, no patient data.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
import requests

from cds_service.fhir.client import FhirServerRefused, _origin, check_fhir_server
from cds_service.fhir.plan import build_plan
from cds_service.screen import ScreenError
from cds_service.screen.ndjson import PATIENT_TYPES, SHARED_TYPES
from cds_service.settings import Settings

log = logging.getLogger("cds_service.screen.export")

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds: SMART Backend Services says exp no more than five minutes ahead
MAX_WAIT = 6 * 3600.0  # default bound on the whole kick-off → manifest wait, seconds
MAX_BYTES = 32 * 1024**3  # default bound on all downloaded files together (≈ 4 GB per 100k patients)
FIRST_POLL, MAX_POLL = 2.0, 120.0  # interval without Retry-After: doubles from FIRST_POLL up to MAX_POLL
TIMEOUT = (10.0, 120.0)  # connect, read (per chunk) for every request
_CHUNK = 1 << 20
_EXPORT_PATH = re.compile(r"^(?P<base>.*?)/(?:Patient|Group/[A-Za-z0-9\-.]{1,64})/\$export$")


class ExportError(ScreenError):
    """The export could not be run or read (one line, exit 2). Never holds tokens or bodies."""


@dataclass(frozen=True)
class BackendAuth:
    """SMART Backend Services client: its id, its private key (PEM) and the key's id (JWKS `kid`)."""

    client_id: str
    private_key: bytes
    key_id: str

    @property
    def algorithm(self) -> str:
        try:
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            loaded = load_pem_private_key(self.private_key, password=None)
        except (ValueError, TypeError) as exc:
            raise ExportError("the private key is not an unencrypted PEM key") from exc
        return "ES384" if isinstance(loaded, ec.EllipticCurvePrivateKey) else "RS384"


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    error_files: int = 0
    error_lines: int = 0


@dataclass
class _Clock:
    """Injected in tests: no real waiting, no wall-clock assertions."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def export_types(settings: Settings) -> list[str]:
    """`_type`: the query plan's resource types that the screen's reader evaluates (ndjson.py)."""
    planned = {q.resource_type for q in build_plan(settings.code_map).queries}
    return sorted(planned & (PATIENT_TYPES | SHARED_TYPES))


def is_export_url(source: str) -> bool:
    """A URL (checked by check_export_url), not a folder."""
    return source.lower().startswith(("https://", "http://"))


def check_export_url(url: str, settings: Settings) -> str:
    """The FHIR base of an https Group/Patient `$export` URL that OSTEO_CDS_FHIR_SERVERS allows."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise ExportError("the $export URL must be https")
    match = _EXPORT_PATH.match(url)
    if not match or parts.query or parts.fragment:
        raise ExportError("the $export URL must be [base]/Patient/$export or [base]/Group/[id]/$export")
    try:
        return check_fhir_server(match["base"], settings)
    except FhirServerRefused as exc:
        raise ExportError(str(exc).replace("fhirServer", "the export server")) from exc


def run_export(
    url: str,
    dest: Path,
    settings: Settings,
    auth: BackendAuth | None = None,
    *,
    max_wait: float = MAX_WAIT,
    max_bytes: int = MAX_BYTES,
    session: requests.Session | None = None,
    clock: _Clock | None = None,
) -> ExportResult:
    """Kick off, poll, download into `dest` (owner-only), delete the status URL."""
    base = check_export_url(url, settings)
    session = session or requests.Session()
    try:
        return _export(url, base, dest, settings, auth, max_wait, max_bytes, session, clock or _Clock())
    except requests.RequestException as exc:  # the class only: its text may hold a signed file URL
        raise ExportError(f"the export failed: {type(exc).__name__}") from exc


def _export(
    url: str,
    base: str,
    dest: Path,
    settings: Settings,
    auth: BackendAuth | None,
    max_wait: float,
    max_bytes: int,
    session: requests.Session,
    clock: _Clock,
) -> ExportResult:
    token = _Token(session, base, auth, clock)
    types = export_types(settings)
    kickoff = session.get(
        url.rstrip("/"),
        params={"_type": ",".join(types)},
        headers={"Accept": "application/fhir+json", "Prefer": "respond-async", **token.header()},
        timeout=TIMEOUT,
        allow_redirects=False,
    )
    location = kickoff.headers.get("Content-Location")
    if kickoff.status_code != 202 or not location:
        raise ExportError(
            f"the export kick-off answered HTTP {kickoff.status_code}, not 202 with Content-Location"
        )
    location = urljoin(url, location)
    if _origin(location) != _origin(base):  # the token goes there
        raise ExportError("the export status URL is not on the export server")
    log.info("export: started for %d resource types", len(types))
    try:
        manifest = _poll(session, location, token, clock, max_wait)
        return _download(session, manifest, base, dest, token, max_bytes)
    finally:
        try:
            session.delete(location, headers=token.header(), timeout=TIMEOUT)
        except (requests.RequestException, ExportError):
            log.warning("export: could not delete the status URL")


class _Token:
    """The bearer token (none without auth), fetched again when it is about to expire."""

    def __init__(self, session: requests.Session, base: str, auth: BackendAuth | None, clock: _Clock) -> None:
        self._session, self._base, self._auth, self._clock = session, base, auth, clock
        self._value: str | None = None
        self._until = 0.0

    def header(self) -> dict[str, str]:
        if self._auth is None:
            return {}
        if self._value is None or self._clock.monotonic() > self._until - 60:
            self._value, lifetime = self._fetch(self._auth)
            self._until = self._clock.monotonic() + lifetime
        return {"Authorization": f"Bearer {self._value}"}

    def _fetch(self, auth: BackendAuth) -> tuple[str, float]:
        config = _json(
            self._session.get(
                f"{self._base}/.well-known/smart-configuration",
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            ),
            "smart-configuration",
        )
        token_url = config.get("token_endpoint")
        if not isinstance(token_url, str) or not token_url.lower().startswith("https://"):
            raise ExportError("smart-configuration names no https token_endpoint")
        capabilities = config.get("capabilities")
        v2 = isinstance(capabilities, list) and "permission-v2" in capabilities
        now = int(self._clock.now().timestamp())
        assertion = jwt.encode(
            {
                "iss": auth.client_id,
                "sub": auth.client_id,
                "aud": token_url,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME,
                "jti": uuid.uuid4().hex,
            },
            auth.private_key,
            algorithm=auth.algorithm,
            headers={"kid": auth.key_id, "typ": "JWT"},
        )
        answer = _json(
            self._session.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": "system/*.rs" if v2 else "system/*.read",
                    "client_assertion_type": JWT_BEARER,
                    "client_assertion": assertion,
                },
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            ),
            "token endpoint",
        )
        value, lifetime = answer.get("access_token"), answer.get("expires_in", 300)
        if not isinstance(value, str) or not value:
            raise ExportError("the token endpoint gave no access_token")
        return value, float(lifetime) if isinstance(lifetime, (int, float)) else 300.0


def _poll(
    session: requests.Session, location: str, token: _Token, clock: _Clock, max_wait: float
) -> dict[str, Any]:
    started = clock.monotonic()
    interval = FIRST_POLL
    while True:
        response = session.get(
            location, headers={"Accept": "application/json", **token.header()}, timeout=TIMEOUT
        )
        if response.status_code == 200:
            return _json(response, "export manifest")
        if response.status_code not in (202, 429):
            raise ExportError(f"the export status answered HTTP {response.status_code}")
        if response.status_code == 202:
            numbers = re.findall(r"\d+(?:\.\d+)?%?", response.headers.get("X-Progress", ""))[:4]
            log.info("export: in progress %s", " ".join(numbers) or "(no progress given)")
        wait = retry_after(response.headers.get("Retry-After"), clock.now())
        if wait is None:
            wait, interval = interval, min(interval * 2, MAX_POLL)
        wait = max(wait, 1.0)  # a date already past, or 0: not a busy loop
        if clock.monotonic() - started + wait > max_wait:
            raise ExportError(f"the export did not complete within {max_wait:.0f} s")
        clock.sleep(wait)


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After in seconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _download(
    session: requests.Session,
    manifest: dict[str, Any],
    base: str,
    dest: Path,
    token: _Token,
    max_bytes: int,
) -> ExportResult:
    send_token = manifest.get("requiresAccessToken") is True
    origin = _origin(base)
    errors_dir = dest.parent / f"{dest.name}-errors"
    result = ExportResult()
    for folder in (dest, errors_dir):
        shutil.rmtree(folder, ignore_errors=True)  # a previous run's files must not join this population
        folder.mkdir(parents=True)
        os.chmod(folder, 0o700)
    entries = [("output", e) for e in manifest.get("output") or []] + [
        ("error", e) for e in manifest.get("error") or []
    ]
    for n, (kind, entry) in enumerate(entries, start=1):
        file_url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(file_url, str) or not file_url.lower().startswith("https://"):
            raise ExportError(f"manifest {kind} entry {n} has no https url")
        headers = {"Accept": "application/fhir+ndjson"}
        if send_token:
            if _origin(file_url) != origin:
                raise ExportError("the manifest asks for the token at another server than the export server")
            headers.update(token.header())
        resource_type = re.sub(r"[^A-Za-z]", "", str(entry.get("type", ""))) or "Unknown"
        target = (dest if kind == "output" else errors_dir) / f"{n:04d}.{resource_type}.ndjson"
        size, target = _stream(session, file_url, headers, target, max_bytes - result.bytes)
        result.bytes += size
        if kind == "output":
            result.files.append(target)
        else:
            result.error_files += 1
            with target.open("rb") as f:
                result.error_lines += sum(1 for line in f if line.strip())
    log.log(
        logging.WARNING if result.error_files else logging.INFO,
        "export: %d files (%d bytes) downloaded, %d error files with %d OperationOutcomes",
        len(result.files),
        result.bytes,
        result.error_files,
        result.error_lines,
    )
    return result


def _stream(
    session: requests.Session, url: str, headers: dict[str, str], target: Path, budget: int
) -> tuple[int, Path]:
    """One file, streamed to disk (0600) within `budget` bytes. A file sent gzipped without Content-Encoding
    (requests undoes that one) is renamed `.ndjson.gz`, which the reader opens as gzip."""
    size = 0
    first = b""
    # Redirects (e.g. to signed object-store URLs) are followed only when no token is sent.
    redirects = "Authorization" not in headers
    with session.get(
        url, headers=headers, stream=True, timeout=TIMEOUT, allow_redirects=redirects
    ) as response:
        if response.status_code != 200:
            raise ExportError(f"an export file answered HTTP {response.status_code}")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_content(_CHUNK):
                size += len(chunk)
                if size > budget:
                    raise ExportError("the export files exceed the download size bound")
                first = first or chunk[:2]
                out.write(chunk)
    if first == b"\x1f\x8b":
        target = target.rename(target.with_name(target.name + ".gz"))
    return size, target


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise ExportError(f"the {what} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise ExportError(f"the {what} is not JSON") from exc
    if not isinstance(body, dict):
        raise ExportError(f"the {what} is not a JSON object")
    return body
