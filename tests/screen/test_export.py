"""`osteo-cds screen https://…/$export` (cds_service/screen/export.py, issue 16): Bulk Data Access IG
kick-off, polling, manifest, download and SMART Backend Services auth, against `responses` (no network)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_service.cli import main
from cds_service.fhir.plan import build_plan
from cds_service.screen.export import (
    FIRST_POLL,
    JWT_BEARER,
    BackendAuth,
    ExportError,
    _Clock,
    export_types,
    run_export,
)
from tests.screen.conftest import screen_settings
from tests.screen.export import CODE_MAP, patients

BASE = "https://ehr.example/fhir"
GROUP = f"{BASE}/Group/fls-2026/$export"
STATUS = "https://ehr.example/fhir/$export-poll-status?job=42"
TOKEN_URL = "https://auth.example/token"
FILES = "https://ehr.example/files"
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """Time passes only by sleeping: the sleeps are what the test checks."""

    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> _Clock:
        return _Clock(
            monotonic=lambda: self.t, sleep=self._sleep, now=lambda: NOW + timedelta(seconds=self.t)
        )

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def _pem(kind: str) -> tuple[bytes, Any]:
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key.public_key()


def _manifest(requires_token: bool, errors: int = 0) -> dict[str, Any]:
    return {
        "transactionTime": "2026-11-25T08:00:00Z",
        "request": GROUP,
        "requiresAccessToken": requires_token,
        "output": [
            {"type": "Patient", "url": f"{FILES}/p.ndjson"},
            {"type": "Observation", "url": f"{FILES}/o.ndjson"},
        ],
        "error": [{"type": "OperationOutcome", "url": f"{FILES}/e{n}.ndjson"} for n in range(errors)],
    }


def _serve_export(
    rsps: responses.RequestsMock,
    manifest: dict[str, Any],
    statuses: tuple[tuple[int, dict[str, str]], ...] = (),
    capabilities: tuple[str, ...] = ("permission-v2",),
) -> None:
    rsps.get(
        f"{BASE}/.well-known/smart-configuration",
        json={"token_endpoint": TOKEN_URL, "capabilities": list(capabilities)},
    )
    rsps.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "bearer", "expires_in": 300})
    rsps.get(GROUP, status=202, headers={"Content-Location": STATUS})
    for status, headers in statuses:
        rsps.get(STATUS, status=status, headers=headers)
    rsps.get(STATUS, json=manifest)
    rsps.delete(STATUS, status=202)
    rsps.get(f"{FILES}/p.ndjson", body='{"resourceType":"Patient","id":"p1"}\n')
    rsps.get(f"{FILES}/o.ndjson", body='{"resourceType":"Observation","id":"o1"}\n')
    for n, entry in enumerate(manifest["error"]):
        rsps.get(entry["url"], body='{"resourceType":"OperationOutcome"}\n' * (n + 1))


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(scope="module")
def rsa_auth() -> tuple[BackendAuth, Any]:
    pem, public = _pem("rsa")
    return BackendAuth("osteo-screen", pem, "key-1"), public


def _calls(rsps: responses.RequestsMock, method: str, url: str) -> list[Any]:
    return [
        c.request for c in rsps.calls if c.request.method == method and c.request.url.split("?")[0] == url
    ]


def test_kickoff_asks_async_fhir_json_for_the_plans_types(
    rsps: responses.RequestsMock, tmp_path: Path, rsa_auth: tuple[BackendAuth, Any]
) -> None:
    _serve_export(rsps, _manifest(True))
    settings = screen_settings()
    run_export(GROUP, tmp_path / "export", settings, rsa_auth[0], clock=FakeClock().clock())
    (kickoff,) = _calls(rsps, "GET", GROUP)
    assert kickoff.headers["Accept"] == "application/fhir+json"
    assert kickoff.headers["Prefer"] == "respond-async"
    assert kickoff.headers["Authorization"] == "Bearer tok-1"
    query = parse_qs(urlsplit(kickoff.url).query)
    assert "_typeFilter" not in query  # export.py says why
    types = query["_type"][0].split(",")
    assert types == export_types(settings)
    planned = {q.resource_type for q in build_plan(settings.code_map).queries}
    assert set(types) <= planned
    assert {"Patient", "Observation", "Condition", "Procedure", "DiagnosticReport"} <= set(types)
    assert len(_calls(rsps, "DELETE", STATUS.split("?")[0])) == 1


@pytest.mark.parametrize(
    "statuses,sleeps",
    [
        pytest.param(((202, {"Retry-After": "5", "X-Progress": "40% (400 of 1000)"}),), [5.0], id="seconds"),
        pytest.param(
            ((202, {"Retry-After": format_datetime(NOW + timedelta(seconds=7), usegmt=True)}),),
            [7.0],
            id="http-date",
        ),
        pytest.param(
            ((202, {"Retry-After": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}),),
            [1.0],
            id="http-date-past-waits-1s",
        ),
        pytest.param(((202, {"Retry-After": "soon"}),), [FIRST_POLL], id="unreadable-is-default"),
        pytest.param(((429, {"Retry-After": "11"}), (202, {})), [11.0, FIRST_POLL], id="429-then-default"),
        pytest.param(((202, {}), (202, {})), [FIRST_POLL, 2 * FIRST_POLL], id="no-retry-after-backs-off"),
    ],
)
def test_polling_honours_retry_after_and_429(
    rsps: responses.RequestsMock,
    tmp_path: Path,
    statuses: tuple[tuple[int, dict[str, str]], ...],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _serve_export(rsps, _manifest(False), statuses)
    fake = FakeClock()
    caplog.set_level("INFO", "cds_service.screen.export")
    result = run_export(GROUP, tmp_path / "export", screen_settings(), clock=fake.clock())
    assert fake.sleeps == sleeps
    assert len(result.files) == 2
    assert "(400 of 1000)" not in caplog.text  # X-Progress: its numbers only
    assert "http" not in caplog.text


@pytest.mark.parametrize("requires_token", [True, False], ids=["requiresAccessToken", "no-token"])
def test_bearer_token_only_when_the_manifest_requires_it(
    rsps: responses.RequestsMock, tmp_path: Path, rsa_auth: tuple[BackendAuth, Any], requires_token: bool
) -> None:
    _serve_export(rsps, _manifest(requires_token))
    dest = tmp_path / "export"
    result = run_export(GROUP, dest, screen_settings(), rsa_auth[0], clock=FakeClock().clock())
    for url in (f"{FILES}/p.ndjson", f"{FILES}/o.ndjson"):
        (download,) = _calls(rsps, "GET", url)
        assert ("Authorization" in download.headers) is requires_token
    assert [p.name for p in result.files] == ["0001.Patient.ndjson", "0002.Observation.ndjson"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in result.files)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700


def test_token_is_not_sent_to_another_server(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    manifest = _manifest(True)
    manifest["output"] = [{"type": "Patient", "url": "https://elsewhere.example/p.ndjson"}]
    _serve_export(rsps, manifest)
    pem, _ = _pem("rsa")
    with pytest.raises(ExportError, match="another server"):
        run_export(
            GROUP, tmp_path / "x", screen_settings(), BackendAuth("c", pem, "k"), clock=FakeClock().clock()
        )
    assert len(_calls(rsps, "DELETE", STATUS.split("?")[0])) == 1


def test_error_files_are_counted_and_kept_out_of_the_input(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    _serve_export(rsps, _manifest(False, errors=2))
    dest = tmp_path / "export"
    result = run_export(GROUP, dest, screen_settings(), clock=FakeClock().clock())
    assert (result.error_files, result.error_lines) == (2, 3)
    assert sorted(p.name for p in dest.iterdir()) == ["0001.Patient.ndjson", "0002.Observation.ndjson"]
    assert len(list((tmp_path / "export-errors").iterdir())) == 2


def test_a_previous_runs_files_do_not_join_the_population(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    dest = tmp_path / "export"
    dest.mkdir()
    (dest / "0009.Patient.ndjson").write_text('{"resourceType":"Patient","id":"old"}\n')
    _serve_export(rsps, _manifest(False))
    run_export(GROUP, dest, screen_settings(), clock=FakeClock().clock())
    assert sorted(p.name for p in dest.iterdir()) == ["0001.Patient.ndjson", "0002.Observation.ndjson"]


def test_a_failed_export_is_an_error_and_still_deleted(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    _serve_export(rsps, _manifest(False), ((500, {}),))
    with pytest.raises(ExportError, match="HTTP 500"):
        run_export(GROUP, tmp_path / "x", screen_settings(), clock=FakeClock().clock())
    assert len(_calls(rsps, "DELETE", STATUS.split("?")[0])) == 1


def test_a_status_url_on_another_server_is_refused(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    rsps.get(GROUP, status=202, headers={"Content-Location": "https://elsewhere.example/status/1"})
    with pytest.raises(ExportError, match="not on the export server"):
        run_export(GROUP, tmp_path / "x", screen_settings(), clock=FakeClock().clock())


def test_an_unreachable_server_is_an_export_error(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    rsps.get(GROUP, body=requests.ConnectionError("refused"))
    with pytest.raises(ExportError, match="ConnectionError"):
        run_export(GROUP, tmp_path / "x", screen_settings(), clock=FakeClock().clock())


def test_download_is_size_bounded(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    _serve_export(rsps, _manifest(False))
    with pytest.raises(ExportError, match="size bound"):
        run_export(GROUP, tmp_path / "x", screen_settings(), max_bytes=50, clock=FakeClock().clock())


@pytest.mark.parametrize(
    "kind,algorithm,capabilities,scope",
    [
        ("rsa", "RS384", ("permission-v2",), "system/*.rs"),
        ("ec", "ES384", (), "system/*.read"),
    ],
    ids=["RS384-smart-v2", "ES384-smart-v1"],
)
def test_client_assertion_is_a_signed_backend_services_jwt(
    rsps: responses.RequestsMock,
    tmp_path: Path,
    kind: str,
    algorithm: str,
    capabilities: tuple[str, ...],
    scope: str,
) -> None:
    pem, public = _pem(kind)
    _serve_export(rsps, _manifest(True), capabilities=capabilities)
    run_export(
        GROUP,
        tmp_path / "x",
        screen_settings(),
        BackendAuth("osteo-screen", pem, "key-1"),
        clock=FakeClock().clock(),
    )
    (token_call,) = _calls(rsps, "POST", TOKEN_URL)
    form = parse_qs(token_call.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == [JWT_BEARER]
    assert form["scope"] == [scope]
    assertion = form["client_assertion"][0]
    header = jwt.get_unverified_header(assertion)
    assert (header["alg"], header["kid"], header["typ"]) == (algorithm, "key-1", "JWT")
    claims = jwt.decode(
        assertion, public, algorithms=[algorithm], audience=TOKEN_URL, options={"verify_exp": False}
    )
    assert claims["iss"] == claims["sub"] == "osteo-screen"
    assert 0 < claims["exp"] - int(NOW.timestamp()) <= 300
    assert len(claims["jti"]) >= 16


def test_a_status_that_never_completes_times_out(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    rsps.get(GROUP, status=202, headers={"Content-Location": STATUS})
    rsps.get(STATUS, status=202, headers={"Retry-After": "60"})
    rsps.delete(STATUS, status=202)
    fake = FakeClock()
    with pytest.raises(ExportError, match="did not complete within 300 s"):
        run_export(GROUP, tmp_path / "x", screen_settings(), max_wait=300, clock=fake.clock())
    assert fake.t <= 300
    assert len(_calls(rsps, "DELETE", STATUS.split("?")[0])) == 1  # cancelled


@pytest.mark.parametrize(
    "url,allowed,message",
    [
        (GROUP, "https://other.example/fhir", "not one of the FHIR servers"),
        (GROUP, "https://ehr.example/fh", "not one of the FHIR servers"),
        ("http://ehr.example/fhir/Patient/$export", "", "must be https"),
        ("https://ehr.example/fhir/Observation/$export", "", "Patient/$export or"),
    ],
    ids=["other-host", "prefix-not-at-boundary", "plain-http", "not-group-or-patient"],
)
def test_cli_refuses_an_export_server_not_allowed(
    rsps: responses.RequestsMock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    allowed: str,
    message: str,
) -> None:
    monkeypatch.setenv("OSTEO_CDS_FHIR_SERVERS", allowed)
    assert main(["screen", url, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not rsps.calls  # nothing was asked of any server


def test_cli_auth_options_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["screen", GROUP, "--out", str(tmp_path / "out"), "--client-id", "c"]) == 2
    assert "go together" in capsys.readouterr().err


def test_cli_screens_what_the_export_downloads(
    export: Path,
    rsps: responses.RequestsMock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example patients and Synthea fixtures served as an export: screen sees every patient."""
    monkeypatch.setenv("OSTEO_CDS_CODE_MAP", str(CODE_MAP))
    monkeypatch.setenv("OSTEO_CDS_FHIR_SERVERS", BASE)
    files = sorted(export.iterdir())
    manifest = {
        "transactionTime": "2026-11-25T08:00:00Z",
        "request": GROUP,
        "requiresAccessToken": True,
        "output": [{"type": f.name.split(".")[0], "url": f"{FILES}/{f.name}"} for f in files],
        "error": [],
    }
    for f in files:
        rsps.get(f"{FILES}/{f.name}", body=f.read_bytes())
    _serve_export(rsps, manifest)
    key = tmp_path / "key.pem"
    key.write_bytes(_pem("ec")[0])
    out = tmp_path / "out"
    argv = ["screen", GROUP, "--out", str(out), "--today", "2026-11-25", "--workers", "1"]
    assert main([*argv, "--client-id", "osteo-screen", "--private-key", str(key), "--key-id", "k1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["patients"] == len(patients())
    assert len(list((out / "export").iterdir())) == len(files)
