"""Crowd annotation: the ``/annotate`` page and its API, as a router the server includes.

    app.include_router(annotation_router(engine, settings.admin_token, secret_key=key))

An admin issues an annotator a token (``POST /api/admin/annotators``); the token is signed (itsdangerous) and
names the annotator, so no table of annotators is needed: anyone holding the server's key can check it. Rotating
the key (or the admin token, when no key is given) revokes every token. The annotator opens the link it comes with
(``/annotate#token=...``: the fragment never reaches the server's logs), and gets utterances one at a time, each
in its conversation up to that utterance, to label with the paper's single choice (``taxonomy.CrowdLabel``).
What an annotator reads is scrubbed of personal information first (``formats.pii.Scrubber``, the release's
scrubber, with one salt per server process so that a name stays the same stand-in throughout a conversation): the
people who chose to save their conversation agreed to its being read, not to their names and numbers being read.

Sampling: ``uniform`` (any utterance the annotator has not labelled), ``disliked`` (bot replies with a thumbs
down first, then uniform), ``version`` (bot replies of one model version). Canned replies and the bot's side of
the feedback exchange are never offered: the model did not write them. Labels are stored as ``Annotation`` rows,
one per annotator and utterance.
"""

import random
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine, and_, exists, func, select
from sqlalchemy.exc import IntegrityError

from organic.formats.pii import Scrubber
from organic.serve.auth import RoleIn, RoleOut, RoleTokens, require_admin
from organic.serve.limits import MAX_ID
from organic.serve.server import STATIC
from organic.store.models import Annotation, Conversation, Feedback, Message, ModelVersion
from organic.store.records import FEEDBACK_REQUEST, FEEDBACK_THANKS
from organic.taxonomy import CrowdLabel, Sender, Thumb

CONTEXT_MESSAGES = 30  # the most recent messages shown before the utterance to label


class AnnotationIn(BaseModel):
    message_id: int = Field(ge=1, le=MAX_ID, description="The utterance's id, as given by GET /api/annotate/next.")
    label: str = Field(description="good, inappropriate, off_topic, nonsensical, ignoring_last_turn, repeating, or other (bot replies only).")


def annotator_tokens(admin_token: str | None, secret_key: str | None, store: Engine | None = None) -> RoleTokens:
    """Annotator tokens: what ``POST /api/admin/annotators`` issues and the ``/annotate`` page takes (recorded in,
    and revocable through, ``store``)."""
    return RoleTokens("annotator", "/api/admin/annotators", "/annotate", admin_token, secret_key, store=store)


