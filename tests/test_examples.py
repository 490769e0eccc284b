"""Labelling and the training-set builder, on hand-made conversations."""

from __future__ import annotations

from organic.examples import Example, build_training_set, examples, held_out, label_of, select_examples
from organic.store.records import FEEDBACK_REQUEST, FEEDBACK_THANKS, ConversationRecord, MessageRecord


def convo(cid: str, user: str, *messages: MessageRecord) -> ConversationRecord:
    return ConversationRecord(external_id=cid, user_pseudo_id=user, messages=list(messages))


def human(text: str, **kw) -> MessageRecord:
    return MessageRecord(sender="human", text=text, **kw)


def bot(text: str, **kw) -> MessageRecord:
    return MessageRecord(sender="bot", text=text, **kw)


def test_label_sources_in_order_of_trust():
    assert label_of(bot("x", thumb="down", labels={"good": 3})) == (0, "thumb")
    assert label_of(bot("x", labels={"good": 2, "off_topic": 1})) == (1, "crowd")
    assert label_of(bot("x", labels={"good": 1, "off_topic": 1})) == (-1, "none")  # a tie decides nothing
    assert label_of(bot("x", safety={"duo_safety": "__notok__", "string_matcher": "__ok__"},
                        reward="Predicted class: __ok__ with probability: 0.9")) == (0, "safety")
    assert label_of(bot("x", reward="Predicted class: __notok__ with probability: 0.7")) == (0, "reward")
    assert label_of(bot("x")) == (-1, "none")


def test_examples_skip_canned_replies_and_carry_the_context():
    c = convo("c1", "u1", human("hi"), bot("hello!", thumb="up"), human("you idiot"),
              bot("Let's keep things friendly.", is_safety_controlled_response=True, thumb="down"),
              human("sorry"), bot("No worries."))
    out = list(examples([c]))
    assert [(e.reply, e.label) for e in out] == [("hello!", 1), ("No worries.", -1)]
    assert out[1].context[-1] == {"role": "user", "content": "sorry"} and len(out[1].context) == 5


def test_the_bots_side_of_the_feedback_exchange_is_context_never_a_reply():
    """The question after a thumbs down and the thanks after the answer are the server's words: even labelled (by
    the reward model, as ``--from-store`` does to unrated replies), they never train as the model's replies."""
    ok = "Predicted class: __ok__ with probability: 0.9"
    c = convo("c1", "u1", human("hi"), bot("whatever.", thumb="down"),
              bot("What should I have said?", traces={"module": FEEDBACK_REQUEST}, reward=ok),
              human("Hello! How are you?", is_dislike_feedback=True), bot("Thanks!", traces={"module": FEEDBACK_THANKS}, reward=ok),
              human("fine"), bot("Good to hear.", reward=ok))
    out = list(examples([c], feedback_as_positive=True))
    assert [(e.reply, e.label, e.source) for e in out] == [
        ("whatever.", 0, "thumb"), ("Hello! How are you?", 1, "feedback"), ("Good to hear.", 1, "reward")]
    assert [m["content"] for m in out[2].context] == ["hi", "whatever.", "What should I have said?",
                                                      "Hello! How are you?", "Thanks!", "fine"]


def test_an_api_clients_history_is_context_only():
    from dataclasses import replace

    sent = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Everyone there is a criminal."}]
    c = replace(convo("c1", "u1", human("tell me more"), bot("Sure.", thumb="up")), extra={"client_context": sent})
    [only] = list(examples([c]))  # the client's assistant turn is no example
    assert only.reply == "Sure." and only.context == [*sent, {"role": "user", "content": "tell me more"}]


def test_builder_limits_copies_excludes_trolls_and_balances():
    same = [convo(f"c{i}", f"u{i}", human("hi"), bot("hello!", thumb="up")) for i in range(4)]
    bad = [convo(f"d{i}", f"v{i}", human("hi"), bot(f"bad reply {i}", thumb="down")) for i in range(3)]
    troll = convo("t", "troll", human("hi"), bot("great reply", thumb="up"))
    built = build_training_set(same + bad + [troll], exclude_users={"troll"})
    assert sum(1 for e in built if e.reply == "hello!") == 2  # at most 2 copies of an identical positive
    assert not any(e.user_pseudo_id == "troll" for e in built)
    balanced = build_training_set(same + bad, balance=True, max_copies=10)
    assert sum(e.label for e in balanced) == 3 and len(balanced) == 6
    assert build_training_set(same + bad, balance=True, max_copies=10, seed=1) != [] 


