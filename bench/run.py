"""One command: generate N reports, time the dashboard, compare with pandas, measure ingest.

    python -m bench --database-url postgresql://postgres@127.0.0.1:5432/reportlib_bench \\
        --create-db --reports 1000000

Without ``--database-url`` the harness uses ``DATABASE_URL`` (through reportlib's settings).
It prints a results table, writes JSON to ``bench/results/`` and, with
``--write-benchmarks``, the table into ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from bench import dashboard_queries, database, generate, ingest, probe, rollup_prototype
from reportlib.config import get_settings
from reportlib.db import make_engine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
TABLE_START = "<!-- bench:results:start -->"
TABLE_END = "<!-- bench:results:end -->"

OTHER_PAGES = ("confidence", "missing_fields", "review")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", help="PostgreSQL URL (default: DATABASE_URL)")
    p.add_argument("--reports", type=int, default=1_000_000, help="reports to generate")
    p.add_argument("--create-db", action="store_true",
                   help="create the database (and migrate it) if it does not exist")
    p.add_argument("--drop-db", action="store_true", help="drop the database at the end")
    p.add_argument("--reuse", action="store_true",
                   help="reuse data already generated in this database with the same N")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--window-share", type=float, default=1 / 3,
                   help="share of reports in the last 30 days (0 = the demo's mild growth)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--through-trigger", action="store_true",
                   help="bulk-load through the per-row report_fields trigger")
    p.add_argument("--runs", type=int, default=5, help="timed runs per page and mode")
    p.add_argument("--flush-factor", type=float, default=database.FLUSH_FACTOR,
                   help="cold runs first read this many times shared_buffers of filler")
    p.add_argument("--compare-reports", type=int, default=20_000,
                   help="second N for the memory comparison, in a second database (0: skip)")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--skip-rollups", action="store_true",
                   help="skip the rollup prototype (bench/rollup_prototype.py)")
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--ingest-reports", type=int, default=3000, help="reports per writer per round")
    p.add_argument("--ingest-rounds", type=int, default=3)
    p.add_argument("--batch-reports", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=10_000)
    p.add_argument("--note", default="", help="free text about the machine, kept in the results")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--write-benchmarks", type=Path, nargs="?", const=BENCHMARKS_MD, default=None,
                   help="write the results table into BENCHMARKS.md (or the given file)")
    return p


def _log(message: str) -> None:
    print(message, flush=True)


def machine_info(engine: Engine, note: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        import psutil

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    with engine.connect() as connection:
        settings = dict(
            connection.execute(
                text(
                    "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
                    "('shared_buffers', 'work_mem', 'jit', 'max_parallel_workers_per_gather', "
                    "'effective_cache_size', 'random_page_cost', 'synchronous_commit')"
                )
            ).all()
        )
        version = connection.execute(text("SHOW server_version")).scalar()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "postgresql": version,
        "postgresql_settings": settings,
        "note": note,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _prepare(args: argparse.Namespace, url: URL) -> tuple[Engine, dict[str, Any]]:
    if args.create_db and database.create_database(url):
        _log(f"created database {url.database}")
    engine = make_engine(url, statement_timeout_ms=3_600_000)
    database.require_bench_database(engine)
    database.migrate_database(engine)
    meta = database.read_meta(engine)
    generation: dict[str, Any]
    if args.reuse and meta.get("reports") == str(args.reports):
        _log(f"reusing {args.reports} reports generated at {meta.get('generated_at')}")
        generation = json.loads(meta.get("generation", "{}"))
        generation["reused"] = True
    else:
        _log(f"generating {args.reports} reports over {args.days} days ...")
        started = time.perf_counter()
        result = generate.generate(
            engine,
            reports=args.reports,
            days=args.days,
            window_share=args.window_share or None,
            seed=args.seed,
            through_trigger=args.through_trigger,
            log=_log,
        )
        total = time.perf_counter() - started
        missing, extra = generate.verify_report_fields(engine)
        _log(f"  report_fields check: {missing} missing, {extra} unexpected rows")
        if missing or extra:
            raise SystemExit("report_fields is not consistent with processing_reports")
        generation = {
            "reports": result.reports,
            "days": result.days,
            "window_share": result.window_share,
            "now": result.now.isoformat(),
            "reports_in_last_30_days": result.reports_in_last_30_days,
            "flagged": result.flagged,
            "review_decisions": result.decisions,
            "open_queue": result.open_queue,
            "report_fields_rows": result.report_fields_rows,
            "report_fields_consistent": True,
            "through_trigger": args.through_trigger,
            "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
            "total_s": round(total, 2),
            "reports_per_s": round(result.reports / total, 1),
        }
        database.write_meta(engine, {
            "reports": str(args.reports),
            "generated_at": result.now.isoformat(),
            "generation": json.dumps(generation),
        })
    with engine.connect() as connection:
        generation["table_sizes_mb"] = {
            name: round(size / 2**20, 1)
            for name, size in connection.execute(
                text(
                    "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                    "WHERE relname IN ('processing_reports', 'report_fields', "
                    "'incoming_emails', 'review_decisions') ORDER BY relname"
                )
            ).all()
        }
    return engine, generation


def _memory(args: argparse.Namespace, url: URL, now: dt.datetime) -> dict[str, Any]:
    rendered = url.render_as_string(hide_password=False)
    out: dict[str, Any] = {"n": args.reports, "at_n": probe.run_probe("dashboard", rendered, now)}
    _log(f"  dashboard process at N={args.reports}: peak {out['at_n']['peak_mb']:.0f} MB")
    if args.compare_reports:
        small = url.set(database=f"{url.database}_n{args.compare_reports}")
        database.create_database(small)
        small_engine = make_engine(small, statement_timeout_ms=3_600_000)
        try:
            database.migrate_database(small_engine)
            if database.read_meta(small_engine).get("reports") != str(args.compare_reports):
                generate.generate(small_engine, reports=args.compare_reports, days=args.days,
                                  window_share=args.window_share or None, seed=args.seed,
                                  log=lambda _m: None)
                database.write_meta(small_engine, {"reports": str(args.compare_reports)})
            small_engine.dispose()
            out["compare_n"] = args.compare_reports
            out["at_compare_n"] = probe.run_probe(
                "dashboard", small.render_as_string(hide_password=False), now
            )
            _log(f"  dashboard process at N={args.compare_reports}: "
                 f"peak {out['at_compare_n']['peak_mb']:.0f} MB")
        finally:
            small_engine.dispose()
            database.drop_database(small)
    return out


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured figure and whether it is met."""
    pages = results["dashboard"]["pages"]
    inter = results["dashboard"]["interactions"]
    rows: list[dict[str, Any]] = [
        {"workload": "Overview page, all queries, cold", "target": "≤ 300 ms",
         "measured": pages["overview"]["cold"]["median_ms"], "unit": "ms", "limit": 300},
    ]
    for name in OTHER_PAGES:
        rows.append({"workload": f"{name} page, cold", "target": "≤ 500 ms",
                     "measured": pages[name]["cold"]["median_ms"], "unit": "ms", "limit": 500})
    for name in ("overview", *OTHER_PAGES):
        rows.append({"workload": f"{name} page, warm", "target": "≤ 50 ms",
                     "measured": pages[name]["warm"]["median_ms"], "unit": "ms", "limit": 50})
    for name, label in (("review_first_page", "Review queue first page"),
                        ("drill_down", "Drill-down")):
        for mode in ("warm", "cold"):
            rows.append({"workload": f"{label}, {mode}", "target": "≤ 20 ms",
                         "measured": inter[name][mode]["median_ms"], "unit": "ms", "limit": 20})
    memory = results.get("memory")
    if memory:
        rows.append({"workload": f"Dashboard process peak RSS, N={memory['n']}",
                     "target": "≤ 400 MB", "measured": round(memory["at_n"]["peak_mb"], 1),
                     "unit": "MB", "limit": 400})
        if "at_compare_n" in memory:
            rows.append({"workload": f"Dashboard process peak RSS, N={memory['compare_n']}",
                         "target": "same as above", "measured":
                         round(memory["at_compare_n"]["peak_mb"], 1), "unit": "MB", "limit": 400})
    ing = results.get("ingest")
    if ing:
        rows.append({"workload": "Ingest: service / hand-written, same harness",
                     "target": "≥ 60%", "measured": round(100 * ing["service_vs_handwritten"], 1),
                     "unit": "%", "floor": 60})
        rows.append({"workload": "Batch backfill (create_processing_reports)",
                     "target": "≥ 20,000/s", "measured": ing["batch_per_s"], "unit": "reports/s",
                     "floor": 20_000})
    for row in rows:
        if "limit" in row:
            row["met"] = row["measured"] <= row["limit"]
        else:
            row["met"] = row["measured"] >= row["floor"]
    return rows


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "reports/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:,.1f} {unit}"


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (targets, pages per query, naive, ingest)."""
    m = results["machine"]
    g = results["generation"]
    lines = [
        f"Run of {results['started_at']} · N = {g['reports']:,} reports over {g['days']} days, "
        f"{g['reports_in_last_30_days']:,} in the default 30-day window · "
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB RAM · PostgreSQL "
        f"{m['postgresql']} (shared_buffers {m['postgresql_settings'].get('shared_buffers')}, "
        f"work_mem {m['postgresql_settings'].get('work_mem')}, "
        f"jit {m['postgresql_settings'].get('jit')}) · {results['runs']} runs, median · "
        f"load average (1/5/15 min) {m['load_average_at_start']} at start, "
        f"{m.get('load_average_at_end')} at end"
        + (f" · {m['note']}" if m.get("note") else ""),
        "",
        "| Workload | Target | Measured | Met |",
        "|---|---|---|---|",
    ]
    for row in results["targets"]:
        lines.append(f"| {row['workload']} | {row['target']} | {_fmt(row['measured'], row['unit'])}"
                     f" | {'yes' if row['met'] else '**no**'} |")
    lines += ["", "Per query (median ms; cold / warm):", "",
              "| Page | Query | Cold | Warm |", "|---|---|---|---|"]
    for group in ("pages", "interactions"):
        for page, modes in results["dashboard"][group].items():
            cold = modes["cold"]["queries_median_ms"]
            warm = modes["warm"]["queries_median_ms"]
            for query in cold:
                lines.append(f"| {page} | {query} | {cold[query]:,.1f} | {warm[query]:,.1f} |")
    rollups = results.get("rollups")
    if rollups:
        lines += [
            "",
            "Rollup prototype (bench/rollup_prototype.py), same data and harness; its numbers "
            f"equal reportlib.queries': {'yes' if all(rollups['checks'].values()) else 'NO'} "
            f"({sum(rollups['checks'].values())}/{len(rollups['checks'])} checks); built in "
            f"{rollups['build']['build_s']} s, rows: "
            + ", ".join(f"{k} {v:,}" for k, v in rollups["build"]["rows"].items()) + ".",
            "",
            "| Page | Cold (rollups) | Warm (rollups) | Cold (queries.py) | Warm (queries.py) |",
            "|---|---|---|---|---|",
        ]
        every = {**results["dashboard"]["pages"], **results["dashboard"]["interactions"]}
        for page, modes in rollups["pages"].items():
            lines.append(
                f"| {page} | {modes['cold']['median_ms']:,.1f} ms | "
                f"{modes['warm']['median_ms']:,.1f} ms | {every[page]['cold']['median_ms']:,.1f}"
                f" ms | {every[page]['warm']['median_ms']:,.1f} ms |"
            )
        lines += ["", "Rollup prototype per query (median ms; cold / warm):", "",
                  "| Page | Query | Cold | Warm |", "|---|---|---|---|"]
        for page, modes in rollups["pages"].items():
            cold = modes["cold"]["queries_median_ms"]
            warm = modes["warm"]["queries_median_ms"]
            for query in cold:
                lines.append(f"| {page} | {query} | {cold[query]:,.1f} | {warm[query]:,.1f} |")
    naive = results.get("naive")
    if naive:
        d = results["dashboard"]["pages"]
        sql_cold = sum(d[p]["cold"]["median_ms"] for p in ("overview", "confidence",
                                                              "missing_fields", "review"))
        sql_warm = sum(d[p]["warm"]["median_ms"] for p in ("overview", "confidence",
                                                              "missing_fields", "review"))
        lines += [
            "",
            "Naive comparison (same run): pandas loads the 30-day window and computes the "
            "four pages' numbers.",
            "",
            "| Approach | Time | Peak RSS (process) | Ratio vs SQL |",
            "|---|---|---|---|",
            f"| pandas: read_sql of {naive['rows']:,} rows + compute | "
            f"{naive['seconds'] * 1000:,.0f} ms (load {naive['timings']['load_s'] * 1000:,.0f}"
            f" ms) | {naive['peak_mb']:,.0f} MB (+{naive['peak_mb'] - naive['baseline_mb']:,.0f}"
            f" MB over imports) | {naive['seconds'] * 1000 / sql_cold:,.1f}× the cold SQL sum, "
            f"{naive['seconds'] * 1000 / sql_warm:,.1f}× the warm |",
            f"| reportlib.queries, all four pages | {sql_cold:,.0f} ms cold, {sql_warm:,.0f} ms"
            f" warm | {results['memory']['at_n']['peak_mb']:,.0f} MB (all pages ×3) | 1 |"
            if results.get("memory") else "",
        ]
    ing = results.get("ingest")
    if ing:
        med = ing["median_per_s"]
        lines += [
            "",
            f"Ingest, {ing['workers']} threads, one report per Session and transaction, "
            f"{ing['reports_per_round']:,} reports per writer per round, median of rounds:",
            "",
            "| Writer | Reports/s | vs hand-written |",
            "|---|---|---|",
            f"| reportlib.create_processing_report (Session per report) | "
            f"{med['service']:,.0f} | "
            f"{100 * med['service'] / med['handwritten']:.0f}% |",
            f"| hand-written upsert via session.connection().exec_driver_sql | "
            f"{med['handwritten']:,.0f} | 100% |",
            f"| bare psycopg2 loop, no Session | {med['driver']:,.0f} | "
            f"{100 * med['driver'] / med['handwritten']:.0f}% |",
            f"| reportlib.create_processing_reports, batches of {ing['batch_size']:,} "
            f"({ing['batch_reports']:,} reports, one thread) | {ing['batch_per_s']:,.0f} | — |",
        ]
    gen = results["generation"]
    if "total_s" in gen:
        when = (f" (an earlier run's, at {gen['now'][:16].replace('T', ' ')} UTC; this run "
                "reused the data)" if gen.get("reused") else "")
        lines += ["", f"Generation{when}: {gen['reports']:,} reports in {gen['total_s']:,.0f} s "
                  f"({gen['reports_per_s']:,.0f}/s), report_fields verified identical to what "
                  "the trigger writes; table sizes now (MB): "
                  + ", ".join(f"{k} {v}" for k, v in gen["table_sizes_mb"].items()) + "."]
    return "\n".join(line for line in lines if line is not None)


def _print_targets(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["workload"]) for r in rows)
    _log("")
    _log(f"{'Workload':<{width}}  {'Target':<14}  {'Measured':>14}  Met")
    for row in rows:
        _log(f"{row['workload']:<{width}}  {row['target']:<14}  "
             f"{_fmt(row['measured'], row['unit']):>14}  {'yes' if row['met'] else 'NO'}")


def write_benchmarks(path: Path, table: str) -> None:
    """Replace the generated block in BENCHMARKS.md (or append one)."""
    block = f"{TABLE_START}\n{table}\n{TABLE_END}"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    updated = pattern.sub(lambda _m: block, current) if pattern.search(current) else (
        current.rstrip() + "\n\n" + block + "\n")
    path.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = database.parse_url(args.database_url or get_settings().database_url)
    started_at = dt.datetime.now(dt.UTC)
    engine, generation = _prepare(args, url)
    results: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "database": url.database,
        "runs": args.runs,
        "machine": machine_info(engine, args.note),
        "generation": generation,
    }
    try:
        now = dt.datetime.now(dt.UTC)
        ctx = dashboard_queries.default_context(engine, now=now)
        with engine.connect() as connection:
            start, end = ctx.flt.bounds()
            results["window_reports"] = connection.execute(
                text("SELECT count(*) FROM processing_reports "
                     "WHERE created_at >= :s AND created_at < :e"), {"s": start, "e": end}
            ).scalar_one()
        _log(f"dashboard queries ({results['window_reports']:,} reports in the window, "
             f"{args.runs} runs) ...")
        results["dashboard"] = dashboard_queries.run_all(
            url, engine, ctx, runs=args.runs, flush_factor=args.flush_factor, log=_log
        )
        if not args.skip_rollups:
            _log("rollup prototype ...")
            results["rollups"] = rollup_prototype.run(
                url, engine, ctx, runs=args.runs, flush_factor=args.flush_factor, log=_log
            )
        _log("dashboard process memory ...")
        results["memory"] = _memory(args, url, now)
        if not args.skip_naive:
            _log("naive pandas comparison ...")
            results["naive"] = probe.run_probe(
                "naive", url.render_as_string(hide_password=False), now
            )
            _log(f"  pandas: {results['naive']['seconds']:.2f} s, "
                 f"peak {results['naive']['peak_mb']:.0f} MB")
        if not args.skip_ingest:
            _log("ingest ...")
            results["ingest"] = ingest.run_ingest(
                url,
                first_email_id=ingest.ingest_first_email_id(engine),
                workers=args.workers,
                reports_per_round=args.ingest_reports,
                rounds=args.ingest_rounds,
                batch_reports=args.batch_reports,
                batch_size=args.batch_size,
                log=_log,
            ).as_dict()
            generate.vacuum_analyze(engine)
    finally:
        engine.dispose()
        if args.drop_db:
            database.drop_database(url)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = evaluate(results)
    _print_targets(results["targets"])
    table = markdown(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    out = args.results_dir / f"bench-{args.reports}-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    _log(f"\nresults: {out}")
    if args.write_benchmarks:
        write_benchmarks(args.write_benchmarks, table)
        _log(f"table written to {args.write_benchmarks}")
    return 0

