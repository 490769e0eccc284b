"""Model preparation (bundled GGUF to a float32 folder, once) and choosing a backend from the settings."""

import json

import pytest

from organic.generate import (
    BUNDLED_MODEL, EchoBackend, OpenAIBackend, TransformersBackend, bundled_gguf, make_backend, prepare_model,
)
from organic.generate import prepare as prepare_module
from organic.settings import Settings


def test_bundled_gguf_is_found():
    assert bundled_gguf().suffix == ".gguf" and bundled_gguf().is_file()


@pytest.mark.slow
def test_prepare_bundled_once(prepared_home, monkeypatch):
    folder = prepare_model(BUNDLED_MODEL, prepared_home)
    assert folder == prepared_home / "models" / BUNDLED_MODEL
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [BUNDLED_MODEL]  # no temporary folder left behind

    def convert_again(*args):
        raise AssertionError("prepared twice")

    monkeypatch.setattr(prepare_module, "_convert_gguf", convert_again)
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert prepare_model(BUNDLED_MODEL, prepared_home) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime


def test_interrupted_prepare_leaves_no_folder(tmp_path, monkeypatch):
    class Interrupted(Exception):
        pass

    def interrupt(*args, **kwargs):
        raise Interrupted

    monkeypatch.setattr(prepare_module.AutoTokenizer, "from_pretrained", interrupt)
    with pytest.raises(Interrupted):
        prepare_model(BUNDLED_MODEL, tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_local_folders(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert prepare_model(str(tmp_path), tmp_path / "home") == tmp_path
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"model folder {empty} has no config.json; run `organic model prepare` first"):
        prepare_model(str(empty), tmp_path / "home")
    with pytest.raises(FileNotFoundError, match="unknown model 'no-such-model'"):
        prepare_model("no-such-model", tmp_path / "home")


def test_make_backend(tmp_path, tiny_model_dir):
    assert isinstance(make_backend(Settings(backend="echo", home=tmp_path)), EchoBackend)
    backend = make_backend(Settings(backend="openai", model="m", openai_base_url="http://localhost:8000/v1", home=tmp_path))
    assert isinstance(backend, OpenAIBackend) and backend.model_version == "m"
    with pytest.raises(ValueError, match="ORGANIC_OPENAI_BASE_URL"):
        make_backend(Settings(backend="openai", home=tmp_path))
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        make_backend(Settings(backend="vllm", home=tmp_path))
    backend = make_backend(Settings(backend="transformers", model=str(tiny_model_dir)), tmp_path)
    assert isinstance(backend, TransformersBackend) and backend.path == tiny_model_dir
