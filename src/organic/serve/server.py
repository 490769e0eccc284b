"""What the chat's routes share: the settings, the two chat stores, the session signer, the model router and the
turn runner, with the request checks every route applies the same way. ``create_app`` makes one ``Server``; each
module of ``organic.serve.routes`` makes its ``APIRouter`` from it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from fastapi import HTTPException, Request
from sqlalchemy import Engine

from organic.generate import GenerationSettings
from organic.serve.auth import Caller, Signer
from organic.serve.chat import ChatStore, Consent
from organic.serve.router import Router
from organic.serve.turn import Turns
from organic.settings import Settings

STATIC = Path(__file__).parent / "static"
PRUNE_EVERY = 100  # unsaved sessions between two prunings of the throwaway store


@dataclass
class Server:
    settings: Settings
    engine: Engine  # the store
    unsaved: Engine  # users who chose not to save: a throwaway store, gone when the server stops
    key: str  # signs sessions and role tokens
    signer: Signer
    router: Router
    turns: Turns
    stores: dict[bool, ChatStore] = field(init=False)  # by "save my conversation"
    _unsaved_sessions: itertools.count = field(init=False, default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.stores = {True: ChatStore(self.engine), False: ChatStore(self.unsaved)}

    def store(self, who: Caller) -> ChatStore:
        return self.stores[who.saved]

    def caller(self, request: Request) -> Caller:
        return self.signer.caller(request)

    def new_user(self, consent: Consent) -> str:
        """A user in the store their consent picks. Every ``PRUNE_EVERY`` unsaved users, the throwaway store drops
        the users whose sessions have expired."""
        pseudo_id = self.stores[consent.save_conversations].create_user(consent)
        if not consent.save_conversations and next(self._unsaved_sessions) % PRUNE_EVERY == 0:
            self.stores[False].prune_users(datetime.now(timezone.utc) - timedelta(seconds=self.signer.max_age_s))
        return pseudo_id

    def within_limit(self, text: str, what: str = "the message") -> str:
        if len(text) > self.settings.max_message_chars:
            raise HTTPException(422, f"{what} has {len(text)} characters; the limit is {self.settings.max_message_chars}")
        return text

    def user_text(self, text: str) -> str:
        if not text.strip():
            raise HTTPException(422, "the message is empty")
        return self.within_limit(text)

    def generation(self, max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
                   seed: int | None = None) -> GenerationSettings:
        """The server's generation settings, with what a client asked for where it may ask (``max_tokens`` up to
        the server's limit; temperature 0 decodes greedily)."""
        defaults = GenerationSettings(max_new_tokens=self.settings.max_new_tokens)
        return GenerationSettings(
            max_new_tokens=min(max_tokens or defaults.max_new_tokens, defaults.max_new_tokens),
            temperature=defaults.temperature if temperature is None else temperature,
            top_p=top_p or defaults.top_p,
            do_sample=temperature != 0,
            seed=seed,
        )