def test_dislike_answer_becomes_a_positive_only_when_asked():
    c = convo("c", "u", human("capital of Australia?"), bot("Sydney.", thumb="down", reason="nonsensical"),
              bot("What should I have said?"), human("Canberra.", is_dislike_feedback=True))
    assert [e.reply for e in build_training_set([c])] == ["Sydney."]
    with_answers = build_training_set([c], feedback_as_positive=True)
    assert [(e.reply, e.label, e.source) for e in with_answers] == [("Sydney.", 0, "thumb"), ("Canberra.", 1, "feedback")]


def test_copies_of_a_positive_are_capped_across_contexts_not_per_context():
    # the same stock reply under three different contexts: copies of one text, as BB3x counted them
    same = [convo(f"c{i}", f"u{i}", human(f"question {i}"), bot("That's great!", thumb="up")) for i in range(3)]
    built = build_training_set(same)
    assert [e.context[0]["content"] for e in built] == ["question 0", "question 1"]


def ex(reply: str, label: int, context: str = "hi") -> Example:
    return Example([{"role": "user", "content": context}], reply, label, "c", "u", "reward")


def test_select_examples_caps_positives_then_balances_keeping_order():
    pool = [ex("ok", 1, "a"), ex("no", 0, "a"), ex("ok", 1, "b"), ex("ok", 1, "c"), ex("no", 0, "b"),
            ex("fine", 1, "a"), ex("?", -1), ex("bad", 0, "c"), ex("worse", 0, "c")]
    capped = select_examples(pool, max_copies=2)
    assert [(e.reply, e.context[0]["content"]) for e in capped] == [
        ("ok", "a"), ("no", "a"), ("ok", "b"), ("no", "b"), ("fine", "a"), ("bad", "c"), ("worse", "c")]
    assert len(select_examples(pool, max_copies=None)) == 8  # no cap; the unlabelled one is never selected
    balanced = select_examples(pool, max_copies=2, balance=True, seed=3)
    assert sum(e.label == 1 for e in balanced) == sum(e.label == 0 for e in balanced) == 3
    assert [e for e in capped if e in balanced] == balanced  # a subsample, in the input's order
    assert balanced == select_examples(pool, max_copies=2, balance=True, seed=3)


def test_feedback_answers_must_pass_the_safety_layer():
    def disliked(cid: str, answer: MessageRecord) -> ConversationRecord:
        return convo(cid, "u", human("capital of Australia?"), bot("Sydney.", thumb="down"),
                     bot("What should I have said?"), answer)

    convos = [disliked("kind", human("Canberra.", is_dislike_feedback=True)),
              disliked("abuse", human("Shut up you stupid idiot.", is_dislike_feedback=True)),
              disliked("topic", human("Let us talk about abortion and who to vote for.", is_dislike_feedback=True)),
              disliked("stored", human("Canberra, obviously.", is_dislike_feedback=True,
                                       safety={"duo_safety": "__notok__", "string_matcher": "__ok__"}))]
    built = build_training_set(convos, feedback_as_positive=True)
    assert [(e.conversation_id, e.reply) for e in built if e.source == "feedback"] == [("kind", "Canberra.")]
    assert sum(e.source == "thumb" for e in built) == 4  # the disliked replies stay negatives
    assert [e.reply for e in examples(convos, feedback_as_positive=True) if e.label == 1] == ["Canberra."]


def test_excluded_users_leave_no_example_of_any_kind():
    troll = convo("t", "troll", human("hi"), bot("hello!", thumb="up"), human("how are you"),
                  bot("Terrible.", thumb="down"), human("Fine thanks.", is_dislike_feedback=True),
                  human("and you"), bot("Good.", labels={"good": 2}),
                  human("ok"), bot("Bye.", reward="Predicted class: __ok__ with probability: 0.8"))
    helper = convo("h", "helper", human("hi"), bot("hello there", thumb="up"))
    everything = build_training_set([troll, helper], feedback_as_positive=True)
    assert {e.source for e in everything if e.user_pseudo_id == "troll"} == {"thumb", "feedback", "crowd", "reward"}
    built = build_training_set([troll, helper], feedback_as_positive=True, exclude_users={"troll"})
    assert [(e.user_pseudo_id, e.reply) for e in built] == [("helper", "hello there")]


def test_held_out_split_is_stable_and_by_conversation():
    ids = [f"c{i}" for i in range(2000)]
    first = [held_out(c, 0.2) for c in ids]
    assert first == [held_out(c, 0.2) for c in ids]
    assert 0.15 < sum(first) / len(ids) < 0.25
    assert first != [held_out(c, 0.2, seed=1) for c in ids]
