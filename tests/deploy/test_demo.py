"""`make demo` (scripts/demo.py): it comes up, a printed curl gives the printed cards, and Ctrl-C stops all.

The demo runs as a subprocess in its own session, as in a terminal; SIGINT goes to it alone (its servers
are in process groups of their own and must be stopped by the demo, not by the signal).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from scripts.fhir_server import free_port, sekmet_available

pytestmark = [
    pytest.mark.fhir_server,
    pytest.mark.skipif(
        not sekmet_available(),
        reason=".fhir-server/bin/sekmet is missing: `bash scripts/test-setup.sh` installs it",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
READY = "Demo ready."


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def test_demo_serves_the_printed_requests_and_ctrl_c_stops_everything() -> None:
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--no-setup", "--port", str(free_port())],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    pids: list[int] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not any(READY in line for line in output):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "demo not ready in time:\n" + "".join(output)
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, "demo exited early:\n" + "".join(output)
            output.append(line)
        text = "".join(output)
        pids = [int(p) for p in re.findall(r"\[pid (\d+)\]", text)]
        assert len(pids) == 2, text  # the FHIR server and the CDS service, each leading its own group
        assert "MISMATCH" not in text

        # the first printed curl, run by hand
        curl = next(line for line in output if line.startswith("curl "))
        request_file = Path(re.search(r"--data @(\S+)", curl).group(1))  # type: ignore[union-attr]
        url = curl.split()[-1]
        expected = output[output.index(curl) + 1]
        response = requests.post(
            url, data=request_file.read_bytes(), headers={"Content-Type": "application/json"}, timeout=30
        )
        assert response.status_code == 200
        topics = sorted(card["source"]["topic"]["code"] for card in response.json()["cards"])
        printed = expected.split("expected cards:", 1)[1].split("(")[0]
        assert topics == sorted(t.strip() for t in printed.split(",") if t.strip() and t.strip() != "none")

        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(STOP_TIMEOUT_SECONDS) == 0
        for pid in pids:
            assert _wait_gone(pid, 5), f"process group {pid} still running after Ctrl-C"
        assert not request_file.exists(), "the demo's temp dir is removed"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for pid in pids:
            if not _gone(pid):
                os.killpg(pid, signal.SIGKILL)
