"""Fast, idempotent writes of whole conversations: the path an import takes.

Rows go in through SQLAlchemy Core in batches (one transaction a batch), not through the ORM, because an
import of the BB3x release is millions of messages. A conversation whose id is already in the store, or
whose user was deleted, is skipped, so importing the same file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select

from organic.store.models import Annotation, Conversation, DeletedUser, Feedback, Message, ModelVersion, User, utcnow
from organic.store.records import ConversationRecord, dislike_answer


@dataclass
class WriteCounts:
    conversations: int = 0
    messages: int = 0
    existing: int = 0  # already in the store (same conversation id): skipped
    deleted: int = 0  # their user asked to be deleted: skipped

    def __iadd__(self, other: WriteCounts) -> WriteCounts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def _lookup(conn: Connection, key_column, value_column, keys: Iterable) -> dict:
    keys = list(set(keys))
    found: dict = {}
    for start in range(0, len(keys), 5000):  # stays under every database's bound-parameter limit
        chunk = keys[start : start + 5000]
        found.update(conn.execute(select(key_column, value_column).where(key_column.in_(chunk))).all())
    return found


def ensure_model_versions(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named model versions, registering the ones the store has not seen."""
    names = {n for n in names if n}
    ids = _lookup(conn, ModelVersion.name, ModelVersion.id, names)
    missing = sorted(names - ids.keys())
    if missing:
        conn.execute(insert(ModelVersion), [{"name": n, "status": "retired"} for n in missing])
        ids.update(_lookup(conn, ModelVersion.name, ModelVersion.id, missing))
    return ids


def write_conversations(engine: Engine, convos: list[ConversationRecord]) -> WriteCounts:
    """Insert the conversations that are new, in one transaction; return what was written and skipped."""
    counts = WriteCounts()
    with engine.begin() as conn:
        unique: dict[str, ConversationRecord] = {}
        for convo in convos:
            if convo.external_id in unique:
                counts.existing += 1
            else:
                unique[convo.external_id] = convo
        existing = _lookup(conn, Conversation.external_id, Conversation.id, unique)
        counts.existing += len(existing)
        hashes = {DeletedUser.hash(c.user_pseudo_id): c for c in unique.values()}
        deleted = _lookup(conn, DeletedUser.pseudo_id_hash, DeletedUser.pseudo_id_hash, hashes)
        new = [c for c in unique.values()
               if c.external_id not in existing and DeletedUser.hash(c.user_pseudo_id) not in deleted]
        counts.deleted = len(unique) - len(existing) - len(new)
        if not new:
            return counts

        versions = ensure_model_versions(
            conn, {c.model_version for c in new} | {m.model_version for c in new for m in c.messages}
        )
        users = _user_ids(conn, new)
        convo_ids = conn.execute(
            insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
            [
                {
                    "external_id": c.external_id,
                    "user_id": users[c.user_pseudo_id],
                    "model_version_id": versions.get(c.model_version),
                    "split": c.split,
                    "source": c.source,
                    "extra": c.extra,
                    **({"created_at": c.created_at} if c.created_at else {}),
                }
                for c in new
            ],
        ).scalars().all()

        message_rows, owners = [], []
        for convo, convo_id in zip(new, convo_ids):
            convo.id = convo_id
            for position, m in enumerate(convo.messages):
                message_rows.append({
                    "conversation_id": convo_id,
                    "position": position,
                    "sender": m.sender,
                    "text": m.text,
                    "external_id": m.external_id,
                    "model_version_id": versions.get(m.model_version),
                    "safety": m.safety,
                    "reward": m.reward,
                    "traces": m.traces,
                    "is_safety_controlled_response": m.is_safety_controlled_response,
                    "previous_interaction_failure": m.previous_interaction_failure,
                    "from_model_crash": m.from_model_crash,
                    "is_dislike_feedback": m.is_dislike_feedback,
                    "generation": m.generation,
                    "timings": m.timings,
                    "extra": m.extra,
                    "created_at": m.created_at or convo.created_at or utcnow(),
                })
                owners.append(convo)
        message_ids = []
        if message_rows:
            message_ids = conn.execute(
                insert(Message).returning(Message.id, sort_by_parameter_order=True), message_rows
            ).scalars().all()
        feedback_rows, annotation_rows = [], []
        index = 0
        for convo in new:
            ids = message_ids[index : index + len(convo.messages)]
            index += len(convo.messages)
            for m, message_id in zip(convo.messages, ids):
                m.id = message_id
            for position, (m, message_id) in enumerate(zip(convo.messages, ids)):
                if m.thumb:
                    answer = dislike_answer(convo.messages, position) if m.thumb == "down" else None
                    feedback_rows.append({
                        "message_id": message_id,
                        "user_id": users[convo.user_pseudo_id],
                        "thumb": m.thumb,
                        "reason": m.reason,
                        "free_text": m.free_text,
                        "feedback_message_id": answer.id if answer else None,
                    })
                for label, count in m.labels.items():
                    annotation_rows.extend(
                        {"message_id": message_id, "annotator": f"import:{label}:{i}", "label": label}
                        for i in range(count)
                    )
        if feedback_rows:
            conn.execute(insert(Feedback), feedback_rows)
        if annotation_rows:
            conn.execute(insert(Annotation), annotation_rows)
        counts.conversations = len(new)
        counts.messages = len(message_rows)
    return counts


def _user_ids(conn: Connection, convos: list[ConversationRecord]) -> dict[str, int]:
    wanted = {c.user_pseudo_id: c for c in convos}
    ids = _lookup(conn, User.pseudo_id, User.id, wanted)
    missing = [c for pid, c in wanted.items() if pid not in ids]
    if missing:
        conn.execute(insert(User), [
            {
                "pseudo_id": c.user_pseudo_id,
                "age_confirmed": c.age_confirmed,
                "save_conversations": c.save_conversations,
                "allow_release": c.allow_release,
            }
            for c in missing
        ])
        ids.update(_lookup(conn, User.pseudo_id, User.id, [c.user_pseudo_id for c in missing]))
    return ids
