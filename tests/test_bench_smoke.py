"""A small run of the benchmark harness end to end, on a throwaway PostgreSQL database.

Benchmarks are not timed tests: nothing here asserts a duration. It proves the one
command runs, prints its figures, writes its results, generates data whose rollups agree
with the raw rows and whose distributions follow the demo's, and refuses databases it does
not own.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench import dashboard_queries, database, generate, partitioning
from bench import run as bench_run
from reportlib import demo, migrate, queries, rollups
from reportlib.config import normalize_database_url

N = 2000

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def smoke(pg_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = pg_databases.create("reportlib_bench")
    database.mark_bench_database(normalize_database_url(url))
    results_dir = tmp_path_factory.mktemp("bench_results")
    benchmarks = results_dir / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nHand-written text stays.\n")
    argv = [
        "--database-url", url, "--reports", str(N), "--runs", "1", "--flush-factor", "1",
        "--compare-reports", "500", "--workers", "8", "--ingest-reports", "80",
        "--ingest-rounds", "1", "--ingest-threads", "1,4", "--batch-reports", "400",
        "--batch-size", "200", "--results-dir", str(results_dir),
        "--write-benchmarks", str(benchmarks), "--note", "smoke",
        # The browser timings have their own smoke below (marked like other browser tests).
        "--skip-browser",
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert bench_run.main(argv) == 0
    (result_file,) = results_dir.glob("bench-*.json")
    engine = create_engine(normalize_database_url(url))
    yield {
        "url": url,
        "engine": engine,
        "printed": printed.getvalue(),
        "results": json.loads(result_file.read_text()),
        "benchmarks": benchmarks.read_text(),
    }
    engine.dispose()


def test_harness_prints_every_target_with_a_figure(smoke: dict[str, Any]) -> None:
    printed = smoke["printed"]
    targets = smoke["results"]["targets"]
    assert [row["workload"] for row in targets] == [
        "Overview data, cold",
        "confidence data, cold",
        "missing_fields data, cold",
        "review data, cold",
        "quality data, cold",
        "overview data, warm",
        "confidence data, warm",
        "missing_fields data, warm",
        "review data, warm",
        "quality data, warm",
        "Queue first page, cold",
        "Queue count, cold",
        "Next item (claim_next_report, rolled back), cold",
        "Drill-down, cold",
        "Data time, 5M vs 1M",
        "Writer vs plain-table upsert, 1 threads",
        "Writer vs plain-table upsert, 4 threads",
        "Writer vs plain-table upsert, 8 threads",
        "Batch backfill (create_processing_reports)",
        f"Dashboard RSS, N={N:,}",
        f"Dashboard RSS, N={N:,} vs N=500",
    ]
    for row in targets:
        assert row["workload"] in printed
        if row["workload"] == "Data time, 5M vs 1M":
            # Needs --compare-results: shown, not measured.
            assert row["measured"] is None and row["met"] is None
            continue
        assert row["measured"] > 0, row
        assert isinstance(row["met"], bool)
    # Data targets carry the raw-query baseline of the same run.
    assert all(row["baseline"] > 0 for row in targets[:14] if not row["workload"].startswith("Next"))
    assert "load average (1/5/15 min) at start:" in printed
    assert "results: " in printed


def test_results_cover_pages_queries_naive_and_ingest(smoke: dict[str, Any]) -> None:
    results = smoke["results"]
    pages = results["dashboard"]["pages"]
    assert set(pages) == {"overview", "confidence", "missing_fields", "review", "quality"}
    interactions = {
        "review_first_page",
        "review_first_page_lowest_confidence",
        "review_count",
        "drill_down",
        "overview_by_intent",
    }
    assert set(results["dashboard"]["interactions"]) == interactions | {"next_item"}
    # The raw-query baseline, timed in the same run, on every page and interaction but
    # "Next item" (no raw counterpart), with its ratio.
    assert set(results["dashboard"]["raw_pages"]) == set(pages)
    assert set(results["dashboard"]["raw_interactions"]) == interactions
    assert set(results["dashboard"]["raw_vs_rollups"]) == set(pages) | interactions
    assert results["dashboard"]["rollup_refresh"]["dirty_days_left"] == 0
    assert list(pages["overview"]["cold"]["queries_median_ms"]) == [
        "has_reports", "list_intents", "overview_kpis", "daily_trends"
    ]
    for page in [*pages.values(), *results["dashboard"]["raw_pages"].values()]:
        for mode in ("cold", "warm"):
            assert len(page[mode]["runs_ms"]) == 1
            assert page[mode]["median_ms"] == pytest.approx(
                sum(page[mode]["queries_median_ms"].values()), rel=1e-3, abs=0.05
            )
    assert results["window_reports"] > 0
    naive = results["naive"]
    assert naive["rows"] == results["window_reports"]
    assert naive["kpis"]["reports"] == results["window_reports"]
    ingest = results["ingest"]
    assert set(ingest["median_per_s"]) == {"service", "plain", "handwritten", "driver"}
    assert all(rate > 0 for rate in ingest["median_per_s"].values())
    assert ingest["service_vs_plain"] > 0 and ingest["handwritten_vs_driver"] > 0
    assert set(ingest["scaling"]) == {"1", "4", "8"}
    assert all(s["service"] > 0 and s["plain"] > 0 for s in ingest["scaling"].values())
    assert (ingest["batch_reports"], ingest["batch_size"]) == (400, 200)
    assert ingest["batch_per_s"] > 0
    assert results["memory"]["at_n"]["peak_mb"] > 0
    assert results["memory"]["at_compare_n"]["peak_mb"] > 0
    assert results["machine"]["note"] == "smoke"
    rebuild = results["generation"]["rollup_rebuild"]
    assert rebuild["days"] > 0 and rebuild["seconds"] > 0
    assert rebuild["rows"]["rollup_reports"] > 0


def test_benchmarks_file_gets_the_table_and_keeps_its_text(smoke: dict[str, Any]) -> None:
    text_ = smoke["benchmarks"]
    assert text_.startswith("# Benchmarks\n\nHand-written text stays.\n")
    assert text_.count(bench_run.TABLE_START) == 1 and text_.count(bench_run.TABLE_END) == 1
    assert "| Overview data, cold | ≤ 100 ms |" in text_
    assert "| Workload | Target | Measured | Baseline (same run) | Met |" in text_
    assert "(raw queries), raw / rollups" in text_
    assert "| pandas: read_sql of" in text_
    assert "| reportlib.create_processing_report (Session per report) |" in text_
    assert "| hand-written upsert into bench_plain_reports" in text_
    assert "| reportlib.create_processing_reports, batches of 200 (400 reports" in text_
    assert "Full rollup rebuild (right after generation" in text_
    assert "service_patch" not in text_
    assert "rollup_prototype" not in text_


def test_data_time_comparison_against_an_earlier_run(
    smoke: dict[str, Any], tmp_path: Any
) -> None:
    earlier = json.loads(json.dumps(smoke["results"]))
    earlier["generation"]["reports"] = N // 2
    for page in earlier["dashboard"]["pages"].values():
        for mode in ("cold", "warm"):
            page[mode]["median_ms"] /= 2
    results = dict(smoke["results"])
    results["data_time_comparison"] = bench_run.compare_data_time(results, earlier)
    assert results["data_time_comparison"]["ratio"] == pytest.approx(2.0, abs=0.02)
    rows = [r for r in bench_run.evaluate(results) if f"N={N:,} vs N={N // 2:,}" in r["workload"]]
    assert [r["workload"] for r in rows] == [
        f"{page} data {mode}, N={N:,} vs N={N // 2:,}"
        for page in bench_run.PAGE_NAMES
        for mode in ("cold", "warm")
    ]
    assert all(r["measured"] == pytest.approx(2.0, abs=0.02) and r["met"] is False for r in rows)
    assert "Data time at N=" in bench_run.markdown({**results,
                                                    "targets": bench_run.evaluate(results)})


def reports_and_emails(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        reports, emails = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM processing_reports), "
                "(SELECT count(*) FROM incoming_emails)"
            )
        ).one()
    return int(reports), int(emails)


def test_generated_data_and_cleanup(smoke: dict[str, Any]) -> None:
    engine: Engine = smoke["engine"]
    generation = smoke["results"]["generation"]
    reports, emails = reports_and_emails(engine)
    with engine.connect() as connection:
        orphan_decisions = connection.execute(
            text(
                "SELECT count(*) FROM review_decisions d JOIN processing_reports r "
                "ON r.id = d.report_id WHERE NOT r.needs_review OR d.report_created_at "
                "<> r.created_at OR d.decided_at < r.created_at"
            )
        ).scalar_one()
    # Ingest deleted what it wrote: the data set is exactly what was generated.
    assert (reports, emails) == (N, N)
    # Every report has each key field, extracted or missing.
    assert generation["field_rows"] == 4 * N
    assert orphan_decisions == 0
    # review_closed_at was backfilled for every decided report, and the rollups agree
    # with the raw rows on every clean day; the plain comparison table is gone.
    with engine.connect() as connection:
        closed_wrong = connection.execute(
            text(
                "SELECT count(*) FROM processing_reports r WHERE r.review_closed_at IS "
                "DISTINCT FROM (SELECT min(d.decided_at) FROM review_decisions d WHERE "
                "d.report_id = r.id AND d.report_created_at >= r.created_at)"
            )
        ).scalar_one()
        plain = connection.execute(text("SELECT to_regclass('bench_plain_reports')")).scalar()
    assert closed_wrong == 0 and plain is None
    assert generation["review_closed"] > 0
    with Session(engine) as session:
        assert rollups.verify_rollups(session) == []


def test_generated_distributions_follow_the_demo(smoke: dict[str, Any]) -> None:
    """Shares agree with reportlib.demo within sampling error (N=2000: sd about 0.01)."""
    now = dt.datetime.fromisoformat(smoke["results"]["generation"]["now"])
    reports = [e.report for e in demo.generate_demo_emails(count=N, seed=3, now=now)]

    def shares(values: list[Any]) -> dict[Any, float]:
        counts = collections.Counter(values)
        return {key: counts[key] / len(values) for key in counts}

    with smoke["engine"].connect() as connection:
        rows = connection.execute(
            text(
                "SELECT confidence_route, needs_review, intent, "
                "jsonb_array_length(missing_fields) FROM processing_reports"
            )
        ).all()
    expected = {
        "route": shares([r.confidence_route for r in reports]),
        "flagged": shares([r.needs_review for r in reports]),
        "intent": shares([r.agent_checkpoints["agent_1_intent"]["intent"] for r in reports]),
        "missing": shares([
            sum(r.extracted_data[f] is None for f in generate.KEY_FIELDS) for r in reports
        ]),
    }
    actual = {
        "route": shares([row[0] for row in rows]),
        "flagged": shares([row[1] for row in rows]),
        "intent": shares([row[2] for row in rows]),
        "missing": shares([row[3] for row in rows]),
    }
    for name, dist in expected.items():
        for key in set(dist) | set(actual[name]):
            assert actual[name].get(key, 0.0) == pytest.approx(dist.get(key, 0.0), abs=0.05), (
                name, key
            )


def test_day_counts_sum_to_n_and_put_the_share_in_the_window() -> None:
    today = dt.date(2026, 11, 29)
    plan = generate.day_counts(1_000_000, days=365, window_share=1 / 3, today=today)
    assert len(plan) == 365 and plan[-1][0] == today and plan[0][0] == today - dt.timedelta(364)
    assert sum(count for _, count in plan) == 1_000_000
    assert sum(count for _, count in plan[-30:]) == pytest.approx(333_333, abs=50)
    flat = generate.day_counts(1000, days=90, window_share=None, today=today)
    assert sum(count for _, count in flat) == 1000


def test_refuses_a_database_it_did_not_create(pg_databases: Any) -> None:
    url = normalize_database_url(pg_databases.create("reportlib_bench_foreign"))
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
        with pytest.raises(database.NotABenchDatabaseError):
            database.require_bench_database(engine)
        with pytest.raises(database.NotABenchDatabaseError):
            database.drop_database(url)
    finally:
        engine.dispose()
    assert database.database_exists(make_url(str(url)))


def test_dashboard_cache_probe_hits_the_cache(
    smoke: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import dashboard_cache
    from reportlib.config import get_settings

    monkeypatch.setenv("DATABASE_URL", smoke["url"])
    monkeypatch.delenv("DASHBOARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    out = dashboard_cache.measure(runs=2)
    expected_queries = {
        page: len([name for name, _ in steps if name != "check_available"])
        for page, steps in dashboard_cache._pages().items()
    }
    assert set(out["pages"]) == {"overview", "confidence", "missing_fields", "review"}
    for page, figures in out["pages"].items():
        # The sidebar's two queries are already cached after the first page.
        first_page = page == "overview"
        assert figures["sessions_first_load"] == expected_queries[page] - (0 if first_page else 2)
        # Only the Overview's KPIs are keyed by the minute too: across a minute boundary
        # they may be recomputed once.
        minute_miss = page == "overview" and figures["minute_changed"]
        assert figures["sessions_cached_loads"] in ({0, 1} if minute_miss else {0}), page
        assert len(figures["cached_runs_ms"]) == 2
        assert list(figures["cached_steps_median_ms"])[0] == "check_available"


@pytest.mark.browser
def test_browser_timings_against_hello_world(
    smoke: dict[str, Any], chromium_path: str, tmp_path: Any
) -> None:
    from bench import browser

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out = browser.run_browser(smoke["url"], runs=1, results_dir=tmp_path,
                                  chromium=chromium_path)
    assert out["hello_ms"] > 0
    assert set(out["pages"]) == {"overview", "confidence", "missing_fields", "review", "quality"}
    for name, figures in out["pages"].items():
        assert figures["new_filter_ms"] > 0 and figures["repeated_ms"] > 0
        assert len(figures["new_filter_runs_ms"]) == len(figures["repeated_runs_ms"]) == 1
        assert (tmp_path / f"browser-{name}.png").stat().st_size > 0
        assert name in printed.getvalue()
    assert out["server_tracebacks"] == 0
    assert out["dashboard_server_memory"]["peak_mb"] > 0
    rows = bench_run.evaluate({**smoke["results"], "browser": out})
    workloads = [row["workload"] for row in rows]
    assert f"Browser, new filter, overview, N={N:,}" in workloads
    assert f"Browser, repeated view, review, N={N:,}" in workloads
    assert f"Dashboard RSS, streamlit server after the browser run, N={N:,}" in workloads
    browser_rows = [row for row in rows if row["workload"].startswith("Browser")]
    assert len(browser_rows) == 2 * len(browser.PAGES)
    assert all(row["baseline"] == out["hello_ms"] for row in browser_rows)


def test_raw_baseline_computes_the_figures_of_the_rollups(smoke: dict[str, Any]) -> None:
    """The baseline reads each report's fields from its JSON; the rollups read them from
    the same JSON when a day is rebuilt. The two must give the same pages."""
    ctx = dashboard_queries.default_context(smoke["engine"])
    steps = ("confidence", "missing_fields", "review")
    with Session(smoke["engine"]) as session:
        for page in steps:
            rollup_steps = dict(dashboard_queries.PAGES[page])
            for name, raw_step in dashboard_queries.RAW_PAGES[page]:
                expected, actual = rollup_steps[name](session, ctx), raw_step(session, ctx)
                if isinstance(expected, pd.DataFrame):
                    pd.testing.assert_frame_equal(
                        actual.reset_index(drop=True), expected.reset_index(drop=True),
                        check_dtype=False, obj=name,
                    )
                elif dataclasses.is_dataclass(expected):
                    # Each module has its own result classes: compare the values.
                    assert dataclasses.astuple(actual) == dataclasses.astuple(expected), name
                else:
                    assert actual == expected, name


def test_floor_refuses_an_unknown_layer() -> None:
    from bench import browser_floor

    with pytest.raises(ValueError, match="charts"):
        browser_floor.check_variants(["nav+charts"])
    with pytest.raises(SystemExit):
        browser_floor.main(["--variant", "nav+charts"])


@pytest.mark.browser
def test_floor_times_each_layer_against_hello_world(chromium_path: str) -> None:
    from bench import browser_floor

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out = browser_floor.run_floor(
            variants=["nav+filters", "nav+filters+metrics+svg"], runs=1, chromium=chromium_path
        )
    assert list(out["variants"]) == ["hello", "nav+filters", "nav+filters+metrics+svg"]
    for figures in out["variants"].values():
        assert figures["wall_ms"] > 0 and figures["main_thread_ms"] > 0
        assert len(figures["wall_runs_ms"]) == 1
    # Each page drew its layers and nothing else.
    assert out["variants"]["nav+filters"]["elements"] == {
        "metrics": 0, "html": 0, "plotly": 0, "dataframe": 0, "images": 0,
        "vega": 0, "tables": 0,
        "date_inputs": 1, "multiselects": 2,
    }
    full = out["variants"]["nav+filters+metrics+svg"]["elements"]
    assert (full["metrics"], full["images"], full["plotly"]) == (8, 3, 0)
    assert out["variants"]["hello"]["elements"]["date_inputs"] == 0
    table = browser_floor.format_table(out)
    assert "nav+filters+metrics+svg" in table and "hello" in table


def test_partitioning_harness_compares_both_layouts_on_the_same_data(
    smoke: dict[str, Any], tmp_path: Any
) -> None:
    engine: Engine = smoke["engine"]
    printed = io.StringIO()
    argv = [
        "--database-url", smoke["url"], "--runs", "1", "--threads", "1", "2",
        "--reports", "40", "--rounds", "1", "--results-dir", str(tmp_path), "--keep",
    ]  # fmt: skip
    with contextlib.redirect_stdout(printed):
        assert partitioning.main(argv) == 0
    try:
        (result_file,) = tmp_path.glob("partitioning-*.json")
        result = json.loads(result_file.read_text())
        assert set(result["pages"]) == set(dashboard_queries.PAGES)
        for row in result["pages"].values():
            assert set(row) == {
                f"{layout}_{mode}_ms"
                for layout in ("unpartitioned", "partitioned")
                for mode in ("cold", "warm")
            }
        assert set(result["writes"]) == {"1", "2"}
        assert all(v > 0 for rates in result["writes"].values() for v in rates.values())
        assert result["drop_month"]["reports"] > 0
        assert "DETACH + DROP" in printed.getvalue()
        # Both layouts hold the same reports, so the pages read the same figures.
        ctx = dashboard_queries.default_context(engine)
        flt = ctx.flt
        with Session(engine) as session:
            today = queries.overview_kpis(session, flt=flt, now=ctx.now)
            queue = queries.review_queue_page(session, flt=flt, sort="lowest_confidence")
        with (
            partitioning.partitioned_engine(smoke["url"]) as partitioned,
            Session(partitioned) as session,
        ):
            resolved = "SELECT relkind FROM pg_class WHERE oid = 'processing_reports'::regclass"
            assert session.execute(text(resolved)).scalar() == "p"  # the partitioned copy
            assert session.execute(text("SELECT count(*) FROM processing_reports")).scalar() == N
            assert queries.overview_kpis(session, flt=flt, now=ctx.now) == today
            pd.testing.assert_frame_equal(
                queries.review_queue_page(session, flt=flt, sort="lowest_confidence"), queue
            )
            assert len(queue) > 0
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS partitioned CASCADE"))
    # What the harness wrote is gone, and the month it dropped was rolled back.
    assert reports_and_emails(engine) == (N, N)
    with Session(engine) as session:
        assert rollups.verify_rollups(session) == []
