"""Role resolution, rights and masking (reportlib.access): pure rules, no database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reportlib.access import (
    ACTOR_MAX,
    LOCAL_MODE_USER,
    MASK,
    ROLES,
    DashboardUser,
    can_review,
    can_see_audit,
    can_see_values,
    email_from_claims,
    mask_extracted_fields,
    mask_value,
    normalize_email,
    resolve_role,
    resolve_user,
    source_kind,
)
from reportlib.config import Settings


def make_settings(roles: str | dict[str, Any], default: str | None = "ops") -> Settings:
    return Settings(dashboard_roles=roles, dashboard_default_role=default)


SETTINGS = make_settings(
    "Lead@Example.com=admin, example.com=reviewer, ops.example.org=ops, "
    "outsider@partner.test=reviewer"
)


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("lead@example.com", "admin"),  # exact address beats its domain
        ("  LEAD@EXAMPLE.COM ", "admin"),  # case and surrounding blanks do not matter
        ("erika@example.com", "reviewer"),  # domain entry
        ("Erika@EXAMPLE.com", "reviewer"),
        ("max@ops.example.org", "ops"),
        ("outsider@partner.test", "reviewer"),
        ("someone.else@partner.test", "ops"),  # an address entry does not cover its domain
        ("eve@sub.example.com", "ops"),  # no subdomain matching: falls to the default
        ("eve@evil-example.com", "ops"),
        ("eve@example.com.evil.test", "ops"),
        ("nobody@elsewhere.test", "ops"),
    ],
)
def test_resolve_role_exact_then_domain_then_default(email: str, expected: str) -> None:
    assert resolve_role(email, settings=SETTINGS) == expected


@pytest.mark.parametrize(
    "email",
    [
        None,
        "",
        "   ",
        "example.com",  # a bare domain is not an identity
        "@example.com",
        "lead@",
        "lead@example.com@evil.test",
        "eve@evil.test@example.com",  # two @: never read as an example.com address
        "le ad@example.com",
        "lead@exa\nmple.com",
        "x" * (ACTOR_MAX - len("@example.com") + 1) + "@example.com",
    ],
)
def test_unusable_addresses_are_denied_even_with_a_default_role(email: str | None) -> None:
    assert normalize_email(email) is None
    assert resolve_role(email, settings=SETTINGS) is None


def test_surrounding_whitespace_is_not_part_of_the_address() -> None:
    assert normalize_email("\tLead@Example.com\n") == "lead@example.com"
    assert resolve_role("\tLead@Example.com\n", settings=SETTINGS) == "admin"


def test_longest_storable_address_is_accepted() -> None:
    address = "x" * (ACTOR_MAX - len("@example.com")) + "@example.com"
    assert len(address) == ACTOR_MAX
    assert normalize_email(address) == address
    assert resolve_role(address, settings=SETTINGS) == "reviewer"


def test_no_default_role_denies_unmatched_users() -> None:
    settings = make_settings("example.com=reviewer", default="")
    assert settings.dashboard_default_role is None
    assert resolve_role("someone@example.com", settings=settings) == "reviewer"
    assert resolve_role("someone@elsewhere.test", settings=settings) is None


def test_hand_built_mapping_keys_are_compared_lower_cased() -> None:
    settings = make_settings({"Lead@Example.COM": "admin", "Example.COM": "reviewer"})
    assert resolve_role("lead@example.com", settings=settings) == "admin"
    assert resolve_role("other@EXAMPLE.com", settings=settings) == "reviewer"


def test_settings_from_environment_are_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from reportlib.config import get_settings

    monkeypatch.setenv("DASHBOARD_ROLES", "boss@corp.test=admin")
    monkeypatch.setenv("DASHBOARD_DEFAULT_ROLE", "")
    get_settings.cache_clear()
    assert resolve_role("boss@corp.test") == "admin"
    assert resolve_role("intern@corp.test") is None


RIGHTS = {
    # role: (values, review, audit)
    "ops": (False, False, False),
    "reviewer": (True, True, False),
    "admin": (True, True, True),
    None: (False, False, False),
}


@pytest.mark.parametrize("role", [*ROLES, None])
def test_rights_per_role(role: Any) -> None:
    assert (can_see_values(role), can_review(role), can_see_audit(role)) == RIGHTS[role]


def test_roles_are_exactly_the_configurable_ones() -> None:
    assert ROLES == ("ops", "reviewer", "admin")
    assert set(RIGHTS) - {None} == set(ROLES)


def test_unknown_role_strings_get_no_rights() -> None:
    for bogus in ("Admin", "ADMIN", "root", "", "reviewer "):
        role: Any = bogus
        assert (can_see_values(role), can_review(role), can_see_audit(role)) == RIGHTS[None]


def test_local_mode_user_has_full_rights_and_is_labelled() -> None:
    assert LOCAL_MODE_USER == DashboardUser(
        actor="local-mode",
        display_name="Local mode (no login configured)",
        role="admin",
        local_mode=True,
    )
    role = LOCAL_MODE_USER.role
    assert (can_see_values(role), can_review(role), can_see_audit(role)) == (True, True, True)
    assert len(LOCAL_MODE_USER.actor) <= ACTOR_MAX


@pytest.mark.parametrize(
    "value",
    [
        "Erika Mustermann",
        "",
        "x",
        "x" * 10_000,
        Decimal("1000000000000000.07"),
        1234,
        None,
        ["AZ-1", "AZ-2"],
        {"nested": "value"},
        "<img src=x onerror=alert(1)>",
    ],
)
def test_mask_is_constant_whatever_the_value(value: object) -> None:
    assert mask_value(value) == MASK == "•••"


def test_mask_extracted_fields_keeps_names_and_confidence_only() -> None:
    fields = {
        "client_name": {"value": "Erika Mustermann", "confidence": 0.92, "source": "email_body"},
        "debt_amount": {
            "value": Decimal("1234.56"),
            "confidence": 0.81,
            "source": "attachment:Mahnung_Mustermann.pdf",
        },
        "reference_numbers": {"value": ["AZ-2026-0001"], "confidence": 1, "source": None},
        "odd": "not an object",
        "no_confidence": {"value": "x", "source": ":"},
        "bool_confidence": {"value": "x", "confidence": True, "source": "  "},
    }
    assert mask_extracted_fields(fields) == {
        "client_name": {"value": MASK, "confidence": 0.92, "source": "email_body"},
        "debt_amount": {"value": MASK, "confidence": 0.81, "source": "attachment"},
        "reference_numbers": {"value": MASK, "confidence": 1.0, "source": "unknown"},
        "odd": {"value": MASK, "confidence": None, "source": "unknown"},
        "no_confidence": {"value": MASK, "confidence": None, "source": "unknown"},
        "bool_confidence": {"value": MASK, "confidence": None, "source": "unknown"},
    }


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("email_body", "email_body"),
        ("attachment:invoice.pdf", "attachment"),
        ("attachment:a:b.pdf", "attachment"),
        ("", "unknown"),
        (None, "unknown"),
        (42, "unknown"),
    ],
)
def test_source_kind(source: object, kind: str) -> None:
    assert source_kind(source) == kind


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"email": "Lead@Example.com", "email_verified": True}, "lead@example.com"),
        ({"email": "lead@example.com"}, None),  # no claim: not known to be verified
        ({"email": "lead@example.com", "email_verified": False}, None),
        ({"email": None}, None),
        ({"email": 42}, None),
        ({}, None),
    ],
)
def test_email_from_claims_trusts_only_verified_addresses(
    claims: dict[str, Any], expected: str | None
) -> None:
    assert email_from_claims(claims) == expected


def test_resolve_user_builds_the_audited_identity() -> None:
    claims = {"email": "Lead@Example.com", "email_verified": True, "name": " Lea Lead "}
    assert resolve_user(claims, settings=SETTINGS) == DashboardUser(
        actor="lead@example.com", display_name="Lea Lead", role="admin"
    )
    verified = {"email": "r@example.com", "email_verified": True}
    assert resolve_user(verified, settings=SETTINGS) == DashboardUser(
        actor="r@example.com", display_name="r@example.com", role="reviewer"
    )


def test_resolve_user_denies_unverified_or_unmatched_users() -> None:
    deny_by_default = make_settings("example.com=reviewer", default="")
    assert (
        resolve_user({"email": "r@example.com", "email_verified": False}, settings=SETTINGS) is None
    )
    assert resolve_user({"email": "x@elsewhere.test"}, settings=deny_by_default) is None
    assert resolve_user({"name": "No Mail"}, settings=SETTINGS) is None
