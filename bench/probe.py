"""Child process that runs one workload and reports its peak memory as a JSON line.

``python -m bench.probe dashboard --database-url URL --now ISO`` loads what the dashboard
process loads (Streamlit, plotly, pandas, reportlib), then runs every page's queries
``--repeat`` times; ``naive`` runs :func:`bench.naive.compute`. The peak is the process's
maximum resident set size (``getrusage``), so it covers the whole run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from typing import Any

import psutil


def _mb(kilobytes: float) -> float:
    return kilobytes / 1024


def _current_rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _dashboard(url: str, now: dt.datetime, repeat: int) -> dict[str, Any]:
    import plotly.graph_objects  # noqa: F401  (the dashboard process has these loaded)
    import streamlit  # noqa: F401

    from bench import dashboard_queries as dq
    from reportlib.db import make_engine, make_sessionmaker

    baseline = _current_rss_mb()
    engine = make_engine(url)
    ctx = dq.default_context(engine, now=now)
    started = time.perf_counter()
    results = 0
    with make_sessionmaker(engine)() as session:
        for _ in range(repeat):
            for steps in (*dq.PAGES.values(), *dq.INTERACTIONS.values()):
                for _name, query in steps:
                    query(session, ctx)
                    results += 1
            session.rollback()
    engine.dispose()
    return {"baseline_mb": baseline, "seconds": time.perf_counter() - started, "calls": results}


def _naive(url: str, now: dt.datetime) -> dict[str, Any]:
    from bench import naive
    from reportlib.queries import ReportFilter

    baseline = _current_rss_mb()
    start, end = ReportFilter.last_days(30, today=now.date()).bounds()
    started = time.perf_counter()
    out = naive.compute(url, start, end, now)
    out["seconds"] = time.perf_counter() - started
    out["baseline_mb"] = baseline
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("mode", choices=("dashboard", "naive"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--now", required=True, help="ISO timestamp with offset")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    now = dt.datetime.fromisoformat(args.now)
    if args.mode == "dashboard":
        out = _dashboard(args.database_url, now, args.repeat)
    else:
        out = _naive(args.database_url, now)
    out["peak_mb"] = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(out, default=str))
    return 0


def run_probe(mode: str, url: str, now: dt.datetime, *, repeat: int = 3,
              timeout_s: float = 1800) -> dict[str, Any]:
    """Run a probe in a child process and return its JSON report."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.probe", mode, "--database-url", url,
         "--now", now.isoformat(), "--repeat", str(repeat)],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"probe {mode} failed:\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
