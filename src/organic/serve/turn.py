"""One chat turn: store the user's message, check it, generate a reply under the safety layer, store it.

The reply streams to the client a sentence at a time, and each piece is checked before it leaves: the
client never sees unchecked model text. If a later piece fails, the client is told to replace what it
showed with a canned safe reply, and the canned reply is what gets stored, flagged as in BB3x. A model
failure gives a canned reply flagged ``from_model_crash``, never an error page. After a thumbs down the
bot asks what it should have said; the user's next message is stored as dislike feedback and answered
with thanks instead of a model reply.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from organic.generate import GenerationError, GenerationSettings
from organic.generate.base import CUT_OFF, unfinished
from organic.safety import canned_reply, check
from organic.serve.chat import ChatStore
from organic.serve.memory import Recall, recall
from organic.serve.router import Router
from organic.store.records import FEEDBACK_REQUEST, FEEDBACK_THANKS
from organic.taxonomy import InteractionFailure, Sender, Thumb

FEEDBACK_QUESTION = "Sorry about that! What should I have said instead?"
FEEDBACK_THANKS_REPLY = "Thanks, that helps me learn! What else would you like to talk about?"
SENTENCE_END = re.compile(r"[.!?\n]\s*$")
_INNER_END = re.compile(r"""[.!?…][)"'\]]*(?=\s)""")  # a sentence that ends inside a piece of text
CHECK_EVERY_CHARS = 120  # a long run without sentence end is checked and sent anyway


@dataclass
class Event:
    kind: str  # human (the stored user message), delta (checked reply text), replace (canned text), done (stored reply)
    data: dict[str, Any]


