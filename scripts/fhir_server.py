"""A real FHIR R4 server for tests and demos: sekmet-fhir on a free loopback port, with a throw-away data dir.

sekmet (`.fhir-server/`, installed by scripts/test-setup.sh) is a micro HIS; here only its FHIR server is
used. Its settings file, written into the data dir, turns off what a test does not want:

  simulator.enabled: false   the simulator plays lab/RIS/pharmacy and writes resources after a delay
                             whenever a ServiceRequest, Task, ... arrives: results nobody loaded;
  server_auth.types: [none]  no Authorization needed (its default too; written down so it stays so);
  log_inbound: false         no per-request traffic log in its SQLite database;
  base_url                   set to the real port: `next` links of paged searches are built from it;
  validation.inbound: strict every resource loaded is checked against the R4 models (its default).

A transaction Bundle is POSTed to the base URL (scripts/load_fhir.py keeps resource ids). Searches take
`Prefer: handling=strict` (an unknown search parameter is then a 400 instead of a warning).

As a library (the tests and scripts/demo.py):

    with FhirServer() as server:          # started; stopped and its data dir removed on exit
        server.load(["examples/patients"])
        requests.get(f"{server.base_url}/Patient/cn-wang-xiulan")

From the command line (runs until Ctrl-C):

    .venv/bin/python scripts/fhir_server.py [--port N] [--load PATH ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.load_fhir import Loaded, LoadError, load_paths  # noqa: E402

SEKMET = ROOT / ".fhir-server" / "bin" / "sekmet"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 3
# sekmet reads these over its settings file: a developer's shell must not change the test server.
_SEKMET_ENV = ("SEKMET_CONFIG", "SEKMET_BASE_URL", "SEKMET_DB", "SEKMET_PORT", "SEKMET_PUBLIC_URL")


class FhirServerError(RuntimeError):
    """sekmet is missing, did not start, or stopped answering."""


def sekmet_available(executable: Path = SEKMET) -> bool:
    return executable.is_file() and os.access(executable, os.X_OK)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def settings_yaml(host: str, port: int, data_dir: Path) -> str:
    # JSON is YAML: no YAML library needed, and every value is quoted as it should be.
    import json

    return json.dumps(
        {
            "base_url": f"http://{host}:{port}/fhir",
            "host": host,
            "port": port,
            "data_dir": str(data_dir / "data"),
            "server_auth": {"types": ["none"]},
            "simulator": {"enabled": False},
            "validation": {"inbound": "strict"},
            "log_inbound": False,
            "own_private_key_path": str(data_dir / "keys" / "sekmet_private.pem"),
        },
        indent=2,
    )


class FhirServer:
    """One sekmet process in its own process group, on loopback, with its own data dir."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        data_dir: Path | None = None,
        executable: Path = SEKMET,
        quiet: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.executable = executable
        self.quiet = quiet
        self._given_dir = data_dir
        self.data_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise FhirServerError("not started")
        return f"http://{self.host}:{self.port}/fhir"

    @property
    def log_path(self) -> Path | None:
        return self.data_dir / "sekmet.log" if self.data_dir else None

    # --- life cycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> FhirServer:
        if not sekmet_available(self.executable):
            raise FhirServerError(f"{self.executable} not found: run `bash scripts/test-setup.sh` first")
        if self.process is not None:
            raise FhirServerError("already started")
        self.data_dir = self._given_dir or Path(tempfile.mkdtemp(prefix="osteo-cds-fhir-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A port picked here can be taken by someone else before sekmet binds it: then pick another.
        attempts = 1 if self.port is not None else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if attempts > 1:
                self.port = free_port(self.host)
            self._spawn()
            try:
                self.wait_until_ready(timeout)
                return self
            except FhirServerError:
                exited = self.process is not None and self.process.poll() is not None
                if not exited or attempt == attempts:
                    self.stop()
                    raise
                self.process = None
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        assert self.data_dir is not None and self.port is not None
        config = self.data_dir / "settings.yaml"
        config.write_text(settings_yaml(self.host, self.port, self.data_dir), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in _SEKMET_ENV}
        log = open(self.data_dir / "sekmet.log", "wb")  # noqa: SIM115 - closed when the process ends
        try:
            self.process = subprocess.Popen(
                [
                    str(self.executable),
                    "serve",
                    "--config",
                    str(config),
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                cwd=self.data_dir,  # sekmet writes relative paths (reports/, keys/) below its cwd
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log if self.quiet else None,
                stderr=subprocess.STDOUT if self.quiet else None,
                start_new_session=True,  # its own process group: stop() ends uvicorn and anything it forked
            )
        finally:
            log.close()

    def wait_until_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise FhirServerError(f"sekmet exited at start:\n{self.log_tail()}")
            metadata = f"{self.base_url}/metadata"
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(metadata, timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            if time.monotonic() >= deadline:
                raise FhirServerError(f"sekmet not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM to the process group, SIGKILL after `timeout`; then the data dir goes (if ours)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            stop_process_group(process, timeout)
        if self.data_dir is not None and self._given_dir is None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def __enter__(self) -> FhirServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- data ---------------------------------------------------------------------------------------

    def load(self, paths: Iterable[Path | str]) -> list[Loaded]:
        """Load transaction Bundles (files or folders), keeping their resource ids."""
        return load_paths(self.base_url, paths)


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """End a process started with start_new_session=True, and its whole group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # the leader is gone; members that ignored SIGTERM go now
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run sekmet-fhir on loopback until Ctrl-C.")
    parser.add_argument("--port", type=int, help="port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, help="keep the data here (default: a temp dir, removed)")
    parser.add_argument("--load", nargs="*", default=[], metavar="PATH", help="Bundle files or folders")
    args = parser.parse_args(argv)
    server = FhirServer(args.port, data_dir=args.data_dir)
    try:
        server.start()
        print(f"FHIR R4 server (sekmet) at {server.base_url}", flush=True)
        for item in server.load(args.load):
            print(f"loaded {item.source}: {', '.join(item.patients) or 'no Patient'}", flush=True)
        print("Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print("sekmet exited", file=sys.stderr)
        return 1
    except (FhirServerError, LoadError) as exc:
        print(f"fhir_server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
