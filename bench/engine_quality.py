"""Does CTranslate2 int8 write replies as good as transformers float32? The judged bad rate of each engine on the
same contexts, with 95% intervals, and the paired test between them.

    python bench/engine_quality.py [--contexts 200] [--max-new-tokens 48]

Contexts are those of the labelled set (one per conversation, never trained on); both engines sample with the
same settings and seed; the shipped judge labels every reply; timings of both engines are printed too.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from organic.stats import Proportion  # noqa: E402
from organic.evaluate import labelled  # noqa: E402
from organic.evaluate.judge import Judge, load_reference, reference_folder  # noqa: E402
from organic.evaluate.run import mcnemar  # noqa: E402
from organic.generate import GenerationSettings  # noqa: E402
from organic.generate.batch import generate_replies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    seen, contexts = set(), []
    for item in labelled.load():
        if item.conversation not in seen:
            seen.add(item.conversation)
            contexts.append(item.context)
    contexts = contexts[: args.contexts]
    folder = reference_folder(None)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.9, seed=0)
    judge = Judge.shipped()
    lm = load_reference(judge)
    bad, seconds = {}, {}
    for engine in ("transformers", "ct2-int8"):
        started = time.perf_counter()
        replies = generate_replies(folder, contexts, settings, engine=engine)
        seconds[engine] = time.perf_counter() - started
        bad[engine] = [not v.label.is_good for v in judge.judge(contexts, [r.text for r in replies], lm=lm)]
    print(f"{len(contexts)} labelled-set contexts, {args.max_new_tokens} new tokens, t=0.7, top-p 0.9, seed 0; shipped judge")
    print("| engine | judged bad % [95% CI] | generation s |")
    print("|---|---|---|")
    for engine, flags in bad.items():
        p = Proportion(sum(flags), len(flags)).to_json()
        print(f"| {engine} | {p['percent']:.1f} [{p['ci95'][0]:.1f}, {p['ci95'][1]:.1f}] | {seconds[engine]:.0f} |")
    paired = mcnemar(bad["transformers"], bad["ct2-int8"], "transformers", "ct2-int8")
    low, high = Proportion(sum(bad["transformers"]), len(contexts)).ci
    inside = low <= sum(bad["ct2-int8"]) / len(contexts) <= high
    print(f"int8 vs float32 transformers: {paired['bad_rate_change']:+.1f} points, McNemar p = {paired['p_value']:.3g}; "
          f"int8's bad rate {'inside' if inside else 'outside'} transformers' 95% interval")


if __name__ == "__main__":
    main()
