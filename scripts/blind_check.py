"""A blind check by reading of a loop's (or an eval's) result: two models' replies to the same contexts, shuffled
and with the model names hidden, labelled by people with LABELLING.md; then the bad rate by reading next to the
judge's, on the same replies.

    python scripts/blind_check.py make RUN --models base cringe-it3 --n 150
        -> RUN/blind/items.jsonl (id, context, reply: what the readers see, in a random order)
           RUN/blind/key.json    (id -> model and context: kept from the readers)
    # readers write RUN/blind/labels.jsonl: {"id": ..., "label": "good" | a kind of bad, "labeller": ...} per line
    python scripts/blind_check.py score RUN
        -> RUN/blind/report.md and report.json
    python scripts/blind_check.py fold RUN
        -> adds the read items to the judge's labelled set (src/organic/evaluate/labels/), once

``--folder NAME`` (default ``blind``) keeps a further check of the same run apart; ``make --exclude blind`` leaves
out the (model, context) pairs an earlier check already had read, so that more of a run's replies can be read and
folded into the labelled set; ``score --folder blind2 --with blind`` scores the two checks together.

RUN is a folder with ``eval/eval.json`` (``organic loop``) or ``eval.json`` (``organic eval``). A label is a
judgement made by reading; this script never writes one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import secrets
from pathlib import Path

from organic.stats import Proportion
from organic.evaluate import labelled
from organic.evaluate.judge import assess
from organic.evaluate.run import mcnemar
from organic.taxonomy import CrowdLabel


def eval_results(run: Path) -> dict:
    for path in (run / "eval" / "eval.json", run / "eval.json"):
        if path.is_file():
            return json.loads(path.read_text())
    raise SystemExit(f"error: no eval.json under {run} (run `organic loop` or `organic eval` first)")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make(run: Path, models: list[str], n: int, seed: int, folder: str = "blind", exclude: tuple[str, ...] = ()) -> None:
    results = eval_results(run)
    done = set()
    for other in exclude:
        if not (run / other / "key.json").is_file():
            raise SystemExit(f"error: no blind check to exclude under {run / other} (no key.json)")
        done |= {(w["model"], w["context"]) for w in json.loads((run / other / "key.json").read_text()).values()}
    missing = [m for m in models if m not in results["models"]]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not in the eval; it has: {', '.join(results['models'])}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(results["contexts"])), min(n, len(results["contexts"]))))
    rows = [(secrets.token_hex(5), model, i) for model in models for i in chosen if (model, i) not in done]  # ids say nothing of the model
    rng.shuffle(rows)
    out = run / folder
    out.mkdir(parents=True, exist_ok=True)
    with (out / "items.jsonl").open("w") as f:
        for ident, model, i in rows:
            f.write(json.dumps({"id": ident, "context": results["contexts"][i], "reply": results["models"][model]["replies"][i]},
                               ensure_ascii=False) + "\n")
    (out / "key.json").write_text(json.dumps({ident: {"model": model, "context": i, "reply_sha256": _digest(results["models"][model]["replies"][i])}
                                              for ident, model, i in rows}, indent=1))
    print(f"{len(rows)} blind items ({len(chosen)} contexts x {len(models)} models, {len(chosen) * len(models) - len(rows)} read before) "
          f"in {out / 'items.jsonl'}")


def read_check(run: Path, name: str = "blind") -> tuple[dict, dict, dict[str, dict]]:
    """The eval results, the key and the readers' label rows (by id) of RUN's blind check in ``name``, refused unless
    every item has exactly one label and every reply is still the one that was read."""
    results, folder = eval_results(run), run / name
    if not (folder / "key.json").is_file():
        raise SystemExit(f"error: no blind items under {folder}: run `make` first")
    if not (folder / "labels.jsonl").is_file():
        raise SystemExit(f"error: no labels yet: label {folder / 'items.jsonl'} by reading into {folder / 'labels.jsonl'}")
    key = json.loads((folder / "key.json").read_text())
    rows = {}
    for number, line in enumerate((folder / "labels.jsonl").read_text().splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if row["id"] not in key:
                raise SystemExit(f"error: labels.jsonl line {number}: unknown id {row['id']!r}")
            if row["id"] in rows:
                raise SystemExit(f"error: labels.jsonl line {number}: a second label for {row['id']!r}")
            CrowdLabel.parse(row["label"])
            rows[row["id"]] = row
    unlabelled = sorted(set(key) - set(rows))
    if unlabelled:
        raise SystemExit(f"error: {len(unlabelled)} of {len(key)} blind items have no label yet (first: {unlabelled[0]})")
    changed = [i for i, w in key.items() if _digest(results["models"][w["model"]]["replies"][w["context"]]) != w["reply_sha256"]]
    if changed:
        raise SystemExit(f"error: {len(changed)} replies in eval.json differ from those that were read (first: {changed[0]})")
    return results, key, rows


def score(run: Path, name: str = "blind", also: tuple[str, ...] = ()) -> dict:
    """The bad rate by reading next to the judge's, per model, on the contexts read for every model, from the
    check in ``name`` and the checks in ``also`` together (written to ``name``'s report)."""
    results, key, rows = read_check(run, name)
    for other in also:
        _, more_key, more_rows = read_check(run, other)
        key, rows = key | more_key, rows | more_rows
    folder = run / name
    labels = {ident: CrowdLabel.parse(row["label"]) for ident, row in rows.items()}
    by_model: dict[str, dict[int, CrowdLabel]] = {}
    for ident, where in key.items():
        by_model.setdefault(where["model"], {})[where["context"]] = labels[ident]
    models = list(dict.fromkeys(where["model"] for where in sorted(key.values(), key=lambda w: w["context"])))
    models.sort(key=list(results["models"]).index)  # the eval's order: the baseline first
    contexts = sorted(set.intersection(*(set(by_model[m]) for m in models)))  # paired: read for every model
    report = {"contexts": len(contexts), "models": {}}
    first_bad = None
    for model in models:
        read = [by_model[model][i] for i in contexts]
        judged = [CrowdLabel.parse(results["models"][model]["labels"][i]) for i in contexts]
        bad = [not label.is_good for label in read]
        report["models"][model] = {
            "read_bad": Proportion(sum(bad), len(bad)).to_json(),
            "judged_bad": Proportion(sum(not j.is_good for j in judged), len(judged)).to_json(),
            "judge_vs_reading": assess(read, judged),
            "read_labels": {label.value: sum(r is label for r in read) for label in CrowdLabel if any(r is label for r in read)},
            "paired_by_reading": None if first_bad is None else mcnemar(first_bad, bad, models[0], model),
        }
        first_bad = first_bad or bad
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    (folder / "report.md").write_text(render(report))
    print(render(report))
    return report


def fold(run: Path, into: Path = labelled.HOME, name: str = "blind") -> int:
    """Add RUN's blind items, with their readers' labels, to the labelled set the judge is fitted and tested on:
    they are labels made by reading, of replies from the models a loop trains. An item's conversation is the
    run's name and its opening message (the contexts of one simulated conversation share it), so the split
    keeps every context of a conversation on one side. Items already in the set are left as they are."""
    results, key, rows = read_check(run, name)
    items, labels = into / labelled.ITEMS.name, into / labelled.LABELS.name
    known = {json.loads(line)["id"] for line in items.read_text(encoding="utf-8").splitlines() if line.strip()}
    settings = {k: v for k, v in results.get("settings", {}).items() if k in ("max_new_tokens", "temperature", "top_p", "engine")}
    new_items, new_labels = [], []
    for ident, where in key.items():
        if ident in known:
            continue
        context = results["contexts"][where["context"]]
        conversation = f"{run.name}:{hashlib.sha1(context[0]['content'].encode()).hexdigest()[:10]}"
        new_items.append({"id": ident, "conversation": conversation, "split": labelled.split_of(conversation), "context": context,
                          "reply": results["models"][where["model"]]["replies"][where["context"]],
                          "source": {"model": where["model"], "run": run.name} | settings})
        new_labels.append({k: v for k, v in rows[ident].items() if k in ("id", "label", "labeller", "note")} | {"pass": 1})
    with items.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in new_items)
    with labels.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in new_labels)
    print(f"{len(new_items)} read items added to {items} ({len(key) - len(new_items)} were there already)")
    return len(new_items)


