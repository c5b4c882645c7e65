"""Security hardening, round 2, in AppTest: local mode refused outside its environments,
the project's own config files, masked sources for ops, bidi controls made visible,
Markdown-inert messages, verified logins only, and settings errors inside the boundary.

The browser half (DNS rebinding, the bind address, starting from another directory, CSV
downloads) is in ``test_security_round2_browser.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import auth
from dashboard.review_panel import FLASH_KEY
from dashboard.values import markdown_text, plain_frame, plain_text
from reportlib.access import MASK
from reportlib.config import ConfigurationError, get_settings
from tests.dashboard import round2_data as r2
from tests.dashboard.helpers import SeededDatabase, new_app

DUMMY_AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-that-is-long-enough-0123456789",
    "client_id": "reports-dashboard",
    "client_secret": "a-test-client-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
OPS = "otto-round2@ops.example.com"


@pytest.fixture(scope="module")
def round2_url(seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory) -> str:
    return r2.private_copy(seeded_sqlite.url, tmp_path_factory.mktemp("round2"))


@pytest.fixture
def env(
    round2_url: str, use_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    def configure(**variables: str) -> None:
        monkeypatch.setenv("DASHBOARD_ROLES", "lead@example.com=admin")
        monkeypatch.setenv("DASHBOARD_DEFAULT_ROLE", "ops")
        monkeypatch.delenv("ENVIRONMENT", raising=False)
        use_database(round2_url)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    configure()
    return configure


def _texts(at: AppTest) -> list[str]:
    return [str(t.value) for t in at.text] + [str(c.value) for c in at.code]


def _messages(at: AppTest) -> list[str]:
    return [str(e.value) for e in [*at.error, *at.warning, *at.info]]


def _open_review(at: AppTest, email_id: int) -> AppTest:
    at.run()
    at.switch_page("views/review.py")
    at.query_params["email_id"] = str(email_id)
    return at.run()


# -- 2: local mode only in development, demo, test ------------------------------------------


@pytest.mark.parametrize("environment", ["prod", "prd", "live", "production-eu", "staging"])
def test_local_mode_is_refused_outside_the_allowed_environments(
    env: Callable[..., None], environment: str
) -> None:
    env(ENVIRONMENT=environment)
    at = new_app().run()
    assert not at.exception
    assert any("local mode (no login) is refused" in m for m in _messages(at)), _messages(at)
    assert not any(auth.LOCAL_MODE_LABEL in str(b.value) for b in at.get("badge"))
    assert len(at.dataframe) == 0 and len(at.metric) == 0


@pytest.mark.parametrize("environment", ["development", "demo", "test"])
def test_local_mode_runs_in_the_allowed_environments(
    env: Callable[..., None], environment: str
) -> None:
    env(ENVIRONMENT=environment)
    at = new_app().run()
    assert not at.exception and not at.error
    assert len(at.metric) > 0


# -- 1: the project's own .streamlit/ and .env ----------------------------------------------


@pytest.mark.parametrize("name", [".streamlit/secrets.toml", ".streamlit/config.toml", ".env"])
def test_unread_project_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("# present but not read\n")
    with pytest.raises(ConfigurationError) as caught:
        auth.check_project_files(tmp_path)
    assert name in str(caught.value) and "python -m dashboard" in str(caught.value)


def test_the_repository_itself_passes_the_check() -> None:
    auth.check_project_files()  # pytest runs from the repository root, as the launcher does


# -- 3 and 4: loopback addresses and Host headers -----------------------------------------------


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("", False),
        (None, False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_bind_addresses(address: object, loopback: bool) -> None:
    assert auth.is_loopback_address(address) is loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:8501", True),
        ("localhost:8501", True),
        ("LOCALHOST", True),
        ("[::1]:8501", True),
        ("attacker.example:8501", False),
        ("localhost.attacker.example", False),
        ("127.0.0.1.nip.io:8501", False),
        ("evil@127.0.0.1", False),
        ("127.0.0.1/x", False),
        ("127.0.0.1:notaport", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_host_headers(host: object, loopback: bool) -> None:
    assert auth.is_loopback_host(host) is loopback


# -- 6: ops sees source kinds from an allow-list -----------------------------------------------


def test_ops_sees_other_for_sources_that_are_not_a_known_kind(env: Callable[..., None]) -> None:
    at = new_app()
    at.secrets["auth"] = dict(DUMMY_AUTH)
    at.user = {"is_logged_in": True, "email": OPS, "email_verified": True, "name": "Otto"}
    at = _open_review(at, r2.OPEN_ID)
    assert not at.exception
    texts = _texts(at)
    assert MASK in texts
    joined = "\n".join(texts)
    for secret in ("Mahnung", "Erika", "IBAN", "DE89"):
        assert secret not in joined
    assert texts.count("other") == 2


# -- 9: only email_verified is True -------------------------------------------------------------


@pytest.mark.parametrize("verified", ["false", 0, "true", None])
def test_unverified_looking_claims_are_refused(env: Callable[..., None], verified: object) -> None:
    at = new_app()
    at.secrets["auth"] = dict(DUMMY_AUTH)
    at.user = {"is_logged_in": True, "email": "lead@example.com", "email_verified": verified}
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [auth.ACCESS_DENIED]
    assert len(at.metric) == 0


# -- 8: bidi controls are made visible everywhere ----------------------------------------------


def test_bidi_controls_are_visible_in_the_drilldown_and_queue(env: Callable[..., None]) -> None:
    at = _open_review(new_app(), r2.OPEN_ID)
    assert not at.exception
    texts = _texts(at)
    assert "Rechnung [U+202E]gpj.exe" in texts
    assert r2.OPEN_INTENT.replace(r2.RLO, "[U+202E]") in texts
    assert r2.OPEN_REASON.replace(r2.RLO, "[U+202E]") in texts
    assert "Erika[U+202E]Mustermann" in texts
    assert not [t for t in texts if r2.RLO in t]
    for frame in at.dataframe:
        cells = frame.value.astype(str).to_numpy().ravel().tolist()
        assert not [c for c in cells if r2.RLO in c]
    queue = at.dataframe[0].value
    assert r2.OPEN_REASON.replace(r2.RLO, "[U+202E]") in set(queue["Review reason"])


def test_plain_helpers_cover_every_bidi_control() -> None:
    controls = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    shown = plain_text(f"a{controls}b")
    assert not any(ch in shown for ch in controls)
    assert shown.count("[U+") == len(controls)
    import pandas as pd

    frame = plain_frame(pd.DataFrame({"x\u202e": ["\u202eabc", None], "n": [1, 2]}))
    assert list(frame.columns) == ["x[U+202E]", "n"]
    assert frame["x[U+202E]"].tolist()[0] == "[U+202E]abc"


# -- 7: messages never turn user text into Markdown ---------------------------------------------


def test_flash_messages_are_markdown_inert(env: Callable[..., None]) -> None:
    at = new_app().run()
    at.switch_page("views/review.py")
    at.query_params["email_id"] = str(r2.OPEN_ID)
    at.session_state[FLASH_KEY] = {
        "email_id": r2.OPEN_ID,
        "kind": "error",
        "text": f"verdicts.{r2.URL_FIELD}: needs a verdict **now** [x](javascript:alert(1))",
    }
    at.run()
    assert not at.exception
    (message,) = [str(e.value) for e in at.error]
    assert "http://" not in message and "](" not in message and "**" not in message
    assert message == markdown_text(
        f"verdicts.{r2.URL_FIELD}: needs a verdict **now** [x](javascript:alert(1))"
    )


def test_markdown_text_escapes_autolinks_and_directives() -> None:
    escaped = markdown_text("www.example.com a@b.example :red[x] :material/home: $x$\nnext")
    for raw in ("www.example", "a@b", ":red[", ":material/", "$x$", "\n"):
        assert raw not in escaped


# -- 12: settings errors inside the error boundary ----------------------------------------------


@pytest.fixture
def fresh_data_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # dashboard.data reads the settings when it is imported; import it afresh, as a new
    # dashboard process would, and put the original back afterwards.
    import dashboard

    for name in ("data", "ui", "review_data"):
        if f"dashboard.{name}" in sys.modules:
            monkeypatch.delitem(sys.modules, f"dashboard.{name}")
        monkeypatch.delattr(dashboard, name, raising=False)
    yield


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("DASHBOARD_CACHE_TTL_S", "sixty", "sixty"),
        ("DASHBOARD_ROLES", "erika.mustermann@example.com", "erika"),
    ],
)
def test_bad_settings_end_in_the_boundary_without_their_value(
    env: Callable[..., None],
    fresh_data_module: None,
    variable: str,
    value: str,
    secret: str,
) -> None:
    env(**{variable: value})
    at = new_app().run()
    assert not at.exception, [e.value for e in at.exception]
    (message,) = [str(e.value) for e in at.error]
    assert message.startswith("The dashboard is not configured correctly")
    assert variable in message and secret not in message.lower()
