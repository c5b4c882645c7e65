"""``python -m reportlib``: migrate, seed demo data, show one report, maintain the rollups,
purge values past retention and erase one email's or one sender's values."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from reportlib import jsoncodec
from reportlib.config import ConfigurationError, get_settings
from reportlib.db import make_engine, make_sessionmaker, session_scope
from reportlib.errors import ReportlibError
from reportlib.health import READ_ONLY_MESSAGE, is_read_only_database
from reportlib.lifecycle import DEFAULT_BATCH_SIZE

log = logging.getLogger("reportlib.cli")
INT32_MAX = 2_147_483_647


def _email_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("EMAIL_ID must be a whole number") from None
    if not 1 <= value <= INT32_MAX:
        raise argparse.ArgumentTypeError(f"EMAIL_ID must be between 1 and {INT32_MAX}")
    return value


def _bounded_int(low: int, high: int) -> Any:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError("must be a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reportlib",
        description="Processing-report store. The database is taken from DATABASE_URL.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="upgrade the database at DATABASE_URL to the latest schema")

    seed = commands.add_parser(
        "seed-demo", help="write realistic synthetic reports over the last days (for demos)"
    )
    seed.add_argument("--count", type=_bounded_int(1, 5_000_000), default=2000, help="reports")
    seed.add_argument("--seed", type=_bounded_int(0, 2**31), default=42, help="random seed")
    seed.add_argument("--days", type=_bounded_int(1, 3650), default=90, help="spread over days")
    seed.add_argument(
        "--if-empty", action="store_true", help="do nothing when reports already exist"
    )
    seed.add_argument("--no-reviews", action="store_true", help="skip the synthetic review history")

    show = commands.add_parser("show", help="print one report as JSON")
    show.add_argument("email_id", type=_email_id, metavar="EMAIL_ID")

    rollups = commands.add_parser("rollups", help="maintain the dashboard's daily rollups")
    actions = rollups.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = actions.add_parser(
        "refresh", help="fold days changed since the last refresh into the rollups (for cron)"
    )
    refresh.add_argument(
        "--chunk-days", type=_bounded_int(1, 3660), default=7, help="days per transaction"
    )
    actions.add_parser(
        "verify", help="compare the rollups with the raw rows; exit 1 on any difference"
    )
    rebuild = actions.add_parser("rebuild", help="rebuild every day's rollups from the raw rows")
    rebuild.add_argument(
        "--chunk-days", type=_bounded_int(1, 3660), default=14, help="days per transaction"
    )
    purge = commands.add_parser(
        "purge",
        help="remove values older than RETENTION_DAYS, in batches (prints counts only)",
    )
    purge.add_argument("--actor", required=True, help="who runs it, for the audit trail")
    purge.add_argument("--dry-run", action="store_true", help="count what would go; write nothing")
    purge.add_argument(
        "--batch-size",
        type=_bounded_int(1, 100_000),
        default=DEFAULT_BATCH_SIZE,
        help="rows per transaction",
    )

    erase = commands.add_parser(
        "erase",
        help="erase one email's or one sender's values at once (prints counts only)",
    )
    whose = erase.add_mutually_exclusive_group(required=True)
    whose.add_argument("--email-id", type=_email_id, metavar="N", help="the email's id")
    whose.add_argument("--sender", metavar="ADDRESS", help="every email from this address")
    erase.add_argument("--actor", required=True, help="who runs it, for the audit trail")
    erase.add_argument("--dry-run", action="store_true", help="count what would go; write nothing")
    alerts = commands.add_parser("alerts", help="alert rules (see ALERT_RULES_PATH)")
    alert_actions = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = alert_actions.add_parser(
        "check", help="evaluate every rule once; exit 0 ok, 1 firing, 2 configuration error"
    )
    check.add_argument(
        "--dry-run", action="store_true", help="print what would change; record and send nothing"
    )
    return parser


def _counts_text(counts: Any) -> str:
    return (
        f"{counts.reports} reports, {counts.emails} emails, "
        f"{counts.decisions} decision notes, {counts.verdicts} corrected values"
    )


def _purge(args: argparse.Namespace) -> int:
    import time

    from reportlib.lifecycle import RedactionCounts, purge_expired

    engine = make_engine()
    last = [0.0]

    def report(done: RedactionCounts, total: RedactionCounts) -> None:
        # At most one line a second: a purge at a million reports runs a thousand batches.
        if time.monotonic() - last[0] >= 1.0 or done == total:
            last[0] = time.monotonic()
            print(f"purged: {done.total}/{total.total} rows ({_counts_text(done)})", flush=True)

    try:
        counts = purge_expired(
            make_sessionmaker(engine),
            actor=args.actor,
            batch_size=args.batch_size,
            dry_run=args.dry_run,
            progress=report,
        )
        if args.dry_run:
            print(f"would purge: {_counts_text(counts)}")
            return 0
        # The changed hours are read raw until folded in; fold them now.
        _refresh_all(engine, chunk_days=14, label="rollups")
    finally:
        engine.dispose()
    print(f"purged: {_counts_text(counts)}")
    return 0


def _erase(args: argparse.Namespace) -> int:
    from reportlib.lifecycle import erase_email, erase_sender

    engine = make_engine()
    try:
        with session_scope(engine) as db:
            if args.email_id is not None:
                counts = erase_email(
                    db, email_id=args.email_id, actor=args.actor, dry_run=args.dry_run
                )
            else:
                counts = erase_sender(
                    db, sender=args.sender, actor=args.actor, dry_run=args.dry_run
                )
        if not args.dry_run:
            _refresh_all(engine, chunk_days=14, label="rollups")
    finally:
        engine.dispose()
    print(f"{'would erase' if args.dry_run else 'erased'}: {_counts_text(counts)}")
    return 0


def _progress(label: str) -> Any:
    def report(done: int, total: int) -> None:
        print(f"{label}: {done}/{total} days", flush=True)

    return report


def _refresh_all(engine: Any, *, chunk_days: int, label: str) -> int:
    from sqlalchemy.orm import Session

    from reportlib.rollups import dirty_days, refresh_with_retries

    with Session(engine) as db:
        total = len(dirty_days(db))
    done = 0
    report = _progress(label)
    report(done, total)
    while True:
        days = refresh_with_retries(lambda: Session(engine), max_days=chunk_days)
        if not days:
            return done
        done += len(days)
        report(min(done, total), max(done, total))


def _rollups(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from reportlib.rollups import rebuild_rollups, verify_rollups

    engine = make_engine()
    try:
        if args.action == "refresh":
            days = _refresh_all(engine, chunk_days=args.chunk_days, label="refreshed")
            print(f"rollups refreshed: {days} days")
            return 0
        if args.action == "rebuild":
            days = rebuild_rollups(
                lambda: Session(engine),
                chunk_days=args.chunk_days,
                progress=_progress("rebuilt"),
            )
            print(f"rollups rebuilt: {days} days")
            _vacuum_rollups(engine)
            return 0
        with Session(engine) as db:
            differences = verify_rollups(db)
        for difference in differences:
            # Days, table names and counts only: no extracted values are involved.
            print(
                f"differs: {difference.table} on {difference.day}: "
                f"stored {difference.stored} raw {difference.raw}",
                file=sys.stderr,
            )
        if differences:
            print(f"rollups differ from the raw rows ({len(differences)} groups)", file=sys.stderr)
            return 1
        print("rollups equal the raw rows")
        return 0
    finally:
        engine.dispose()


def _vacuum_rollups(engine: Any) -> None:
    """VACUUM (ANALYZE) the rebuilt rollup tables on PostgreSQL: fresh statistics, and
    pages marked all-visible, so reads are index-only at once rather than after
    autovacuum's next pass (or never, where it is off). SQLite: ANALYZE."""
    from sqlalchemy import text

    from reportlib.dialect import vacuum_analyze_command
    from reportlib.models import ROLLUP_TABLES, rollup_dirty_days

    command = vacuum_analyze_command(engine)
    tables = [*ROLLUP_TABLES, rollup_dirty_days]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for done, table in enumerate(tables, start=1):
            connection.execute(text(f"{command} {table.name}"))
            print(f"vacuumed: {done}/{len(tables)} rollup tables", flush=True)