def annotation_router(engine: Engine, admin_token: str | None, *, secret_key: str | None = None) -> APIRouter:
    """The annotation page and API on ``engine``; tokens are issued with ``admin_token`` and signed with
    ``secret_key`` (the server's ``ORGANIC_SECRET_KEY``; without one, a key derived from the admin token)."""
    router = APIRouter()
    annotator = annotator_tokens(admin_token, secret_key, engine)
    scrubber = Scrubber()  # what annotators read carries no one's names or numbers

    def admin(request: Request) -> None:
        require_admin(request, admin_token)

    Annotator = Annotated[str, Depends(annotator)]

    # admin ----------------------------------------------------------------------------------------------
    @router.post("/api/admin/annotators", tags=["annotation"], dependencies=[Depends(admin)], response_model=RoleOut,
                 status_code=201)
    def issue_token(body: RoleIn) -> RoleOut:
        """Issue an annotation token for ``name`` (issuing again for the same name gives another valid token)."""
        return annotator.link(body.name)

    # the page -------------------------------------------------------------------------------------------
    @router.get("/annotate", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "annotate.html")

    @router.get("/annotate/annotate.js", include_in_schema=False)
    def script() -> FileResponse:
        return FileResponse(STATIC / "annotate.js", media_type="text/javascript")

    # the annotator's API --------------------------------------------------------------------------------
    @router.get("/api/annotate/me", tags=["annotation"])
    def me(who: Annotator) -> dict:
        """The annotator's name, how many utterances they labelled, the labels to choose from and the model versions."""
        with engine.connect() as conn:
            done = conn.execute(select(func.count()).where(Annotation.annotator == who)).scalar_one()
            versions = conn.execute(select(ModelVersion.name).order_by(ModelVersion.created_at, ModelVersion.id)).scalars().all()
        labels = [{"value": c.value, "label": c.label, "bot_only": c is CrowdLabel.OTHER} for c in CrowdLabel]
        return {"annotator": who, "labelled": done, "labels": labels, "model_versions": versions}

    @router.get("/api/annotate/next", tags=["annotation"])
    def next_utterance(
        who: Annotator,
        sampling: Annotated[Literal["uniform", "disliked", "version"], Query(description="uniform, disliked (thumbs down first), or version.")] = "uniform",
        model_version: Annotated[str | None, Query(description="For sampling=version: the model version's name.")] = None,
        sender: Annotated[Literal["human", "bot"] | None, Query(description="Only human or only bot utterances.")] = None,
    ) -> dict:
        """An utterance the annotator has not labelled yet, with the conversation before it."""
        with engine.connect() as conn:
            eligible = [~exists().where(Annotation.message_id == Message.id, Annotation.annotator == who),
                        ~Message.is_safety_controlled_response, ~Message.from_model_crash,
                        func.coalesce(Message.traces["module"].as_string(), "").not_in([FEEDBACK_REQUEST, FEEDBACK_THANKS])]
            if sender:
                eligible.append(Message.sender == sender)
            used = sampling
            if sampling == "version":
                if not model_version:
                    raise HTTPException(422, "sampling=version needs model_version=<name>")
                version_id = conn.execute(select(ModelVersion.id).where(ModelVersion.name == model_version)).scalar()
                if version_id is None:
                    raise HTTPException(404, f"no model version named {model_version!r}")
                found = _pick(conn, eligible + [Message.model_version_id == version_id, Message.sender == Sender.BOT.value])
            elif sampling == "disliked":
                disliked = exists().where(Feedback.message_id == Message.id, Feedback.thumb == Thumb.DOWN.value)
                found = _pick(conn, eligible + [disliked])
                if found is None:
                    used, found = "uniform", _pick(conn, eligible)
            else:
                found = _pick(conn, eligible)
            if found is None:
                raise HTTPException(404, f"nothing left to annotate for {who} with sampling={sampling}"
                                         + (f" and model_version={model_version}" if model_version else ""))
            return _utterance(conn, found, used, scrubber)

    @router.post("/api/annotate", tags=["annotation"], status_code=201)
    def annotate(body: AnnotationIn, who: Annotator) -> dict:
        """Store the annotator's label for one utterance; each annotator labels an utterance once."""
        try:
            label = CrowdLabel.parse(body.label)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        with engine.begin() as conn:
            sender = conn.execute(select(Message.sender).where(Message.id == body.message_id)).scalar()
            if sender is None:
                raise HTTPException(404, f"no message {body.message_id}")
            if label is CrowdLabel.OTHER and sender != Sender.BOT.value:
                raise HTTPException(422, "'other' is for bot replies only; pick the closest label for a human utterance")
        try:
            with engine.begin() as conn:
                conn.execute(Annotation.__table__.insert().values(message_id=body.message_id, annotator=who, label=label.value))
        except IntegrityError:
            raise HTTPException(409, f"{who} already labelled message {body.message_id}; each annotator labels an utterance once") from None
        return {"message_id": body.message_id, "annotator": who, "label": label.value}

    return router


def _pick(conn, conditions: list) -> int | None:
    """An eligible message id chosen at random: a random point in the id range, then the next eligible id after it
    (or before it). Two index lookups, however large the store; ids after long gaps are a little more likely."""
    where = and_(*conditions)
    low, high = conn.execute(select(func.min(Message.id), func.max(Message.id))).one()
    if low is None:
        return None
    pivot = random.randint(low, high)
    after = conn.execute(select(Message.id).where(where, Message.id >= pivot).order_by(Message.id).limit(1)).scalar()
    if after is not None:
        return after
    return conn.execute(select(Message.id).where(where, Message.id < pivot).order_by(Message.id.desc()).limit(1)).scalar()


def _utterance(conn, message_id: int, sampling: str, scrubber: Scrubber) -> dict:
    target = conn.execute(
        select(Message.id, Message.conversation_id, Message.position, Message.sender, Message.text,
               ModelVersion.name.label("version"), Conversation.external_id)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .outerjoin(ModelVersion, Message.model_version_id == ModelVersion.id)
        .where(Message.id == message_id)).one()
    before = conn.execute(
        select(Message.sender, Message.text).where(Message.conversation_id == target.conversation_id,
                                                   Message.position < target.position)
        .order_by(Message.position.desc()).limit(CONTEXT_MESSAGES)).all()
    return {
        "conversation_id": target.external_id,
        "sampling": sampling,
        "context": [{"sender": s, "text": scrubber.scrub(t)} for s, t in reversed(before)],
        "message": {"id": target.id, "sender": target.sender, "text": scrubber.scrub(target.text), "position": target.position,
                    "model_version": target.version},
    }
