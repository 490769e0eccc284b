"""Pairwise human evaluation (ACUTE-Eval style): the ``/compare`` page and its API, as a router the server includes.

    app.include_router(compare_router(engine, settings.admin_token, secret_key=key))

An admin creates comparison items (``POST /api/admin/comparisons``: a context and two models' replies, one or a
list; ``POST /api/admin/comparisons/from-eval``: every pair of models of an ``organic eval`` results file) and
issues raters a token (``POST /api/admin/raters``), signed like the annotators' (itsdangerous, the server's key or
one derived from the admin token), naming the rater: no account and no table of raters. Rater tokens are separate
from chat sessions on purpose: whoever rates should be chosen by the admin, as crowdworkers are, not any visitor.

A rater opens ``/compare#token=...`` and gets one item at a time (the least-voted items first, in random order
among them): the context and the two replies as sides A and B, never the model names. Which reply is on which side
is drawn per rater and item from an HMAC of the server's key, so the mapping stays on the server without being
stored until the vote, survives restarts and is the same on every worker; the vote stores the side clicked and
whether the sides were swapped. ``GET /api/admin/comparisons/results`` gives each pair's wins, losses, ties, win
rate with its 95% interval and the sign test's p-value (``organic.evaluate.pairwise``).
"""

import hashlib
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Engine

from organic.evaluate.pairwise import tally, winner
from organic.evaluate.run import comparison_items
from organic.serve.auth import RoleIn, RoleOut, RoleTokens, require_admin
from organic.serve.limits import MAX_ID
from organic.serve.server import STATIC
from organic.store import comparisons

MAX_TEXT = 20_000  # characters of one message or reply


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TEXT)


class ComparisonIn(BaseModel):
    context: list[Turn] = Field(min_length=1, description="The conversation before the two replies, oldest first.")
    model_a: str = Field(min_length=1, max_length=128)
    model_b: str = Field(min_length=1, max_length=128)
    reply_a: str = Field(max_length=MAX_TEXT, description="model_a's reply to the context.")
    reply_b: str = Field(max_length=MAX_TEXT, description="model_b's reply to the context.")
    source: str | None = Field(None, max_length=256, description="Where the item came from (free text).")

    @model_validator(mode="after")
    def _two_models(self) -> "ComparisonIn":
        if self.model_a == self.model_b:
            raise ValueError(f"model_a and model_b are both {self.model_a!r}: a comparison needs two different models")
        return self


class FromEvalIn(BaseModel):
    results: dict = Field(description="The contents of an eval.json written by `organic eval`.")
    models: list[str] | None = Field(None, description="Two model names of the results; default: every pair.")
    limit: int | None = Field(None, ge=1, description="At most this many items per pair of models.")


class VoteIn(BaseModel):
    id: int = Field(ge=1, le=MAX_ID, description="The item's id, as given by GET /api/compare/next.")
    choice: str = Field(description="A, B, or tie.")
    reason: str | None = Field(None, max_length=2000, description="Why, in the rater's words (optional).")

    @field_validator("choice")
    @classmethod
    def _choice(cls, value: str) -> str:
        choice = {"a": "A", "b": "B", "tie": "tie"}.get(value.strip().lower())
        if choice is None:
            raise ValueError(f"choice must be A, B or tie; got {value!r}")
        return choice


def rater_tokens(admin_token: str | None, secret_key: str | None, store: Engine | None = None) -> RoleTokens:
    """Rater tokens: what ``POST /api/admin/raters`` issues and the ``/compare`` page takes (recorded in, and
    revocable through, ``store``)."""
    return RoleTokens("rater", "/api/admin/raters", "/compare", admin_token, secret_key, store=store)


