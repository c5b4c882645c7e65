"""A real Sentry ingestion endpoint for tests: an HTTP server on 127.0.0.1 that stores envelopes.

The SDK under test sends through its normal HTTP transport (gzip bodies, a background
worker), so tests assert on exactly the bytes that would leave the process. The parser is
written from the envelope format, not borrowed from the SDK, so it cannot share its bugs.

Use the ``sentry_receiver`` fixture (a running receiver, stopped afterwards) and
``sentry_dsn`` (a DSN pointing at it). Import both into a test module to use them.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

try:  # the SDK prefers brotli when the module is installed
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"
PROJECT_ID = "4242"


class EnvelopeFormatError(ValueError):
    """A body that is not a well-formed Sentry envelope."""


@dataclass(frozen=True)
class Item:
    """One envelope item: its header line and its raw payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    """One POST to the envelope endpoint, decompressed and parsed."""

    path: str
    content_encoding: str
    auth_header: str
    raw: bytes  # the decompressed body, exactly as sent
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)


def decode_body(body: bytes, content_encoding: str) -> bytes:
    """Undo the transport's Content-Encoding (gzip, deflate, br or none)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        if brotli is None:
            raise EnvelopeFormatError("brotli body but the brotli module is not installed")
        return bytes(brotli.decompress(body))
    raise EnvelopeFormatError(f"unsupported Content-Encoding {content_encoding!r}")


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], list[Item]]:
    """Split an envelope into its header and items.

    Format: a JSON header line, then per item a JSON header line and a payload that is
    either ``length`` bytes followed by an optional newline, or the rest of the line.
    """
    lines_start = raw.find(b"\n")
    header_line = raw if lines_start < 0 else raw[:lines_start]
    try:
        headers = json.loads(header_line) if header_line.strip() else {}
    except ValueError as exc:
        raise EnvelopeFormatError("envelope header is not JSON") from exc
    if not isinstance(headers, dict):
        raise EnvelopeFormatError("envelope header is not an object")
    items: list[Item] = []
    pos = len(raw) if lines_start < 0 else lines_start + 1
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        item_line = raw[pos:] if end < 0 else raw[pos:end]
        pos = len(raw) if end < 0 else end + 1
        if not item_line.strip():
            continue
        try:
            item_headers = json.loads(item_line)
        except ValueError as exc:
            raise EnvelopeFormatError("item header is not JSON") from exc
        if not isinstance(item_headers, dict) or "type" not in item_headers:
            raise EnvelopeFormatError("item header has no type")
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or length < 0 or pos + length > len(raw):
                raise EnvelopeFormatError("item length is out of range")
            payload = raw[pos : pos + length]
            pos += length
            if raw[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = raw.find(b"\n", pos)
            payload = raw[pos:] if end < 0 else raw[pos:end]
            pos = len(raw) if end < 0 else end + 1
        items.append(Item(headers=item_headers, payload=payload))
    return headers, items


class SentryReceiver:
    """A threaded HTTP server on 127.0.0.1 that accepts and records Sentry envelopes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._envelopes: list[Envelope] = []
        self.errors: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                expected = f"/api/{PROJECT_ID}/envelope/"
                if self.path.split("?", 1)[0] != expected:
                    receiver._record_error(f"unexpected path {self.path}")
                    self._reply(404, b'{"detail":"not found"}')
                    return
                try:
                    raw = decode_body(body, self.headers.get("Content-Encoding", ""))
                    headers, items = parse_envelope(raw)
                except (EnvelopeFormatError, OSError, zlib.error) as exc:
                    receiver._record_error(f"bad envelope: {exc}")
                    self._reply(400, b'{"detail":"bad envelope"}')
                    return
                receiver._record(
                    Envelope(
                        path=self.path,
                        content_encoding=self.headers.get("Content-Encoding", ""),
                        auth_header=self.headers.get("X-Sentry-Auth", ""),
                        raw=raw,
                        headers=headers,
                        items=items,
                    )
                )
                self._reply(200, b"{}")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep test output quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> SentryReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sentry-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; later sends get 'connection refused'."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/{PROJECT_ID}"

    # -- recording -------------------------------------------------------------------

    def _record(self, envelope: Envelope) -> None:
        with self._changed:
            self._envelopes.append(envelope)
            self._changed.notify_all()

    def _record_error(self, message: str) -> None:
        with self._changed:
            self.errors.append(message)
            self._changed.notify_all()

    @property
    def envelopes(self) -> list[Envelope]:
        with self._lock:
            return list(self._envelopes)

    def clear(self) -> None:
        with self._lock:
            self._envelopes.clear()
            self.errors.clear()

    def items(self, item_type: str | None = None) -> list[Item]:
        """Every received item, in arrival order, optionally of one type only."""
        return [
            item
            for envelope in self.envelopes
            for item in envelope.items
            if item_type is None or item.type == item_type
        ]

    def events(self) -> list[dict[str, Any]]:
        """Payloads of the error/message events received, in arrival order."""
        return [item.json() for item in self.items("event")]

    def transactions(self) -> list[dict[str, Any]]:
        return [item.json() for item in self.items("transaction")]

    def raw_bodies(self) -> list[bytes]:
        """Every decompressed body received, for byte-level searches."""
        return [envelope.raw for envelope in self.envelopes]

    def wait_for(self, predicate: Callable[[SentryReceiver], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:  # woken by each arrival; polls in case one was missed
                self._changed.wait(min(remaining, 0.2))
        return True

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events arrived; return all of them."""
        self.wait_for(lambda r: len(r.items("event")) >= count, timeout)
        return self.events()


@pytest.fixture
def sentry_receiver() -> Iterator[SentryReceiver]:
    """A running receiver, stopped after the test."""
    receiver = SentryReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def sentry_dsn(sentry_receiver: SentryReceiver) -> str:
    """A DSN that makes the SDK send to ``sentry_receiver``."""
    return sentry_receiver.dsn
