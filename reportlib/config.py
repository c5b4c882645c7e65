"""One settings object for the library, the CLI and the dashboard.

Nothing else in the project reads the environment. Every setting has a default and a
description; ``tests/test_config.py`` fails when one is missing from the README.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
Role = Literal["ops", "reviewer", "admin"]


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; raised at start-up, naming the variable."""


class Settings(BaseSettings):
    """Runtime configuration, read from the environment (and an optional ``.env`` file)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: str = Field(
        "development", description="Deployment environment name (development, staging, production)."
    )
    database_url: str = Field(
        "sqlite:///reports.db",
        description="Where reports live. An SQLite file by default; postgresql://... in production.",
    )
    dashboard_database_url: str | None = Field(
        None,
        description="Optional read-only URL (a replica) for the dashboard; DATABASE_URL if unset.",
    )
    db_connect_timeout_s: int = Field(
        5, ge=1, le=120, description="Seconds to wait for a PostgreSQL connection."
    )
    db_statement_timeout_ms: int = Field(
        10_000, ge=100, description="Longest a PostgreSQL statement may run before it is cancelled."
    )
    key_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_KEY_FIELDS,
        description="Comma-separated fields every report is expected to carry.",
    )
    audit_sample_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the reports the pipeline did not flag that go to the review queue "
            "anyway as audit samples (0: none). Drawn from the email id: the same email is "
            "always in or out. See reportlib.sampling."
        ),
    )
    audit_sample_overrides: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Rates per route or intent, e.g. 'high=0.01,low=0.05,debt_claim=0.03': keys "
            "high, medium and low are routes, any other key an intent; an intent's rate "
            "wins over its route's, which wins over AUDIT_SAMPLE_RATE."
        ),
    )
    review_claim_minutes: int = Field(
        15, ge=1, le=24 * 60, description="Minutes a review claim lasts before the item returns."
    )
    sentry_dsn: str | None = Field(None, description="Sentry DSN; unset means nothing is sent.")
    sentry_environment: str | None = Field(
        None, description="Environment reported to Sentry; ENVIRONMENT if unset."
    )
    sentry_traces_sample_rate: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of transactions traced."
    )
    sentry_profiles_sample_rate: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of processes profiled while traces run."
    )
    dashboard_view: Literal["static", "interactive"] = Field(
        "static",
        description=(
            "How a new dashboard session draws charts and tables: 'static' (SVG and HTML, "
            "drawn at once) or 'interactive' (Plotly charts and data grids). Each user can "
            "switch in the sidebar."
        ),
    )
    dashboard_cache_ttl_s: int = Field(
        60, ge=0, le=3600, description="Seconds dashboard query results stay cached."
    )
    dashboard_replica_max_lag_s: int = Field(
        30,
        ge=0,
        le=86_400,
        description=(
            "Seconds the dashboard's read replica (DASHBOARD_DATABASE_URL) may lag behind "
            "the primary before every page says which instant its data is as of."
        ),
    )
    rollup_refresh_interval_s: int = Field(
        60,
        ge=0,
        le=86_400,
        description=(
            "Seconds between the dashboard's background folds of changed hours into the "
            "rollups on PostgreSQL (0: never; run 'python -m reportlib rollups refresh' "
            "from cron instead)."
        ),
    )
    dashboard_roles: Annotated[dict[str, Role], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Role per user email or domain when login is on, e.g. "
            "'lead@example.com=admin,example.com=reviewer'."
        ),
    )
    dashboard_default_role: Role | None = Field(
        "ops", description="Role of a logged-in user matched by no entry; empty denies access."
    )
    max_value_bytes: int = Field(
        65_536,
        ge=64,
        le=16 * 1024 * 1024,
        description=(
            "Largest extracted value, source or corrected value, in bytes of its JSON text."
        ),
    )
    max_list_items: int = Field(
        1_000, ge=1, le=1_000_000, description="Most items in one list or object inside a value."
    )
    max_report_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=256 * 1024 * 1024,
        description="Largest report's extracted fields, in bytes of their JSON text.",
    )

    retention_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description=(
            "Days extracted values, corrected values, notes, subjects and senders are kept; "
            "'python -m reportlib purge' removes older ones. Unset: kept forever."
        ),
    )

    alert_rules_path: str | None = Field(
        None,
        description=(
            "TOML file of alert rules for 'python -m reportlib alerts check'; unset: only "
            "the built-in rules, all off until a file enables them."
        ),
    )
    dashboard_base_url: str = Field(
        "http://127.0.0.1:8501",
        pattern=r"^https?://[^\s?#]+$",
        description="The dashboard's address, as alert links start (http:// or https://).",
    )

    @field_validator("retention_days", mode="before")
    @classmethod
    def _empty_retention_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("key_fields", mode="before")
    @classmethod
    def _split_key_fields(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("key_fields")
    @classmethod
    def _key_fields_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("KEY_FIELDS must name at least one field")
        return value

    @field_validator("audit_sample_overrides", mode="before")
    @classmethod
    def _parse_audit_overrides(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        rates: dict[str, float] = {}
        for entry in filter(None, (part.strip() for part in value.split(","))):
            key, sep, rate = entry.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError("every entry must be NAME=RATE, e.g. low=0.05")
            try:
                share = float(rate)
            except ValueError:
                raise ValueError(f"the rate of {key!r} is not a number") from None
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"the rate of {key!r} must be between 0 and 1")
            rates[key] = share
        return rates

    @field_validator("dashboard_roles", mode="before")
    @classmethod
    def _parse_roles(cls, value: object) -> object:
        if isinstance(value, str):
            mapping: dict[str, str] = {}
            for entry in filter(None, (part.strip() for part in value.split(","))):
                who, sep, role = entry.partition("=")
                if not sep:
                    # The entry is not repeated: it may be someone's email address.
                    raise ValueError("DASHBOARD_ROLES has an entry that is not WHO=ROLE")
                mapping[who.strip().lower()] = role.strip()
            return mapping
        return value

    @field_validator("dashboard_default_role", mode="before")
    @classmethod
    def _empty_role_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _urls_parse(self) -> Settings:
        for name in ("database_url", "dashboard_database_url"):
            raw = getattr(self, name)
            if raw is not None:
                normalize_database_url(raw, variable=name.upper())
        return self

    @property
    def sqlalchemy_url(self) -> URL:
        return normalize_database_url(self.database_url, variable="DATABASE_URL")

    @property
    def dashboard_sqlalchemy_url(self) -> URL:
        if self.dashboard_database_url:
            return normalize_database_url(
                self.dashboard_database_url, variable="DASHBOARD_DATABASE_URL"
            )
        return self.sqlalchemy_url

    @property
    def effective_sentry_environment(self) -> str:
        return self.sentry_environment or self.environment


def normalize_database_url(raw: str, *, variable: str = "DATABASE_URL") -> URL:
    """Parse a database URL, mapping plain ``postgresql://`` to the psycopg2 driver we ship."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigurationError(f"{variable} is not a valid database URL") from None
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigurationError(f"{variable} must be an sqlite:// or postgresql:// URL")
    if backend == "postgresql" and url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg2")
    return url


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once. ``get_settings.cache_clear()`` re-reads them."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError; keep the variable names, drop values
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in getattr(exc, "errors", lambda: [])()
        )
        raise ConfigurationError(f"invalid configuration: {problems or exc}") from None
