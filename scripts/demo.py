"""`make demo`: a real FHIR server with the demonstration patients, the service beside it, a curl per patient.

What it does, on a machine without Docker:
  1. installs sekmet-fhir (`bash scripts/test-setup.sh`) when .fhir-server/ is missing;
  2. starts sekmet on a free loopback port and loads examples/patients/*.json (hand-made Chinese-hospital
     records) and tests/fixtures/synthea/*.json, keeping their ids;
  3. starts `osteo-cds serve` on loopback (OSTEO_CDS_AUTH=none, OSTEO_CDS_PREVIEW=true, the example code
     map, today fixed to the index's date), with its audit store in a temp dir;
  4. writes one no-prefetch CDS Hooks request per patient into that temp dir (fhirServer = the local
     sekmet), calls each once to check the cards, and prints the curl command and the expected cards;
     then the same for one order-select request per patient of examples/draft-orders.json (a draft order
     for which an order card is expected);
  5. waits. Ctrl-C (or SIGTERM) stops both servers (each in its own process group) and removes the
     temp dir.

Options: --port P (service port; default 8080 if free, else a free one), --no-setup, --no-check.
`python scripts/demo.py --write-requests DIR` only writes the prefetch and no-prefetch example requests of
the hand-made patients, and their `<patient>-order-select.json` (with prefetch), into DIR
(examples/requests is where the committed ones live), like
scripts/make_examples.py does for the Synthea bundles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cds_service.preview.draft_orders import (  # noqa: E402
    DraftKind,
    OrderDemo,
    load_draft_orders,
    order_select_request,
)
from scripts import make_examples  # noqa: E402
from scripts.fhir_server import (  # noqa: E402
    FhirServer,
    FhirServerError,
    free_port,
    sekmet_available,
    stop_process_group,
)
from scripts.load_fhir import LoadError  # noqa: E402

PATIENTS_DIR = ROOT / "examples" / "patients"
INDEX = PATIENTS_DIR / "index.json"
CODE_MAP = ROOT / "examples" / "code-map.json"
OSTEO_CDS = ROOT / ".venv" / "bin" / "osteo-cds"
SERVICE_PATH = "/cds-services/osteoporosis-patient-view"
ORDER_SELECT_PATH = "/cds-services/osteoporosis-order-select"
DEFAULT_PORT = 8080
START_TIMEOUT_SECONDS = 60.0
READY_LINE = "Demo ready."


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoPatient:
    """One entry of examples/patients/index.json (hand-made or Synthea)."""

    name: str  # file-like name: "wang-xiulan", "chad-quigley"
    title: str
    description: str
    path: Path
    patient_id: str
    expected: tuple[str, ...]


def demo_patients(index_path: Path = INDEX) -> list[DemoPatient]:
    """The hand-made patients, then the Synthea ones, as the index lists them."""
    index = json.loads(index_path.read_text(encoding="utf-8"))
    patients = []
    for group, base in (("patients", index_path.parent), ("synthea", ROOT)):
        for entry in index.get(group, []):
            path = (base / entry["file"]).resolve()
            name = (
                path.stem
                if group == "patients"
                else "-".join(path.stem.split("_")[:2]).lower()  # as make_examples names them
            )
            patients.append(
                DemoPatient(
                    name=name,
                    title=entry.get("title", name),
                    description=entry.get("description", ""),
                    path=path,
                    patient_id=entry["patientId"],
                    expected=tuple(entry.get("expectedTopics", [])),
                )
            )
    return patients


def today_of(index_path: Path = INDEX) -> str:
    return str(json.loads(index_path.read_text(encoding="utf-8"))["settings"]["OSTEO_CDS_TODAY"])


# --- example requests (scripts/make_examples.py as a library) ----------------------------------------


class _NamedBundle:
    """A Bundle file seen under the `<First>_<Last>` name make_examples.build_requests derives names from.

    build_requests() reads only `.stem` and `.read_text()` of its path; our file names ("wang-xiulan")
    are not Synthea's, so the name is given here instead.
    """

    def __init__(self, path: Path, name: str) -> None:
        self._path = path
        first, _, last = name.partition("-")
        self.stem = f"{first}_{last}"

    def read_text(self, encoding: str = "utf-8") -> str:
        return self._path.read_text(encoding=encoding)


def hook_requests(patient: DemoPatient, fhir_server: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (prefetch, no-prefetch) CDS Hooks requests for one demonstration patient."""
    source: Any = patient.path if "_" in patient.path.stem else _NamedBundle(patient.path, patient.name)
    return make_examples.build_requests(source, fhir_server.rstrip("/"))


