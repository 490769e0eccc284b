"""The reward model: is a bot reply good or not good, in its context?

Trained on human signals only (thumbs and crowd labels, as ``organic.examples.label_of`` decides them);
its verdicts then label the replies nobody rated, and the replies an iteration of CRINGE generates.

Two kinds behind one interface:
- ``embedding`` (default, CPU, seconds): logistic regression over the bundled MiniLM embeddings of the
  reply and of the last turns of its context, with their product and difference (a reply that ignores
  the user is far from the context);
- ``hf``: any Hugging Face sequence-classification model fine-tuned with ``transformers.Trainer``
  (so ``accelerate launch`` scales it out), on "context [SEP] reply" pairs.
Its verdict is written in the BB3x release's ``reward`` string format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, roc_auc_score

from organic.embeddings import embed
from organic.examples import Example, context_text
from organic.generate.loading import model_loading
from organic.taxonomy import BAD, GOOD, NOT_OK, SAFE


def verdict_string(p_good: float, threshold: float = 0.5) -> str:
    """The BB3x ``reward`` field: the predicted class and its probability."""
    ok = p_good >= threshold
    return f"Predicted class: {SAFE if ok else NOT_OK} with probability: {p_good if ok else 1 - p_good:.2f}"


@dataclass
class RewardConfig:
    kind: str = "embedding"  # embedding (CPU, MiniLM + logistic regression) or hf (a sequence-classification model)
    model: str | None = None  # for kind=hf: a local folder with a Hugging Face model
    context_turns: int = 2  # how many of the last context messages the model sees
    c: float = 1.0  # inverse regularisation strength of the logistic regression
    epochs: float = 3.0  # for kind=hf
    learning_rate: float = 5e-5  # for kind=hf
    threshold: float = 0.5  # probability of "good" at or above which the verdict is __ok__
    seed: int = 0


class RewardModel:
    """Probability that a reply is good, for lists of (context, reply). Two kinds implement it: ``EmbeddingReward``
    (MiniLM features and a logistic regression, on a CPU) and ``HFReward`` (a fine-tuned sequence classifier; transformers
    is imported only when it is used); ``RewardModel.of(config)`` makes the one ``config.kind`` names, ``RewardModel.load`` reads
    either back."""

    kind = ""

    def __init__(self, config: RewardConfig):
        self.config = config

    @staticmethod
    def of(config: RewardConfig) -> RewardModel:
        return _kind(config.kind)(config)

    def fit(self, examples: Sequence[Example]) -> RewardModel:
        labelled = [e for e in examples if e.label in (GOOD, BAD)]
        labels = np.array([e.label for e in labelled])
        if len(set(labels)) < 2:
            raise ValueError(f"the reward model needs both good and bad replies to learn from; got {len(labelled)} "
                             f"labelled replies, all {'good' if labels.any() else 'bad'}")
        self._fit(labelled, labels)
        return self

    def predict_proba(self, contexts: Sequence[Sequence[dict]], replies: Sequence[str]) -> np.ndarray:
        return self._predict(contexts, replies) if replies else np.zeros(0)

    def verdicts(self, contexts, replies) -> list[str]:
        return [verdict_string(float(p), self.config.threshold) for p in self.predict_proba(contexts, replies)]

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reward_config.json").write_text(json.dumps(asdict(self.config), indent=2))
        self._save(folder)
        return folder

    @staticmethod
    def load(folder: Path) -> RewardModel:
        config_file = folder / "reward_config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{folder} holds no reward model (no reward_config.json); run `organic reward train` first")
        config = RewardConfig(**json.loads(config_file.read_text()))
        model = _kind(config.kind)(config)
        model._load(folder)
        return model

    # what each kind implements
    def _fit(self, examples: list[Example], labels: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, contexts: Sequence[Sequence[dict]], replies: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def _save(self, folder: Path) -> None:
        raise NotImplementedError

    def _load(self, folder: Path) -> None:
        raise NotImplementedError


class EmbeddingReward(RewardModel):
    """MiniLM embeddings of the reply and the last ``context_turns`` of its context, and a logistic regression."""

    kind = "embedding"
    estimator: LogisticRegression

    def _features(self, contexts: Sequence[Sequence[dict]], replies: Sequence[str]) -> np.ndarray:
        ctx = embed([context_text(c, self.config.context_turns) for c in contexts])
        rep = embed(list(replies))
        return np.hstack([rep, ctx * rep, np.abs(ctx - rep)])

    def _fit(self, examples: list[Example], labels: np.ndarray) -> None:
        features = self._features([e.context for e in examples], [e.reply for e in examples])
        self.estimator = LogisticRegression(C=self.config.c, class_weight="balanced", max_iter=2000,
                                            random_state=self.config.seed).fit(features, labels)

    def _predict(self, contexts, replies) -> np.ndarray:
        return self.estimator.predict_proba(self._features(contexts, replies))[:, 1]

    def _save(self, folder: Path) -> None:
        joblib.dump(self.estimator, folder / "estimator.joblib")

    def _load(self, folder: Path) -> None:
        self.estimator = joblib.load(folder / "estimator.joblib")


def _pairs(tokenizer, contexts, replies, turns: int):
    """Tokenized "context [SEP] reply" pairs."""
    return tokenizer([context_text(c, turns) for c in contexts], list(replies), truncation=True, max_length=256)


class HFReward(RewardModel):
    """A Hugging Face sequence classifier (``config.model``, a local folder) fine-tuned on the pairs."""

    kind = "hf"

    def _fit(self, examples: list[Example], labels: np.ndarray) -> None:
        import tempfile

        import torch
        from datasets import Dataset
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

        if not self.config.model:
            raise ValueError("a reward model of kind 'hf' needs --model: a local folder with a Hugging Face model")
        with model_loading():
            self.tokenizer = AutoTokenizer.from_pretrained(self.config.model)
            self.model = AutoModelForSequenceClassification.from_pretrained(self.config.model, num_labels=2)
        encoded = _pairs(self.tokenizer, [e.context for e in examples], [e.reply for e in examples], self.config.context_turns)
        data = Dataset.from_dict({**encoded, "labels": labels.tolist()})
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(output_dir=tmp, num_train_epochs=self.config.epochs, learning_rate=self.config.learning_rate,
                                     per_device_train_batch_size=16, report_to="none", save_strategy="no",
                                     seed=self.config.seed, use_cpu=not torch.cuda.is_available())
            Trainer(model=self.model, args=args, train_dataset=data, processing_class=self.tokenizer).train()

    def _predict(self, contexts, replies) -> np.ndarray:
        import torch

        self.model.eval()
        probs = []
        for start in range(0, len(replies), 32):
            batch = _pairs(self.tokenizer, contexts[start : start + 32], replies[start : start + 32], self.config.context_turns)
            batch = self.tokenizer.pad(batch, return_tensors="pt").to(self.model.device)
            with torch.no_grad():
                probs.append(torch.softmax(self.model(**batch).logits, dim=-1)[:, 1].cpu().numpy())
        return np.concatenate(probs)

    def _save(self, folder: Path) -> None:
        self.model.save_pretrained(folder / "model")
        self.tokenizer.save_pretrained(folder / "model")

    def _load(self, folder: Path) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        with model_loading():
            self.model = AutoModelForSequenceClassification.from_pretrained(folder / "model")
            self.tokenizer = AutoTokenizer.from_pretrained(folder / "model")


def _kind(kind: str) -> type[RewardModel]:
    kinds = {k.kind: k for k in (EmbeddingReward, HFReward)}
    if kind not in kinds:
        raise ValueError(f"unknown kind of reward model {kind!r}; choose {' or '.join(kinds)}")
    return kinds[kind]


def evaluate(model: RewardModel, examples: Sequence[Example], bins: int = 10) -> dict[str, float]:
    """Accuracy, F1 (of "not good", the class we act on), ROC AUC and calibration (ECE, Brier) on ``examples``."""
    labelled = [e for e in examples if e.label in (GOOD, BAD)]
    if not labelled:
        return {"n": 0}
    y = np.array([e.label for e in labelled])
    p = model.predict_proba([e.context for e in labelled], [e.reply for e in labelled])
    predicted = (p >= model.config.threshold).astype(int)
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_not_good": float(f1_score(1 - y, 1 - predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins),
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted probability and observed rate of "good" over equal-width bins, weighted by size."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(gap)


def score_store(engine, model: RewardModel, filters=None, *, overwrite: bool = False, batch: int = 256,
                progress=None) -> int:
    """Write the model's verdict into ``reward`` of every bot reply in the store (canned replies excepted;
    replies that already have a verdict only with ``overwrite``). Returns the number of replies scored."""
    from organic.examples import contexts
    from organic.store.bulk import set_rewards
    from organic.store.read import iter_conversations

    pending: list[tuple[int, list[dict], str]] = []
    scored = 0

    def flush() -> None:
        nonlocal scored, pending
        if pending:
            verdicts = model.verdicts([c for _, c, _ in pending], [r for _, _, r in pending])
            set_rewards(engine, {mid: v for (mid, _, _), v in zip(pending, verdicts)})
            scored, pending = scored + len(pending), []

    for convo in iter_conversations(engine, filters):
        pending += [(m.id, context, m.text) for _, m, context in contexts(convo) if overwrite or m.reward is None]
        if len(pending) >= batch:
            flush()
        if progress:
            progress(1)
    flush()
    return scored


def fit_and_save(train: Sequence[Example], test: Sequence[Example], folder: Path,
                 config: RewardConfig | None = None) -> tuple[RewardModel, dict[str, float]]:
    """A reward model fitted on ``train`` and its metrics on the held-out ``test``, both saved in ``folder`` (the
    metrics last: ``held_out_auc`` reads them, and they mark the folder complete)."""
    reward = RewardModel.of(config or RewardConfig()).fit(train)
    reward.save(folder)
    metrics = evaluate(reward, test)
    save_metrics(folder, metrics)
    return reward, metrics


def save_metrics(folder: Path, metrics: dict) -> None:
    """Keep the held-out metrics beside a saved reward model, for the gate of iterative CRINGE."""
    (folder / "held_out_metrics.json").write_text(json.dumps(metrics, indent=2))


def held_out_auc(folder: Path) -> float:
    """The held-out ROC AUC recorded when the reward model in ``folder`` was trained; NaN when none was."""
    path = folder / "held_out_metrics.json"
    return float(json.loads(path.read_text()).get("roc_auc", float("nan"))) if path.is_file() else float("nan")
