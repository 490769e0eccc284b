"""Fast, idempotent writes of whole conversations: the path an import takes.

Rows go in through SQLAlchemy Core in batches (one transaction a batch), not through the ORM, because an
import of the BB3x release is millions of messages. A conversation whose id is already in the store, or
whose user was deleted, is skipped, so importing the same file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import json

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update

from organic.store.models import Annotation, Conversation, DeletedUser, Feedback, Message, ModelVersion, User, utcnow
from organic.store.records import ConversationRecord, dislike_answer
from organic.taxonomy import Thumb


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
        now = utcnow()
        _fast_insert(conn, Conversation.__table__, CONVERSATION_COLUMNS, [
            (c.external_id, users[c.user_pseudo_id], versions.get(c.model_version), c.split, c.source,
             _json(c.extra), c.created_at or now)
            for c in new
        ])
        # plain multi-row inserts without RETURNING are several times faster on both databases
        convo_ids = _lookup(conn, Conversation.external_id, Conversation.id, [c.external_id for c in new])
        message_rows = []
        for convo in new:
            convo.id = convo_ids[convo.external_id]
            created = convo.created_at or now
            message_rows.extend(
                (convo.id, position, m.sender, m.text, m.external_id, versions.get(m.model_version), _json(m.safety),
                 m.reward, _json(m.traces), m.is_safety_controlled_response, m.previous_interaction_failure,
                 m.from_model_crash, m.is_dislike_feedback, _json(m.generation), _json(m.timings), _json(m.extra),
                 m.created_at or created)
                for position, m in enumerate(convo.messages)
            )
        _fast_insert(conn, Message.__table__, MESSAGE_COLUMNS, message_rows)
        # ids are needed only for the few messages with a rating or crowd labels
        rated = [c for c in new if any(m.thumb or m.labels for m in c.messages)]
        if rated:
            ids = {}
            for start in range(0, len(rated), 2000):
                chunk = [c.id for c in rated[start : start + 2000]]
                ids.update(((cid, pos), mid) for mid, cid, pos in conn.execute(
                    select(Message.id, Message.conversation_id, Message.position).where(Message.conversation_id.in_(chunk))))
            for convo in rated:
                for position, m in enumerate(convo.messages):
                    m.id = ids[(convo.id, position)]
        feedback_rows, annotation_rows = [], []
        for convo in rated:
            for position, m in enumerate(convo.messages):
                if m.thumb:
                    answer = dislike_answer(convo.messages, position) if m.thumb == Thumb.DOWN else None
                    feedback_rows.append({
                        "message_id": m.id,
                        "user_id": users[convo.user_pseudo_id],
                        "thumb": m.thumb,
                        "reason": m.reason,
                        "free_text": m.free_text,
                        "feedback_message_id": answer.id if answer else None,
                    })
                for label, count in m.labels.items():
                    annotation_rows.extend(
                        {"message_id": m.id, "annotator": f"import:{label}:{i}", "label": label}
                        for i in range(count)
                    )
        if feedback_rows:
            conn.execute(insert(Feedback), feedback_rows)
        if annotation_rows:
            conn.execute(insert(Annotation), annotation_rows)
        counts.conversations = len(new)
        counts.messages = len(message_rows)
    return counts


CONVERSATION_COLUMNS = ("external_id", "user_id", "model_version_id", "split", "source", "extra", "created_at")
MESSAGE_COLUMNS = (
    "conversation_id", "position", "sender", "text", "external_id", "model_version_id", "safety", "reward", "traces",
    "is_safety_controlled_response", "previous_interaction_failure", "from_model_crash", "is_dislike_feedback",
    "generation", "timings", "extra", "created_at",
)


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)


def _fast_insert(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert rows through the driver directly: COPY on PostgreSQL, executemany on SQLite.

    SQLAlchemy's per-parameter processing costs more than the database itself at import scale, so the
    caller passes values the way SQLAlchemy would store them (JSON as text); datetimes, the last column,
    are put in SQLite's text format here.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    assert columns[-1] == "created_at"
    to_text = table.c.created_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    cache: dict = {}  # a batch shares few distinct timestamps
    rows = [(*row[:-1], cache.get(row[-1]) or cache.setdefault(row[-1], to_text(row[-1]))) for row in rows]
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)


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


def set_rewards(engine: Engine, rewards: dict[int, str]) -> None:
    """Write reward-model verdicts (BB3x ``reward`` strings) onto messages, by message id."""
    if not rewards:
        return
    table = Message.__table__
    statement = update(table).where(table.c.id == bindparam("message_id")).values(reward=bindparam("verdict"))
    with engine.begin() as conn:
        conn.execute(statement, [{"message_id": k, "verdict": v} for k, v in rewards.items()])