def _migrate() -> int:
    from reportlib import migrate

    engine = make_engine()
    try:
        migrate.upgrade(engine)
        # Days the upgrade (or earlier writes) left dirty are read raw until folded in.
        _refresh_all(engine, chunk_days=14, label="rollups")
    finally:
        engine.dispose()
    print(f"database at {get_settings().sqlalchemy_url.render_as_string()} is up to date")
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    import random

    from reportlib.demo import DEMO_AUDIT_RATES, seed_demo
    from reportlib.models import ProcessingReport
    from reportlib.sampling import AuditRates

    engine = make_engine()
    try:
        with session_scope(engine) as db:
            if args.if_empty and db.scalar(select(func.count()).select_from(ProcessingReport)):
                print("reports already exist; nothing seeded")
                return 0
            # The demo shows audit samples: its own rates, unless sampling is configured.
            configured = AuditRates.from_settings(get_settings())
            ids = seed_demo(
                db,
                count=args.count,
                seed=args.seed,
                days=args.days,
                audit_rates=configured if configured.enabled else DEMO_AUDIT_RATES,
            )
            reviewed = 0
            if not args.no_reviews:
                from reportlib.demo_review import DEMO_SITTING_MINUTES, seed_review_history

                reviewed = seed_review_history(
                    db, rng=random.Random(args.seed), session_minutes=DEMO_SITTING_MINUTES
                )
            # The incident the example alert rules catch (alert_rules.example.toml).
            from reportlib.demo import plant_missing_amount_spike

            spike = plant_missing_amount_spike(db, seed=args.seed)
        _refresh_all(engine, chunk_days=30, label="rollups")
    finally:
        engine.dispose()
    print(f"seeded {len(ids)} reports and {reviewed} review decisions")
    print(f"planted {len(spike)} recent debt claims, most without debt_amount (a demo alert)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from reportlib.models import IncomingEmail
    from reportlib.service import get_processing_report

    engine = make_engine()
    try:
        with session_scope(engine) as db:
            report = get_processing_report(db, args.email_id)
            if report is None:
                print(f"no report for email {args.email_id}", file=sys.stderr)
                return 1
            email = db.get(IncomingEmail, report.email_id)
            document = {
                column.key: getattr(report, column.key) for column in report.__table__.columns
            }
            if email is not None:
                document["email"] = {
                    "subject": email.subject,
                    "sender": email.sender,
                    "received_at": email.received_at,
                }
    finally:
        engine.dispose()
    print(jsoncodec.dumps_pretty(document))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        get_settings()
        if args.command == "migrate":
            return _migrate()
        if args.command == "seed-demo":
            return _seed_demo(args)
        if args.command == "rollups":
            return _rollups(args)
        if args.command == "purge":
            return _purge(args)
        if args.command == "erase":
            return _erase(args)
        if args.command == "alerts":
            from reportlib.alerts.command import run_check

            return run_check(dry_run=args.dry_run)
        return _show(args)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except ReportlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        if is_read_only_database(exc):
            print(f"error: {READ_ONLY_MESSAGE}", file=sys.stderr)
            return 1
        # The driver's message can hold SQL parameters; name only the kind of failure.
        print(f"database error: {type(exc).__name__} (is DATABASE_URL reachable?)", file=sys.stderr)
        return 1
