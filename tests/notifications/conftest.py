"""A local HTTP endpoint standing in for a JSON webhook or an Apprise JSON service: it records what it was sent and
answers with the statuses a test queues (200 once the queue is empty). Nothing leaves the machine."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail


@dataclass
class Received:
    path: str
    headers: dict
    body: dict


@dataclass
class Endpoint:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    statuses: deque = field(default_factory=deque)

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)


@pytest.fixture
def endpoint():
    server_state = Endpoint(host="127.0.0.1", port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server API)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"raw": raw.decode(errors="replace")}
            server_state.received.append(Received(path=self.path, headers=dict(self.headers), body=body))
            status = server_state.statuses.popleft() if server_state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server_state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def quiet_defaults(settings):
    """No server default but mail (locmem) unless a test sets one; tasks run inline once the caller commits."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_URLS = []
    settings.NOTIFY_WEBHOOK_URL = ""
    settings.NOTIFY_ALLOW_PRIVATE_HOSTS = False
    settings.SITE_URL = ""
    mail.outbox = []