def render(report: dict) -> str:
    lines = [f"# Blind check by reading: {report['contexts']} contexts, each model's reply read without its name", "",
             "| model | bad by reading | bad by the judge | judge vs reading kappa | read labels | bad vs first, by reading |",
             "|---|---|---|---|---|---|"]
    for model, m in report["models"].items():
        paired = m["paired_by_reading"]
        change = "" if paired is None else (f"{paired['bad_rate_change']:+.1f} pts [{paired['ci95'][0]:+.1f}, {paired['ci95'][1]:+.1f}], "
                                            f"p = {paired['p_value']:.3g}")
        lines.append(f"| {model} | {_cell(m['read_bad'])} | {_cell(m['judged_bad'])} | {m['judge_vs_reading'].get('kappa_binary')} | "
                     f"{', '.join(f'{k} {v}' for k, v in m['read_labels'].items())} | {change} |")
    return "\n".join(lines) + "\n"


def _cell(p: dict) -> str:
    return f"{p['percent']:.1f}% [{p['ci95'][0]:.1f}, {p['ci95'][1]:.1f}] ({p['count']}/{p['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make", help="write the blind items and their key")
    made.add_argument("run", type=Path)
    made.add_argument("--models", nargs="+", required=True)
    made.add_argument("--n", type=int, default=150, help="contexts (each model's reply to each is read)")
    made.add_argument("--seed", type=int, default=0)
    made.add_argument("--exclude", nargs="*", default=[], help="blind-check folders of RUN whose (model, context) pairs are left out")
    scored = commands.add_parser("score", help="bad rate by reading next to the judge's")
    scored.add_argument("run", type=Path)
    scored.add_argument("--with", dest="also", nargs="*", default=[], help="other blind-check folders of RUN scored together with --folder")
    folded = commands.add_parser("fold", help="add the read items to the judge's labelled set")
    folded.add_argument("run", type=Path)
    folded.add_argument("--into", type=Path, default=labelled.HOME, help="the labelled set's folder (items.jsonl, labels.jsonl)")
    for command in (made, scored, folded):
        command.add_argument("--folder", default="blind", help="the blind check's folder under RUN")
    args = parser.parse_args()
    if args.command == "make":
        make(args.run, args.models, args.n, args.seed, args.folder, tuple(args.exclude))
    elif args.command == "score":
        score(args.run, args.folder, tuple(args.also))
    else:
        fold(args.run, args.into, args.folder)


if __name__ == "__main__":
    main()
