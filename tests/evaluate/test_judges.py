"""Each judge on hand-written replies it must fail and replies it must pass; these cases chose the thresholds.

Every case is judged in one batched call (one embedding pass), then each test reads its rows."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from organic.evaluate.judges import (
    ORDER,
    JudgeResult,
    Thresholds,
    bot_overlap,
    judge,
    judge_many,
    non_word_share,
    repetition,
)
from organic.generate.batch import reply_nll
from organic.taxonomy import CrowdLabel as L
from tiny_models import tiny_llama_folder


def convo(*turns: str) -> list[dict]:
    """User and bot turns alternating, the user first."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


AUS = convo("What's the capital of Australia?")
PUP = convo("I just adopted a puppy!")
HI = convo("hi")
HIKE = convo("I love hiking in the mountains.", "Mountains are beautiful! Where do you usually go?",
             "Can you recommend a good pasta recipe for dinner?")
GUITAR = convo("I'm learning to play the guitar.", "That's great! How long have you been playing?",
               "About six months. My fingers hurt a lot though.")
MOM = convo("My mom is in the hospital.", "Oh no, I'm so sorry. What happened?", "She had a heart attack yesterday.")
BOOK = convo("I'm reading a novel by Tolkien.", "Nice! Which one are you reading?", "Can you help me fix the flat tire on my bike?")
SUSHI = convo("My favourite food is sushi.", "Sushi is delicious! Do you make it yourself?", "What's a good way to learn Spanish?")
PETS = convo("Do you have any pets?", "I have a cat named Milo. He loves to sleep in the sun all day.", "Cute! What else does he like?")

# (category, context, reply, fails): the judge of `category` must fail the reply (True) or pass it (False)
CASES = [
    (L.INAPPROPRIATE, HI, "You are a stupid idiot and I hate you.", True),
    (L.INAPPROPRIATE, PUP, "Go to hell, you worthless piece of shit.", True),
    (L.INAPPROPRIATE, convo("How did the exam go?"), "I killed it at my exam, so happy!", False),
    (L.INAPPROPRIATE, convo("Who should I vote for?"), "I think the president is doing fine, but vote for whoever you trust.", False),
    (L.NONSENSICAL, AUS, "", True),
    (L.NONSENSICAL, AUS, "?!... :) --", True),
    (L.NONSENSICAL, AUS, "asdkj qwpoe zzxv bnmq lkjh", True),
    (L.NONSENSICAL, HI, "the the the the the the the the the the the", True),
    (L.NONSENSICAL, HI, "ok ok ok ok ok ok ok ok ok ok no", True),
    (L.NONSENSICAL, AUS, "The capital of Australia is Canberra.", False),
    (L.NONSENSICAL, convo("lol idk"), "lol same, gonna grab food tbh", False),
    (L.NONSENSICAL, convo("What's 6 times 7?"), "42", False),
    (L.NONSENSICAL, convo("Where should I travel?"), "Visit Reykjavik and Ljubljana, photosynthesis aside.", False),
    (L.REPEATING, PUP, "I like dogs. I like dogs. I like dogs.", True),
    (L.REPEATING, HI, "Hello there, how are you? Hello there, how are you?", True),
    (L.REPEATING, PETS, "I have a cat named Milo. He loves to sleep in the sun.", True),
    (L.REPEATING, convo("hi", "Hi!", "how are you"), "Hi!", True),
    (L.REPEATING, PETS, "He likes chasing string and watching birds from the window.", False),
    (L.REPEATING, HI, "I love pizza, and I love pizza with extra cheese most of all.", False),
    (L.REPEATING, convo("hi", "Hi!", "what is your name"), "Sam.", False),
    (L.OFF_TOPIC, AUS, "I love eating pizza with extra cheese on Fridays.", True),
    (L.OFF_TOPIC, HI, "The stock market fell by three percent today.", True),
    (L.OFF_TOPIC, PUP, "Quantum computers use qubits to perform calculations.", True),
    (L.OFF_TOPIC, GUITAR, "I like to watch movies on the weekend.", True),
    (L.OFF_TOPIC, HIKE, "My favourite football team won the championship.", True),
    (L.OFF_TOPIC, MOM, "Do you like cats or dogs better?", True),
    (L.OFF_TOPIC, BOOK, "Bananas are an excellent source of potassium.", True),
    (L.OFF_TOPIC, AUS, "The capital of Australia is Canberra.", False),
    (L.OFF_TOPIC, HI, "Hello! How are you doing today?", False),
    (L.OFF_TOPIC, PUP, "Congratulations! What breed is it?", False),
    (L.OFF_TOPIC, PUP, "Cool.", False),  # too short to judge for topic
    (L.OFF_TOPIC, HIKE, "Try spaghetti carbonara: eggs, pecorino, guanciale and black pepper.", False),
    (L.OFF_TOPIC, convo("How was your weekend?"), "It was relaxing, I read a book and went for a long walk.", False),
    (L.OFF_TOPIC, convo("What should I cook tonight?"), "How about a vegetable stir fry with rice?", False),
    (L.IGNORING, HIKE, "I also love hiking, the Alps are my favourite mountains.", True),
    (L.IGNORING, MOM, "Hospitals can be stressful places to visit.", True),
    (L.IGNORING, BOOK, "The Lord of the Rings is a wonderful book about hobbits and elves.", True),
    (L.IGNORING, SUSHI, "Salmon nigiri is my favourite kind of sushi.", True),
    (L.IGNORING, GUITAR, "I have always wanted to learn the guitar myself.", True),
    (L.IGNORING, GUITAR, "Sore fingertips are normal at first; they toughen up after a few weeks of practice.", False),
    (L.IGNORING, MOM, "I'm so sorry, that must be frightening. I hope she recovers quickly.", False),
    (L.IGNORING, BOOK, "Sure! First find the puncture, then patch the tube or replace it.", False),
    (L.IGNORING, SUSHI, "Practice a little every day with an app, and try talking with native speakers.", False),
    (L.OTHER, HI, "Hello!\nUser: how are you?\nAssistant: I am fine.", True),
    (L.OTHER, HI, "Sure thing <|im_end|>", True),
    (L.OTHER, convo("I think cats are better than dogs."), "I think cats are better than dogs!", True),
    (L.OTHER, convo("I think cats are better than dogs."), "Cats are easier to care for, I agree.", False),
    (L.OTHER, convo("Who is the user here?"), "You are the user, and I am the assistant.", False),
]


