"""Who may see what in the dashboard: roles, rights and masking.

Pure functions with no Streamlit import, so the rules are tested directly and the
dashboard only has to ask them. Three roles exist (``reportlib.config.Role``):

``ops``
    Aggregates, charts and the review queue, with every extracted value masked.
``reviewer``
    Everything ``ops`` sees plus the values themselves, and may record review decisions.
``admin``
    Everything a reviewer may do plus the audit log.

``None`` stands for "no access": the dashboard shows a refusal and nothing else.

Roles come from ``DASHBOARD_ROLES`` (``Settings.dashboard_roles``), a mapping whose keys
are lower-cased email addresses or domains, and from ``DASHBOARD_DEFAULT_ROLE`` for a
logged-in user matched by no entry (empty: such users are refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, get_args

from reportlib.config import Role, Settings, get_settings

ROLES: Final[tuple[Role, ...]] = get_args(Role)
"""Every role, least to most privileged."""

MASK: Final = "•••"
"""What a masked value shows: the same three characters whatever the value and its length."""

ACTOR_MAX: Final = 200
"""Length of the actor/reviewer columns; longer identities are refused, never truncated."""

_VALUE_ROLES: Final[frozenset[Role]] = frozenset({"reviewer", "admin"})
_REVIEW_ROLES: Final[frozenset[Role]] = frozenset({"reviewer", "admin"})
_AUDIT_ROLES: Final[frozenset[Role]] = frozenset({"admin"})


@dataclass(frozen=True, slots=True)
class DashboardUser:
    """The person using the dashboard, as the pages and the audit log know them.

    ``actor`` is what audit rows and review decisions record (the lower-cased email
    when logged in); ``local_mode`` is true only for :data:`LOCAL_MODE_USER`.
    """

    actor: str
    display_name: str
    role: Role
    local_mode: bool = False


LOCAL_MODE_USER: Final = DashboardUser(
    actor="local-mode",
    display_name="Local mode (no login configured)",
    role="admin",
    local_mode=True,
)
"""The single user of a dashboard started without an ``[auth]`` section in its secrets.

Local mode exists for demos on one's own machine: the one local user has full reviewer
and admin rights so the demo shows everything, and the dashboard labels every page as
running without login. A dashboard in local mode must never be reachable by anyone
else; configure ``[auth]`` before exposing it (see docs/security.md).
"""


LOCAL_MODE_ENVIRONMENTS: Final = frozenset({"development", "demo", "test"})
"""The only ``ENVIRONMENT`` values in which local mode (no login, full rights) may run.

