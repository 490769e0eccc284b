"""Time one training step of CRINGE, SFT and KTO on the same model and batch, as ratios to SFT.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_step.py                  # SmolLM2-135M shape, random init, 8 x 128
    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_step.py --steps 10 --model models/smollm2-135m   # a local HF folder

A step is forward + backward + AdamW step (fused, as the Trainer's default optimizer), float32, on cuda if there is
one, else cpu. Each method gets one warm-up step, then the methods take turns for `--steps` rounds (so drift on a
shared machine hits all of them alike); the median step is printed, and the fastest. Per step, each method does:

- SFT: one forward, cross-entropy on the reply tokens, backward.
- CRINGE: the same forward, `cringe_loss` (CE on good rows, contrastive term on bad rows; half of each), backward.
- KTO: what TRL's KTOTrainer does without precomputed reference log-probs: policy forward + backward on the batch,
  a no-grad policy forward on the KL batch (each context paired with the previous row's reply), and no-grad
  forwards of the reference model (a frozen copy) on the batch and on the KL batch: 1 backward and 4 forwards.
  TRL's fused LM head, which avoids building the logits, is not used here, for any method.

Also printed: the loss alone (forward + backward from given logits), which is where CRINGE differs from SFT.
Target: CRINGE <= 1.15 x SFT. Prints figures only; it asserts nothing.
"""

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from organic.examples import IGNORE_INDEX
from organic.learn.cringe import cringe_loss

KTO_BETA = 0.1  # TRL's KTOConfig default


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="measured steps per method, after 1 warm-up step")
    parser.add_argument("--batch", type=int, default=8, help="sequences per batch; half good, half bad")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence; the second half is the reply")
    parser.add_argument("--model", type=Path, default=None, help="a local HF model folder instead of random init")
    return parser.parse_args()


def build_model(path: Path | None, device: torch.device) -> torch.nn.Module:
    if path is None:
        config = LlamaConfig(  # SmolLM2-135M
            hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
            max_position_embeddings=8192,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    else:
        if not (path / "config.json").is_file():
            raise SystemExit(f"model folder {path} has no config.json; save a float32 model there with save_pretrained")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.to(device=device, dtype=torch.float32).train()


def make_batch(batch: int, seq: int, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(vocab, (batch, seq), generator=generator)
    context = seq // 2
    labels = input_ids.clone()
    labels[:, :context] = IGNORE_INDEX
    # KTO's KL estimate pairs each context with another row's reply (TRL cycles completions by one).
    kl_input_ids = torch.cat([input_ids[:, :context], input_ids.roll(1, dims=0)[:, context:]], dim=1)
    example_labels = torch.arange(batch) % 2  # 0 bad, 1 good, alternating: balanced 50/50
    tensors = dict(input_ids=input_ids, labels=labels, kl_input_ids=kl_input_ids, example_labels=example_labels)
    return {name: t.to(device) for name, t in tensors.items()}


def shifted(labels: torch.Tensor) -> torch.Tensor:
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # position t predicts token t+1


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def sequence_logps(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=input_ids, use_cache=False).logits.float()
    per_token = F.cross_entropy(logits.flatten(0, 1), shifted(labels).flatten(), reduction="none")
    return -per_token.view_as(labels).sum(-1)  # ignored tokens contribute 0


def sft_step(model, ref_model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], use_cache=False).logits.float()
    return sft_loss(logits, shifted(batch["labels"]))


def cringe_step(model, ref_model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], use_cache=False).logits.float()
    return cringe_loss(logits, shifted(batch["labels"]), batch["example_labels"]).loss


def kto_step(model, ref_model, batch) -> torch.Tensor:
    ids, kl_ids, labels = batch["input_ids"], batch["kl_input_ids"], batch["labels"]
    policy = sequence_logps(model, ids, labels)
    with torch.no_grad():
        kl = (sequence_logps(model, kl_ids, labels) - sequence_logps(ref_model, kl_ids, labels)).mean().clamp(min=0)
        reference = sequence_logps(ref_model, ids, labels)
    ratio = policy - reference
    # Eqn (7) of the KTO paper: desirable rows push the ratio above the KL estimate, undesirable ones below it
    good = batch["example_labels"] == 1
    losses = torch.where(good, 1 - torch.sigmoid(KTO_BETA * (ratio - kl)), 1 - torch.sigmoid(KTO_BETA * (kl - ratio)))
    return losses.mean()


def timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.model, device)
    ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    batch = make_batch(args.batch, args.seq, model.config.vocab_size, device)
    methods = {"SFT": sft_step, "CRINGE": cringe_step, "KTO": kto_step}

    def step(loss_fn) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, ref_model, batch).backward()
        optimizer.step()

    tokens = args.batch * args.seq
    print(f"device {device}, model {args.model or 'SmolLM2-135M shape, random init'}, float32")
    print(f"batch {args.batch} x {args.seq} tokens, 1 warm-up + {args.steps} measured steps per method, median")
    for fn in methods.values():
        timed(lambda: step(fn), device)
    times = {name: [] for name in methods}
    for _ in range(args.steps):
        for name, fn in methods.items():
            times[name].append(timed(lambda: step(fn), device))

    # The median is the figure; the fastest step is printed too, since on a shared machine it is the least disturbed.
    sft, sft_best = statistics.median(times["SFT"]), min(times["SFT"])
    print(f"{'method':8} {'median s':>9} {'tokens/s':>9} {'x SFT':>6} {'best s':>8} {'x SFT':>6}")
    for name, values in times.items():
        median, best = statistics.median(values), min(values)
        print(f"{name:8} {median:9.3f} {tokens / median:9.1f} {median / sft:6.2f} {best:8.3f} {best / sft_best:6.2f}")

    # The loss alone, forward + backward from fixed logits: the only part where CRINGE and SFT differ.
    logits = torch.randn(args.batch, args.seq, model.config.vocab_size, device=device, requires_grad=True)
    labels = shifted(batch["labels"])
    losses = {
        "SFT": lambda: sft_loss(logits, labels).backward(),
        "CRINGE": lambda: cringe_loss(logits, labels, batch["example_labels"]).loss.backward(),
    }
    loss_times = {
        name: statistics.median(timed(fn, device) for _ in range(args.steps + 1)) for name, fn in losses.items()
    }
    print(f"loss only (fwd+bwd, {tuple(logits.shape)} logits): SFT {loss_times['SFT'] * 1e3:.1f} ms, "
          f"CRINGE {loss_times['CRINGE'] * 1e3:.1f} ms")  # fmt: skip

    cringe_ratio = statistics.median(times["CRINGE"]) / sft
    verdict = "meets" if cringe_ratio <= 1.15 else "misses"
    print(f"CRINGE step = {cringe_ratio:.2f} x SFT: {verdict} the target (<= 1.15 x SFT)")


if __name__ == "__main__":
    main()
