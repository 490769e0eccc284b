"""What long-term memory adds to a turn: the time of ``recall`` over a conversation's memory, on this CPU.

    python bench/memory.py [--lines 40] [--turns 50]

Each turn embeds the user's message and any memory line not seen before (MiniLM); lines already seen come
from a cache. Prints the time per turn with the cache (the server's case) and without it (every line embedded
again), measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from organic.serve import memory  # noqa: E402


def per_turn(memories: dict, turns: int, cached: bool) -> float:
    started = time.perf_counter()
    for i in range(turns):
        if not cached:
            memory._VECTORS.clear()
        memory.recall(memories, f"What do you remember about my trips, number {i}?", safe=True)
    return (time.perf_counter() - started) / turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=40, help="memory lines in the conversation (half each side)")
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()
    half = args.lines // 2
    memories = {memory.PARTNER: [f"I have been to {i} countries and city number {i} was my favourite." for i in range(half)],
                memory.SELF: [f"I like talking about topic number {i} more than most." for i in range(args.lines - half)]}
    memory.recall(memories, "warm up", safe=True)
    cached, cold = per_turn(memories, args.turns, True), per_turn(memories, args.turns, False)
    print(f"recall over {args.lines} memory lines: {cached * 1000:.1f} ms per turn with the cache, "
          f"{cold * 1000:.1f} ms without ({cold / cached:.1f}x)")


if __name__ == "__main__":
    main()
