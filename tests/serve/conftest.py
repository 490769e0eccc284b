"""Fixtures for the server: an app on a fresh store with scripted backends, in-process or on real uvicorn."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from organic.generate import EchoBackend
from organic.serve.app import create_app
from organic.settings import Settings
from organic.store import connect

@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, admin_token="admin-secret", max_message_chars=200)


@pytest.fixture
def store_engine(settings):
    engine = connect(settings.url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_client(settings, store_engine):
    """``make_client(backends)`` -> a TestClient of a fresh app on the test store."""
    clients = []

    def make(backends=None) -> TestClient:
        app = create_app(settings, backends or [EchoBackend()], engine=store_engine)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(settings, store_engine):
    """``live_server(backends)`` -> base URL of a real uvicorn server on 127.0.0.1, stopped after the test."""
    servers = []

    def start(backends=None) -> str:
        app = create_app(settings, backends or [EchoBackend()], engine=store_engine)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


