"""Feedback on a reply: rate it, change or withdraw the rating, and see why the model said it (its trace)."""

from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from organic.serve.auth import Caller
from organic.serve.server import Server


class RatingIn(BaseModel):
    thumb: Literal["up", "down"] | None = Field(description="'up', 'down', or null to withdraw the rating.")
    reason: str | None = Field(None, description="For a thumbs down: off_topic, nonsensical, rude, spam, other; on a canned safety reply: agree_sensitive, disagree_sensitive.")
    free_text: str | None = Field(None, max_length=2000)


def feedback_router(server: Server) -> APIRouter:
    api = APIRouter(tags=["feedback"])
    Who = Annotated[Caller, Depends(server.caller)]

    @api.put("/api/messages/{message_id}/rating")
    async def rate(message_id: str, body: RatingIn, who: Who) -> dict:
        """Rate a bot message, change the rating, or withdraw it (``thumb`` null). After a thumbs down on the
        latest reply the bot asks what it should have said (``follow_up``); the next message answers it."""
        rating, follow_up = await server.turns.rate(server.store(who), who.pseudo_id, message_id, body.thumb,
                                                    body.reason, body.free_text)
        return {"message_id": message_id, "rating": rating, "follow_up": follow_up}

    @api.delete("/api/messages/{message_id}/rating")
    async def withdraw(message_id: str, who: Who) -> dict:
        await to_thread.run_sync(server.store(who).rate, who.pseudo_id, message_id, None)
        return {"message_id": message_id, "rating": None}

    @api.get("/api/messages/{message_id}/trace")
    async def trace(message_id: str, who: Who) -> dict:
        """Why this reply: model version, safety verdicts, generation settings, timings, module traces."""
        return await to_thread.run_sync(server.store(who).trace, who.pseudo_id, message_id)

    return api
