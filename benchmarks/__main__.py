"""Every benchmark with its default sizes, one after another, each in a fresh process.

Run: ``python -m benchmarks`` (about twenty minutes on a 2-core machine). Each script prints its
tables and writes its JSON to ``benchmarks/results/``; the first one that fails stops the run.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPTS = (
    "bench_gradcam",
    "bench_backends",
    "parity_backends",
    "bench_worker",
    "bench_peer",
    "bench_state",
    "bench_scan",
    "bench_demo",
)


def main() -> int:
    """Run the scripts in order; the exit status of the first failure, else 0."""
    for name in SCRIPTS:
        print(f"== python -m benchmarks.{name}", flush=True)
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
