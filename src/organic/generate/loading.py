"""Loading a causal LM folder, the one way every part of the package does it: ``load_causal_lm`` (a GPU when there
is one, a clear error when weights did not load), ``model_loading`` (the process-wide lock around any
``from_pretrained``) and ``written_aside`` (a model folder appears whole or not at all).

Why the lock: while transformers builds a model it swaps ``PreTrainedModel.tie_weights`` for a no-op; two loads
overlapping in two threads can leave that no-op installed for the whole process, and the next model with tied
embeddings (SmolLM2) then keeps ``lm_head`` on the meta device. Every load in the package goes through
``model_loading()``, and a model with a parameter left on meta is refused with a message, not trained.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

_LOAD_LOCK = threading.RLock()


@contextlib.contextmanager
def model_loading() -> Iterator[None]:
    """Hold the process-wide model-loading lock (re-entrant) around any ``from_pretrained``."""
    with _LOAD_LOCK:
        yield


@contextlib.contextmanager
def written_aside(target: Path, marker: str) -> Iterator[Path]:
    """A temporary folder beside ``target`` to write a model into; when the block ends without an error it becomes
    ``target`` by one rename, so a crash never leaves half a folder. If another process made ``target`` meanwhile
    (its ``marker`` file is there), theirs is kept."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is an ordinary folder
        try:
            tmp.rename(target)
        except OSError:
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_loaded(model, folder: Path | str) -> None:
    """Raise when a parameter or buffer was left on the meta device (weights missing or a tie not made)."""
    missing = [name for name, p in [*model.named_parameters(), *model.named_buffers()] if p.device.type == "meta"]
    if missing:
        raise RuntimeError(f"model in {folder} loaded without weights for {', '.join(missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''}; the folder is incomplete or was being written: "
                           "prepare it again (`organic model prepare`)")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_causal_lm(folder: Path | str, device: str | None = None, *, padding_side: str = "right"):
    """(model, tokenizer) of the causal LM in ``folder``, in float32, in eval mode, on ``device`` (default: a GPU
    when there is one). The tokenizer has a pad token (EOS when the model has none)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model folder {folder} has no config.json; run `organic model prepare` first")
    with model_loading():
        tokenizer = AutoTokenizer.from_pretrained(folder, padding_side=padding_side)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    check_loaded(model, folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device or default_device()).eval(), tokenizer
