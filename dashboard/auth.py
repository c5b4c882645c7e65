"""Who is using the dashboard, and what they may see.

With an ``[auth]`` section in the secrets (``.streamlit/secrets.toml``) the dashboard
requires an OIDC login (``st.login``) and takes the role from ``DASHBOARD_ROLES`` /
``DASHBOARD_DEFAULT_ROLE`` (see :mod:`reportlib.access`). Without one it runs in local
mode: one local user with full rights, labelled on every page, for demos only. With
``ENVIRONMENT=production`` local mode is refused, so a deployment that lost its secrets
stops instead of opening up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from reportlib.access import LOCAL_MODE_USER, DashboardUser, resolve_user
from reportlib.config import ConfigurationError, get_settings

LOCAL_MODE_LABEL = "Local mode: no login configured"
LOCAL_MODE_NOTE = (
    "Anyone who can open this dashboard has full rights. For demos on your own machine "
    "only: do not expose it. Configure [auth] before deploying (docs/security.md)."
)
LOGIN_PROMPT = "Please log in to see the dashboard."
ACCESS_DENIED = "Your account has no access to this dashboard. Ask an admin to give you a role."
ROLE_NAMES = {"ops": "Ops", "reviewer": "Reviewer", "admin": "Admin"}

# The settings an [auth] section needs, directly or per provider (Streamlit checks them again
# when st.login runs; checking here gives a clear message before anyone clicks).
_REQUIRED_AUTH_KEYS = (
    "redirect_uri",
    "cookie_secret",
    "client_id",
    "client_secret",
    "server_metadata_url",
)
_PLACEHOLDER_PREFIX = "REPLACE"


def _auth_section() -> Mapping[str, Any] | None:
    """The ``[auth]`` secrets section, or None when there is no secrets file or section.

    An unreadable secrets file is a configuration error, not "no login": falling back to
    local mode there would hand full rights to everyone.
    """
    try:
        if "auth" not in st.secrets:
            return None
        section = st.secrets["auth"]
    except FileNotFoundError as exc:  # StreamlitSecretNotFoundError
        if getattr(exc, "error_id", None) == "no-secrets-found":
            return None
        raise ConfigurationError(
            "the secrets file cannot be read, so login cannot be set up"
        ) from None
    if not isinstance(section, Mapping):
        raise ConfigurationError("the [auth] secrets entry must be a section")
    return section


def auth_configured() -> bool:
    """True when the secrets carry an ``[auth]`` section (OIDC login is on)."""
    return _auth_section() is not None


def check_configuration() -> None:
    """Refuse configurations that would open the dashboard up by mistake.

    Raises :class:`ConfigurationError` (the error boundary shows it) for an ``[auth]``
    section with missing or placeholder settings, and for local mode when
    ``ENVIRONMENT`` is ``production``.
    """
    section = _auth_section()
    if section is None:
        if get_settings().environment.strip().lower() == "production":
            raise ConfigurationError(
                "ENVIRONMENT is production but no [auth] section is configured; "
                "local mode (no login) is refused"
            )
        return
    providers = [value for value in section.values() if isinstance(value, Mapping)]
    for name in _REQUIRED_AUTH_KEYS:
        candidates = [section.get(name), *(p.get(name) for p in providers)]
        present = [value for value in candidates if isinstance(value, str) and value.strip()]
        if not present:
            raise ConfigurationError(f"the [auth] secrets section has no {name}")
        if any(value.strip().startswith(_PLACEHOLDER_PREFIX) for value in present):
            raise ConfigurationError(
                f"the [auth] secrets section still has the example's placeholder for {name}"
            )


def _claims() -> dict[str, Any]:
    # st.user reads the identity cookie; outside a script run it is empty (logged out).
    return dict(st.user.to_dict())


def is_logged_in() -> bool:
    """Whether an OIDC identity is signed in for this session."""
    return _claims().get("is_logged_in") is True


def current_user() -> DashboardUser | None:
    """The signed-in user with their role, the local-mode user, or None (no access)."""
    if not auth_configured():
        return LOCAL_MODE_USER
    claims = _claims()
    if claims.get("is_logged_in") is not True:
        return None
    return resolve_user(claims)


def _login() -> None:
    st.login()


def _logout() -> None:
    st.logout()


def require_user() -> DashboardUser:
    """Stop the page with a login prompt or an access-denied message unless allowed in."""
    check_configuration()
    if not auth_configured():
        return LOCAL_MODE_USER
    if not is_logged_in():
        st.title("Processing reports")
        st.info(LOGIN_PROMPT, icon=":material/login:")
        st.button("Log in", key="auth_login", on_click=_login, type="primary")
        st.stop()
    user = current_user()
    if user is None:
        st.title("Processing reports")
        st.error(ACCESS_DENIED, icon=":material/block:")
        st.button("Log out", key="auth_logout_denied", on_click=_logout)
        st.stop()
    return user


def sidebar_identity(user: DashboardUser) -> None:
    """Who is signed in and with which role (with a Log out button), or the local-mode
    label. Drawn on every page."""
    with st.sidebar:
        if user.local_mode:
            # A badge and a caption, not an alert box: the label is permanent chrome, and
            # alerts are kept for problems with the page itself.
            st.badge(LOCAL_MODE_LABEL, icon=":material/warning:", color="orange")
            st.caption(LOCAL_MODE_NOTE)
            return
        # Names and addresses come from the identity provider: plain text only.
        st.text(user.display_name)
        if user.display_name != user.actor:
            st.text(user.actor)
        st.badge(
            f"Role: {ROLE_NAMES.get(user.role, user.role)}",
            icon=":material/badge:",
            color="blue",
        )
        st.button("Log out", key="auth_logout", on_click=_logout, icon=":material/logout:")
