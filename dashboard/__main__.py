"""Start the dashboard the same way from any directory: ``python -m dashboard [flags]``.

Streamlit reads ``.streamlit/config.toml`` and ``secrets.toml`` from the working
directory, and the settings read ``.env`` from there. This launcher changes to the
project root first, so the hardened config, the ``[auth]`` section and ``.env`` are
always the project's own, then runs ``streamlit run dashboard/app.py`` with the given
flags. Unless ``--server.address`` (or ``STREAMLIT_SERVER_ADDRESS``) says otherwise, it
listens on 127.0.0.1 only and accepts only loopback ``Host`` names
(``server.allowedHosts``): local mode must never be reachable from elsewhere. For a
deployment behind login, pass ``--server.address`` and ``--server.allowedHosts`` with
the public name.

``python /srv/app/dashboard`` works too (Python runs this file for a directory).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _given(args: Sequence[str], option: str) -> bool:
    # Streamlit's variable for ``server.allowedHosts`` is STREAMLIT_SERVER_ALLOWED_HOSTS.
    env = "STREAMLIT_" + re.sub(r"(?<=[a-z])(?=[A-Z])", "_", option).replace(".", "_").upper()
    return env in os.environ or any(
        arg == f"--{option}" or arg.startswith(f"--{option}=") for arg in args
    )


def streamlit_args(args: Sequence[str]) -> list[str]:
    """The ``streamlit`` command line for the launcher's own ``args``."""
    extra: list[str] = []
    if not _given(args, "server.address"):
        extra += ["--server.address", "127.0.0.1"]
        if not _given(args, "server.allowedHosts"):
            for host in LOOPBACK_HOSTS:
                extra += ["--server.allowedHosts", host]
    return ["run", str(Path("dashboard") / "app.py"), *extra, *args]


def main(argv: Sequence[str] | None = None) -> None:
    """Change to the project root and run Streamlit; returns only through SystemExit."""
    args = list(sys.argv[1:] if argv is None else argv)
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from streamlit.web import cli

    cli.main(args=streamlit_args(args), prog_name="streamlit")


if __name__ == "__main__":
    main()
