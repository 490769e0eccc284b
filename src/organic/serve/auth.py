"""Pseudonymous identity: a signed token (cookie ``organic`` or ``Authorization: Bearer``) naming the user
and whether their conversations are saved. No name, no password, no e-mail."""

from __future__ import annotations

import hashlib
import os
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from pydantic import BaseModel, Field

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
        # written whole into a file readable by this user only, then linked into place: a racing process either
        # links first or reads the complete key of the one that did
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it (a new key is made) or set ORGANIC_SECRET_KEY")
    return key


class Signer:
    """Signs session tokens, which expire ``max_age_days`` after they were issued."""

    def __init__(self, key: str, max_age_days: float = 30):
        self._serializer = URLSafeTimedSerializer(key, salt="organic-user")
        self.max_age_s = int(max_age_days * 86400)

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
            data = self._serializer.loads(token, max_age=self.max_age_s)
        except SignatureExpired:
            raise HTTPException(401, "your session has expired: accept the terms again (POST /api/session)") from None
        except BadSignature:
            raise HTTPException(401, "invalid session token: start a new session (POST /api/session)") from None
        if not (isinstance(data, dict) and isinstance(data.get("u"), str) and isinstance(data.get("s"), bool)):
            raise HTTPException(401, "this token is not a session token: start a new session (POST /api/session)")
        return Caller(pseudo_id=data["u"], saved=data["s"])


def require_admin(request: Request, admin_token: str | None) -> None:
    if not admin_token:
        raise HTTPException(403, "admin endpoints are closed: set ORGANIC_ADMIN_TOKEN on the server to open them")
    header = request.headers.get("authorization", "")
    if not secrets.compare_digest(header.encode(), f"Bearer {admin_token}".encode()):
        raise HTTPException(403, "admin token required: send 'Authorization: Bearer <ORGANIC_ADMIN_TOKEN>'")


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
"""A name an admin may give an annotator or a rater: 1-64 letters, digits, _ . @ -."""


class RoleIn(BaseModel):
    name: str = Field(description="The person's name as stored with each label or vote: letters, digits, _ . @ -; at most 64.")


class RoleOut(BaseModel):
    name: str
    token: str
    url: str = Field(description="The page with the token in its fragment: send this link to the person.")


class RoleTokens:
    """Signed tokens naming a person an admin gave a role (annotator, rater): no table of them is needed, and
    rotating the key revokes them all. The key is the server's secret key, or one derived from the admin token
    (never equal to it); each role signs with its own salt, so one role's token is no good for another."""

    def __init__(self, role: str, issue_path: str, page: str, admin_token: str | None, secret_key: str | None):
        self.role, self.issue_path, self.page = role, issue_path, page
        self.key = secret_key or (hmac.new(admin_token.encode(), f"organic-{role}-tokens".encode(), hashlib.sha256).hexdigest()
                                  if admin_token else None)
        self._serializer = URLSafeSerializer(self.key, salt=f"organic-{role}") if self.key else None

    def issue(self, name: str) -> str:
        if not NAME.match(name):
            raise HTTPException(422, f"{self.role} name {name!r} is not allowed: use 1-64 letters, digits, _ . @ - "
                                     "(starting with a letter or digit)")
        if self._serializer is None:
            raise HTTPException(403, "admin endpoints are closed: set ORGANIC_ADMIN_TOKEN on the server to open them")
        return self._serializer.dumps({"n": name})

    def link(self, name: str) -> RoleOut:
        """A new token for ``name`` and the page link that carries it (in the fragment, never sent to servers)."""
        token = self.issue(name)
        return RoleOut(name=name, token=token, url=f"{self.page}#token={token}")

    def __call__(self, request: Request) -> str:
        """The name in the request's bearer token (a FastAPI dependency), or 401 with what to do."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            raise HTTPException(401, f"{self.role} token required: open the link an admin issued "
                                     f"(POST {self.issue_path}) or send 'Authorization: Bearer <token>'")
        try:
            if self._serializer is None:
                raise BadSignature("no key")
            return self._serializer.loads(token)["n"]
        except (BadSignature, KeyError, TypeError):
            raise HTTPException(401, f"invalid {self.role} token: ask an admin for a new one") from None