def compare_router(engine: Engine, admin_token: str | None, *, secret_key: str | None = None) -> APIRouter:
    """The compare page and API on ``engine`` (which must hold the ``comparisons`` tables); rater tokens are
    issued with ``admin_token`` and signed with ``secret_key`` (without one, a key derived from the admin token)."""
    router = APIRouter()
    rater = rater_tokens(admin_token, secret_key, engine)
    key = rater.key

    def admin(request: Request) -> None:
        require_admin(request, admin_token)

    def flipped(who: str, comparison_id: int) -> bool:
        """Whether ``who`` sees model_a's reply on side B of this item: a fair coin only the server can toss."""
        return bool(hmac.new(key.encode(), f"compare-side:{who}:{comparison_id}".encode(), hashlib.sha256).digest()[0] & 1)

    Rater = Annotated[str, Depends(rater)]

    # admin ----------------------------------------------------------------------------------------------
    @router.post("/api/admin/raters", tags=["compare"], dependencies=[Depends(admin)], response_model=RoleOut, status_code=201)
    def issue_token(body: RoleIn) -> RoleOut:
        """Issue a rater token for ``name`` (issuing again for the same name gives another valid token)."""
        return rater.link(body.name)

    def create(items: list[dict]) -> dict:
        ids = comparisons.create(engine, items)
        return {"created": len(ids), "ids": ids}

    @router.post("/api/admin/comparisons", tags=["compare"], dependencies=[Depends(admin)], status_code=201)
    def create_comparisons(body: ComparisonIn | list[ComparisonIn]) -> dict:
        """Create one comparison item, or a list of them."""
        items = body if isinstance(body, list) else [body]
        return create([item.model_dump(mode="json") for item in items])

    @router.post("/api/admin/comparisons/from-eval", tags=["compare"], dependencies=[Depends(admin)], status_code=201)
    def from_eval(body: FromEvalIn) -> dict:
        """Create items from an ``organic eval`` results file: each context with two models' replies (identical
        replies are left out)."""
        try:
            raw = comparison_items(body.results, body.models, body.limit)
            items = [ComparisonIn(**item).model_dump(mode="json") for item in raw]
        except (KeyError, TypeError) as error:
            raise HTTPException(422, f"not an eval.json of `organic eval` (missing {error}); send its whole contents "
                                     "as 'results'") from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        return create(items)

    @router.get("/api/admin/comparisons/results", tags=["compare"], dependencies=[Depends(admin)])
    def results() -> dict:
        """Per pair of models: wins, losses and ties (from ``model_a``'s side, names in alphabetical order), win rate
        over decided votes with its 95% Wilson interval, and the two-sided sign test's p-value; and how often each
        side was picked (a check of position bias)."""
        rows = comparisons.votes(engine)
        items = comparisons.count_items(engine)
        pairs = tally((r.model_a, r.model_b, winner(r.choice, r.flipped, r.model_a, r.model_b)) for r in rows)
        return {"items": items, "votes": len(rows), "raters": len({r.rater for r in rows}),
                "pairs": [p.to_json() for p in pairs],
                "sides": {side: sum(r.choice == side for r in rows) for side in ("A", "B", "tie")}}

    # the page -------------------------------------------------------------------------------------------
    @router.get("/compare", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "compare.html")

    @router.get("/compare/compare.js", include_in_schema=False)
    def script() -> FileResponse:
        return FileResponse(STATIC / "compare.js", media_type="text/javascript")

    # the rater's API ------------------------------------------------------------------------------------
    @router.get("/api/compare/me", tags=["compare"])
    def me(who: Rater) -> dict:
        """The rater's name, how many items they voted on and how many are left."""
        voted, left = comparisons.progress(engine, who)
        return {"rater": who, "voted": voted, "remaining": left}

    @router.get("/api/compare/next", tags=["compare"])
    def next_item(who: Rater) -> dict:
        """An item the rater has not voted on: the context and two replies as sides A and B, models hidden."""
        item = comparisons.next_item(engine, who)
        if item is None:
            raise HTTPException(404, f"nothing left to compare for {who}: thank you!")
        first, second = (item.reply_b, item.reply_a) if flipped(who, item.id) else (item.reply_a, item.reply_b)
        return {"id": item.id, "context": item.context, "replies": {"A": first, "B": second}}

    @router.post("/api/compare", tags=["compare"], status_code=201)
    def vote(body: VoteIn, who: Rater) -> dict:
        """Store the rater's choice on one item; each rater votes on an item once."""
        try:
            added = comparisons.add_vote(engine, body.id, who, body.choice, flipped=flipped(who, body.id), reason=body.reason)
        except LookupError as error:
            raise HTTPException(404, f"{error}; take the next item from GET /api/compare/next") from None
        if not added:
            raise HTTPException(409, f"{who} already voted on comparison {body.id}; each rater votes on an item once")
        return {"id": body.id, "rater": who, "choice": body.choice}

    return router