def write_requests(
    out: Path,
    fhir_server: str,
    patients: list[DemoPatient],
    kinds: tuple[str, ...] = ("prefetch", "no-prefetch"),
) -> dict[str, Path]:
    """`<name>-<kind>.json` for each patient; returns name → the no-prefetch file (or the last kind)."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for patient in patients:
        pair = dict(zip(("prefetch", "no-prefetch"), hook_requests(patient, fhir_server), strict=True))
        for kind in kinds:
            target = out / f"{patient.name}-{kind}.json"
            target.write_text(json.dumps(pair[kind], indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            written[patient.name] = target
    return written


@dataclass(frozen=True)
class OrderRequest:
    """One order-select demonstration written to disk."""

    patient: DemoPatient
    demo: OrderDemo
    kind: DraftKind
    path: Path


def write_order_requests(
    out: Path, fhir_server: str, patients: list[DemoPatient], *, prefetch: bool
) -> list[OrderRequest]:
    """`<name>-order-select.json` for each demonstration of examples/draft-orders.json: the patient's
    patient-view request (with prefetch, or fhirServer only) selecting one draft order."""
    orders = load_draft_orders(ROOT / "examples")
    by_name = {p.name: p for p in patients}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for demo in orders.demos:
        patient, kind = by_name.get(demo.patient), orders.kind(demo.draft)
        if patient is None or kind is None:
            raise DemoError(f"examples/draft-orders.json: unknown patient or draft in {demo}")
        with_prefetch, without = hook_requests(patient, fhir_server)
        request = order_select_request(with_prefetch if prefetch else without, kind)
        target = out / f"{patient.name}-order-select.json"
        target.write_text(json.dumps(request, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(OrderRequest(patient, demo, kind, target))
    return written


# --- the service -------------------------------------------------------------------------------------


def service_env(work: Path, fhir_base: str, today: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTEO_CDS_")}
    env.update(
        {
            "OSTEO_CDS_AUTH": "none",
            "OSTEO_CDS_PREVIEW": "true",
            "OSTEO_CDS_CODE_MAP": str(CODE_MAP),
            "OSTEO_CDS_TODAY": today,
            "OSTEO_CDS_FHIR_SERVERS": fhir_base,
            "OSTEO_CDS_DATABASE_URL": f"sqlite:///{work / 'audit.sqlite3'}",
            "OSTEO_CDS_REPLAY_DB": str(work / "jti.sqlite3"),
            "OSTEO_CDS_WORKERS": "2",
        }
    )
    return env


def start_service(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [str(OSTEO_CDS), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=log_path.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script, which stops the group itself
        )


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise DemoError(f"osteo-cds serve exited at start:\n{_tail(log_path)}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        if time.monotonic() >= deadline:
            raise DemoError(f"osteo-cds serve not ready after {timeout:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.2)


def call_service(service_url: str, request_file: Path) -> list[str]:
    """POST one request file; the cards' topic codes."""
    request = urllib.request.Request(
        service_url,
        data=request_file.read_bytes(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.loads(answer.read())
    return [card["source"]["topic"]["code"] for card in body.get("cards", [])]


def _print_call(url: str, request_file: Path, expected: tuple[str, ...], check: bool) -> bool:
    """Print the curl command and the expected cards (checked once when `check`); True on a mismatch."""
    print(
        f"curl -s -X POST -H 'Content-Type: application/json' --data @{shlex.quote(str(request_file))} {url}"
    )
    verdict, mismatch = "", False
    if check:
        got = call_service(url, request_file)
        mismatch = sorted(got) != sorted(expected)
        verdict = f"  (MISMATCH: got {', '.join(got) or 'none'})" if mismatch else "  (checked)"
    print(f"#   expected cards: {', '.join(expected) or 'none'}{verdict}\n")
    return mismatch


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- main --------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Ctrl-C or SIGTERM."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, _raise_stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ensure_sekmet(setup: bool) -> None:
    if sekmet_available():
        return
    if not setup:
        raise DemoError(".fhir-server/bin/sekmet is missing (run `bash scripts/test-setup.sh`)")
    print("demo: installing the FHIR server (bash scripts/test-setup.sh) ...", flush=True)
    subprocess.run(["bash", str(ROOT / "scripts" / "test-setup.sh")], check=True, cwd=ROOT)


def run_demo(port: int | None, setup: bool, check: bool) -> int:
    ensure_sekmet(setup)
    if not OSTEO_CDS.exists():
        raise DemoError(f"{OSTEO_CDS} is missing: run `make install` first")
    patients = demo_patients()
    today = today_of()
    work = Path(tempfile.mkdtemp(prefix="osteo-cds-demo-"))
    fhir = FhirServer()
    service: subprocess.Popen[bytes] | None = None
    try:
        with _stop_signals():
            fhir.start()
            pid = fhir.process.pid if fhir.process else "?"
            print(f"FHIR R4 server (sekmet): {fhir.base_url}   [pid {pid}]")
            loaded = fhir.load([PATIENTS_DIR, ROOT / "tests" / "fixtures" / "synthea"])
            print(f"  loaded {len(loaded)} patient bundles (hand-made + Synthea), ids kept")
            if port is None:
                port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
            base = f"http://127.0.0.1:{port}"
            log_path = work / "osteo-cds.log"
            service = start_service(port, service_env(work, fhir.base_url, today), log_path)
            wait_for_http(f"{base}/healthz", service, START_TIMEOUT_SECONDS, log_path)
            print(f"CDS service (osteo-cds serve): {base}/cds-services   [pid {service.pid}]")
            print(f"  OSTEO_CDS_AUTH=none OSTEO_CDS_PREVIEW=true OSTEO_CDS_TODAY={today}")
            print(f"  OSTEO_CDS_CODE_MAP={CODE_MAP.relative_to(ROOT)}   log: {log_path}")
            requests_dir = work / "requests"
            files = write_requests(requests_dir, fhir.base_url, patients, kinds=("no-prefetch",))
            service_url = base + SERVICE_PATH
            mismatches = 0
            print(f"\nNo-prefetch requests (the service reads {fhir.base_url} itself):\n")
            for patient in patients:
                print(f"# {patient.title}: {patient.description}")
                mismatches += _print_call(service_url, files[patient.name], patient.expected, check)
            order_url = base + ORDER_SELECT_PATH
            print(
                f"Order-select requests (one draft order selected; the record read from {fhir.base_url}):\n"
            )
            for order in write_order_requests(requests_dir, fhir.base_url, patients, prefetch=False):
                print(f"# {order.patient.title}, draft order: {order.kind.title}")
                mismatches += _print_call(order_url, order.path, order.demo.expected_topics, check)
            if mismatches:
                print(f"demo: {mismatches} request(s) did not give the expected cards", file=sys.stderr)
            print(f"{READY_LINE} Ctrl-C stops both servers.", flush=True)
            while True:
                if service.poll() is not None:
                    raise DemoError(f"osteo-cds serve exited:\n{_tail(log_path)}")
                if fhir.process is None or fhir.process.poll() is not None:
                    raise DemoError("the FHIR server exited")
                time.sleep(0.5)
    except _Stop:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        # A second Ctrl-C while stopping must not leave a server behind: both stops are bounded in time.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if service is not None:
            stop_process_group(service)
        fhir.stop()
        shutil.rmtree(work, ignore_errors=True)
        print("demo: stopped the CDS service and the FHIR server", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, help="port of the CDS service (default 8080, else a free one)")
    parser.add_argument("--no-setup", action="store_true", help="do not run scripts/test-setup.sh")
    parser.add_argument("--no-check", action="store_true", help="do not call each request once at start")
    parser.add_argument(
        "--write-requests",
        type=Path,
        metavar="DIR",
        help="only write the hand-made patients' example requests into DIR, then exit",
    )
    parser.add_argument(
        "--fhir-server", default=make_examples.DEFAULT_FHIR_SERVER, help="with --write-requests"
    )
    args = parser.parse_args(argv)
    try:
        if args.write_requests is not None:
            handmade = [p for p in demo_patients() if p.path.parent == PATIENTS_DIR.resolve()]
            write_requests(args.write_requests, args.fhir_server, handmade)
            for patient in handmade:
                print(f"{args.write_requests / patient.name}-{{prefetch,no-prefetch}}.json")
            for order in write_order_requests(args.write_requests, args.fhir_server, handmade, prefetch=True):
                print(order.path)
            return 0
        return run_demo(args.port, setup=not args.no_setup, check=not args.no_check)
    except (DemoError, FhirServerError, LoadError, subprocess.CalledProcessError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
