"""Shared fixtures: a fresh store on SQLite and on a real PostgreSQL server, offline model settings."""

from __future__ import annotations

import os

import pytest

from support import POSTGRES_ADMIN_URL

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing downloads at test time
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own ORGANIC_HOME, so nothing touches the user's store."""
    monkeypatch.setenv("ORGANIC_HOME", str(tmp_path / "home"))
    from organic.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _postgres_admin_url() -> str:
    if not POSTGRES_ADMIN_URL:
        if os.environ.get("CI"):
            pytest.fail("ORGANIC_TEST_POSTGRES_URL is not set: CI must start PostgreSQL (see scripts/services.sh)")
        pytest.skip("ORGANIC_TEST_POSTGRES_URL is not set (run `make test`, which starts PostgreSQL)")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def database_url(request, tmp_path):
    """A URL to an empty database of the kind ``request.param`` names (``sqlite`` by default, or ``postgresql``)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'organic.db'}"
        return
    from organic.store.db import scratch_postgres

    with scratch_postgres(_postgres_admin_url(), "organic_test") as url:
        yield url


@pytest.fixture
def engine(database_url):
    from organic.store import connect

    engine = connect(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def prepared_home(tmp_path_factory):
    """An organic home with the bundled model prepared in it (the one slow step of this suite, about 20 s)."""
    from organic.generate import BUNDLED_MODEL, prepare_model

    home = tmp_path_factory.mktemp("organic-home")
    prepare_model(BUNDLED_MODEL, home)
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(prepared_home, tmp_path_factory):
    """A randomly initialised 2-layer Llama (hidden size 16) with SmolLM2's real tokenizer and chat template (which
    CTranslate2 can convert, unlike the word tokenizer of ``tiny_models.tiny_llama_folder``)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from organic.generate import BUNDLED_MODEL

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(prepared_home / "models" / BUNDLED_MODEL)
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True, initializer_range=0.5,  # peaked logits: greedy choices are never near-ties
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


# the server ---------------------------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path, database_url):
    from organic.settings import Settings

    return Settings(home=tmp_path / "home", database_url=database_url, admin_token="admin-secret", max_message_chars=200)


@pytest.fixture
def store_engine(settings):
    from organic.store import connect

    engine = connect(settings.url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_client(settings, store_engine):
    """``make_client(backends)`` -> a TestClient of a fresh app on the test store."""
    from fastapi.testclient import TestClient

    from organic.generate import EchoBackend
    from organic.serve.app import create_app

    clients = []

    def make(backends=None) -> TestClient:
        app = create_app(settings, backends or [EchoBackend()], engine=store_engine)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def live_server(settings, store_engine):
    """``live_server(backends)`` -> base URL of a real uvicorn server on 127.0.0.1, stopped after the test."""
    from organic.generate import EchoBackend
    from organic.serve.app import create_app
    from organic.serve.local import LocalServer

    servers = []

    def start(backends=None) -> str:
        server = LocalServer(create_app(settings, backends or [EchoBackend()], engine=store_engine))
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__(None, None, None)
