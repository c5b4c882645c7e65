"""Who is using the dashboard, and what they may see.

With an ``[auth]`` section in the secrets (``.streamlit/secrets.toml``) the dashboard
requires an OIDC login (``st.login``) and takes the role from ``DASHBOARD_ROLES`` /
``DASHBOARD_DEFAULT_ROLE`` (see :mod:`reportlib.access`). Without one it runs in local
mode: one local user with full rights, labelled on every page, for demos only.

Local mode fails closed. It is allowed only when ``ENVIRONMENT`` is one of
:data:`reportlib.access.LOCAL_MODE_ENVIRONMENTS`, only while the server listens on a
loopback address, and it answers only requests whose ``Host`` header is a loopback name
or address (a DNS-rebinding page gets a refusal and no data). The dashboard also refuses
to run when it was started from another directory, so Streamlit did not read the
project's ``.streamlit/`` files or ``.env`` (``python -m dashboard`` starts it right).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import streamlit as st
from streamlit import config as st_config

from dashboard.values import plain_text
from reportlib.access import (
    LOCAL_MODE_ENVIRONMENTS,
    LOCAL_MODE_USER,
    DashboardUser,
    local_mode_environment_allowed,
    resolve_user,
)
from reportlib.config import ConfigurationError, get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: its ``.streamlit/`` and ``.env`` configure the dashboard."""

LOCAL_MODE_LABEL = "Local mode: no login configured"
LOCAL_MODE_NOTE = (
    "Anyone who can open this dashboard has full rights. For demos on your own machine "
    "only: do not expose it. Configure [auth] before deploying (docs/security.md)."
)
LOGIN_PROMPT = "Please log in to see the dashboard."
ACCESS_DENIED = "Your account has no access to this dashboard. Ask an admin to give you a role."
ROLE_NAMES = {"ops": "Ops", "reviewer": "Reviewer", "admin": "Admin"}
LOCAL_ONLY = (
    "This dashboard runs in local mode (no login) and answers only on this machine. "
    "Open it as http://localhost:8501 or http://127.0.0.1:8501."
)

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


def _same_file(path: Path, candidates: Iterable[object]) -> bool:
    target = path.resolve()
    for candidate in candidates:
        try:
            if isinstance(candidate, str) and Path(candidate).resolve() == target:
                return True
        except OSError:
            continue
    return False


def check_project_files(root: Path = PROJECT_ROOT) -> None:
    """Refuse to run when Streamlit did not read the project's own configuration.

    Streamlit reads ``.streamlit/config.toml`` and ``secrets.toml`` from the working
    directory, and the settings read ``.env`` from there too. Started from elsewhere
    (``cd /tmp && streamlit run /srv/app/dashboard/app.py``), the dashboard would lose its
    ``[auth]`` section and its hardened config and open up in local mode. Every file that
    exists in the project must have been read; otherwise this raises
    :class:`ConfigurationError` naming the file, never its content.
    """
    streamlit_dir = root / ".streamlit"
    checks = (
        (streamlit_dir / "config.toml", lambda: st_config.get_config_files("config.toml")),
        (streamlit_dir / "secrets.toml", lambda: st.get_option("secrets.files")),
        (root / ".env", lambda: [str(Path.cwd() / ".env")]),
    )
    for path, read in checks:
        if path.is_file() and not _same_file(path, read() or ()):
            relative = path.relative_to(root).as_posix()
            raise ConfigurationError(
                f"the dashboard was started outside its project directory, so {relative} "
                "was not read; start it with `python -m dashboard` (see the README)"
            )


def is_loopback_address(address: object) -> bool:
    """Whether a listening address (``server.address``) is reachable from this machine only.

    An empty address means every interface, so it is not loopback.
    """
    if not isinstance(address, str) or not address.strip():
        return False
    name = address.strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: object) -> bool:
    """Whether an HTTP ``Host`` header names this machine: ``localhost``, 127.x or ``::1``.

    Anything else, including a name that merely resolves to 127.0.0.1 (DNS rebinding), an
    empty header or one with user info or a path, is not.
    """
    if not isinstance(host, str) or not host or len(host) > 300:
        return False
    if any(ch in host for ch in "/\\@?#") or any(ch.isspace() for ch in host):
        return False
    try:
        parts = urlsplit("//" + host)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return hostname is not None and is_loopback_address(hostname)


def _request_headers() -> Mapping[str, str]:
    # The headers of the WebSocket handshake. Empty only when no browser is connected at
    # all (AppTest, bare mode): every HTTP/1.1 request carries a Host header.
    try:
        return dict(st.context.headers)
    except Exception:  # noqa: BLE001 - outside a script run there is no request
        return {}


def _check_local_mode(headers: Mapping[str, str]) -> None:
    if not local_mode_environment_allowed(get_settings().environment):
        allowed = ", ".join(sorted(LOCAL_MODE_ENVIRONMENTS))
        raise ConfigurationError(
            f"no [auth] section is configured and ENVIRONMENT is not one of {allowed}; "
            "local mode (no login) is refused"
        )
    if headers and not is_loopback_address(st.get_option("server.address")):
        raise ConfigurationError(
            "no [auth] section is configured and the server listens beyond this machine; "
            "local mode (no login) needs a loopback address: start it with "
            "`python -m dashboard` or `--server.address 127.0.0.1`"
        )


def auth_configured() -> bool:
    """True when the secrets carry an ``[auth]`` section (OIDC login is on)."""
    return _auth_section() is not None


def check_configuration() -> None:
    """Refuse configurations that would open the dashboard up by mistake.

    Raises :class:`ConfigurationError` (the error boundary shows it) when the project's
    configuration files were not read (started from another directory), for an
    ``[auth]`` section with missing or placeholder settings, and for local mode outside
    the allowed environments or on a server that listens beyond loopback.
    """
    check_project_files()
    section = _auth_section()
    if section is None:
        _check_local_mode(_request_headers())
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
        headers = _request_headers()
        if headers and not is_loopback_host(headers.get("Host") or headers.get("host")):
            # DNS rebinding: a page under another name that resolves to 127.0.0.1. Answer
            # with a refusal and no data; the Host itself is not repeated.
            st.title("Processing reports")
            st.error(LOCAL_ONLY, icon=":material/block:")
            st.stop()
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
        st.text(plain_text(user.display_name))
        if user.display_name != user.actor:
            st.text(plain_text(user.actor))
        st.badge(
            f"Role: {ROLE_NAMES.get(user.role, user.role)}",
            icon=":material/badge:",
            color="blue",
        )
        st.button("Log out", key="auth_logout", on_click=_logout, icon=":material/logout:")
