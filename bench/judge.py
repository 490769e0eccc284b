"""How fast the learned judge judges replies on this CPU, with the cost of the likelihood signals shown apart.

    python bench/judge.py [--replies 1000]

Judges the labelled set's replies (repeated up to ``--replies``) three ways in one run, each after a warm-up:
the shipped judge without its reference model's pass (every other signal: text, MiniLM topic, safety, rules),
the reference model's signals alone (two passes of the base model: the reply given its context, which also
yields the model's hidden states, and the reply alone), and the shipped judge end to end. Prints replies per second and the time for 1,000 replies (target: under 60 s).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from organic.evaluate import labelled  # noqa: E402
from organic.evaluate.judge import Judge, load_reference  # noqa: E402
from organic.evaluate.signals import _likelihood, signals  # noqa: E402


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    items = labelled.load()
    items = (items * (args.replies // len(items) + 1))[: args.replies]
    contexts, replies = [i.context for i in items], [i.reply for i in items]
    judge = Judge.shipped()
    lm = load_reference(judge)
    judge.judge(contexts[:16], replies[:16], lm=lm, batch_size=args.batch_size)  # warm up every model

    rest = timed(lambda: signals(contexts, replies))
    likelihood = timed(lambda: _likelihood(contexts, replies, None, lm, args.batch_size))
    whole = timed(lambda: judge.judge(contexts, replies, lm=lm, batch_size=args.batch_size))
    n = len(replies)
    print(f"{n} replies of the labelled set, shipped judge ({judge.info.get('signals')}), batch {args.batch_size}")
    print("| part | seconds | replies/s | seconds per 1,000 |")
    print("|---|---|---|---|")
    for name, seconds in (("signals without the reference model", rest), ("reference model: likelihood and states (2 passes)", likelihood),
                          ("whole judge", whole)):
        print(f"| {name} | {seconds:.1f} | {n / seconds:.1f} | {1000 * seconds / n:.1f} |")
    print(f"reference model share of the whole: {likelihood / whole:.0%}; target 1,000 replies in under 60 s: "
          f"{'met' if 1000 * whole / n < 60 else 'not met'} with the reference model, "
          f"{'met' if 1000 * rest / n < 60 else 'not met'} without")


if __name__ == "__main__":
    main()
