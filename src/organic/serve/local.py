"""A real uvicorn server on 127.0.0.1 in a background thread: for the simulator, the loop and the tests."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

KEEP_ALIVE_S = 30  # seconds an idle connection stays open. uvicorn's default (5 s) equals httpx's (and so the openai
# client's) idle expiry, so under load a client could send on a connection the server was closing that instant and get
# a ReadError; outliving the clients' own expiry leaves closing idle connections to them


class LocalServer:
    """A uvicorn server for an app on 127.0.0.1 in a background thread (when no --url is given)."""

    def __init__(self, app, port: int = 0):
        # the socket is bound here and handed to uvicorn, so no other process can take the port between a probe
        # and the bind (port 0: any free one)
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the local server did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()
