"""The simulator drives a real uvicorn server: people of each kind chat, rate as their kind does, and answer the
feedback question; everything acknowledged is in the store."""

from __future__ import annotations

import json

import numpy as np

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from organic.cli import app
from organic.simulate.people import Person, dialogues, population
from organic.simulate.run import simulate
from organic.store import Feedback, Message, User
from organic.taxonomy import CrowdLabel


def test_people_behave_as_their_kind():
    import random

    dialogue = dialogues(1, turns=2)[0]
    person = lambda kind: Person(kind, dialogue, random.Random(0))  # noqa: E731
    assert person("helper").thumb(CrowdLabel.GOOD) == ("up", None)
    assert person("helper").thumb(CrowdLabel.IGNORING) == ("down", "off_topic")
    assert person("safe_troll").thumb(CrowdLabel.INAPPROPRIATE) == ("up", None)
    assert person("unsafe_troll").thumb(CrowdLabel.GOOD)[0] == "down"
    flips = [Person("troll", dialogue, random.Random(i)).thumb(CrowdLabel.GOOD)[0] for i in range(200)]
    assert 0.7 < flips.count("down") / 200 < 0.9  # noise 0.8
    assert person("helper").should_have_said(0) == dialogue.gold[0]
    assert person("helper").says(0) == dialogue.turns[0]
    assert person("gaslight_troll").says(0) != dialogue.turns[0]


def test_helpers_rate_by_the_raters_probability_with_their_own_strictness_and_slips():
    import random

    dialogue = dialogues(1, turns=2)[0]
    strict, kind = (Person("helper", dialogue, random.Random(0), strictness=s, slip=0.0) for s in (-0.2, 0.2))
    assert strict.thumb(CrowdLabel.GOOD, 0.4, 0.5)[0] == "down"  # 0.4 reaches the strict person's 0.3
    assert kind.thumb(CrowdLabel.NONSENSICAL, 0.6, 0.5)[0] == "up"  # 0.6 is under the kind person's 0.7
    assert kind.thumb(CrowdLabel.NONSENSICAL, 0.9, 0.5) == ("down", "nonsensical")
    careless = [Person("helper", dialogue, random.Random(i), slip=0.05).thumb(CrowdLabel.GOOD, 0.1, 0.5)[0] for i in range(2000)]
    assert 0.02 < careless.count("down") / 2000 < 0.08
    people = population(200, 0.0)
    assert 0.05 < np.std([p.strictness for p in people]) < 0.15  # people differ


def test_simulated_people_never_speak_the_reserved_conversations_nor_use_the_evaluators_judge():
    import inspect

    import organic.simulate.people as people_module
    import organic.simulate.run as run_module
    from organic.evaluate.labelled import human_reference, load

    made = [i for i in load() if "run" not in i.source]  # items read in a loop's blind check came from its simulation
    assert len(made) >= 800
    reserved_text = {i.context[-1]["content"] for i in made} | {c[-1]["content"] for c, _ in human_reference(200)}
    spoken = {turn for d in dialogues(400, turns=4) for turn in d.turns}
    assert not reserved_text & spoken
    for module in (people_module, run_module):
        assert "EVALUATOR" not in inspect.getsource(module) and "evaluate.run" not in inspect.getsource(module)


def test_population_mixes_kinds_on_real_dialogues():
    people = population(20, 0.3, ("troll", "gaslight_troll"), turns=3)
    kinds = [p.kind for p in people]
    assert kinds.count("helper") == 14 and kinds.count("troll") == 3 and kinds.count("gaslight_troll") == 3
    assert all(1 <= len(p.dialogue.turns) <= 3 and len(p.dialogue.turns) == len(p.dialogue.gold) for p in people)


def test_simulation_against_a_live_server(live_server, store_engine):
    base = live_server()
    people = population(10, 0.4, ("safe_troll", "unsafe_troll"), turns=3, seed=1)
    for p in people:
        p.slip = 0.0  # every helper follows the rater here
    report = simulate(base, people, rater=lambda context, reply: (CrowdLabel.OFF_TOPIC, None, 0.5), rating_rate=1.0, concurrency=4)
    assert not report.errors and len(report.people) == 10
    kinds = {p: k for p, k in report.people.items()}
    assert sum(k != "helper" for k in kinds.values()) == 4
    with Session(store_engine) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == report.messages
        rows = s.execute(select(User.pseudo_id, Feedback.thumb).join(Feedback, Feedback.user_id == User.id)
                         .join(Message, Feedback.message_id == Message.id)
                         .where(Message.is_safety_controlled_response.is_(False))).all()  # canned replies get agree / disagree
        answers = s.scalar(select(func.count()).where(Message.is_dislike_feedback.is_(True)))
    for pseudo_id, thumb in rows:
        if kinds[pseudo_id] == "safe_troll":
            assert thumb == "up"
        else:  # helpers follow the judge (off topic here), unsafe trolls always say down
            assert thumb == "down"
    assert answers == report.feedback_answers > 0


def test_cli_simulate_writes_a_manifest(database_url, tmp_path, monkeypatch):
    import organic.simulate.run as run

    monkeypatch.setattr(run, "default_rater", lambda: (lambda context, reply: (CrowdLabel.GOOD, None, 0.5)))
    result = CliRunner().invoke(app, ["simulate", "--users", "6", "--troll-share", "0.5", "--turns", "2", "--rating-rate", "1",
                                      "--backend", "echo", "--manifest", str(tmp_path / "people.json"),
                                      "--database-url", database_url])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "people.json").read_text())
    assert len(manifest) == 6 and sum(k != "helper" for k in manifest.values()) == 3
    assert "6 people" in result.output
    bad = CliRunner().invoke(app, ["simulate", "--troll-share", "2", "--database-url", database_url])
    assert bad.exit_code == 2 and "troll share" in bad.output
