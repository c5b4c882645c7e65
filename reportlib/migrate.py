"""Apply reportlib's migrations, standalone or inside a host application's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

VERSION_TABLE = "reportlib_alembic_version"
REPORTLIB_TABLES = frozenset(
    {
        "incoming_emails",
        "processing_reports",
        "review_claims",
        "review_decisions",
        "review_field_verdicts",
        "audit_events",
        "alert_events",
    }
)


def script_location() -> str:
    """Where the migration scripts are: ``reportlib/migrations``, a link to ``alembic/``."""
    return str(Path(__file__).resolve().parent / "migrations")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Limit autogenerate to reportlib's tables; a host's own tables are not ours to diff."""
    if type_ == "table":
        return name in REPORTLIB_TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name in REPORTLIB_TABLES


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` ("base" removes everything)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
