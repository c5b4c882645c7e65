"""AppTest: an erased email's drill-down says "values erased on DATE" instead of values,
and the Audit log page lists purges and erasures with their counts."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from reportlib import lifecycle, migrate, queries, review
from reportlib.db import make_engine, make_sessionmaker
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from tests.dashboard.helpers import new_app

ERASED = 3


def _seed(path: Path) -> tuple[str, int]:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as db:
        seed_demo(db, count=40, seed=3, days=50, now=now)
        seed_review_history(db, rng=random.Random(3), now=now)
        db.commit()
        lifecycle.erase_email(db, email_id=ERASED, actor="dpo@example.com")
        open_item = review.list_review_queue(db, limit=1)[0]
        lifecycle.erase_email(db, email_id=open_item.email_id, actor="dpo@example.com")
        db.commit()
    lifecycle.purge_expired(make_sessionmaker(engine), actor="retention-job", retention_days=20)
    engine.dispose()
    return url, open_item.email_id


def test_erased_drilldown_and_audit_rows(
    tmp_path: Path, use_database: Callable[[str], None]
) -> None:
    url, erased_open = _seed(tmp_path / "erased.db")
    use_database(url)
    engine = make_engine(url)
    with Session(engine) as db:
        detail = queries.get_report_detail(db, email_id=ERASED)
    engine.dispose()
    assert detail is not None and detail.values_erased_at is not None
    erased = f"values erased on {detail.values_erased_at:%Y-%m-%d}"

    at = new_app()
    at.query_params["email_id"] = str(ERASED)
    at.run()
    at.switch_page("views/review.py")
    at.query_params["email_id"] = str(ERASED)
    at.run()
    assert [e.value for e in at.exception] == [] and [e.value for e in at.error] == []
    assert [s.value for s in at.main.subheader] == [f"Email {ERASED}"]
    assert any(erased in str(info.value) for info in at.info)
    assert [c.value for c in at.code] == []  # no value is shown at all
    texts = [t.value for t in at.text]
    # Subject, sender, and each field's value and source.
    assert texts.count(erased) == 2 + 2 * len(detail.fields)

    # An open report whose values were erased: nothing to check, so no claim is offered.
    at.query_params["email_id"] = str(erased_open)
    at.run()
    assert [e.value for e in at.exception] == [] and [e.value for e in at.error] == []
    assert [s.value for s in at.main.subheader] == [f"Email {erased_open}"]
    assert any("cannot be claimed or decided" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "review_claim"]

    at.switch_page("views/audit.py").run()
    assert [e.value for e in at.exception] == [] and [e.value for e in at.error] == []
    table = at.dataframe[0].value
    rows = table[table["action"].isin(["values_erased", "values_purged"])]
    assert sorted(rows["action"]) == ["values_erased", "values_erased", "values_purged"]
    assert all("reports_count" in str(details) for details in rows["details"])
