"""The FastAPI application: the web chat at ``/``, its JSON API under ``/api``, an OpenAI-compatible
``/v1/chat/completions``, and admin endpoints. Routes are thin: ``ChatStore`` reads and writes,
``Turns`` runs a chat turn. Nothing below ``organic.serve`` imports this package."""


import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from organic.generate import Backend, GenerationSettings
from organic.serve.annotate import annotation_router
from organic.serve.auth import COOKIE, Caller, Signer, require_admin, secret_key, set_cookie
from organic.serve.chat import ChatStore, Consent, Forbidden, Invalid, NotFound
from organic.serve.compare import compare_router
from organic.serve.console import console_router
from organic.serve.limits import Guard
from organic.serve.router import Router
from organic.serve.turn import Event, Turns
from organic.settings import Settings
from organic.store import connect
from organic.store.bulk import ensure_model_versions
from organic.store.db import private_store
from organic.store.read import totals

STATIC = Path(__file__).parent / "static"


class SessionIn(BaseModel):
    age_confirmed: bool = Field(description="The user confirmed they are 18 or older.")
    accept_terms: bool = Field(description="The user accepted the terms (the bot may say untrue or offensive things; share no personal information).")
    save_conversations: bool = Field(False, description="Save my conversation (to improve the model).")
    allow_release: bool = Field(False, description="Allow public release of my (anonymised) conversation; needs save_conversations.")


class SessionOut(BaseModel):
    token: str
    user_id: str
    save_conversations: bool


class MessageIn(BaseModel):
    text: str


class RatingIn(BaseModel):
    thumb: Literal["up", "down"] | None = Field(description="'up', 'down', or null to withdraw the rating.")
    reason: str | None = Field(None, description="For a thumbs down: off_topic, nonsensical, rude, spam, other; on a canned safety reply: agree_sensitive, disagree_sensitive.")
    free_text: str | None = Field(None, max_length=2000)


class ReleaseIn(BaseModel):
    allow_release: bool = Field(description="Allow the public release of your saved conversations (anonymised).")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


MAX_HISTORY = 200  # messages an OpenAI client may send with one request


