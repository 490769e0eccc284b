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

Which utterance comes next (the samplings, what is never offered) and how a label is stored, one per annotator and
utterance, is ``store.annotations``.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from organic.formats.pii import Scrubber
from organic.serve.auth import RoleIn, RoleOut, RoleTokens, require_admin
from organic.serve.limits import MAX_ID
from organic.serve.server import STATIC
from organic.store import annotations
from organic.store.versions import versions
from organic.taxonomy import CrowdLabel


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
        done = annotations.labelled(engine, who)
        names = [version.name for version in versions(engine)]
        labels = [{"value": c.value, "label": c.label, "bot_only": c is CrowdLabel.OTHER} for c in CrowdLabel]
        return {"annotator": who, "labelled": done, "labels": labels, "model_versions": names}

    @router.get("/api/annotate/next", tags=["annotation"])
    def next_utterance(
        who: Annotator,
        sampling: Annotated[Literal[annotations.SAMPLINGS], Query(description="uniform, disliked (thumbs down first), or version.")] = "uniform",
        model_version: Annotated[str | None, Query(description="For sampling=version: the model version's name.")] = None,
        sender: Annotated[Literal["human", "bot"] | None, Query(description="Only human or only bot utterances.")] = None,
    ) -> dict:
        """An utterance the annotator has not labelled yet, with the conversation before it."""
        try:
            found = annotations.next_utterance(engine, who, sampling, model_version=model_version, sender=sender)
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        if found is None:
            raise HTTPException(404, f"nothing left to annotate for {who} with sampling={sampling}"
                                     + (f" and model_version={model_version}" if model_version else ""))
        return {
            "conversation_id": found.conversation_id,
            "sampling": found.sampling,
            "context": [{"sender": s, "text": scrubber.scrub(t)} for s, t in found.context],
            "message": {"id": found.message_id, "sender": found.sender, "text": scrubber.scrub(found.text),
                        "position": found.position, "model_version": found.model_version},
        }

    @router.post("/api/annotate", tags=["annotation"], status_code=201)
    def annotate(body: AnnotationIn, who: Annotator) -> dict:
        """Store the annotator's label for one utterance; each annotator labels an utterance once."""
        try:
            label = CrowdLabel.parse(body.label)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        try:
            added = annotations.add_label(engine, body.message_id, who, label)
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        if not added:
            raise HTTPException(409, f"{who} already labelled message {body.message_id}; each annotator labels an utterance once")
        return {"message_id": body.message_id, "annotator": who, "label": label.value}

    return router