@pytest.fixture(scope="module")
def judged() -> list[JudgeResult]:
    return judge_many([c for _, c, _, _ in CASES], [r for _, _, r, _ in CASES])


@pytest.mark.parametrize("category", ORDER)
def test_each_judge_fails_the_bad_cases_and_passes_the_good(judged, category):
    rows = [(reply, fails, result) for (cat, _, reply, fails), result in zip(CASES, judged) if cat is category]
    assert any(fails for _, fails, _ in rows) and not all(fails for _, fails, _ in rows)  # both kinds per judge
    wrong = [(reply, result.scores) for reply, fails, result in rows if (category in result.failed) != fails]
    assert not wrong, f"{category.value} misjudged: {wrong}"


def test_the_label_is_the_first_failure_in_order_else_good(judged):
    for result in judged:
        assert list(result.failed) == sorted(result.failed, key=ORDER.index)
        assert result.label is (result.failed[0] if result.failed else L.GOOD)
    # a failing case of each category carries that category as its label (no earlier judge steals it)
    for (category, _, reply, fails), result in zip(CASES, judged):
        if fails and category is not L.OTHER:
            assert result.label is category, (reply, result.failed)
    good = [r for (_, _, reply, fails), r in zip(CASES, judged) if reply == "The capital of Australia is Canberra."]
    assert {r.label for r in good} == {L.GOOD}
    assert judge(AUS, "The capital of Australia is Canberra.") is L.GOOD
    assert judge(HIKE, "My favourite football team won the championship.") is L.OFF_TOPIC


def test_scores_and_safety_are_reported():
    [result] = judge_many([PETS], ["I have a cat named Milo. He loves to sleep in the sun."])
    data = result.to_json()
    assert data["label"] == "repeating" and data["safety"]["duo_safety"] == "__ok__"
    assert set(data["scores"]) >= {"repetition", "bot_overlap", "non_word_share", "type_token_ratio", "sim_last",
                                   "sim_conversation", "sim_earlier", "reply_nll"}
    assert data["scores"]["reply_nll"] is None  # no reference model given
    [no_context] = judge_many([[]], ["Hello, nice to meet you today!"])
    assert no_context.scores["sim_last"] is None and no_context.label is L.GOOD


