#!/usr/bin/env bash
# Install what the tests need, make sure PostgreSQL and Chromium are there, then run the
# linters, the type checker and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  echo "installing Chromium from Debian packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

python -m ruff check reportlib dashboard tests bench
python -m mypy
python -m pytest "$@"

# The dashboard page tests once more on demo data seeded three days ago, 30 seconds before
# UTC midnight: no expectation may depend on the day or the time the suite runs.
if [ "$#" -eq 0 ]; then
  demo_now="$(date -u -d "$(date -u +%F) 00:00:00 UTC 3 days ago 30 seconds ago" +%FT%TZ)"
  python -m pytest -q --demo-now="$demo_now" tests/dashboard/test_pages.py \
    tests/dashboard/test_security_pages.py tests/dashboard/test_review_flow.py
fi
