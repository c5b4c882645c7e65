"""Who is using the dashboard, and what they may see.

With an ``[auth]`` section in ``.streamlit/secrets.toml`` the dashboard requires an OIDC
login (``st.login``) and takes the role from ``DASHBOARD_ROLES``. Without it, the dashboard
runs in local mode: one local user with full rights, clearly labelled, for demos only.
"""

from __future__ import annotations

import streamlit as st

from reportlib.access import LOCAL_MODE_USER, DashboardUser, resolve_user


def auth_configured() -> bool:
    """True when the secrets carry an ``[auth]`` section (OIDC login is on)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all (StreamlitSecretNotFoundError)
        return False


def current_user() -> DashboardUser | None:
    """The signed-in user with their role, the local-mode user, or None (no access)."""
    if not auth_configured():
        return LOCAL_MODE_USER
    if not st.user.is_logged_in:
        return None
    return resolve_user(st.user.to_dict())


def require_user() -> DashboardUser:
    """Stop the page with a login prompt or an access-denied message unless allowed in."""
    if not auth_configured():
        return LOCAL_MODE_USER
    if not st.user.is_logged_in:
        st.title("Processing reports")
        st.info("Please log in to see the dashboard.")
        st.button("Log in", key="auth_login", on_click=st.login, type="primary")
        st.stop()
    user = current_user()
    if user is None:
        st.title("Processing reports")
        st.error("Your account has no access to this dashboard. Ask an admin for a role.")
        st.button("Log out", key="auth_logout_denied", on_click=st.logout)
        st.stop()
    return user
