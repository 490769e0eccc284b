"""Build the items of the labelled set (``src/organic/evaluate/labels/items.jsonl``): real contexts and replies
to them, each with the model and settings that wrote it. Labels are *not* made here: they are written by people
(or assistants working as annotators) reading each item, following shared/LABELLING.md.

    python scripts/make_label_items.py --phase base      # contexts, human next turns, base-model replies
    python scripts/make_label_items.py --phase trained   # trains CRINGE / SFT / KTO briefly, adds their replies
    python scripts/make_label_items.py --phase human --human 150   # more real human next turns, to planned contexts

Contexts come from the conversations that ``organic.evaluate.labelled.reserved`` keeps for labelling (the
simulator never uses them): chit-chat (single and multi-turn) and ShareGPT (single turn, and one exchange
followed by a short question). Each context gets replies from two conditions drawn at random; about 40% of
the chit-chat contexts also get the real human next turn.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

from organic.evaluate.labelled import ITEMS, reserved, split_of
from organic.generate import GenerationSettings, prepare_model
from organic.generate.batch import generate_replies
from organic.generate.loading import load_causal_lm
from organic.settings import Settings

BASE_CONDITIONS = [("base", 32, 0.7), ("base", 32, 1.0), ("base", 64, 0.7), ("base", 64, 1.0)]
TRAINED_CONDITIONS = [("cringe", 32, 0.7), ("sft", 32, 0.7), ("kto", 64, 0.7)]
CONDITIONS = BASE_CONDITIONS + TRAINED_CONDITIONS


def chitchat_contexts(rng: random.Random, want: int) -> list[dict]:
    from chitchat_dataset import Dataset

    out = []
    keys = sorted(k for k in Dataset() if reserved(f"chitchat:{k}"))
    rng.shuffle(keys)
    data = Dataset()
    for key in keys:
        turns = [" ".join(m["text"] for m in turn).strip() for turn in data[key]["messages"]]
        if len(turns) < 2 or any(len(t) > 400 or not t for t in turns[:12]):
            continue
        deepest = min(len(turns) - 2, 11)
        last = 0 if deepest < 1 or rng.random() < 0.35 else rng.randint(1, deepest)
        first = max(0, last - rng.choice([2, 4, 6]))  # an odd number of turns, so the context opens with the user
        context = [{"role": "user" if (last - i) % 2 == 0 else "assistant", "content": turns[i]} for i in range(first, last + 1)]
        out.append({"conversation": f"chitchat:{key}", "context": context, "human_next": turns[last + 1]})
        if len(out) >= want:
            break
    return out


def sharegpt_contexts(rng: random.Random, want: int) -> list[dict]:
    from organic.simulate.safetymix import sharegpt_records, usable

    out = []
    for record in sharegpt_records(max_bytes=40_000_000):
        key = f"sharegpt:{record.get('id')}"
        said = [(t.get("from"), t.get("value", "").strip()) for t in record.get("conversations", [])]
        if not reserved(key) or len(said) < 1 or said[0][0] != "human" or not usable(said[0][1], max_words=60):
            continue
        context = [{"role": "user", "content": said[0][1]}]
        if (rng.random() < 0.4 and len(said) >= 3 and said[1][0] == "gpt" and len(said[1][1]) <= 600
                and said[2][0] == "human" and usable(said[2][1], max_words=40)):
            context += [{"role": "assistant", "content": said[1][1]}, {"role": "user", "content": said[2][1]}]
        out.append({"conversation": key, "context": context, "human_next": None})
        if len(out) >= want:
            break
    return out


def item_id(conversation: str, model: str, tokens: int, temperature: float) -> str:
    return hashlib.sha1(f"{conversation}|{model}|{tokens}|{temperature}".encode()).hexdigest()[:10]


def plan(seed: int, chitchat: int, sharegpt: int) -> list[dict]:
    """Every context with the two conditions it is answered under, and whether its human next turn is an item."""
    rng = random.Random(seed)
    contexts = chitchat_contexts(rng, chitchat) + sharegpt_contexts(rng, sharegpt)
    for c in contexts:
        c["conditions"] = rng.sample(range(len(CONDITIONS)), 2)
        c["with_human"] = c["human_next"] is not None and rng.random() < 0.4
    return contexts


def human_item(context: dict) -> dict:
    """The real human next turn of a planned context, as an item."""
    return {"id": item_id(context["conversation"], "human", 0, 0), "conversation": context["conversation"],
            "split": split_of(context["conversation"]), "context": context["context"], "reply": context["human_next"],
            "source": {"model": "human"}}


def write_items(items: list[dict]) -> None:
    existing = {json.loads(line)["id"]: line for line in ITEMS.read_text().splitlines()} if ITEMS.is_file() else {}
    for item in items:
        existing.setdefault(item["id"], json.dumps(item, ensure_ascii=False))
    ITEMS.write_text("".join(line + "\n" for line in existing.values()))
    print(f"{ITEMS}: {len(existing)} items", file=sys.stderr)


def replies_for(folder: Path, model_name: str, jobs: list[tuple[dict, int, float]]) -> list[dict]:
    loaded = load_causal_lm(folder, padding_side="left")
    items = []
    for tokens, temperature in sorted({(t, temp) for _, t, temp in jobs}):
        batch = [c for c, t, temp in jobs if (t, temp) == (tokens, temperature)]
        settings = GenerationSettings(max_new_tokens=tokens, temperature=temperature, top_p=0.9, seed=tokens + int(10 * temperature))
        replies = generate_replies(folder, [c["context"] for c in batch], settings, model=loaded,
                                   progress=lambda n: print(".", end="", file=sys.stderr, flush=True))
        print(f" {model_name} {tokens} tokens t={temperature}: {len(batch)} replies", file=sys.stderr)
        for c, r in zip(batch, replies):
            items.append({"id": item_id(c["conversation"], model_name, tokens, temperature), "conversation": c["conversation"],
                          "split": split_of(c["conversation"]), "context": c["context"], "reply": r.text,
                          "source": {"model": model_name, "max_new_tokens": tokens, "temperature": temperature, "top_p": 0.9,
                                     "cut": r.cut, "tokens": r.tokens}})
    return items


def train_models(base: Path, out: Path, seed: int, methods: tuple[str, ...]) -> dict[str, Path]:
    """CRINGE, SFT and KTO trained briefly, as `organic train` does, on chit-chat contexts outside the labelled
    conversations: the real human next turn and the base model's replies the old rule judges pass are positives,
    the base replies they fail are negatives. The point is output shifted the way trained models shift it."""
    from chitchat_dataset import Dataset

    from organic.evaluate.judges import judge_many
    from organic.examples import Example
    from organic.learn.train import TrainConfig, train

    folders = {method: out / method for method in methods}
    if all((f / "config.json").is_file() for f in folders.values()):
        return folders
    rng = random.Random(seed + 1)
    data = Dataset()
    contexts = []
    for key in sorted(k for k in data if not reserved(f"chitchat:{k}"))[:400]:
        turns = [" ".join(m["text"] for m in turn).strip() for turn in data[key]["messages"]]
        if len(turns) < 3 or any(len(t) > 300 for t in turns[:8]):
            continue
        last = rng.randint(0, min(len(turns) - 2, 6))
        first = max(0, last - 2)
        contexts.append(([{"role": "user" if (last - i) % 2 == 0 else "assistant", "content": turns[i]}
                          for i in range(first, last + 1)], turns[last + 1], key))
        if len(contexts) >= 160:
            break
    replies = generate_replies(base, [c for c, _, _ in contexts], GenerationSettings(max_new_tokens=32, seed=seed))
    judged = judge_many([c for c, _, _ in contexts], [r.text for r in replies])
    examples = [Example(c, human, 1, key, "u", "feedback") for c, human, key in contexts]
    examples += [Example(c, r.text, int(j.label.is_good), key, "u", "thumb") for (c, _, key), r, j in zip(contexts, replies, judged)]
    print(f"training data: {sum(e.label for e in examples)} good, {sum(1 - e.label for e in examples)} bad", file=sys.stderr)
    config = TrainConfig(max_steps=24, batch_size=8, learning_rate=5e-5, max_length=192, seed=seed)
    for method in methods:
        if not (folders[method] / "config.json").is_file():
            print(train(method, examples, base, folders[method], config), file=sys.stderr)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("base", "trained", "human"), required=True)
    parser.add_argument("--human", type=int, default=150, help="human phase: how many more human next turns to add")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chitchat", type=int, default=300)
    parser.add_argument("--sharegpt", type=int, default=80)
    parser.add_argument("--work", type=Path, default=Path("/tmp/organic-label-models"))
    parser.add_argument("--methods", default="cringe,sft,kto", help="trained models to answer with, comma-separated; "
                        "SLOT=METHOD lets METHOD answer the contexts planned for SLOT (at SLOT's token limit)")
    args = parser.parse_args()
    settings = Settings()
    base = prepare_model(settings.model, settings.home)
    contexts = plan(args.seed, args.chitchat, args.sharegpt)
    print(f"{len(contexts)} contexts from {len({c['conversation'] for c in contexts})} conversations", file=sys.stderr)
    if args.phase == "human":  # the planned contexts' human next turns that are not items yet
        known = {json.loads(line)["id"] for line in ITEMS.read_text().splitlines()}
        write_items([item for item in map(human_item, (c for c in contexts if c["human_next"])) if item["id"] not in known][: args.human])
        return
    if args.phase == "base":
        items = [human_item(c) for c in contexts if c["with_human"]]
        jobs = [(c, CONDITIONS[i][1], CONDITIONS[i][2]) for c in contexts for i in c["conditions"] if CONDITIONS[i][0] == "base"]
        items += replies_for(base, "base", jobs)
        write_items(items)
        return
    answered_by = dict(pair.split("=") if "=" in pair else (pair, pair) for pair in args.methods.split(","))
    folders = train_models(base, args.work, args.seed, tuple(dict.fromkeys(answered_by.values())))
    items = []
    for name, folder in folders.items():
        jobs = [(c, CONDITIONS[i][1], CONDITIONS[i][2]) for c in contexts for i in c["conditions"]
                if answered_by.get(CONDITIONS[i][0]) == name]
        items += replies_for(folder, name, jobs)
    write_items(items)


if __name__ == "__main__":
    main()