class ChatCompletionIn(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


def create_app(settings: Settings, backends: list[Backend], *, engine: Engine | None = None,
               shares: dict[str, float] | None = None) -> FastAPI:
    """The server on ``settings``' store (or ``engine``), serving ``backends``."""
    engine = engine or connect(settings.url)
    unsaved = private_store()  # users who chose not to save: a throwaway store, gone when the server stops
    stores = {True: ChatStore(engine), False: ChatStore(unsaved)}
    unsaved_sessions = itertools.count(1)
    key = secret_key(settings.secret_key, settings.home)
    signer = Signer(key, settings.session_days, store=engine)  # revocations live in the real store, for every user
    router = Router(backends, shares)
    turns = Turns(router, memory=settings.memory, trim_cut_off=settings.trim_cut_off)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        with engine.begin() as conn:
            ensure_model_versions(conn, router.backends)
        following = asyncio.create_task(follow_plan(engine, router, settings)) if settings.plan_refresh_s else None
        yield
        if following:
            following.cancel()
            with suppress(asyncio.CancelledError):
                await following
        unsaved.dispose()

    app = FastAPI(title="organic", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,  # both load a CDN
                  description="Chat with an open model, rate its replies, and help it learn.")
    app.add_middleware(Guard, max_body_bytes=settings.max_body_bytes, sessions_per_minute=settings.sessions_per_minute)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def error_response(request: Request, status: int, detail) -> JSONResponse:
        if request.url.path.startswith("/v1/"):  # OpenAI clients read the message from {"error": {...}}
            message = detail if isinstance(detail, str) else json.dumps(jsonable_encoder(detail))
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": status}}, status)
        return JSONResponse({"detail": jsonable_encoder(detail)}, status)

    for error, status in ((NotFound, 404), (Forbidden, 403), (Invalid, 400)):
        app.add_exception_handler(error, lambda r, e, status=status: error_response(r, status, str(e)))
    app.add_exception_handler(HTTPException, lambda r, e: error_response(r, e.status_code, e.detail))
    app.add_exception_handler(RequestValidationError, lambda r, e: error_response(r, 422, [  # the input is not echoed
        {k: v for k, v in error.items() if k in ("loc", "msg", "type")} for error in e.errors()]))

    def caller(request: Request) -> Caller:
        return signer.caller(request)

    def admin(request: Request) -> None:
        require_admin(request, settings.admin_token)

    CallerDep = Annotated[Caller, Depends(caller)]

    def within_limit(text: str, what: str = "the message") -> str:
        if len(text) > settings.max_message_chars:
            raise HTTPException(422, f"{what} has {len(text)} characters; the limit is {settings.max_message_chars}")
        return text

    def user_text(text: str) -> str:
        if not text.strip():
            raise HTTPException(422, "the message is empty")
        return within_limit(text)

    def generation(body: ChatCompletionIn | None = None) -> GenerationSettings:
        defaults = GenerationSettings(max_new_tokens=settings.max_new_tokens)
        if body is None:
            return defaults
        return GenerationSettings(
            max_new_tokens=min(body.max_tokens or defaults.max_new_tokens, settings.max_new_tokens),
            temperature=defaults.temperature if body.temperature is None else body.temperature,
            top_p=body.top_p or defaults.top_p,
            do_sample=body.temperature != 0,
            seed=body.seed,
        )

    # web UI ---------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # session --------------------------------------------------------------------------------------------
    @app.post("/api/session", response_model=SessionOut, tags=["session"])
    async def start_session(body: SessionIn, request: Request, response: Response) -> SessionOut:
        """Accept the terms and get a pseudonymous session (also set as the ``organic`` cookie)."""
        if not body.age_confirmed:
            raise HTTPException(422, "you must confirm that you are 18 or older to chat")
        if not body.accept_terms:
            raise HTTPException(422, "you must accept the terms to chat")
        if body.allow_release and not body.save_conversations:
            raise HTTPException(422, "public release needs 'save my conversation' too: nothing unsaved can be released")
        consent = Consent(True, body.save_conversations, body.allow_release)
        pseudo_id = await to_thread.run_sync(stores[body.save_conversations].create_user, consent)
        if not body.save_conversations and next(unsaved_sessions) % 100 == 0:  # expired sessions' data goes
            expired = datetime.now(timezone.utc) - timedelta(seconds=signer.max_age_s)
            await to_thread.run_sync(stores[False].prune_users, expired)
        token = signer.token(Caller(pseudo_id, body.save_conversations))
        set_cookie(response, request, COOKIE, token, signer.max_age_s)
        return SessionOut(token=token, user_id=pseudo_id, save_conversations=body.save_conversations)

    @app.get("/api/me", tags=["session"])
    async def me(who: CallerDep) -> dict:
        """Your pseudonymous id (the one `organic user delete` takes) and what you agreed to."""
        return await to_thread.run_sync(stores[who.saved].me, who.pseudo_id)

    @app.put("/api/me/consent", tags=["session"])
    async def set_consent(body: ReleaseIn, who: CallerDep) -> dict:
        """Give or withdraw consent to the public release of your saved conversations; release exports made
        from then on follow it."""
        return await to_thread.run_sync(stores[who.saved].set_release, who.pseudo_id, body.allow_release)

    @app.delete("/api/me", tags=["session"])
    async def delete_me(who: CallerDep, response: Response) -> dict:
        """Delete everything of yours: conversations, messages, ratings and labels, and your session."""
        removed = await to_thread.run_sync(stores[who.saved].delete_user, who.pseudo_id)
        await to_thread.run_sync(signer.end, who)
        response.delete_cookie(COOKIE)
        return {"deleted_conversations": removed}

    @app.delete("/api/session", tags=["session"])
    async def end_session(who: CallerDep, response: Response) -> dict:
        """Log out: this session's token is revoked (refused from now on, by every server on the store, after
        restarts too) and its cookie removed. What was saved stays (``DELETE /api/me`` deletes it)."""
        await to_thread.run_sync(signer.end, who)
        response.delete_cookie(COOKIE)
        return {"ended": True}

    # conversations --------------------------------------------------------------------------------------
    @app.post("/api/conversations", status_code=201, tags=["chat"])
    async def start_conversation(who: CallerDep) -> dict:
        """Start a conversation; the server picks its model version (live A/B by traffic share)."""
        version = router.choose()
        cid = await to_thread.run_sync(stores[who.saved].start_conversation, who.pseudo_id, version)
        return {"id": cid, "model_version": version, "messages": []}

    @app.get("/api/conversations", tags=["chat"])
    async def list_conversations(who: CallerDep) -> list[dict]:
        return await to_thread.run_sync(stores[who.saved].conversations, who.pseudo_id)

    @app.get("/api/conversations/{conversation_id}", tags=["chat"])
    async def read_conversation(conversation_id: str, who: CallerDep) -> dict:
        return await to_thread.run_sync(stores[who.saved].conversation, who.pseudo_id, conversation_id)

    @app.post("/api/conversations/{conversation_id}/messages", tags=["chat"])
    async def send_message(conversation_id: str, body: MessageIn, who: CallerDep,
                           stream: Annotated[bool, Query(description="Stream the reply as server-sent events.")] = True):
        """Send a message. With ``stream`` (default) the reply comes as server-sent events: ``human`` (the stored
        message), ``delta`` (checked reply text), ``replace`` (a canned reply replaces what was shown), ``done``
        (the stored reply); otherwise as JSON ``{"human": ..., "reply": ...}``."""
        store = stores[who.saved]
        events = turns.run(store, who.pseudo_id, conversation_id, user_text(body.text), generation())
        first = await anext(events)  # unknown or foreign conversations fail here, before any streaming starts
        if not stream:
            result = {"human": first.data}
            async for event in events:
                if event.kind == "done":
                    result["reply"] = event.data
            return result
        return StreamingResponse(_sse(_chain(first, events)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ratings and traces ---------------------------------------------------------------------------------
    @app.put("/api/messages/{message_id}/rating", tags=["feedback"])
    async def rate(message_id: str, body: RatingIn, who: CallerDep) -> dict:
        """Rate a bot message, change the rating, or withdraw it (``thumb`` null). After a thumbs down on the
        latest reply the bot asks what it should have said (``follow_up``); the next message answers it."""
        rating, follow_up = await turns.rate(stores[who.saved], who.pseudo_id, message_id, body.thumb, body.reason,
                                             body.free_text)
        return {"message_id": message_id, "rating": rating, "follow_up": follow_up}

    @app.delete("/api/messages/{message_id}/rating", tags=["feedback"])
    async def withdraw(message_id: str, who: CallerDep) -> dict:
        store = stores[who.saved]
        await to_thread.run_sync(lambda: store.rate(who.pseudo_id, message_id, None))
        return {"message_id": message_id, "rating": None}

    @app.get("/api/messages/{message_id}/trace", tags=["feedback"])
    async def trace(message_id: str, who: CallerDep) -> dict:
        """Why this reply: model version, safety verdicts, generation settings, timings, module traces."""
        return await to_thread.run_sync(stores[who.saved].trace, who.pseudo_id, message_id)

    # OpenAI-compatible ----------------------------------------------------------------------------------
    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatCompletionIn, who: CallerDep):
        """OpenAI's chat completions, stored like any web chat. Send the session token as the API key. The
        response ``id`` is the stored bot message's id: rate it with ``PUT /api/messages/{id}/rating``."""
        store = stores[who.saved]
        turns_in = [m for m in body.messages if m.role != "system"]
        if turns_in[-1:] and turns_in[-1].role != "user":
            raise HTTPException(422, "the last message must have role 'user'")
        text = user_text(turns_in[-1].content if turns_in else "")
        history = [m.model_dump() for m in turns_in[:-1]]
        if len(history) > MAX_HISTORY:
            raise HTTPException(422, f"the history has {len(history)} messages; the limit is {MAX_HISTORY}")
        for i, m in enumerate(history):
            within_limit(m["content"], f"messages[{i}]")
        convo_id = await to_thread.run_sync(lambda: _conversation_for(store, who, router, history))
        reply_id = f"chatcmpl-{convo_id[2:10]}{time.time_ns():x}"
        events = turns.run(store, who.pseudo_id, convo_id, text, generation(body), reply_id=reply_id)
        if body.stream:
            return StreamingResponse(_openai_chunks(events, reply_id), media_type="text/event-stream")
        reply = None
        async for event in events:
            if event.kind == "done":
                reply = event.data
        return _completion(reply_id, reply)

    # admin ----------------------------------------------------------------------------------------------
    @app.get("/api/admin/conversations/{conversation_id}", tags=["admin"], dependencies=[Depends(admin)])
    async def admin_conversation(conversation_id: str) -> dict:
        return await to_thread.run_sync(stores[True].conversation, None, conversation_id)

    @app.get("/api/admin/stats", tags=["admin"], dependencies=[Depends(admin)])
    async def admin_stats() -> dict:
        return {**await to_thread.run_sync(totals, engine), "serving": router.shares}

    app.include_router(annotation_router(engine, settings.admin_token, secret_key=key))
    app.include_router(compare_router(engine, settings.admin_token, secret_key=key))
    app.include_router(console_router(engine, settings, router, secret_key=key,
                                      load_backend=lambda name, path: version_backend(settings, name, path)))
    return app


async def follow_plan(engine: Engine, router: Router, settings: Settings) -> None:
    """Every ``settings.plan_refresh_s`` seconds, follow the serving plan in the store (``plan_follower``)."""
    follow = plan_follower(engine, router, settings)
    while True:
        await asyncio.sleep(settings.plan_refresh_s)
        try:
            await to_thread.run_sync(follow)
        except Exception:  # a store that is briefly unreachable: try again next time
            logging.getLogger("organic.serve").exception("reading the serving plan failed")


def plan_follower(engine: Engine, router: Router, settings: Settings) -> Callable[[], None]:
    """One look at the store: draw new conversations by the serving plan there when it changed (``organic ab`` /
    ``promote`` / ``rollback``, another server's console, ``organic loop --watch``), loading the versions this server
    does not serve yet. A plan it cannot serve is logged once and not applied."""
    from organic.store.versions import same_plan, serving, versions

    refused: dict[str, float] = {}

    def follow() -> None:
        nonlocal refused
        with router.changing:  # read and applied with no change of the console's in between (console.change)
            plan = {name: share for name, share in serving(engine).items() if share > 0}
            if not plan or same_plan(plan, router.shares) or same_plan(plan, refused):
                return
            paths = {v.name: v.path for v in versions(engine)}
            try:
                router.follow(plan, router.load_missing(plan, lambda name: version_backend(settings, name, paths.get(name))))
            except (ValueError, RuntimeError, OSError) as error:  # tried once, not reloaded every refresh
                refused = plan
                logging.getLogger("organic.serve").warning("not following the serving plan %s: %s", plan, error)

    return follow


def serving_backends(settings: Settings, engine: Engine) -> tuple[list[Backend], dict[str, float] | None]:
    """The backends of the serving plan in the store (``organic promote`` / ``organic ab``), with their shares;
    the configured model alone when no plan was ever set."""
    from organic.generate import make_backend
    from organic.store.versions import serving, versions

    plan = serving(engine)
    if not plan:
        return [make_backend(settings)], None
    paths = {v.name: v.path for v in versions(engine)}
    return [version_backend(settings, name, paths.get(name)) for name in plan], plan


def version_backend(settings: Settings, name: str, path: str | None) -> Backend:
    """The backend that serves model version ``name`` (registered with the model folder ``path``) under
    ``settings``' kind of backend."""
    from organic.generate import EchoBackend, OpenAIBackend, local_backend

    if settings.backend == "echo":
        return EchoBackend(model_version=name)
    if settings.backend == "openai":  # the OpenAI-compatible server serves each version under its name
        return OpenAIBackend(settings.openai_base_url, name, settings.openai_api_key)
    if path:
        return local_backend(settings, Path(path))
    raise ValueError(f"model version {name!r} has no model folder to serve; register it with `organic train`")


def _conversation_for(store: ChatStore, who: Caller, router: Router, history: list[dict]) -> str:
    """The caller's conversation that ``history`` continues (the client re-sends it each turn), or a new one
    that takes ``history`` as context only: turns this server did not write are never stored as messages."""
    wanted = [(m["role"], m["content"]) for m in history]
    if wanted:
        for summary in reversed(store.conversations(who.pseudo_id)[-50:]):
            convo = store.conversation(who.pseudo_id, summary["id"])
            have = [(m["role"], m["content"]) for m in convo["client_context"]]
            have += [("user" if m["sender"] == "human" else "assistant", m["text"]) for m in convo["messages"]]
            if have == wanted:
                return summary["id"]
    return store.start_conversation(who.pseudo_id, router.choose(), source="api", client_context=history or None)


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in rest:
        yield event


async def _sse(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    async for event in events:
        yield f"event: {event.kind}\ndata: {json.dumps(event.data, ensure_ascii=False)}\n\n"


def _completion(reply_id: str, reply: dict) -> dict:
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply["model_version"] or "organic",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply["text"]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def _openai_chunks(events: AsyncIterator[Event], reply_id: str) -> AsyncIterator[str]:
    def chunk(delta: dict, finish: str | None = None, model: str | None = None) -> str:
        body = {"id": reply_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model or "organic",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    shown = False
    async for event in events:
        if event.kind == "delta":
            shown = True
            yield chunk({"content": event.data["text"]})
        elif event.kind == "replace":  # a stream cannot retract text: after checked text, the canned reply follows a marker
            yield chunk({"content": ("\n[replaced by a safe reply] " if shown else "") + event.data["text"]})
        elif event.kind == "done":
            yield chunk({}, "stop", event.data["model_version"])
    yield "data: [DONE]\n\n"
