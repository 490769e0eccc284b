"""The CRINGE loss (Adolphs et al. 2022, "The CRINGE Loss: Learning what language not to model") and its trainer.

BB3x was trained with it on organic feedback: cross-entropy on good replies, a token-level contrastive term on bad
ones. The loss is a pure function on tensors; `CringeTrainer` is a plain `transformers.Trainer` whose
`compute_loss` calls it, so PEFT, gradient accumulation, logging and `accelerate launch` (DDP, FSDP, DeepSpeed)
work unchanged. This module must not own a training loop, read files or talk to the store.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments

from organic.examples import IGNORE_INDEX
from organic.taxonomy import BAD, GOOD, UNKNOWN


class CringeOutput(NamedTuple):
    """The CRINGE loss of a batch and its two parts, each divided by the same count of active tokens."""

    loss: torch.Tensor  # ce + ct_weight * ct: what to backpropagate
    ce: torch.Tensor  # cross-entropy part
    ct: torch.Tensor  # contrastive part, before ct_weight


def cringe_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    example_labels: torch.Tensor,
    *,
    k: int = 1,
    ct_weight: float = 1.0,
    detach_positive: bool = False,
    ct_on_positives: bool = False,
    ce_on_positives: bool = True,
) -> CringeOutput:
    r"""The CRINGE loss of a batch of token predictions.

    For each target token with logits x and target y of a sequence labelled c (1 good, 0 bad, -1 unlabelled):

    - CE(x, y) = -log softmax(x)[y] on good and unlabelled sequences (unlabelled only if `ce_on_positives=False`);
    - on bad sequences (and good ones if `ct_on_positives`), take the top k+1 logits, remove the target token (or,
      if it is not among them, the (k+1)-th), sample one of the k that remain from the softmax of their logits and
      call its logit s+ (detached if `detach_positive`); with s- = x[y],

          CT = -log(e^{s+} / (e^{s+} + e^{s-})) = softplus(s- - s+)       (bad sequence)
          CT = -log(e^{s-} / (e^{s+} + e^{s-})) = softplus(s+ - s-)       (good sequence: the target wins)

    - loss = sum over tokens of (CE_mask * CE + ct_weight * CT_mask * CT) / #tokens where either mask is set.

    Args:
        logits: `[B, T, V]` scores, already aligned with `labels` (position t predicts `labels[:, t]`).
        labels: `[B, T]` target token ids, already shifted; `-100` marks tokens that are not targets.
        example_labels: `[B]` sequence labels: 1 good, 0 bad, -1 unlabelled.
        k: how many top predictions compete to be the positive s+ (the reference uses 1).
        ct_weight: weight of the contrastive term.
        detach_positive: stop the gradient through s+, so only the target token's logit moves.
        ct_on_positives: also apply the contrastive term, with the sign flipped, to good sequences.
        ce_on_positives: apply cross-entropy to good sequences (unlabelled ones always get it).

    Returns:
        `CringeOutput(loss, ce, ct)` with `loss = ce + ct_weight * ct`; zero, still attached to the graph, when the
        batch has no active token.
    """
    if not 1 <= k < logits.size(-1):
        raise ValueError(f"k={k}: CRINGE needs 1 <= k < vocabulary size ({logits.size(-1)}) to pick k+1 candidates.")
    is_target = labels != IGNORE_INDEX
    c = example_labels.to(labels.device)[:, None]  # [B, 1]: one label per sequence, broadcast over its tokens
    ce_mask = is_target & ((c == UNKNOWN) | ((c == GOOD) & ce_on_positives))
    ct_mask = is_target & ((c == BAD) | ((c == GOOD) & ct_on_positives))
    targets = labels.masked_fill(~is_target, 0)  # any valid id: these tokens are masked out below

    with torch.no_grad():  # choosing the positive token is not differentiated, only its logit is
        top_logits, top_ids = logits.topk(k + 1, dim=-1)  # [B, T, k+1]
        drop = top_ids == targets[..., None]
        drop[..., -1] |= ~drop.any(-1)  # the target is not in the top k+1: drop the (k+1)-th instead
        probs = top_logits.masked_fill(drop, float("-inf")).softmax(-1)
        pick = torch.multinomial(probs.flatten(0, 1), 1).view_as(labels)[..., None]
        pair_ids = torch.cat([top_ids.gather(-1, pick), targets[..., None]], dim=-1)  # [B, T, 2]: s+ then s-

    # One log-softmax serves both terms: CE = -logp[y], and s- - s+ = logp[y] - logp[+] since the normaliser cancels.
    logp_pos, logp_target = logits.log_softmax(-1).gather(-1, pair_ids).unbind(-1)
    ce_tok = -logp_target
    if detach_positive:  # the normaliser no longer cancels, so take the raw logits
        s_pos, s_neg = logits.gather(-1, pair_ids).unbind(-1)
        margin = s_neg - s_pos.detach()
    else:
        margin = logp_target - logp_pos
    ct_tok = F.softplus(torch.where(c == GOOD, -margin, margin))

    n_active = (ce_mask | ct_mask).sum().clamp(min=1)  # clamp: an all-padding batch gives 0, not NaN
    ce = torch.where(ce_mask, ce_tok, 0.0).sum() / n_active
    ct = torch.where(ct_mask, ct_tok, 0.0).sum() / n_active
    return CringeOutput(ce + ct_weight * ct, ce, ct)


@dataclass
class CringeCollator:
    """Pads CRINGE rows to the longest in the batch (on the right) and stacks their example labels.

    A row is `{"input_ids": [...], "labels": [...], "example_label": int}`; the batch has `input_ids`,
    `attention_mask`, `labels` (-100 on padding) and `example_labels`.
    """

    pad_token_id: int
    max_length: int | None = None  # rows are cut from the right past this; None keeps them whole

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(row["input_ids"][: self.max_length]) for row in rows]
        labels = [list(row["labels"][: self.max_length]) for row in rows]
        width = max(len(x) for x in ids)

        def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
            return torch.tensor([seq + [value] * (width - len(seq)) for seq in seqs], dtype=torch.long)

        return {
            "input_ids": pad(ids, self.pad_token_id),
            "attention_mask": pad([[1] * len(x) for x in ids], 0),
            "labels": pad(labels, IGNORE_INDEX),
            "example_labels": torch.tensor([int(row["example_label"]) for row in rows], dtype=torch.long),
        }


@dataclass
class CringeConfig(TrainingArguments):
    r"""Configuration for [`CringeTrainer`]: the CRINGE options on top of `transformers.TrainingArguments`.

    Parameters:
        > Parameters that control the data

        max_length (`int` or `None`, *optional*, defaults to `1024`):
            Longest sequence in a batch; longer rows are cut from the right by the collator (build rows with
            `tokenize_example(..., max_length)` to drop old context instead). `None` keeps rows whole.

        > Parameters that control the loss (defaults are those of the reference implementation)

        k (`int`, *optional*, defaults to `1`):
            Number of top predictions, other than the target, that compete to be the positive token s+.
        ct_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the contrastive term against cross-entropy.
        detach_positive (`bool`, *optional*, defaults to `False`):
            Stop the gradient through s+, so that only the target token's logit moves.
        ct_on_positives (`bool`, *optional*, defaults to `False`):
            Also apply the contrastive term to good sequences, with the target as the winning side.
        ce_on_positives (`bool`, *optional*, defaults to `True`):
            Apply cross-entropy to good sequences; unlabelled ones always get it.

    > [!NOTE]
    > `logging_steps` defaults to `10` instead of `500`. Unlike TRL configs, bf16 and activation (gradient)
    > checkpointing stay off, as in `TrainingArguments`: both are many times slower on a CPU; turn them on for a GPU.
    """

    max_length: int | None = field(default=1024, metadata={"help": "Longest sequence; longer rows are cut."})
    k: int = field(default=1, metadata={"help": "Top predictions, other than the target, competing to be s+."})
    ct_weight: float = field(default=1.0, metadata={"help": "Weight of the contrastive term."})
    detach_positive: bool = field(default=False, metadata={"help": "Stop the gradient through s+."})
    ct_on_positives: bool = field(default=False, metadata={"help": "Also apply the contrastive term to good rows."})
    ce_on_positives: bool = field(default=True, metadata={"help": "Apply cross-entropy to good rows."})

    logging_steps: float = field(default=10, metadata={"help": "Log every X update steps (a float < 1: a ratio)."})

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"k={self.k}: CRINGE needs at least one candidate positive token (k >= 1).")
        super().__post_init__()


class CringeTrainer(Trainer):
    """A `transformers.Trainer` that trains a causal LM with the CRINGE loss.

    Dataset rows are `{"input_ids", "labels", "example_label"}` (see `tokenize_example`); `CringeCollator` pads them.
    Logs the loss and its `ce` and `ct` parts.
    """

    # cringe_loss is a mean over one micro-batch, so the Trainer divides it by the gradient accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: torch.nn.Module,
        args: CringeConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        data_collator: CringeCollator | None = None,
        **kwargs: Any,
    ):
        args = args if args is not None else CringeConfig()
        if data_collator is None:
            if processing_class is None:
                raise ValueError(
                    "CringeTrainer pads batches with the tokenizer's pad token: pass `processing_class=tokenizer`, "
                    "or a `data_collator=CringeCollator(pad_token_id=...)`."
                )
            pad_id = processing_class.pad_token_id
            data_collator = CringeCollator(
                pad_token_id=pad_id if pad_id is not None else processing_class.eos_token_id,
                max_length=args.max_length,
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        # ce and ct of each micro-batch since the last log, averaged into the next log line
        self._metrics: dict[str, defaultdict] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def _set_signature_columns_if_needed(self):
        # The Trainer keeps only the columns named by model.forward, which would drop example_label.
        if self._signature_columns is None:
            self._signature_columns = ["input_ids", "labels", "example_label"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        # Position t predicts token t+1: shift the labels rather than copy the (much larger) logits.
        labels = F.pad(inputs["labels"][:, 1:], (0, 1), value=IGNORE_INDEX)
        out = cringe_loss(
            outputs.logits.float(),
            labels,
            inputs["example_labels"],
            k=self.args.k,
            ct_weight=self.args.ct_weight,
            detach_positive=self.args.detach_positive,
            ct_on_positives=self.args.ct_on_positives,
            ce_on_positives=self.args.ce_on_positives,
        )
        mode = "train" if model.training else "eval"
        self._metrics[mode]["ce"].append(out.ce.detach())
        self._metrics[mode]["ct"].append(out.ct.detach())
        return (out.loss, outputs) if return_outputs else out.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for name, values in self._metrics[mode].items():
            # every process logs, so the gather is matched across ranks
            mean = self.accelerator.gather(torch.stack(values).mean()[None]).mean()
            logs[prefix + name] = mean.item()
        self._metrics[mode].clear()
        super().log(logs, start_time)
