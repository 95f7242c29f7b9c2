"""`make bench`: run every benchmark against the local stack and print their figures.

Each benchmark is its own script (so it can be run alone) and prints a small table; results are
also kept in bench/results/<name>.txt for comparison between runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = ["intake_bench.py", "processor_bench.py"]


def main() -> int:
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    failed = []
    for script in BENCHMARKS:
        print(f"=== {script} ===", flush=True)
        run = subprocess.run(
            [sys.executable, str(BENCH / script)], capture_output=True, text=True, check=False
        )
        print(run.stdout, end="")
        (results / f"{Path(script).stem}.txt").write_text(run.stdout)
        if run.returncode != 0:
            failed.append(script)
            print(run.stderr[-3000:], file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
