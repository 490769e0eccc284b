"""What the server refuses before any route runs, and the headers every response carries.

``Guard`` is a plain ASGI middleware:
- a request body over ``max_body_bytes`` gets a 413 (by its Content-Length, or, for a streamed body, as soon as
  it has sent more);
- ``POST /api/session`` is rate-limited per client address (a token bucket: ``sessions_per_minute``, bursts of
  as many), so nobody can mint sessions in a loop;
- a NUL character anywhere in the body, the path or the query gets a 422 (PostgreSQL cannot store one in text,
  and no chat message needs one), and so does a lone UTF-16 surrogate escaped in a JSON body (``\ud800`` without
  its pair: no UTF-8 text can hold it, so SQLite and PostgreSQL both fail to store it);
- every response says ``nosniff``, may not be framed, and carries a Content-Security-Policy that lets a page
  load nothing from another host (the pages need no other host: every asset is served from the package).

``MAX_ID`` bounds the integer ids a request may name: PostgreSQL's ``integer``.
"""

from __future__ import annotations

import json
import re
import threading
import time

from starlette.exceptions import HTTPException

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"content-security-policy", CSP.encode()), (b"referrer-policy", b"no-referrer")]


MAX_ID = 2**31 - 1


_ESCAPED_NUL = re.compile(rb"(\\+)u0000")


def _json_nul(body: bytes) -> bool:
    r"""Whether JSON text holds the escape of a NUL: ``\u0000`` after an odd run of backslashes (an even run is
    an escaped backslash followed by the letters "u0000", which a user may well type)."""
    return any(len(m.group(1)) % 2 for m in _ESCAPED_NUL.finditer(body))


_ESCAPED_SURROGATE = re.compile(rb"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")


def _json_lone_surrogate(body: bytes | bytearray) -> bool:
    r"""Whether JSON text holds a surrogate escape (``\ud800``-``\udfff``) that is not one half of a high-low
    pair written back to back: what decodes to a string no UTF-8 text, and so no database, can hold."""
    halves = [(m.start(), m.end(), m.group(2)[1:2].lower() in b"89ab") for m in _ESCAPED_SURROGATE.finditer(body)
              if len(m.group(1)) % 2]
    paired = set()
    for (_, end, high), (start, _, next_high) in zip(halves, halves[1:]):
        if high and not next_high and end == start:
            paired |= {end, start}
    return any(end not in paired if high else start not in paired for start, end, high in halves)


class _Refused(HTTPException):  # raised while the app reads the body: FastAPI passes HTTPExceptions through
    pass


class Guard:
    def __init__(self, app, *, max_body_bytes: int, sessions_per_minute: int):
        self.app, self.max_body_bytes = app, max_body_bytes
        self.rate, self.buckets, self.lock = sessions_per_minute / 60.0, {}, threading.Lock()
        self.burst = float(sessions_per_minute)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        if b"\x00" in scope.get("raw_path", b"") or "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"") \
                or b"%00" in scope.get("raw_path", b""):
            return await self._refuse(send_with_headers, 422, "the address holds a NUL character")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return await self._refuse(send_with_headers, 413, f"the request body has {int(declared)} bytes; the limit is {self.max_body_bytes}")
        if scope["method"] == "POST" and scope["path"] == "/api/session" and not self._allow(scope):
            return await self._refuse(send_with_headers, 429, "too many new sessions from this address; wait a minute")
        received, tail, whole = 0, b"", bytearray()

        async def checked():
            nonlocal received, tail
            message = await receive()
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                raise _Refused(413, f"the request body is over the limit of {self.max_body_bytes} bytes")
            seen, tail = tail + chunk, (tail + chunk)[-64:]  # an escape may span two chunks
            if b"\x00" in seen or _json_nul(seen):
                raise _Refused(422, "the request holds a NUL character (\\u0000), which no text field accepts")
            whole.extend(chunk)  # a pair's halves may arrive in two chunks: judged once the body is in
            if not message.get("more_body") and _json_lone_surrogate(whole):
                raise _Refused(422, "the request holds a lone UTF-16 surrogate (such as \\ud800 without its pair), "
                                    "which is not text: send the character itself, or both halves of its pair")
            return message

        try:
            await self.app(scope, checked, send_with_headers)
        except _Refused as refused:
            if not started:
                await self._refuse(send_with_headers, refused.status_code, refused.detail)

    def _allow(self, scope) -> bool:
        who, now = (scope.get("client") or ("?", 0))[0], time.monotonic()
        with self.lock:
            tokens, then = self.buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if len(self.buckets) > 100_000:  # forget addresses whose bucket has refilled, rather than grow without end
                self.buckets = {k: v for k, v in self.buckets.items() if v[0] + (now - v[1]) * self.rate < self.burst}
            self.buckets[who] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
            return tokens >= 1

    @staticmethod
    async def _refuse(send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
