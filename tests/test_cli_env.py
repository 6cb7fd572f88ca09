"""The CLI reports to PREFECT_API_URL, else to a running local server, else to a temporary one."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flows.cli import env


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.path == "/api/health"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"true" if ok else b"")

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def health_server():
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api"
    server.shutdown()


def test_choose_server_uses_a_running_local_server(monkeypatch, health_server, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(env, "LOCAL_SERVER", health_server)
    env.choose_server()
    assert env.os.environ["PREFECT_API_URL"] == health_server
    assert health_server in capsys.readouterr().err


def test_choose_server_falls_back_to_a_temporary_server(monkeypatch, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(env, "LOCAL_SERVER", "http://127.0.0.1:9/api")  # nothing listens there
    env.choose_server()
    assert "PREFECT_API_URL" not in env.os.environ
    assert "temporary" in capsys.readouterr().err


def test_choose_server_keeps_the_users_api_url(monkeypatch, health_server, capsys):
    monkeypatch.setenv("PREFECT_API_URL", "http://example.invalid/api")
    monkeypatch.setattr(env, "LOCAL_SERVER", health_server)
    env.choose_server()
    assert env.os.environ["PREFECT_API_URL"] == "http://example.invalid/api"
    assert "PREFECT_API_URL" in capsys.readouterr().err
