"""Where a workflow run's wall clock went: job-seconds per rule from a Snakemake log.

    .venv/bin/python benchmarks/job_times.py .snakemake/log/<run>.snakemake.log

Each job's time is from its start stamp to its "Finished jobid" stamp (1-second
resolution), so it includes the job's interpreter start-up and imports, which
`results/benchmarks/` also counts but samples coarsely. The sum over jobs divided
by the cores is the wall clock the run needs when the cores are kept busy.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")
RULE = re.compile(r"^(?:local)?rule (\w+):")
JOBID = re.compile(r"^\s+jobid: (\d+)")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def job_seconds(log_text: str) -> tuple[dict[str, float], Counter]:
    """rule -> summed job wall seconds, and rule -> number of finished jobs."""
    stamp: datetime | None = None
    rule: str | None = None
    started: dict[str, tuple[datetime, str]] = {}
    seconds: dict[str, float] = defaultdict(float)
    jobs: Counter = Counter()
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(line):
            rule = m.group(1)
        elif (m := JOBID.match(line)) and rule and stamp:
            started[m.group(1)] = (stamp, rule)
            rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in started and stamp:
            t0, name = started.pop(m.group(1))
            seconds[name] += (stamp - t0).total_seconds()
            jobs[name] += 1
    return dict(seconds), jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="a Snakemake run log (.snakemake/log/*.snakemake.log)")
    parser.add_argument("--cores", type=int, default=2, help="cores of the run (default: %(default)s)")
    args = parser.parse_args()
    seconds, jobs = job_seconds(args.log.read_text(encoding="utf-8"))
    if not seconds:
        raise SystemExit(f"{args.log}: no finished jobs found (not a Snakemake log?)")
    total = sum(seconds.values())
    print("| rule | jobs | job-s | s per job | share |\n|---|---|---|---|---|")
    for name in sorted(seconds, key=seconds.__getitem__, reverse=True):
        s = seconds[name]
        print(f"| {name} | {jobs[name]} | {s:.0f} | {s / jobs[name]:.1f} | {100 * s / total:.0f} % |")
    print(f"\ntotal {total:.0f} job-s = {total / args.cores / 60:.1f} min on {args.cores} fully used cores")


if __name__ == "__main__":
    main()
