"""A local EHR-launch simulator for the SMART app's end-to-end test (issue 17 item 2).

One Flask app on a loopback port plays the EHR's side of a SMART App Launch 2.0 EHR launch:

- `/fhir/.well-known/smart-configuration`: the endpoints and capabilities (`permission-v2`, S256 only);
- `/auth/authorize`: Authlib's authorization server (authorization code grant, PKCE S256 required) that
  approves at once for the launch it issued (no login page: the user is already in the EHR);
- `/auth/token`: Authlib's token endpoint; the token response carries the launch context (`patient`,
  `appContext`) and an `id_token` with `fhirUser`;
- `/fhir/...`: scripts/strict_fhir_server.py's answers (as strict as Epic), only with the bearer token issued.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import jwt
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request
from markupsafe import escape
from werkzeug.serving import make_server

from scripts.strict_fhir_server import StrictFhirServer

USER = "Practitioner/dr-wang"


@dataclass
class Launch:
    patient: str
    app_context: str | None = None


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"  # a public client: PKCE is its proof

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    launch: Launch

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class EhrSimulator:
    """`with EhrSimulator(resources, client_id, redirect_uri) as ehr:` serves `ehr.iss` in the block."""

    resources: list[dict[str, Any]]
    client_id: str
    redirect_uri: str
    launches: dict[str, Launch] = field(default_factory=dict)
    tokens: dict[str, Launch] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    fhir_requests: list[str] = field(default_factory=list)
    frame_url: str = ""  # what the EHR's screen (/ehr) shows in its iframe

    def __post_init__(self) -> None:
        self._codes: dict[str, _Code] = {}
        self._app = self._build()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ehr-sim", daemon=True)
        self._fhir = _StrictFhir(self.resources, self)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def iss(self) -> str:
        return f"{self.origin}/fhir"

    def launch(self, patient: str, app_context: str | None) -> str:
        """A launch id for this patient and context, as the EHR mints one when a card's link is clicked."""
        launch_id = secrets.token_urlsafe(16)
        self.launches[launch_id] = Launch(patient, app_context)
        return launch_id

    def __enter__(self) -> EhrSimulator:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._fhir.close()

    def _build(self) -> Flask:
        app = Flask("ehr-simulator")
        simulator = self
        server = AuthorizationServer(app, query_client=self._query_client, save_token=self._save_token)

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ("none",)

            def save_authorization_code(self, code: str, req: Any) -> None:
                launch = simulator.launches.pop(req.payload.data.get("launch", ""), None)
                if launch is None:
                    raise ValueError("unknown launch")
                simulator._codes[code] = _Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.payload.scope,
                    req.payload.data.get("code_challenge"),
                    req.payload.data.get("code_challenge_method"),
                    launch,
                )

            def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
                found = simulator._codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                simulator._codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> Launch:
                return authorization_code.launch

        def smart_context(grant: Any) -> None:
            def add(grant: Any, result: tuple[int, dict[str, Any], Any]) -> None:
                _, token, _ = result
                launch: Launch = grant.request.user
                token["patient"] = launch.patient
                if launch.app_context is not None:
                    token["appContext"] = launch.app_context
                token["id_token"] = jwt.encode(
                    {"iss": simulator.iss, "aud": simulator.client_id, "sub": "dr-wang", "fhirUser": USER},
                    secrets.token_hex(32),
                )

            grant.register_hook("after_create_token_response", add)

        server.register_grant(CodeGrant, [CodeChallenge(required=True), smart_context])
        server.register_token_generator("default", self._bearer)

        @app.get("/fhir/.well-known/smart-configuration")
        def configuration() -> Response:
            return jsonify(
                {
                    "authorization_endpoint": f"{simulator.origin}/auth/authorize",
                    "token_endpoint": f"{simulator.origin}/auth/token",
                    "capabilities": ["launch-ehr", "client-public", "context-ehr-patient", "permission-v2"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        @app.get("/auth/authorize")
        def authorize() -> Any:
            simulator.authorize_requests.append(dict(request.args))
            if request.args.get("code_challenge_method") != "S256":
                return Response("S256 only", status=400)
            grant = server.get_consent_grant(end_user=True)
            return server.create_authorization_response(grant=grant, grant_user=True)

        @app.post("/auth/token")
        def token() -> Any:
            return server.create_token_response()

        @app.get("/ehr")
        def ehr_page() -> Response:
            # The EHR's screen: the app in an iframe, opened at the card link's launch URL.
            html = (
                '<!doctype html><title>EHR</title><iframe id="app" width="1200" height="1400" '
                f'src="{escape(simulator.frame_url)}"></iframe>'
            )
            return Response(html, mimetype="text/html")

        @app.get("/fhir/<path:path>")
        def fhir(path: str) -> Response:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in simulator.tokens:
                return Response(status=401)
            simulator.fhir_requests.append(path)
            status, body = simulator._fhir.answer(f"/fhir/{path}", request.query_string.decode())
            response = jsonify(body)
            response.status_code = status
            return response

        return app

    def _query_client(self, client_id: str) -> _Client | None:
        return _Client(client_id, self.redirect_uri) if client_id == self.client_id else None

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        self.tokens[token["access_token"]] = req.user

    @staticmethod
    def _bearer(client: Any, grant_type: str, user: Any, scope: str, **_: Any) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(24),
            "expires_in": 300,
            "scope": scope,
        }


class _StrictFhir(StrictFhirServer):
    """The strict server's answers, with the simulator's base in its links (its own socket never serves)."""

    def __init__(self, resources: list[dict[str, Any]], simulator: EhrSimulator) -> None:
        super().__init__(resources)
        self._simulator = simulator

    @property
    def base(self) -> str:
        return self._simulator.iss

    def close(self) -> None:
        self._httpd.server_close()
