"""Troll detection on SafetyMix-style data: user-level trust (Ju et al. 2022) against example-level scores.

    python bench/trolls.py                        # MiniLM embeddings, 300 users, 10/30/50% trolls, every troll type
    python bench/trolls.py --features tfidf       # quicker, weaker features

For each troll type and troll share, ``organic.simulate.safetymix`` builds a mix of helpers and trolls on real
human utterances (chitchat + ShareGPT, made unsafe by construction) and ``organic.analyze.trolls.trust``
scores it. Printed, for flagging trolls:

- user level: ROC AUC of 1 - trust over users, precision and recall of ``is_troll`` (trust < threshold), after
  ``--rounds`` rounds of cleaning, and the AUC after one round;
- example level, two ways: each label judged alone (one round, score 1 - p_i, flagged when p_i < 0.5), and each
  label judged by its user's trust (the user-level score given to every one of the user's labels); the truth
  is "this label came from a troll".

Target: user-level AUC >= 0.9 at 30% trolls for troll, master_troll and gaslight_troll. Only the labels
are used here (``messages`` is not passed): SafetyMix inputs are half unsafe for everybody by design, so the
share of unsafe messages tells helpers from trolls only for gaslighters.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from organic.simulate.safetymix import TROLL_TYPES, benchmark_pools, build_pools, safetymix
from organic.stats import detection
from organic.analyze.trolls import FEATURIZERS, Judgement, TrustConfig, trust


def run(troll_type: str, share: float, pools, vectors: dict[str, np.ndarray] | None, args) -> dict:
    data = safetymix(troll_type, share, pools, users=args.users, seed=args.seed)
    judgements = [Judgement(e.user, e.text, e.label) for e in data]
    if vectors is not None:
        features = np.stack([vectors[e.text] for e in data])
    else:
        features = FEATURIZERS[args.features]([e.text for e in data])
    kind = {e.user: e.is_troll for e in data}
    truth = [e.is_troll for e in data]

    def users_of(result):
        by_user = {r.user: r for r in result.users if r.trust is not None}  # under min_labels labels: no score
        return by_user, detection([kind[u] for u in by_user], [1 - r.trust for r in by_user.values()],
                                  [r.is_troll for r in by_user.values()])

    # example level: one round, each label judged on its own held-out likelihood, no user in sight
    config = TrustConfig(rounds=args.rounds, threshold=args.threshold, seed=args.seed)
    single = trust(judgements, TrustConfig(rounds=1, threshold=args.threshold, seed=args.seed), features=features)
    example_alone = detection(truth, 1 - single.example_scores, single.example_scores < 0.5)
    result = trust(judgements, config, features=features)
    by_user, user_level = users_of(result)
    scored = [e for e in data if e.user in by_user]
    example_by_user = detection([e.is_troll for e in scored], [1 - by_user[e.user].trust for e in scored],
                                [by_user[e.user].is_troll for e in scored])
    return {"user": user_level, "user_one_round": users_of(single)[1], "example": example_alone,
            "example_by_user": example_by_user}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", choices=sorted(FEATURIZERS), default="minilm")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--pool-size", type=int, default=600, help="items in each of the four pools")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--types", nargs="+", default=list(TROLL_TYPES), choices=TROLL_TYPES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    pools = build_pools(args.pool_size, args.seed)
    flagged = benchmark_pools(pools)
    print("safety layer flags, by pool (ground truth is by construction): "
          + ", ".join(f"{k} {v:.0%}" for k, v in flagged.items()))
    vectors = None
    if args.features == "minilm":  # embed every pool item once; each mix reuses them
        texts = [item.text for item in pools.all()]
        vectors = dict(zip(texts, FEATURIZERS["minilm"](texts)))
    print(f"pools and features ready in {time.perf_counter() - start:.0f} s ({args.features})\n")

    header = (f"{'troll type':<15}{'share':>6} | {'user AUC':>8} {'P':>5} {'R':>5} {'(1 round AUC)':>13} | "
              f"{'example AUC':>11} {'P':>5} {'R':>5} | {'ex.-by-user AUC':>15} {'P':>5} {'R':>5}")
    print(header)
    print("-" * len(header))
    for troll_type in args.types:
        for share in args.shares:
            r = run(troll_type, share, pools, vectors, args)
            u, e, b = r["user"], r["example"], r["example_by_user"]
            print(f"{troll_type:<15}{share:>6.0%} | {u.auc:>8.3f} {u.precision:>5.2f} {u.recall:>5.2f} "
                  f"{r['user_one_round'].auc:>13.3f} | "
                  f"{e.auc:>11.3f} {e.precision:>5.2f} {e.recall:>5.2f} | {b.auc:>15.3f} {b.precision:>5.2f} {b.recall:>5.2f}",
                  flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
