"""The operator's console: the ``/admin`` page and the JSON endpoints it draws from, as a router the server includes.

    app.include_router(console_router(engine, settings, router, secret_key=key, load_backend=...))

An operator logs in with the admin token (``POST /api/admin/console/login``, from the page's form: the token travels
in the request body, never in an address) and gets a signed session cookie, HttpOnly and SameSite=Strict, that
names them and carries a fingerprint of the admin token, not the token: changing ``ORGANIC_ADMIN_TOKEN`` ends every
session. Every endpoint under ``/api/admin/console/`` takes that cookie or ``Authorization: Bearer <admin token>``,
so other dashboards can read the same JSON (tag ``admin`` in the OpenAPI schema).

The panels' figures come from ``organic.serve.panels``. The A/B buttons (shares, promote, rollback) change the
serving plan through ``organic.store.versions``, as ``organic ab``, ``promote`` and ``rollback`` do, recording who
did what in the audit log (``organic.store.audit``) in the same transaction, then make this server draw new
conversations by the new plan (``Router.follow``). A plan is checked whole before anything is stored: a version the
store does not know is a 404, shares that do not add up to 1 or a version this server cannot load are a 422, and
a plan in force that is no longer the one the change was based on (``based_on``, the ``plan_id`` the A/B panel
showed; else the plan in force when the change began) is a 409: the plan in force stays. Another server process on
the same store follows a change within ``ORGANIC_PLAN_REFRESH_S`` seconds (``serve.app.follow_plan``).
"""

import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from itsdangerous import BadSignature, SignatureExpired
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from organic.generate import Backend
from organic.serve import panels
from organic.serve.auth import NAME, RoleOut, require_admin, role_serializer, set_cookie
from organic.serve.router import Router
from organic.serve.routes.annotate import annotator_tokens
from organic.serve.routes.compare import rater_tokens
from organic.serve.server import STATIC
from organic.settings import Settings
from organic.store import audit
from organic.store.versions import PlanChanged, current_plan, rollback_target, set_serving_audited, versions

COOKIE = "organic_admin"
SESSION_HOURS = 12  # an operator logs in again after this long


class LoginIn(BaseModel):
    token: str = Field(description="The admin token (ORGANIC_ADMIN_TOKEN).")
    name: str = Field("admin", description="Who is logging in, as the audit log will name them: letters, digits, _ . @ -; at most 64.")


BASED_ON = ("The plan_id of the serving plan this change is based on (GET /api/admin/console/ab): the change is refused "
            "(409) if another one came first. Without it, the plan in force when the change begins.")


class PlanIn(BaseModel):
    based_on: int | None = Field(None, description=BASED_ON)


class SharesIn(PlanIn):
    shares: dict[str, float] = Field(description="Model version name -> share of new conversations, from 0 to 1; the shares add up to 1.")


class VersionIn(PlanIn):
    version: str = Field(description="The model version to serve every new conversation.")


class LinkIn(BaseModel):
    role: Literal["annotator", "rater"] = Field(description="annotator (the /annotate page) or rater (the /compare page).")
    name: str = Field(description="The person's name as stored with each label or vote: letters, digits, _ . @ -; at most 64.")


class Sessions:
    """Console sessions: a signed cookie naming the operator, with a fingerprint of the admin token it was opened with."""

    def __init__(self, admin_token: str | None, secret_key: str):
        self.admin_token = admin_token
        self._serializer = role_serializer(secret_key, "console")
        self._fingerprint = (hmac.new(secret_key.encode(), f"console:{admin_token}".encode(), hashlib.sha256).hexdigest()
                             if admin_token else None)

    def open(self, body: LoginIn) -> str:
        """The cookie value for a login, or 403 / 422 with what to do."""
        if not self.admin_token:
            raise HTTPException(403, "admin endpoints are closed: set ORGANIC_ADMIN_TOKEN on the server to open them")
        if not secrets.compare_digest(body.token.encode(), self.admin_token.encode()):
            raise HTTPException(403, "wrong admin token")
        if not NAME.match(body.name):
            raise HTTPException(422, f"name {body.name!r} is not allowed: use 1-64 letters, digits, _ . @ -")
        return self._serializer.dumps({"who": body.name, "admin": self._fingerprint})

    def who(self, request: Request) -> str:
        """Who makes ``request`` (a FastAPI dependency): "admin" for the bearer token, the login's name for the
        console cookie; 401 or 403 otherwise."""
        if request.headers.get("authorization"):
            require_admin(request, self.admin_token)
            return "admin"
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            raise HTTPException(401, "log in at /admin, or send 'Authorization: Bearer <ORGANIC_ADMIN_TOKEN>'")
        if request.method not in ("GET", "HEAD") and not same_origin(request):  # SameSite lets sibling hosts' forms in
            raise HTTPException(403, "a console action must come from the console's own page")
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_HOURS * 3600)
        except SignatureExpired:
            raise HTTPException(401, "your console session has expired: log in again at /admin") from None
        except BadSignature:
            raise HTTPException(401, "invalid console session: log in again at /admin") from None
        if not (self._fingerprint and isinstance(data, dict) and isinstance(data.get("who"), str)
                and secrets.compare_digest(str(data.get("admin")), self._fingerprint)):
            raise HTTPException(401, "the admin token changed since you logged in: log in again at /admin")
        return data["who"]


