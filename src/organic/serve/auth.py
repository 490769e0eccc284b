"""Pseudonymous identity: a signed token (cookie ``organic`` or ``Authorization: Bearer``) naming the user
and whether their conversations are saved. No name, no password, no e-mail.

Every kind of token is signed with its own key, derived from the server's secret key (``role_key``): user
sessions, annotator tokens and rater tokens, so that a token of one kind never verifies as another's, whatever
the salts. Each token carries an id (``j``); a revoked id (``organic.store.tokens``: ``organic token revoke``, a
user's logout) is refused with 401 wherever tokens of its kind are checked, by every server on the store."""

from __future__ import annotations

import hashlib
import os
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi import HTTPException, Request, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from organic.store import tokens as token_ids

COOKIE = "organic"


@dataclass(frozen=True)
class Caller:
    pseudo_id: str
    saved: bool  # conversations go to the store (True) or stay in memory (False)
    token_id: str | None = None  # the id of the session token the caller came with (what logging out revokes)


ROLES = token_ids.ROLES
"""The kinds of signed token, each with its own key: user (sessions), annotator, rater."""


def role_key(secret: str, role: str) -> str:
    """The key that signs ``role``'s tokens: HMAC-SHA256 of ``organic-<role>-key`` under the server's secret key.
    No token is signed with the secret key itself, and a key of one role tells nothing of another's."""
    return hmac.new(secret.encode(), f"organic-{role}-key".encode(), hashlib.sha256).hexdigest()


def role_serializer(secret: str, role: str) -> URLSafeTimedSerializer:
    """What signs and reads ``role``'s tokens: its own key (``role_key``) and the salt ``organic-<role>``."""
    return URLSafeTimedSerializer(role_key(secret, role), salt=f"organic-{role}")


def new_token_id() -> str:
    return secrets.token_hex(12)  # 96 random bits; never starts with "-", which a command line would take for an option


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
    """Signs session tokens (with the ``user`` key), which expire ``max_age_days`` after they were issued; with a
    ``store``, a session whose id was revoked there (logout, ``organic token revoke``) is refused."""

    role = "user"

    def __init__(self, key: str, max_age_days: float = 30, *, store: Engine | None = None):
        self._serializer = role_serializer(key, self.role)
        self.max_age_s = int(max_age_days * 86400)
        self.store = store

    def token(self, caller: Caller) -> str:
        return self._serializer.dumps({"u": caller.pseudo_id, "s": caller.saved, "j": new_token_id()})

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
            data, issued = self._serializer.loads(token, max_age=self.max_age_s, return_timestamp=True)
        except SignatureExpired:
            raise HTTPException(401, "your session has expired: accept the terms again (POST /api/session)") from None
        except BadSignature:
            raise HTTPException(401, "invalid session token: start a new session (POST /api/session)") from None
        if not (isinstance(data, dict) and isinstance(data.get("u"), str) and isinstance(data.get("s"), bool)
                and isinstance(data.get("j"), str)):
            raise HTTPException(401, "this token is not a session token: start a new session (POST /api/session)")
        if self.store is not None and token_ids.revoked(self.store, data["j"], self.role, issued):
            raise HTTPException(401, "this session was ended (logged out or revoked): start a new session (POST /api/session)")
        return Caller(pseudo_id=data["u"], saved=data["s"], token_id=data["j"])

    def end(self, caller: Caller) -> None:
        """Revoke the session token ``caller`` came with (logging out): refused from now on, after restarts too."""
        if self.store is not None and caller.token_id:
            token_ids.revoke(self.store, caller.token_id, self.role)


def set_cookie(response: Response, request: Request, name: str, token: str, max_age_s: int) -> None:
    """A session cookie as every page of the server sets one: HttpOnly, SameSite=Strict, and Secure when the
    request came over HTTPS (directly, or through a proxy uvicorn trusts with ``X-Forwarded-Proto``)."""
    response.set_cookie(name, token, max_age=max_age_s, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


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
    """Signed tokens naming a person an admin gave a role (annotator, rater). ``key`` is the server's secret key, or
    one derived from the admin token (never equal to it); the tokens are signed with the role's own key derived from
    it (``role_key``), so one role's token is no good for another, and each carries an id. With a ``store``, each token issued is recorded there
    (``organic token list``) and a token whose id was revoked there (``organic token revoke``) is refused."""

    def __init__(self, role: str, issue_path: str, page: str, admin_token: str | None, secret_key: str | None,
                 *, store: Engine | None = None):
        self.role, self.issue_path, self.page = role, issue_path, page
        self.key = secret_key or (hmac.new(admin_token.encode(), f"organic-{role}-tokens".encode(), hashlib.sha256).hexdigest()
                                  if admin_token else None)
        self.store = store
        self._serializer = role_serializer(self.key, role) if self.key else None

    def issue(self, name: str) -> str:
        if not NAME.match(name):
            raise HTTPException(422, f"{self.role} name {name!r} is not allowed: use 1-64 letters, digits, _ . @ - "
                                     "(starting with a letter or digit)")
        if self._serializer is None:
            raise HTTPException(403, "admin endpoints are closed: set ORGANIC_ADMIN_TOKEN on the server to open them")
        token_id = new_token_id()
        token = self._serializer.dumps({"n": name, "j": token_id})
        if self.store is not None:
            token_ids.record_issued(self.store, token_id, self.role, name)
        return token

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
            data, issued = self._serializer.loads(token, return_timestamp=True)
        except BadSignature:
            data = issued = None
        if not (isinstance(data, dict) and isinstance(data.get("n"), str) and isinstance(data.get("j"), str)):
            raise HTTPException(401, f"invalid {self.role} token: ask an admin for a new one")
        if self.store is not None and token_ids.revoked(self.store, data["j"], self.role, issued):
            raise HTTPException(401, f"this {self.role} token was revoked: ask an admin for a new one")
        return data["n"]


@dataclass(frozen=True)
class TokenInfo:
    """What a token says of itself (``read_token``)."""

    token_id: str | None
    role: str | None  # None: it verifies with none of this server's keys
    subject: str | None  # an annotator's or rater's name; None for a user's session
    issued_at: datetime | None


def read_token(token: str, secret: str) -> TokenInfo:
    """The id, role and subject of ``token`` as the server whose secret key is ``secret`` reads it (expiry aside).
    A token no role's key verifies gives its id (unchecked) and no role: a server with this key refuses it anyway."""
    for role in ROLES:
        serializer = role_serializer(secret, role)
        try:
            data, issued = serializer.loads(token, return_timestamp=True)
        except BadSignature:
            continue
        if isinstance(data, dict) and isinstance(data.get("j"), str):
            subject = data.get("n") if role != "user" else None
            return TokenInfo(data["j"], role, subject if isinstance(subject, str) else None, issued)
    _, data = URLSafeTimedSerializer("-").loads_unsafe(token)
    token_id = data.get("j") if isinstance(data, dict) else None
    return TokenInfo(token_id if isinstance(token_id, str) else None, None, None, None)
