"""One command: generate N reports, time the dashboard's data (rollups vs raw queries) and
its pages in a browser (vs hello-world), compare with pandas, measure the writer (vs a
plain table) and the batch backfill.

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

from bench import browser, dashboard_queries, database, generate, ingest, probe
from reportlib.config import get_settings
from reportlib.db import make_engine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
TABLE_START = "<!-- bench:results:start -->"
TABLE_END = "<!-- bench:results:end -->"


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
    p.add_argument("--runs", type=int, default=5, help="timed runs per page and mode")
    p.add_argument("--flush-factor", type=float, default=database.FLUSH_FACTOR,
                   help="cold runs first read this many times shared_buffers of filler")
    p.add_argument("--compare-reports", type=int, default=20_000,
                   help="second N for the memory comparison, in a second database (0: skip)")
    p.add_argument("--skip-naive", action="store_true", help="skip the pandas comparison")
    p.add_argument("--skip-raw", action="store_true",
                   help="skip the raw-query baseline (bench/raw_queries.py)")
    p.add_argument("--skip-browser", action="store_true",
                   help="skip the browser timings (bench/browser.py)")
    p.add_argument("--skip-ingest", action="store_true",
                   help="skip the writer and batch measurements (bench/ingest.py)")
    p.add_argument("--browser-runs", type=int, default=5,
                   help="timed loads per page and view in the browser (median)")
    p.add_argument("--chromium", default=browser.CHROMIUM,
                   help="Chromium executable for the browser timings")
    p.add_argument("--rebuild-rollups", action="store_true",
                   help="with --reuse: mark every day dirty and time a full rollup rebuild "
                        "(always done, and timed, after generating)")
    p.add_argument("--compare-results", type=Path, default=None, metavar="PATH",
                   help="results JSON of an earlier run at another N: data time ratio "
                        "(the larger N over the smaller)")
    p.add_argument("--workers", type=int, default=8,
                   help="writer threads of the main ingest comparison")
    p.add_argument("--ingest-threads", default="1,4,16",
                   help="further writer thread counts for the writer vs plain table comparison")
    p.add_argument("--ingest-reports", type=int, default=3000,
                   help="reports per round (all threads together)")
    p.add_argument("--ingest-rounds", type=int, default=3)
    p.add_argument("--batch-reports", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=10_000)
    p.add_argument("--batch-only", action="store_true",
                   help="measure only the batch backfill (after generating or reusing the data)")
    p.add_argument("--batch-rounds", type=int, default=3,
                   help="with --batch-only: timed rounds of --batch-reports each")
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
        if args.rebuild_rollups:
            _log("rebuilding every day's rollups ...")
            generation["rollup_rebuild"] = generate.rebuild_rollups_timed(engine)
            generation["rollup_rebuild"]["on_reused_data"] = True
            _log(f"  rollups rebuild: {generation['rollup_rebuild']['days']} days in "
                 f"{generation['rollup_rebuild']['seconds']:.1f}s")
    else:
        _log(f"generating {args.reports} reports over {args.days} days ...")
        started = time.perf_counter()
        result = generate.generate(
            engine,
            reports=args.reports,
            days=args.days,
            window_share=args.window_share or None,
            seed=args.seed,
            log=_log,
        )
        total = time.perf_counter() - started
        generation = {
            "reports": result.reports,
            "days": result.days,
            "window_share": result.window_share,
            "now": result.now.isoformat(),
            "reports_in_last_30_days": result.reports_in_last_30_days,
            "flagged": result.flagged,
            "review_decisions": result.decisions,
            "open_queue": result.open_queue,
            "field_rows": result.field_rows,
            "review_closed": result.review_closed,
            "rollup_rebuild": result.rollup_rebuild,
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
                    "WHERE relname IN ('processing_reports', 'incoming_emails', "
                    "'review_decisions') ORDER BY relname"
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


PAGE_NAMES = ("overview", "confidence", "missing_fields", "review", "quality")
INTERACTION_TARGETS = (
    ("review_first_page", "Queue first page"),
    ("review_count", "Queue count"),
    ("next_item", "Next item (claim_next_report, rolled back)"),
    ("drill_down", "Drill-down"),
)
DATA_RATIO_LIMIT = 1.5
RSS_FLAT_SHARE = 0.10


def data_time_ms(results: dict[str, Any]) -> float:
    """A run's data time: the sum of the four pages' cold medians (rollup path)."""
    pages = results["dashboard"]["pages"]
    return float(sum(pages[name]["cold"]["median_ms"] for name in PAGE_NAMES if name in pages))


def compare_data_time(results: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    """Data time of the run at the larger N over the run at the smaller N, in total and
    per page (cold and warm)."""
    mine, theirs = results["generation"]["reports"], earlier["generation"]["reports"]
    big, small = (results, earlier) if mine >= theirs else (earlier, results)
    per_page = {}
    for name in PAGE_NAMES:
        if name not in small["dashboard"]["pages"]:
            continue
        per_page[name] = {
            mode: round(big["dashboard"]["pages"][name][mode]["median_ms"]
                        / small["dashboard"]["pages"][name][mode]["median_ms"], 2)
            for mode in ("cold", "warm")
        }
    return {
        "large_n": big["generation"]["reports"],
        "small_n": small["generation"]["reports"],
        "large_ms": round(data_time_ms(big), 1),
        "small_ms": round(data_time_ms(small), 1),
        "ratio": round(data_time_ms(big) / data_time_ms(small), 2),
        "per_page": per_page,
        "other_run": earlier.get("started_at"),
    }


def _row(workload: str, target: str, measured: float | None, unit: str, *,
         limit: float | None = None, floor: float | None = None,
         baseline: float | None = None, baseline_unit: str | None = None,
         baseline_label: str = "") -> dict[str, Any]:
    met: bool | None = None
    if measured is not None:
        met = measured <= limit if limit is not None else measured >= (floor or 0)
    return {"workload": workload, "target": target, "measured": measured, "unit": unit,
            "limit": limit, "floor": floor, "baseline": baseline,
            "baseline_unit": baseline_unit or unit, "baseline_label": baseline_label,
            "met": met}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured figure, its same-run baseline and whether it is met."""
    dash = results["dashboard"]
    raw_pages = dash.get("raw_pages", {})
    raw_inter = dash.get("raw_interactions", {})
    n = results["generation"]["reports"]

    def raw(table: dict[str, Any], name: str, mode: str) -> float | None:
        return table[name][mode]["median_ms"] if name in table else None

    rows = [_row("Overview data, cold", "≤ 100 ms", dash["pages"]["overview"]["cold"]["median_ms"],
                 "ms", limit=100, baseline=raw(raw_pages, "overview", "cold"),
                 baseline_label="raw queries")]
    for name in PAGE_NAMES[1:]:
        rows.append(_row(f"{name} data, cold", "≤ 150 ms",
                         dash["pages"][name]["cold"]["median_ms"], "ms", limit=150,
                         baseline=raw(raw_pages, name, "cold"), baseline_label="raw queries"))
    for name in PAGE_NAMES:
        rows.append(_row(f"{name} data, warm", "≤ 30 ms",
                         dash["pages"][name]["warm"]["median_ms"], "ms", limit=30,
                         baseline=raw(raw_pages, name, "warm"), baseline_label="raw queries"))
    for name, label in INTERACTION_TARGETS:
        rows.append(_row(f"{label}, cold", "≤ 20 ms",
                         dash["interactions"][name]["cold"]["median_ms"], "ms", limit=20,
                         baseline=raw(raw_inter, name, "cold"),
                         baseline_label="raw queries" if name in raw_inter else "none"))
    web = results.get("browser")
    if web:
        hello = web["hello_ms"]
        for name, figures in web["pages"].items():
            rows.append(_row(f"Browser, new filter, {name}, N={n:,}", "≤ hello-world + 0.6 s",
                             figures["new_filter_ms"], "ms", limit=round(hello + 600, 1),
                             baseline=hello, baseline_label="hello-world"))
        for name, figures in web["pages"].items():
            rows.append(_row(f"Browser, repeated view, {name}, N={n:,}",
                             "≤ hello-world + 0.3 s", figures["repeated_ms"], "ms",
                             limit=round(hello + 300, 1), baseline=hello,
                             baseline_label="hello-world"))
    comparison = results.get("data_time_comparison")
    if comparison:
        # Every page's data time, cold and warm, may grow by at most the limit.
        for name, ratios in comparison["per_page"].items():
            for mode in ("cold", "warm"):
                rows.append(_row(
                    f"{name} data {mode}, N={comparison['large_n']:,} vs "
                    f"N={comparison['small_n']:,}",
                    f"≤ {DATA_RATIO_LIMIT}×", ratios[mode], "×", limit=DATA_RATIO_LIMIT,
                    baseline_label=f"N={comparison['small_n']:,}"))
    else:
        rows.append(_row("Data time, 5M vs 1M", f"≤ {DATA_RATIO_LIMIT}×", None, "×",
                         limit=DATA_RATIO_LIMIT,
                         baseline_label="needs --compare-results (earlier run's JSON)"))
    ing = results.get("ingest")
    if ing:
        for threads, figures in ing["scaling"].items():
            rows.append(_row(f"Writer vs plain-table upsert, {threads} threads", "≥ 50%",
                             round(100 * figures["service_vs_plain"], 1), "%", floor=50,
                             baseline=figures["plain"], baseline_unit="reports/s",
                             baseline_label="plain table"))
        rows.append(_row("Batch backfill (create_processing_reports)", "≥ 20,000/s",
                         ing["batch_per_s"], "reports/s", floor=20_000,
                         baseline_label="none"))
    memory = results.get("memory")
    if memory:
        rows.append(_row(f"Dashboard RSS, N={memory['n']:,}", "≤ 400 MB",
                         round(memory["at_n"]["peak_mb"], 1), "MB", limit=400,
                         baseline_label="none"))
        if "at_compare_n" in memory:
            small = round(memory["at_compare_n"]["peak_mb"], 1)
            rows.append(_row(f"Dashboard RSS, N={memory['n']:,} vs N={memory['compare_n']:,}",
                             f"flat (≤ +{100 * RSS_FLAT_SHARE:.0f}%)",
                             round(memory["at_n"]["peak_mb"], 1), "MB",
                             limit=round(small * (1 + RSS_FLAT_SHARE), 1), baseline=small,
                             baseline_label=f"N={memory['compare_n']:,}"))
    if web and web["dashboard_server_memory"].get("peak_mb"):
        rows.append(_row(f"Dashboard RSS, streamlit server after the browser run, N={n:,}",
                         "≤ 400 MB", web["dashboard_server_memory"]["peak_mb"], "MB",
                         limit=400, baseline_label="none"))
    return rows


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "reports/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:,.1f} {unit}"


