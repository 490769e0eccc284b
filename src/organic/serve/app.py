"""The FastAPI application: the web chat at ``/``, its JSON API under ``/api``, an OpenAI-compatible
``/v1/chat/completions``, the annotators', raters' and operator's pages, and admin endpoints. ``create_app`` wires
the routes of ``organic.serve.routes`` to one ``Server`` (``organic.serve.server``) and answers every error the same
way; the serving plan (which versions, what share of new conversations) is followed from the store. Nothing below
``organic.serve`` imports this package."""

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from organic.generate import Backend
from organic.serve.auth import Signer, secret_key
from organic.serve.chat import Forbidden, Invalid, NotFound
from organic.serve.limits import Guard
from organic.serve.router import Router
from organic.serve.routes.admin import admin_router
from organic.serve.routes.annotate import annotation_router
from organic.serve.routes.chat import chat_router
from organic.serve.routes.compare import compare_router
from organic.serve.routes.console import console_router
from organic.serve.routes.feedback import feedback_router
from organic.serve.routes.openai import openai_router
from organic.serve.routes.session import session_router
from organic.serve.server import STATIC, Server
from organic.serve.turn import Turns
from organic.settings import Settings
from organic.store import connect
from organic.store.bulk import ensure_model_versions
from organic.store.db import private_store


def create_app(settings: Settings, backends: list[Backend], *, engine: Engine | None = None,
               shares: dict[str, float] | None = None) -> FastAPI:
    """The server on ``settings``' store (or ``engine``), serving ``backends`` (``build_app``: by the store's plan)."""
    engine = engine or connect(settings.url)
    key = secret_key(settings.secret_key, settings.home)
    router = Router(backends, shares)
    server = Server(settings, engine, private_store(), key,
                    signer=Signer(key, settings.session_days, store=engine),  # revocations live in the store, for every user
                    router=router, turns=Turns(router, memory=settings.memory, trim_cut_off=settings.trim_cut_off))

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
        server.unsaved.dispose()

    app = FastAPI(title="organic", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,  # both load a CDN
                  description="Chat with an open model, rate its replies, and help it learn.")
    app.state.server = server
    app.add_middleware(Guard, max_body_bytes=settings.max_body_bytes, sessions_per_minute=settings.sessions_per_minute)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for error, status in ((NotFound, 404), (Forbidden, 403), (Invalid, 400)):
        app.add_exception_handler(error, lambda r, e, status=status: _error(r, status, str(e)))
    app.add_exception_handler(HTTPException, lambda r, e: _error(r, e.status_code, e.detail))
    app.add_exception_handler(RequestValidationError, lambda r, e: _error(r, 422, [  # the input is not echoed
        {k: v for k, v in error.items() if k in ("loc", "msg", "type")} for error in e.errors()]))

    for routes in (chat_router, session_router, feedback_router, openai_router, admin_router):
        app.include_router(routes(server))
    app.include_router(annotation_router(engine, settings.admin_token, secret_key=key))
    app.include_router(compare_router(engine, settings.admin_token, secret_key=key))
    app.include_router(console_router(engine, settings, router, secret_key=key,
                                      load_backend=lambda name, path: version_backend(settings, name, path)))
    return app


def build_app(settings: Settings, engine: Engine) -> FastAPI:
    """The server ``organic serve`` runs: on ``engine``'s store, serving its plan (``serving_backends``)."""
    backends, shares = serving_backends(settings, engine)
    return create_app(settings, backends, engine=engine, shares=shares)


def _error(request: Request, status: int, detail) -> JSONResponse:
    if request.url.path.startswith("/v1/"):  # OpenAI clients read the message from {"error": {...}}
        message = detail if isinstance(detail, str) else json.dumps(jsonable_encoder(detail))
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": status}}, status)
    return JSONResponse({"detail": jsonable_encoder(detail)}, status)


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
