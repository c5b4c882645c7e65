"""The house structure, checked: where dialect code lives, which modules may import what."""

from __future__ import annotations

import ast
import re
import time
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reportlib.db import make_engine
from reportlib.dialect import allow_long_statements
from reportlib.errors import DatabaseUnavailableError
from reportlib.health import translate_db_errors

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("reportlib", "dashboard")
# Ways code tells SQLite and PostgreSQL apart. Only reportlib/dialect.py may use them.
DIALECT_BRANCHES = re.compile(
    r"dialect\.name|get_backend_name\(|with_for_update\(|@compiles\(|sqlalchemy\.dialects"
    r"|\bis_postgresql\b|set_progress_handler|PRAGMA "
)
DIALECT_ALLOWED = {
    Path("reportlib/dialect.py"),
    # The settings check that a database URL names one of the two supported backends.
    Path("reportlib/config.py"),
}


def _sources() -> list[Path]:
    return sorted(
        path.relative_to(ROOT) for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    )


def test_only_the_dialect_module_branches_on_the_database() -> None:
    offenders = [
        f"{path}:{number}: {line.strip()}"
        for path in _sources()
        if path not in DIALECT_ALLOWED
        for number, line in enumerate((ROOT / path).read_text().splitlines(), start=1)
        if DIALECT_BRANCHES.search(line) and not line.lstrip().startswith(("#", "from ", "import "))
    ]
    assert offenders == []


def test_the_grep_sees_a_dialect_branch() -> None:
    # The pattern above must keep matching the spellings it is meant to catch.
    for line in (
        "if engine.dialect.name == 'sqlite':",
        "stmt.with_for_update(of=X)",
        "@compiles(thing, 'postgresql')",
        "if is_postgresql(db):",
    ):
        assert DIALECT_BRANCHES.search(line)


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in _sources():
        tree = ast.parse((ROOT / path).read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith(PACKAGES)
            ):
                offenders += [
                    f"{path}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and alias.name != "__version__"
                ]
    assert offenders == []


def test_sqlite_statements_stop_at_the_time_limit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'limit.db'}", statement_timeout_ms=200)
    endless = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    )
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="did not answer in time"):
        with translate_db_errors(), engine.connect() as connection:
            connection.execute(text(endless)).scalar()
    assert time.monotonic() - started < 5
    # The connection is usable afterwards, and a commit is not cut short by the clock of
    # the statement before it.
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        time.sleep(0.3)
        connection.commit()
        assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()


def test_every_reportlib_package_is_installed() -> None:
    # setuptools installs only the packages pyproject.toml lists: a package missing there
    # imports from a checkout but not from an installed copy, where the pipeline runs.
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "reportlib").rglob("__init__.py")
    }
    assert found <= listed


def test_a_longer_sqlite_limit_lasts_one_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'long.db'}", statement_timeout_ms=200)
    slow = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) SELECT count(*) FROM n"
    with Session(engine) as session:
        allow_long_statements(session, timeout_ms=60_000)
        assert session.execute(text(slow)).scalar_one() == 3_000_000
        session.commit()
        with pytest.raises(OperationalError, match="interrupted"):
            session.execute(text(slow)).scalar_one()
    engine.dispose()