def _baseline(row: dict[str, Any]) -> str:
    if row["baseline"] is None:
        return row["baseline_label"] if row["baseline_label"] != "none" else "—"
    text_ = f"{_fmt(row['baseline'], row['baseline_unit'])} ({row['baseline_label']})"
    if row["unit"] == "ms" and row["baseline_unit"] == "ms" and row["measured"]:
        if row["baseline_label"] == "raw queries":
            text_ += f", raw / rollups {row['baseline'] / row['measured']:.1f}×"
        elif row["baseline_label"] == "hello-world":
            text_ += f", +{row['measured'] - row['baseline']:,.0f} ms"
    return text_


def _met(row: dict[str, Any], *, markdown_: bool = False) -> str:
    if row["met"] is None:
        return "not measured"
    if row["met"]:
        return "yes"
    return "**NO**" if markdown_ else "NO"


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (targets, per query both ways, browser, ingest)."""
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
        "| Workload | Target | Measured | Baseline (same run) | Met |",
        "|---|---|---|---|---|",
    ]
    for row in results["targets"]:
        lines.append(f"| {row['workload']} | {row['target']} | {_fmt(row['measured'], row['unit'])}"
                     f" | {_baseline(row)} | {_met(row, markdown_=True)} |")
    dash = results["dashboard"]
    refresh = dash.get("rollup_refresh", {})
    lines += ["", "Data per page and interaction (median ms), rollups (reportlib.queries, after "
              f"refresh_rollups folded {refresh.get('days_refreshed', 0)} dirty days; none left) "
              "and the raw-query baseline (bench/raw_queries.py):", "",
              "| Page | Cold | Warm | Cold, raw | Warm, raw | Raw / rollups (cold, warm) |",
              "|---|---|---|---|---|---|"]
    for group in ("pages", "interactions"):
        raw_group = dash.get(f"raw_{group}", {})
        for name, modes in dash[group].items():
            raw_modes = raw_group.get(name)
            ratio = dash.get("raw_vs_rollups", {}).get(name)
            lines.append(
                f"| {name} | {modes['cold']['median_ms']:,.1f} | {modes['warm']['median_ms']:,.1f}"
                f" | {raw_modes['cold']['median_ms']:,.1f} | {raw_modes['warm']['median_ms']:,.1f}"
                f" | {ratio['cold']}×, {ratio['warm']}× |"
                if raw_modes and ratio else
                f"| {name} | {modes['cold']['median_ms']:,.1f} | "
                f"{modes['warm']['median_ms']:,.1f} | — | — | — |"
            )
    lines += ["", "Per query (median ms; cold / warm; raw cold / raw warm):", "",
              "| Page | Query | Cold | Warm | Cold, raw | Warm, raw |", "|---|---|---|---|---|---|"]
    for group in ("pages", "interactions"):
        raw_group = dash.get(f"raw_{group}", {})
        for page, modes in dash[group].items():
            cold = modes["cold"]["queries_median_ms"]
            warm = modes["warm"]["queries_median_ms"]
            raw_cold = raw_group.get(page, {}).get("cold", {}).get("queries_median_ms", {})
            raw_warm = raw_group.get(page, {}).get("warm", {}).get("queries_median_ms", {})
            for query in cold:
                rc = f"{raw_cold[query]:,.1f}" if query in raw_cold else "—"
                rw = f"{raw_warm[query]:,.1f}" if query in raw_warm else "—"
                lines.append(f"| {page} | {query} | {cold[query]:,.1f} | {warm[query]:,.1f} "
                             f"| {rc} | {rw} |")
    comparison = results.get("data_time_comparison")
    if comparison:
        lines += ["", f"Data time at N={comparison['large_n']:,} over N={comparison['small_n']:,} "
                  f"(the other run: {comparison['other_run']}): four pages cold "
                  f"{comparison['large_ms']:,.1f} ms vs {comparison['small_ms']:,.1f} ms = "
                  f"{comparison['ratio']}×; per page (cold, warm): "
                  + ", ".join(f"{k} {v['cold']}×, {v['warm']}×"
                              for k, v in comparison["per_page"].items()) + "."]
    web = results.get("browser")
    if web:
        mem = web["dashboard_server_memory"]
        lines += [
            "",
            f"Browser (bench/browser.py): Chromium, one context; median of {web['runs']} loads, "
            "from navigation start until the app is idle (no running indicator, spinner or "
            "skeleton; content, charts and tables drawn). Hello-world (`st.write(\"hello\")`, "
            f"same kind of server) {web['hello_ms']:,.0f} ms. Dashboard server peak RSS "
            f"{mem.get('peak_mb', 0):,.0f} MB.",
            "",
            "| Page | New filter | Over hello-world | Repeated view | Over hello-world |",
            "|---|---|---|---|---|",
        ]
        for name, figures in web["pages"].items():
            lines.append(
                f"| {name} | {figures['new_filter_ms']:,.0f} ms | "
                f"+{figures['new_filter_over_hello_ms']:,.0f} ms | {figures['repeated_ms']:,.0f}"
                f" ms | +{figures['repeated_over_hello_ms']:,.0f} ms |"
            )
    naive = results.get("naive")
    if naive:
        d = dash["pages"]
        sql_cold = sum(d[p]["cold"]["median_ms"] for p in PAGE_NAMES)
        sql_warm = sum(d[p]["warm"]["median_ms"] for p in PAGE_NAMES)
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
            f"{ing['reports_per_round']:,} reports per round, median of rounds:",
            "",
            "| Writer | Reports/s | vs plain table |",
            "|---|---|---|",
            f"| reportlib.create_processing_report (Session per report) | "
            f"{med['service']:,.0f} | {100 * med['service'] / med['plain']:.0f}% |",
            f"| hand-written upsert into bench_plain_reports (no triggers, id, unique email_id"
            f" + FK, created_at index) | {med['plain']:,.0f} | 100% |",
            f"| hand-written upsert into processing_reports via session.connection()"
            f".exec_driver_sql | {med['handwritten']:,.0f} | "
            f"{100 * med['handwritten'] / med['plain']:.0f}% |",
            f"| the same, bare psycopg2 loop, no Session | {med['driver']:,.0f} | "
            f"{100 * med['driver'] / med['plain']:.0f}% |",
            f"| reportlib.create_processing_reports, batches of {ing['batch_size']:,} "
            f"({ing['batch_reports']:,} reports, one thread) | {ing['batch_per_s']:,.0f} | — |",
            "",
            "| Threads | create_processing_report | plain table | Writer / plain |",
            "|---|---|---|---|",
        ]
        for threads, figures in ing["scaling"].items():
            lines.append(f"| {threads} | {figures['service']:,.0f}/s | {figures['plain']:,.0f}/s"
                         f" | {100 * figures['service_vs_plain']:.0f}% |")
    gen = results["generation"]
    if "total_s" in gen:
        when = (f" (an earlier run's, at {gen['now'][:16].replace('T', ' ')} UTC; this run "
                "reused the data)" if gen.get("reused") else "")
        lines += ["", f"Generation{when}: {gen['reports']:,} reports in {gen['total_s']:,.0f} s "
                  f"({gen['reports_per_s']:,.0f}/s); table sizes now (MB): "
                  + ", ".join(f"{k} {v}" for k, v in gen["table_sizes_mb"].items()) + "."]
    rebuild = gen.get("rollup_rebuild")
    if rebuild:
        where = ("on the reused data" if rebuild.get("on_reused_data")
                 else "right after generation")
        lines += ["", f"Full rollup rebuild ({where}; `rebuild_rollups`, what `python -m "
                  f"reportlib rollups rebuild` does): {rebuild['days']} days in "
                  f"{rebuild['seconds']:,.1f} s; rows: "
                  + ", ".join(f"{k} {v:,}" for k, v in rebuild["rows"].items()) + "."]
    return "\n".join(line for line in lines if line is not None)


def _print_targets(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["workload"]) for r in rows)
    base_width = max(len(_baseline(r)) for r in rows)
    _log("")
    _log(f"{'Workload':<{width}}  {'Target':<22}  {'Measured':>12}  "
         f"{'Baseline (same run)':<{base_width}}  Met")
    for row in rows:
        _log(f"{row['workload']:<{width}}  {row['target']:<22}  "
             f"{_fmt(row['measured'], row['unit']):>12}  {_baseline(row):<{base_width}}  "
             f"{_met(row)}")


def write_benchmarks(path: Path, table: str) -> None:
    """Replace the generated block in BENCHMARKS.md (or append one)."""
    block = f"{TABLE_START}\n{table}\n{TABLE_END}"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    updated = pattern.sub(lambda _m: block, current) if pattern.search(current) else (
        current.rstrip() + "\n\n" + block + "\n")
    path.write_text(updated)


def _batch_only(
    args: argparse.Namespace,
    url: URL,
    engine: Engine,
    generation: dict[str, Any],
    started_at: dt.datetime,
    load_at_start: list[float],
) -> int:
    """The batch backfill alone: a quick, repeatable figure for work on the write path."""
    try:
        first = ingest.ingest_first_email_id(engine)
        _log(f"batch ({args.batch_rounds} rounds of {args.batch_reports:,} reports, "
             f"batches of {args.batch_size:,}) ...")
        rates = ingest.run_batch(
            url, first_email_id=first, batch_reports=args.batch_reports,
            batch_size=args.batch_size, rounds=args.batch_rounds, log=_log,
        )
        generate.vacuum_analyze(engine)
    finally:
        engine.dispose()
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    median = sorted(rates)[len(rates) // 2]
    _log(f"batch create_processing_reports: median {median:,.0f} reports/s "
         f"(rounds: {', '.join(f'{r:,.0f}' for r in rates)}); load average (1/5/15 min) "
         f"at start {load_at_start}, at end {load_at_end}")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"batch-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({
        "started_at": started_at.isoformat(timespec="seconds"),
        "database": url.database,
        "generation": generation,
        "batch_reports": args.batch_reports,
        "batch_size": args.batch_size,
        "rounds_per_s": [round(r, 1) for r in rates],
        "median_per_s": round(median, 1),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_at_end,
    }, indent=2, default=str))
    _log(f"results: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = database.parse_url(args.database_url or get_settings().database_url)
    started_at = dt.datetime.now(dt.UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    _log(f"load average (1/5/15 min) at start: {load_at_start}")
    earlier = json.loads(args.compare_results.read_text()) if args.compare_results else None
    ingest_threads = [int(part) for part in args.ingest_threads.split(",") if part.strip()]
    engine, generation = _prepare(args, url)
    if args.batch_only:
        return _batch_only(args, url, engine, generation, started_at, load_at_start)
    results: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "database": url.database,
        "runs": args.runs,
        "machine": machine_info(engine, args.note),
        "generation": generation,
    }
    results["machine"]["load_average_at_start"] = load_at_start
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
            url, engine, ctx, runs=args.runs, flush_factor=args.flush_factor,
            raw=not args.skip_raw, log=_log,
        )
        if earlier is not None:
            results["data_time_comparison"] = compare_data_time(results, earlier)
            c = results["data_time_comparison"]
            _log(f"  data time N={c['large_n']:,} vs N={c['small_n']:,}: {c['large_ms']:.1f} ms"
                 f" vs {c['small_ms']:.1f} ms = {c['ratio']}x (target <= {DATA_RATIO_LIMIT}x)")
        if not args.skip_browser:
            _log(f"browser ({args.browser_runs} runs per page) ...")
            results["browser"] = browser.run_browser(
                url.render_as_string(hide_password=False),
                runs=args.browser_runs,
                results_dir=args.results_dir,
                label=f"-{args.reports}",
                chromium=args.chromium,
                log=_log,
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
                worker_counts=ingest_threads,
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
    _log(f"load average (1/5/15 min) at start: {load_at_start}, at end: "
         f"{results['machine']['load_average_at_end']}")
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