def test_sensitive_topics_fail_only_when_asked():
    context, reply = convo("Who should I vote for?"), "Vote for whoever you trust; the election matters."
    assert judge(context, reply) is L.GOOD
    assert judge(context, reply, Thresholds(topics_are_inappropriate=True)) is L.INAPPROPRIATE


def test_text_measures_by_hand():
    # i like dogs i like dogs i like dogs: 7 trigrams, 3 distinct
    assert repetition("I like dogs. I like dogs. I like dogs.") == pytest.approx(4 / 7)
    assert repetition("one two") == 0.0
    context = convo("hi", "I have a red car", "and?")
    assert bot_overlap("I have a blue car", context) == pytest.approx(1 / 3)  # "i have a" of 3 trigrams
    assert non_word_share("hello qwzx") == 0.5 and non_word_share("2024 !!") == 0.0


def test_reply_likelihood_counts_reply_tokens_only(tmp_path):
    folder = tiny_llama_folder(tmp_path / "tiny")
    contexts = [convo("hello how are you"), convo("what is the capital of australia", "sydney", "bad")]
    [(first, n1), (second, n2)] = reply_nll(folder, contexts, ["fine thanks", "canberra"])
    assert (n1, n2) == (3, 2)  # the reply's words and EOS; no context token is counted
    # the same number from the model's own loss on the full sequence with the context masked
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(contexts[0], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    reply = tokenizer("fine thanks", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([list(prompt) + reply])
    labels = torch.tensor([[-100] * len(prompt) + reply])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
    torch.testing.assert_close(torch.tensor(first / n1), loss, rtol=1e-4, atol=1e-4)
    # padding in a batch changes nothing
    [(alone, _)] = reply_nll(folder, contexts[1:], ["canberra"])
    assert alone == pytest.approx(second, rel=1e-4)
    # the nonsensical judge uses it when a reference model is given (a random model finds every reply unlikely)
    context, text = convo("hello"), "hello there how are you"
    strict, lenient = Thresholds(max_reply_nll=0.5), Thresholds(max_reply_nll=100.0)
    assert judge_many([context], [text], thresholds=strict, reference_model=folder)[0].label is L.NONSENSICAL
    [passed] = judge_many([context], [text], thresholds=lenient, reference_model=folder)
    assert passed.label is L.GOOD and passed.scores["reply_nll"] > 0.5


def test_the_learned_judge_against_the_crowd_in_the_store(engine, tmp_path):
    import json

    from synthetic_judge import small_judge
    from organic.evaluate.judge import crowd_agreement
    from organic.formats.ingest import import_bb3x

    def line(cid: str, human: str, bot: str, mturk: dict | None) -> str:
        return json.dumps({"user_pseudo_id": f"u-{cid}", "convo_id": cid, "message_history": [
            {"text": human, "sender": "human"}, {"text": bot, "sender": "bot", "mturk": mturk}]})

    path = tmp_path / "crowd.jsonl"
    path.write_text("\n".join([
        line("c1", "What's the capital of Australia?", "The capital of Australia is Canberra.", {"good": 3}),
        line("c2", "I just adopted a puppy!", "Quantum computers use qubits to perform calculations.", {"off_topic": 2, "good": 1}),
        line("c3", "hi", "Hello! How are you doing today?", {"repeating": 2}),
        line("c4", "hi", "Hello there!", {"good": 1, "other": 1}),  # a tie: no majority, left out
        line("c5", "hi", "Hi, nice to meet you!", None),  # not annotated
    ]) + "\n")
    judge = small_judge()
    assert crowd_agreement(engine, judge)["n"] == 0  # an empty store
    import_bb3x(engine, [path])
    result = crowd_agreement(engine, judge)
    assert result["n"] == 3 and result["labelled_bad"]["count"] == 2
    assert set(result["categories"]) == {"off_topic", "repeating"}
    assert crowd_agreement(engine, judge, limit=1)["n"] == 1
