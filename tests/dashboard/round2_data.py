"""Hostile reports for the round-2 security tests: formula cells, bidi controls, sources
that carry names, a field name that is a URL, and a reviewer whose name starts with "-".

Added to a private copy of the seeded database, so no other test sees them.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from sqlalchemy.orm import Session

from reportlib import create_processing_report, ensure_incoming_email
from reportlib.db import make_engine
from reportlib.review import claim_report, decide_report

DECIDED_ID = 1_960_000_001
OPEN_ID = 1_960_000_002
RLO = "\u202e"
FORMULA_FIELD = "=cmd|' /C calc'!A0"
URL_FIELD = "http://127.0.0.1:9/field"
FORMULA_INTENT = "=1+1"
OPEN_INTENT = f"+cmd{RLO}exe.gpj"
OPEN_REASON = f"@SUM(1+1){RLO}txt"
REVIEWER = "-Anna Keller"
BIDI_SUBJECT = f"Rechnung {RLO}gpj.exe"
NAMED_SOURCE = "Mahnung_Erika_Mustermann.pdf"
IBAN_SOURCE = "Erika Mustermann, IBAN DE89 3704 0044 0532 0130 00"


def private_copy(source_url: str, folder: Path) -> str:
    """A consistent copy of a seeded SQLite database, with the hostile reports added."""
    target = folder / "round2.db"
    with (
        sqlite3.connect(source_url.removeprefix("sqlite:///")) as src,
        sqlite3.connect(target) as dst,
    ):
        src.backup(dst)
    url = f"sqlite:///{target}"
    add_hostile_reports(url)
    return url


def add_hostile_reports(url: str) -> None:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    try:
        with Session(engine) as session:
            ensure_incoming_email(
                session,
                DECIDED_ID,
                subject="Mahnung",
                sender="a@example.test",
                received_at=now - dt.timedelta(hours=5),
            )
            decided = create_processing_report(
                session,
                DECIDED_ID,
                {
                    "client_name": "Erika Mustermann",
                    FORMULA_FIELD: "-5+3",
                    URL_FIELD: "x",
                    "extraction_metadata": {
                        "client_name": {"confidence": 0.4, "source": IBAN_SOURCE},
                        FORMULA_FIELD: {"confidence": 0.5, "source": NAMED_SOURCE},
                    },
                },
                {"agent_1_intent": {"intent": FORMULA_INTENT, "confidence": 0.9}},
                0.35,
                "low",
                True,
                "low overall confidence",
                1500,
            )
            ensure_incoming_email(
                session,
                OPEN_ID,
                subject=BIDI_SUBJECT,
                sender=f"b{RLO}@example.test",
                received_at=now - dt.timedelta(hours=4),
            )
            create_processing_report(
                session,
                OPEN_ID,
                {
                    "client_name": f"Erika{RLO}Mustermann",
                    FORMULA_FIELD: "=2+2",
                    "extraction_metadata": {
                        "client_name": {"confidence": 0.3, "source": NAMED_SOURCE},
                        FORMULA_FIELD: {"confidence": 0.6, "source": IBAN_SOURCE},
                    },
                },
                {"agent_1_intent": {"intent": OPEN_INTENT, "confidence": 0.8}},
                0.3,
                "low",
                True,
                OPEN_REASON,
                1700,
            )
            claim_report(session, report_id=decided.id, reviewer=REVIEWER)
            decide_report(
                session,
                report_id=decided.id,
                reviewer=REVIEWER,
                outcome="approved",
                verdicts={
                    "client_name": "correct",
                    FORMULA_FIELD: "correct",
                    URL_FIELD: "correct",
                    "creditor_name": "absent",
                    "debt_amount": "absent",
                    "reference_numbers": "absent",
                },
            )
            session.commit()
    finally:
        engine.dispose()
