"""Time `osteo-cds screen` on a synthetic export (bench/population.py) and sample its memory.

    python -m bench.population_run EXPORT_DIR [--engine embedded|spark] [--workers N] [--master local[2]]

Runs the command as a child process, sums the resident memory of its whole process tree (pool workers,
the Spark JVM and its Python workers) every 0.2 s from /proc, and prints one JSON line: wall time,
patients per second and per core, the peak of the summed RSS, and the load average before and after (the
machine may be shared: read the figures with it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("export", type=Path)
    parser.add_argument("--engine", default="embedded")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--master", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "cds_service.cli", "screen", str(args.export), "--out", str(out)]
        command += ["--today", "2026-11-25", "--engine", args.engine, "--workers", str(args.workers)]
        if args.engine == "spark":
            command += ["--master", args.master or f"local[{args.workers}]"]
        env = {**os.environ, "OSTEO_CDS_CODE_MAP": "examples/code-map.json"}
        load_before = os.getloadavg()
        started = time.monotonic()
        child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(child.pid))
            time.sleep(0.2)
        wall = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and the processes it waited for
        log = child.stderr.read() if child.stderr else ""
        summary = json.loads((out / "summary.json").read_text()) if child.returncode == 0 else {}
    patients = summary.get("patients", 0)
    print(
        json.dumps(
            {
                "engine": args.engine,
                "workers": args.workers,
                "patients": patients,
                "resources": summary.get("lines"),
                "wall_s": round(wall, 1),
                "patients_per_s": round(patients / wall, 1),
                "patients_per_s_per_core": round(patients / wall / args.workers, 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                "cpu_ms_per_patient": round(1000 * (usage.ru_utime + usage.ru_stime) / max(patients, 1), 2),
                "peak_rss_mb": round(peak / 2**20),
                "load_before": [round(x, 1) for x in load_before],
                "load_after": [round(x, 1) for x in os.getloadavg()],
                "phases": [line.split("INFO ")[-1] for line in log.splitlines() if " in " in line],
                "returncode": child.returncode,
            }
        )
    )


if __name__ == "__main__":
    main()
