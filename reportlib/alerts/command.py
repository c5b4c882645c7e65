"""``python -m reportlib alerts check``: evaluate every enabled rule once (for cron or a
Kubernetes CronJob). Exit 0: nothing firing; 1: some rule is firing; 2: the rules or
settings are malformed (raised as :class:`~reportlib.config.ConfigurationError`)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TextIO

from reportlib.alerts.check import check_alerts, send_alert_event
from reportlib.alerts.rules import load_rules
from reportlib.config import get_settings
from reportlib.db import make_engine, session_scope
from reportlib.monitoring import init_sentry, shutdown_sentry


def run_check(*, dry_run: bool, now: dt.datetime | None = None, out: TextIO | None = None) -> int:
    """Evaluate the rules at ``now`` (the current time by default), record and send each
    state change (``dry_run``: print what would change, record and send nothing), print one
    line per rule; return the exit code."""
    out = out or sys.stdout
    settings = get_settings()
    rules = load_rules(settings.alert_rules_path).enabled  # fails fast, before any I/O
    now = now or dt.datetime.now(dt.UTC)
    if not rules:
        print("no alert rules enabled (see ALERT_RULES_PATH)", file=out)
        return 0
    sending = not dry_run and init_sentry(settings)
    engine = make_engine()
    try:
        with session_scope(engine) as db:
            evaluations = check_alerts(
                db, rules, now=now, base_url=settings.dashboard_base_url, dry_run=dry_run
            )
        for evaluation in evaluations:
            prefix = ""
            if evaluation.change is not None:
                prefix = f"{'would be ' if dry_run else ''}{evaluation.change}: "
                if sending:
                    send_alert_event(evaluation)
            print(f"{prefix}{evaluation.summary()}  {evaluation.link}", file=out)
    finally:
        engine.dispose()
        if sending:
            shutdown_sentry()  # flushes what was sent
    firing = [e.rule.name for e in evaluations if e.firing]
    print(f"{len(firing)} of {len(evaluations)} rules firing", file=out)
    return 1 if firing else 0
