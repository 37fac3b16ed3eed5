"""The README's main job, end to end: ``xai-fer explain --preset quick --out DIR --overwrite`` (the bundled reference
CNN on the bundled 196-image sample: every explainer on one image per class), run as a user runs it, in a fresh
process each time.

Prints each run's wall time (from starting the process to its exit: Python, TensorFlow's import, the model, every
explainer, the figures and the report) and CPU time (user + system: less sensitive than the wall time to other
work on a shared machine) with the machine's load average before it, then the medians, and the median
of each stage the manifest times: every explainer's ``seconds``, and the rest of the run (imports, loading, the
scaling choice, figures and report writing) as wall time minus their sum. The README's "about a minute on two CPU
cores" is this median on an otherwise idle two-core machine; a busy one (load average above the core count) makes
every number larger, the wall time most.

    .venv/bin/python benchmarks/readme_job.py [--runs 3] [--xai-fer .venv/bin/xai-fer]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["explain", "--preset", "quick", "--overwrite"]


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(executable: str, out: Path) -> tuple[float, float, dict]:
    """One run of the README job in a fresh process: (wall seconds, CPU seconds, {explainer: seconds} from its
    manifest)."""
    cpu = children_cpu_seconds()
    start = time.perf_counter()
    done = subprocess.run([executable, *COMMAND, "--out", str(out)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the README job failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return wall, children_cpu_seconds() - cpu, {name: float(entry["seconds"])
                                                for name, entry in manifest["explainers"].items()}


def stage_medians(runs: list[tuple[float, dict]]) -> dict[str, float]:
    """Median seconds of each explainer over the runs, and of the rest of each run (wall minus explainers)."""
    names = list(runs[0][1])
    medians = {name: statistics.median(stages[name] for _, stages in runs) for name in names}
    medians["rest: imports, model, predictions, figures, report"] = statistics.median(
        wall - sum(stages.values()) for wall, stages in runs)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the job (the median is reported)")
    parser.add_argument("--xai-fer", default=str(Path(sys.executable).with_name("xai-fer")),
                        help="the xai-fer command to time (default: the one beside this Python)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    runs, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="readme-job-") as folder:
        for k in range(args.runs):
            load = os.getloadavg()[0]
            wall, cpu, stages = run_once(args.xai_fer, Path(folder) / "out")
            runs.append((wall, stages))
            cpus.append(cpu)
            print(f"run {k + 1}: {wall:.1f} s, {cpu:.1f} CPU s (load average before it {load:.2f}, "
                  f"{os.cpu_count()} CPUs)", flush=True)
    walls = [wall for wall, _ in runs]
    print(f"\nmedian wall time: {statistics.median(walls):.1f} s over {len(walls)} runs "
          f"(min {min(walls):.1f}, max {max(walls):.1f}); median CPU time {statistics.median(cpus):.1f} s")
    print("median stages (manifest seconds):")
    medians = stage_medians(runs)
    width = max(len(name) for name in medians)
    for name, seconds in sorted(medians.items(), key=lambda item: -item[1]):
        print(f"  {name:<{width}}  {seconds:6.2f} s")


if __name__ == "__main__":
    main()
