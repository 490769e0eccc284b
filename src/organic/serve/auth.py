"""Pseudonymous identity: a signed token (cookie ``organic`` or ``Authorization: Bearer``) naming the user
and whether their conversations are saved. No name, no password, no e-mail."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "organic"


@dataclass(frozen=True)
class Caller:
    pseudo_id: str
    saved: bool  # conversations go to the store (True) or stay in memory (False)


def secret_key(configured: str | None, home: Path) -> str:
    """The configured key, else one generated once and kept under ``home`` (so tokens survive restarts)."""
    if configured:
        return configured
    path = home / "secret_key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Signer:
    def __init__(self, key: str):
        self._serializer = URLSafeSerializer(key, salt="organic-user")

    def token(self, caller: Caller) -> str:
        return self._serializer.dumps({"u": caller.pseudo_id, "s": caller.saved})

    def caller(self, request: Request) -> Caller:
        """The caller of ``request``, or 401 with what to do."""
        token = request.cookies.get(COOKIE)
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not token:
            raise HTTPException(401, "no session: accept the terms first (POST /api/session) and send the token "
                                     "as the 'organic' cookie or an 'Authorization: Bearer' header")
        try:
            data = self._serializer.loads(token)
        except BadSignature:
            raise HTTPException(401, "invalid session token: start a new session (POST /api/session)") from None
        return Caller(pseudo_id=data["u"], saved=bool(data["s"]))


def require_admin(request: Request, admin_token: str | None) -> None:
    if not admin_token:
        raise HTTPException(403, "admin endpoints are closed: set ORGANIC_ADMIN_TOKEN on the server to open them")
    header = request.headers.get("authorization", "")
    if not secrets.compare_digest(header.encode(), f"Bearer {admin_token}".encode()):
        raise HTTPException(403, "admin token required: send 'Authorization: Bearer <ORGANIC_ADMIN_TOKEN>'")
