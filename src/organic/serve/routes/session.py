"""Consent and the pseudonymous session: accept the terms, read or change what you agreed to, delete your data,
log out."""

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from organic.serve.auth import COOKIE, Caller, set_cookie
from organic.serve.chat import Consent
from organic.serve.server import Server


class SessionIn(BaseModel):
    age_confirmed: bool = Field(description="The user confirmed they are 18 or older.")
    accept_terms: bool = Field(description="The user accepted the terms (the bot may say untrue or offensive things; share no personal information).")
    save_conversations: bool = Field(False, description="Save my conversation (to improve the model).")
    allow_release: bool = Field(False, description="Allow public release of my (anonymised) conversation; needs save_conversations.")


class SessionOut(BaseModel):
    token: str
    user_id: str
    save_conversations: bool


class ReleaseIn(BaseModel):
    allow_release: bool = Field(description="Allow the public release of your saved conversations (anonymised).")


def session_router(server: Server) -> APIRouter:
    api = APIRouter(tags=["session"])
    Who = Annotated[Caller, Depends(server.caller)]

    @api.post("/api/session", response_model=SessionOut)
    async def start_session(body: SessionIn, request: Request, response: Response) -> SessionOut:
        """Accept the terms and get a pseudonymous session (also set as the ``organic`` cookie)."""
        if not body.age_confirmed:
            raise HTTPException(422, "you must confirm that you are 18 or older to chat")
        if not body.accept_terms:
            raise HTTPException(422, "you must accept the terms to chat")
        if body.allow_release and not body.save_conversations:
            raise HTTPException(422, "public release needs 'save my conversation' too: nothing unsaved can be released")
        pseudo_id = await to_thread.run_sync(server.new_user, Consent(True, body.save_conversations, body.allow_release))
        token = server.signer.token(Caller(pseudo_id, body.save_conversations))
        set_cookie(response, request, COOKIE, token, server.signer.max_age_s)
        return SessionOut(token=token, user_id=pseudo_id, save_conversations=body.save_conversations)

    @api.get("/api/me")
    async def me(who: Who) -> dict:
        """Your pseudonymous id (the one `organic user delete` takes) and what you agreed to."""
        return await to_thread.run_sync(server.store(who).me, who.pseudo_id)

    @api.put("/api/me/consent")
    async def set_consent(body: ReleaseIn, who: Who) -> dict:
        """Give or withdraw consent to the public release of your saved conversations; release exports made
        from then on follow it."""
        return await to_thread.run_sync(server.store(who).set_release, who.pseudo_id, body.allow_release)

    @api.delete("/api/me")
    async def delete_me(who: Who, response: Response) -> dict:
        """Delete everything of yours: conversations, messages, ratings and labels, and your session."""
        removed = await to_thread.run_sync(server.store(who).delete_user, who.pseudo_id)
        await to_thread.run_sync(server.signer.end, who)
        response.delete_cookie(COOKIE)
        return {"deleted_conversations": removed}

    @api.delete("/api/session")
    async def end_session(who: Who, response: Response) -> dict:
        """Log out: this session's token is revoked (refused from now on, by every server on the store, after
        restarts too) and its cookie removed. What was saved stays (``DELETE /api/me`` deletes it)."""
        await to_thread.run_sync(server.signer.end, who)
        response.delete_cookie(COOKIE)
        return {"ended": True}

    return api