class Turns:
    def __init__(self, router: Router, *, rng: random.Random | None = None, memory: bool = False,
                 trim_cut_off: bool = True):
        self.router = router
        self.trim_cut_off = trim_cut_off  # a reply cut off mid-sentence ends at its last whole sentence
        self.rng = rng or random.Random()
        self.memory = memory  # long-term memory (``organic.serve.memory``)

    async def run(self, store: ChatStore, pseudo_id: str, conversation_id: str, text: str,
                  settings: GenerationSettings, *, reply_id: str | None = None) -> AsyncIterator[Event]:
        # one read of the conversation and the safety check of the message, side by side: every store round
        # trip before generation delays the reply
        state, verdict = await asyncio.gather(
            to_thread.run_sync(store.turn_state, pseudo_id, conversation_id), to_thread.run_sync(check, text))
        human = await to_thread.run_sync(lambda: store.add_message(
            pseudo_id, conversation_id, Sender.HUMAN, text, safety=verdict.to_json(),
            is_dislike_feedback=state.awaiting_feedback))
        yield Event("human", human)

        if state.awaiting_feedback:
            reply = await to_thread.run_sync(lambda: store.add_message(
                pseudo_id, conversation_id, Sender.BOT, FEEDBACK_THANKS_REPLY, traces={"module": FEEDBACK_THANKS},
                external_id=reply_id))
            yield Event("delta", {"text": FEEDBACK_THANKS_REPLY})
            yield Event("done", reply)
            return

        backend = self.router.backend(state.model_version)
        timings: dict[str, float | str] = {}
        memory = None
        if self.memory:
            memory = Recall(state.memories or {})  # a blocked message recalls nothing: no model answers it
            if not verdict.blocked:
                started = time.perf_counter()
                try:
                    memory = await to_thread.run_sync(lambda: recall(state.memories, text, safe=True))
                except Exception as error:  # the reply goes on without memory, and says why in its timings
                    timings["memory_error"] = f"{type(error).__name__}: {error}"[:500]
                timings["memory_s"] = round(time.perf_counter() - started, 4)
        chat = [*state.history, {"role": "user", "content": memory.prompt(text) if memory else text}]
        started = time.perf_counter()
        failure: InteractionFailure | None = InteractionFailure.UNSAFE_HUMAN if verdict.blocked else None
        topic = verdict.sensitive_topic
        shown, pending, bot_verdict = "", "", None
        cut: dict[str, Any] | None = None  # set when the reply stopped at its token limit
        if failure is None:
            try:
                async for delta in _stream(self.router.stream(backend, chat, settings)):
                    if delta is CUT_OFF:
                        cut = {}
                        continue
                    timings.setdefault("first_token_s", round(time.perf_counter() - started, 4))
                    pending += delta
                    if SENTENCE_END.search(pending) or len(pending) >= CHECK_EVERY_CHARS:
                        bot_verdict = await to_thread.run_sync(check, shown + pending)
                        if bot_verdict.blocked:
                            failure, topic = InteractionFailure.UNSAFE_BOT, bot_verdict.sensitive_topic
                            break
                        yield Event("delta", {"text": pending})
                        shown, pending = shown + pending, ""
                if failure is None and cut is not None and self.trim_cut_off:
                    pending, cut = _whole_sentences(shown, pending)
                if failure is None and pending:
                    bot_verdict = await to_thread.run_sync(check, shown + pending)
                    if bot_verdict.blocked:
                        failure, topic = InteractionFailure.UNSAFE_BOT, bot_verdict.sensitive_topic
                    else:
                        yield Event("delta", {"text": pending})
                        shown += pending
                if failure is None and not shown.strip():
                    raise GenerationError("the model returned an empty reply")
            except GenerationError as error:
                failure, timings["error"] = InteractionFailure.MODEL_CRASH, str(error)[:500]
        timings["total_s"] = round(time.perf_counter() - started, 4)

        fields: dict[str, Any] = {
            "generation": settings.to_json(),
            "timings": timings,
            "traces": {"backend": backend.name},
        }
        if failure is None:
            reply_text = shown.strip()
            fields["safety"] = bot_verdict.to_json()
            if memory is not None:
                memory.remember_reply(reply_text)
        else:
            reply_text = canned_reply(failure, topic, self.rng)
            yield Event("replace", {"text": reply_text})
            fields |= {
                "safety": (bot_verdict or await to_thread.run_sync(check, reply_text)).to_json(),
                "is_safety_controlled_response": True,
                "previous_interaction_failure": failure.value,
                "from_model_crash": failure is InteractionFailure.MODEL_CRASH,
            }
            fields["traces"]["blocked"] = {"failure": failure.value, "topic": topic, "candidate_chars": len(shown + pending)}
        if cut is not None:
            fields["traces"]["cut_off"] = cut
        if memory is not None:
            fields["traces"] |= memory.traces()
        reply = await to_thread.run_sync(lambda: store.add_message(
            pseudo_id, conversation_id, Sender.BOT, reply_text, model_version=backend.model_version,
            external_id=reply_id, **fields))
        yield Event("done", reply)

    async def rate(self, store: ChatStore, pseudo_id: str, message_id: str, thumb: str | None, reason: str | None = None,
                   free_text: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Rate a bot reply (``ChatStore.rate``), then the feedback rule: after a thumbs down on a reply the model
        wrote (not a canned safety reply), the bot asks what it should have said (``ask_for_feedback``). Returns the
        rating and the question, if one was asked."""
        rating = await to_thread.run_sync(lambda: store.rate(pseudo_id, message_id, thumb, reason, free_text))
        if thumb != Thumb.DOWN:
            return rating, None
        conversation_id, canned = await to_thread.run_sync(store.rated_reply, pseudo_id, message_id)
        return rating, None if canned else await self.ask_for_feedback(store, pseudo_id, conversation_id, after=message_id)

    async def ask_for_feedback(self, store: ChatStore, pseudo_id: str, conversation_id: str,
                               after: str) -> dict[str, Any] | None:
        """The bot's "what should I have said?" turn right after the disliked message ``after``: asked once,
        however many thumbs down arrive at once (the same question comes back); None when the conversation has
        moved on."""
        return await to_thread.run_sync(lambda: store.add_message(
            pseudo_id, conversation_id, Sender.BOT, FEEDBACK_QUESTION, after=after, traces={"module": FEEDBACK_REQUEST}))


def _whole_sentences(shown: str, pending: str) -> tuple[str, dict[str, Any]]:
    """A reply cut off at its token limit, mid-sentence ("I'm also a fan"), ends at its last whole sentence
    instead, when it has one. ``shown`` has been sent; ``pending``, its unsent tail, is what can go.
    Returns what of ``pending`` to keep and what to record about the cut."""
    ends = list(_INNER_END.finditer(pending))
    if not unfinished(shown + pending):
        keep = pending  # the limit fell right at a sentence's end
    elif ends:
        keep = pending[: ends[-1].end()]
    elif shown.strip() and not unfinished(shown):
        keep = ""
    else:
        keep = pending  # no whole sentence to end at: the reply stays as it is
    return keep, {"trimmed_chars": len(pending) - len(keep)}


async def _stream(deltas: AsyncIterator[str]) -> AsyncIterator[str]:
    """A backend's stream, with any failure surfaced as ``GenerationError``."""
    try:
        async for delta in deltas:
            yield delta
    except GenerationError:
        raise
    except Exception as error:  # a backend bug is a model crash to the user, and is recorded in the timings
        raise GenerationError(f"{type(error).__name__}: {error}") from error