def same_origin(request: Request) -> bool:
    """Whether a browser sent ``request`` from this server's own pages: ``Sec-Fetch-Site`` says same-origin, or,
    without it, ``Origin`` names this host. A client that sends neither (not a browser) passes."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")


def console_router(engine: Engine, settings: Settings, router: Router, *, secret_key: str,
                   load_backend: Callable[[str, str | None], Backend]) -> APIRouter:
    """The console on ``engine`` for the server whose ``router`` draws versions for new conversations;
    ``load_backend(name, path)`` makes the backend of a version it does not serve yet."""
    api = APIRouter()
    sessions = Sessions(settings.admin_token, secret_key)
    links = {"annotator": annotator_tokens(settings.admin_token, secret_key, engine),
             "rater": rater_tokens(settings.admin_token, secret_key, engine)}
    report_dir = settings.report_dir or settings.home / "report"
    Who = Annotated[str, Depends(sessions.who)]
    admin = [Depends(sessions.who)]

    # the page -------------------------------------------------------------------------------------------
    @api.get("/admin", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "console.html")

    @api.get("/admin/report", include_in_schema=False, dependencies=admin)
    def analysis_report() -> FileResponse:
        if not (report_dir / "report.html").is_file():
            raise HTTPException(404, panels.report(report_dir)["message"])
        return FileResponse(report_dir / "report.html", media_type="text/html")

    # login ----------------------------------------------------------------------------------------------
    @api.post("/api/admin/console/login", tags=["admin"])
    def login(body: LoginIn, request: Request, response: Response) -> dict:
        """Open a console session: the admin token in the body, a session cookie back (HttpOnly, SameSite=Strict)."""
        set_cookie(response, request, COOKIE, sessions.open(body), SESSION_HOURS * 3600)
        return {"who": body.name}

    @api.post("/api/admin/console/logout", tags=["admin"])
    def logout(response: Response) -> dict:
        """End the console session (its cookie is removed)."""
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return {"who": None}

    @api.get("/api/admin/console/me", tags=["admin"])
    def me(who: Who) -> dict:
        """Who the console session (or the bearer token) belongs to."""
        return {"who": who}

    # panels ---------------------------------------------------------------------------------------------
    Days = Annotated[int, Query(ge=1, le=366, description="Calendar days shown, today included.")]

    @api.get("/api/admin/console/traffic", tags=["admin"], dependencies=admin)
    async def traffic(days: Days = 30) -> dict:
        """Conversations, messages and active users per day, conversations per model version per day, and each
        version's share of the conversations."""
        return await to_thread.run_sync(panels.traffic, engine, days)

    @api.get("/api/admin/console/feedback", tags=["admin"], dependencies=admin)
    async def feedback(days: Days = 30) -> dict:
        """Thumbs up / down per bot message per version (all time and per day) with 95% Wilson intervals (percent),
        the reasons given on thumbs down, the share of canned safety and crash replies, and the latest answers to
        "what should I have said?"."""
        return await to_thread.run_sync(panels.feedback, engine, days)

    @api.get("/api/admin/console/ab", tags=["admin"], dependencies=admin)
    async def ab() -> dict:
        """The serving plan in the store and in this server, every version's status and share, and each served
        version's thumbs rates with a Fisher exact test of its thumbs-down rate against the incumbent."""
        return await to_thread.run_sync(panels.ab, engine, dict(router.shares))

    @api.get("/api/admin/console/people", tags=["admin"], dependencies=admin)
    async def people() -> dict:
        """Users by how many replies they rated."""
        return {"raters": await to_thread.run_sync(panels.raters, engine)}

    @api.get("/api/admin/console/trolls", tags=["admin"], dependencies=admin)
    async def trolls(features: Annotated[Literal["minilm", "tfidf"], Query(
            description="minilm (sentence embeddings, as `organic trolls` does) or tfidf (quick).")] = "minilm") -> dict:
        """The users troll detection flags (`organic trolls`, computed now: seconds on a large store), with why and
        their rating counts; ``message`` says when there is not enough data to judge anyone by their labels."""
        return await to_thread.run_sync(panels.trolls, engine, features)

    @api.get("/api/admin/console/annotation", tags=["admin"], dependencies=admin)
    async def annotation() -> dict:
        """Labels per annotator, votes per rater, agreement over utterances labelled several times, and Cohen's
        kappa of each pair of annotators."""
        return await to_thread.run_sync(panels.annotation, engine)

    @api.get("/api/admin/console/models", tags=["admin"], dependencies=admin)
    async def models() -> list[dict]:
        """Every registered model version: parent, method, status, share, training data size, training figures,
        and its eval table where one is recorded (``eval``: null otherwise)."""
        return await to_thread.run_sync(panels.models, engine)

    @api.get("/api/admin/console/report", tags=["admin"], dependencies=admin)
    def report() -> dict:
        """Whether the latest ``organic analyze`` report is there (``ORGANIC_REPORT_DIR``, default
        ``ORGANIC_HOME/report``), when it was written and its headline figures; the page itself is ``/admin/report``."""
        return panels.report(report_dir)

    @api.get("/api/admin/console/audit", tags=["admin"], dependencies=admin)
    async def audit_log(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
        """The audit log, newest first: who changed the serving plan or issued a link, when, and the details."""
        return await to_thread.run_sync(audit.entries, engine, limit)

    # actions --------------------------------------------------------------------------------------------
    def change(who: str, action: str, wanted: dict[str, float] | None, based_on: int | None) -> dict:
        """Check the plan ``wanted`` (None: the one before the newest, a rollback), load what this server lacks,
        store the plan with its audit log entry if the plan in force is still ``based_on`` (or the one in force now),
        and follow it. Nothing is stored unless every check passed."""
        with router.changing:  # the refresh from the store (``serve.app.follow_plan``) waits: it reads the plan after
            in_force = current_plan(engine)[0] if based_on is None else based_on
            try:
                target, undone = rollback_target(engine) if wanted is None else (wanted, None)
            except ValueError as error:
                raise HTTPException(409, str(error)) from None
            paths = {v.name: v.path for v in versions(engine)}
            unknown = sorted(set(target) - set(paths))
            if unknown:
                raise HTTPException(404, f"unknown model version(s): {', '.join(unknown)}; see the Models panel")
            served = {name: share for name, share in target.items() if share > 0}
            try:
                loaded = router.load_missing(served, lambda name: load_backend(name, paths[name]))
            except (ValueError, RuntimeError, OSError) as error:  # RuntimeError: a folder whose weights did not load
                raise HTTPException(422, f"this server cannot serve that plan: {error}; the plan in force stays") from None
            stored, note = (target, f"rollback of change {undone}") if wanted is None else (served, action)
            try:
                plan, entry = set_serving_audited(engine, stored, note, who=who, action=action, based_on=in_force,
                                                  serving_now=dict(router.shares))
            except Exception as error:
                for backend in loaded:  # loaded for a plan that was not stored: never served
                    router.release(backend)
                if isinstance(error, PlanChanged):  # the watcher, `organic ab` or another server came first
                    raise HTTPException(409, f"{error}; look at the plan in force and decide again") from None
                raise
            router.follow({name: share for name, share in plan.items() if share > 0}, loaded)
        return {"plan": plan, "serving": dict(router.shares), "audit_id": entry}

    @api.post("/api/admin/console/ab", tags=["admin"])
    async def set_shares(body: SharesIn, who: Who) -> dict:
        """Split new conversations between versions by ``shares`` (as ``organic ab``); this server follows at once."""
        return await to_thread.run_sync(change, who, "ab", _valid_shares(body.shares), body.based_on)

    @api.post("/api/admin/console/promote", tags=["admin"])
    async def promote(body: VersionIn, who: Who) -> dict:
        """Serve ``version`` to every new conversation (as ``organic promote``); this server follows at once."""
        return await to_thread.run_sync(change, who, "promote", {body.version: 1.0}, body.based_on)

    @api.post("/api/admin/console/rollback", tags=["admin"])
    async def roll_back(who: Who, body: PlanIn | None = None) -> dict:
        """Go back to the serving plan before the newest one (as ``organic rollback``); 409 when there is none."""
        return await to_thread.run_sync(change, who, "rollback", None, body and body.based_on)

    @api.post("/api/admin/console/links", tags=["admin"], response_model=RoleOut, status_code=201)
    async def issue_link(body: LinkIn, who: Who) -> RoleOut:
        """Issue an annotator link (the /annotate page) or a rater link (the /compare page) for ``name``, as
        ``POST /api/admin/annotators`` and ``POST /api/admin/raters`` do; the audit log records who got one."""
        link = links[body.role].link(body.name)
        await to_thread.run_sync(audit.record, engine, who, "issue_link", {"role": body.role, "name": body.name})
        return link

    return api


def _valid_shares(shares: dict[str, float]) -> dict[str, float]:
    """``shares`` if each is between 0 and 1 and they add up to 1, else 422 with what is wrong."""
    if not shares:
        raise HTTPException(422, "no shares given: name at least one model version")
    bad = sorted(name for name, share in shares.items() if not (math.isfinite(share) and 0 <= share <= 1))
    if bad:
        raise HTTPException(422, f"each share must be between 0 and 1; not so for {', '.join(bad)}")
    total = sum(shares.values())
    if abs(total - 1) > 1e-6:
        raise HTTPException(422, f"the shares add up to {total:.4g}; they must add up to 1")
    return shares
