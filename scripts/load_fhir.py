"""Load FHIR R4 transaction Bundles (files or folders of them) into a FHIR server, keeping resource ids.

A Synthea-style transaction POSTs every entry, so the server gives each resource a new id and the
patient ids of examples/requests no longer match. Here each `POST Type` entry whose resource has an id
becomes `PUT Type/id` (an upsert with that id); references to the entries' `urn:uuid:` fullUrls are
resolved by the server as usual. Loading twice is therefore harmless.

Standard library only: the docker-compose loader runs this file in a bare python:3.11-slim image.

Usage: python scripts/load_fhir.py --base http://127.0.0.1:8090/fhir [--wait 120] PATH [PATH ...]
A PATH is a Bundle file or a folder whose *.json Bundles are loaded in name order (other JSON files,
such as examples/patients/index.json, are skipped).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FHIR_JSON = "application/fhir+json"
DEFAULT_TIMEOUT_SECONDS = 120.0

Bundle = dict[str, Any]


class LoadError(RuntimeError):
    """A Bundle could not be loaded; the message names the file and the server's diagnostics."""


@dataclass(frozen=True)
class Loaded:
    source: str
    entries: int
    patients: tuple[str, ...]  # the Patient ids the Bundle holds (as kept on the server)


def as_put_transaction(bundle: Mapping[str, Any]) -> Bundle:
    """The Bundle as a transaction in which every resource keeps its id (`PUT Type/id`)."""
    if bundle.get("resourceType") != "Bundle":
        raise LoadError("not a FHIR Bundle")
    out = copy.deepcopy(dict(bundle))
    out["type"] = "transaction"
    for entry in out.get("entry") or []:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        rtype, rid = resource.get("resourceType"), resource.get("id")
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if rid and (method in ("", "POST")) and not request.get("ifNoneExist"):
            entry["request"] = {"method": "PUT", "url": f"{rtype}/{rid}"}
        elif not method:
            entry["request"] = {"method": "POST", "url": str(rtype)}
    return out


def patient_ids(bundle: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(e["resource"]["id"])
        for e in bundle.get("entry") or []
        if isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "Patient"
        and e["resource"].get("id")
    )


def bundle_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Every Bundle file named by `paths` (folders: their *.json files that are Bundles, by name)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.glob("*.json")):
                if _is_bundle_file(child):
                    yield child
        elif path.is_file():
            yield path
        else:
            raise LoadError(f"{path}: no such file or folder")


def _is_bundle_file(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8")[:400]
    except (OSError, UnicodeDecodeError):
        return False
    return '"resourceType"' in head and '"Bundle"' in head


def _request(
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    request.add_header("Accept", FHIR_JSON)
    if body is not None:
        request.add_header("Content-Type", FHIR_JSON)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except json.JSONDecodeError:
        return status, None


def wait_until_ready(base_url: str, timeout: float = 60.0, interval: float = 1.0) -> None:
    """Poll `[base]/metadata` until the server answers 200 (HAPI takes a minute or more to start)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status, _ = _request(f"{base_url.rstrip('/')}/metadata", timeout=5)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise LoadError(f"{base_url} not ready after {timeout:.0f} s ({last})")
        time.sleep(interval)


def post_transaction(
    base_url: str,
    bundle: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Bundle:
    """POST one transaction to `[base]`; the transaction-response, or LoadError with the diagnostics."""
    body = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
    status, answer = _request(base_url.rstrip("/"), body=body, headers=headers, timeout=timeout)
    if status >= 300 or not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
        raise LoadError(f"HTTP {status}: {_diagnostics(answer)}")
    return answer


def _diagnostics(answer: Any) -> str:
    if isinstance(answer, dict) and answer.get("resourceType") == "OperationOutcome":
        texts = [str(i.get("diagnostics") or i.get("code")) for i in answer.get("issue") or []]
        return "; ".join(texts)[:1000] or "OperationOutcome without diagnostics"
    return "not a FHIR transaction-response"


def load_bundle(base_url: str, bundle: Mapping[str, Any], source: str = "<bundle>", **options: Any) -> Loaded:
    prepared = as_put_transaction(bundle)
    try:
        post_transaction(base_url, prepared, **options)
    except LoadError as exc:
        raise LoadError(f"{source}: {exc}") from exc
    return Loaded(source, len(prepared.get("entry") or []), patient_ids(prepared))


def load_paths(base_url: str, paths: Iterable[Path | str], **options: Any) -> list[Loaded]:
    loaded = []
    for path in bundle_files(paths):
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LoadError(f"{path}: cannot read a JSON Bundle ({exc})") from exc
        loaded.append(load_bundle(base_url, bundle, str(path), **options))
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", required=True, help="FHIR base URL, e.g. http://127.0.0.1:8090/fhir")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for [base]/metadata first")
    parser.add_argument("paths", nargs="+", help="Bundle files or folders of them")
    args = parser.parse_args(argv)
    try:
        if args.wait:
            wait_until_ready(args.base, args.wait)
        for item in load_paths(args.base, args.paths):
            patients = ", ".join(f"Patient/{p}" for p in item.patients) or "no Patient"
            print(f"loaded {item.source}: {item.entries} entries, {patients}")
    except LoadError as exc:
        print(f"load_fhir: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