An allow-list, so ``prod``, ``live``, ``production-eu`` or a typo all refuse local mode.
"""

SOURCE_KINDS: Final = frozenset(
    {
        "attachment",
        "email_body",
        "email_subject",
        "header",
        "ocr",
        "sender",
        "subject",
        "unknown",
    }
)
"""The source kinds a role without value rights may see; anything else shows as ``other``."""


def local_mode_environment_allowed(environment: object) -> bool:
    """Whether local mode may run in ``environment`` (compared stripped and lower-cased)."""
    return isinstance(environment, str) and environment.strip().lower() in LOCAL_MODE_ENVIRONMENTS


def normalize_email(email: str | None) -> str | None:
    """The address lower-cased and stripped, or None when it is not a usable identity.

    Usable means: exactly one ``@`` with text on both sides, no whitespace inside, and at
    most :data:`ACTOR_MAX` characters (the audit columns' width). Anything else is refused
    rather than guessed at, so an odd address can never borrow someone else's role.
    """
    if not isinstance(email, str):
        return None
    candidate = email.strip().lower()
    if not candidate or len(candidate) > ACTOR_MAX or any(ch.isspace() for ch in candidate):
        return None
    local, sep, domain = candidate.partition("@")
    if not sep or not local or not domain or "@" in domain:
        return None
    return candidate


def resolve_role(email: str | None, *, settings: Settings | None = None) -> Role | None:
    """The role of the logged-in user with this email address, or None for no access.

    Lookup order in ``settings.dashboard_roles`` (keys compared lower-cased):

    1. the exact address (``lead@example.com``);
    2. the address's domain (``example.com``) - the domain must match exactly: an entry
       for ``example.com`` does not cover ``sub.example.com`` or ``evil-example.com``,
       so a parent domain never grants rights to addresses it does not own;
    3. ``settings.dashboard_default_role`` (None denies).

    A missing or malformed address (see :func:`normalize_email`) is denied whatever the
    default role, because there would be no identity to audit.
    """
    settings = settings or get_settings()
    address = normalize_email(email)
    if address is None:
        return None
    roles = {key.strip().lower(): role for key, role in settings.dashboard_roles.items()}
    if address in roles:
        return _checked(roles[address])
    domain = address.rpartition("@")[2]
    if domain in roles:
        return _checked(roles[domain])
    return _checked(settings.dashboard_default_role)


def _checked(role: object) -> Role | None:
    # Settings validates roles already; this keeps a hand-built mapping from smuggling in
    # an unknown role that a later ``in`` check might treat as privileged.
    return role if role in ROLES else None


def email_from_claims(claims: Mapping[str, Any]) -> str | None:
    """The email address to trust from an OIDC identity (``st.user``), or None.

    Only an address the provider marks ``email_verified: true`` (the JSON boolean) is
    trusted. ``false``, a missing claim, and look-alikes such as the string ``"false"``,
    ``"true"`` or ``0``/``1`` are refused: the claim is checked, never guessed at.
    """
    if claims.get("email_verified") is not True:
        return None
    email = claims.get("email")
    return normalize_email(email) if isinstance(email, str) else None


def resolve_user(
    claims: Mapping[str, Any], *, settings: Settings | None = None
) -> DashboardUser | None:
    """The dashboard user for a logged-in identity's claims, or None for no access."""
    address = email_from_claims(claims)
    role = resolve_role(address, settings=settings)
    if address is None or role is None:
        return None
    name = claims.get("name")
    display = name.strip() if isinstance(name, str) and name.strip() else address
    return DashboardUser(actor=address, display_name=display, role=role)


def can_see_values(role: Role | None) -> bool:
    """Whether ``role`` sees extracted values unmasked (reviewer, admin)."""
    return role in _VALUE_ROLES


def can_review(role: Role | None) -> bool:
    """Whether ``role`` may claim reports and record review decisions (reviewer, admin)."""
    return role in _REVIEW_ROLES


def can_see_audit(role: Role | None) -> bool:
    """Whether ``role`` may read the audit log (admin)."""
    return role in _AUDIT_ROLES


def can_see_alerts(role: Role | None) -> bool:
    """Whether ``role`` may see the Alerts page (ops and above: every role)."""
    return role in ROLES


def mask_value(value: object) -> str:
    """The fixed mask shown instead of an extracted value.

    Always :data:`MASK`, whatever ``value`` is: the mask leaks neither content, type nor
    length. Whether a field is missing is not personal data and is shown separately
    (``missing_fields``), so callers need not mask absence.
    """
    del value  # deliberately unused: the mask must not depend on it
    return MASK


def source_kind(source: object) -> str:
    """A field's source without its detail: ``attachment:rechnung.pdf`` -> ``attachment``.

    Attachment file names can carry names or reference numbers, so roles without value
    rights see only the kind, and only a kind from the allow-list :data:`SOURCE_KINDS`.
    Anything else (``Mahnung_Erika_Mustermann.pdf``, free text with an IBAN) is ``other``;
    a missing or empty source is ``unknown``.
    """
    if not isinstance(source, str) or not source.strip():
        return "unknown"
    kind = source.split(":", 1)[0].strip().lower()
    if not kind:
        return "unknown"
    return kind if kind in SOURCE_KINDS else "other"


def mask_extracted_fields(extracted_fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``extracted_fields`` as a role without value rights may see it.

    Each field keeps its name and confidence; the value becomes :data:`MASK` and the
    source is reduced to its kind. Entries that are not objects are masked whole.
    """
    masked: dict[str, dict[str, Any]] = {}
    for name, entry in extracted_fields.items():
        if isinstance(entry, Mapping):
            confidence = entry.get("confidence")
            shown: float | None = None
            if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
                shown = float(confidence)
            masked[name] = {
                "value": MASK,
                "confidence": shown,
                "source": source_kind(entry.get("source")),
            }
        else:
            masked[name] = {"value": MASK, "confidence": None, "source": "unknown"}
    return masked


__all__ = [
    "ACTOR_MAX",
    "LOCAL_MODE_ENVIRONMENTS",
    "LOCAL_MODE_USER",
    "MASK",
    "ROLES",
    "SOURCE_KINDS",
    "DashboardUser",
    "can_review",
    "can_see_audit",
    "can_see_values",
    "email_from_claims",
    "local_mode_environment_allowed",
    "mask_extracted_fields",
    "mask_value",
    "normalize_email",
    "resolve_role",
    "resolve_user",
    "source_kind",
]
