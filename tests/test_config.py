"""Settings: defaults, URL handling, fail-fast errors, and documentation of every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportlib.config import ConfigurationError, Settings, get_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_need_no_server() -> None:
    settings = Settings()
    assert settings.sqlalchemy_url.get_backend_name() == "sqlite"
    assert settings.key_fields == (
        "client_name",
        "creditor_name",
        "debt_amount",
        "reference_numbers",
    )
    assert settings.review_claim_minutes == 15
    assert settings.sentry_dsn is None
    assert settings.dashboard_sqlalchemy_url == settings.sqlalchemy_url


def test_plain_postgresql_url_uses_psycopg2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    assert get_settings().sqlalchemy_url.drivername == "postgresql+psycopg2"


def test_replica_url_for_the_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://reader@replica/reports")
    assert get_settings().dashboard_sqlalchemy_url.host == "replica"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("DATABASE_URL", "not a url"),
        ("DASHBOARD_DATABASE_URL", "oracle://x"),
        ("REVIEW_CLAIM_MINUTES", "0"),
        ("SENTRY_TRACES_SAMPLE_RATE", "2"),
        ("DASHBOARD_ROLES", "no-equals-sign"),
        ("DASHBOARD_ROLES", "a@b.c=superuser"),
        ("KEY_FIELDS", ","),
    ],
)
def test_bad_configuration_fails_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        get_settings()


def test_roles_parse_from_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_ROLES", "Lead@Example.com=admin, example.com=reviewer")
    monkeypatch.setenv("DASHBOARD_DEFAULT_ROLE", "")
    settings = get_settings()
    assert settings.dashboard_roles == {"lead@example.com": "admin", "example.com": "reviewer"}
    assert settings.dashboard_default_role is None


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    undocumented = [name.upper() for name in Settings.model_fields if name.upper() not in text]
    assert undocumented == []
    assert all(field.description for field in Settings.model_fields.values())
