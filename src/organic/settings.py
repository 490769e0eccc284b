"""Deployment settings, read from ``ORGANIC_*`` environment variables (or a ``.env`` file).

Everything has an embedded default so that ``organic serve`` runs on a laptop with no configuration:
a SQLite file under ``ORGANIC_HOME`` and the bundled SmolLM2-135M-Instruct model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORGANIC_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path.home() / ".organic", description="Folder for the SQLite file, prepared models and caches.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite:///<home>/organic.db. PostgreSQL: postgresql+psycopg://user:pw@host/db")
    model: str = Field(default="smollm2-135m-instruct", description="Chat model: 'smollm2-135m-instruct' (bundled), a local folder, or a served model name.")
    backend: str = Field(default="transformers", description="Generation backend: transformers, ct2 (CTranslate2: the same local model, faster on CPU), openai (any OpenAI-compatible URL), echo.")
    ct2_compute_type: str | None = Field(default=None, description="Weights for backend=ct2: int8 (default on CPU) or float32; float16 (default on a GPU) or int8_float16.")
    ct2_inter_threads: int = Field(default=2, description="Backend ct2: batches decoded at once, each by its own worker (bench/serve.py --sweep).")
    ct2_intra_threads: int = Field(default=0, description="Backend ct2: threads per worker (0: the cores shared among the workers).")
    openai_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp) for backend=openai.")
    openai_api_key: str = Field(default="EMPTY", description="API key sent to that server.")
    secret_key: str | None = Field(default=None, description="Each kind of token (sessions, annotator, rater and console tokens) is signed with its own key derived from it; generated once and kept under <home> if unset.")
    admin_token: str | None = Field(default=None, description="Bearer token for admin endpoints; admin endpoints are closed when unset.")
    max_message_chars: int = Field(default=2000, description="Longest user message accepted, in characters.")
    max_body_bytes: int = Field(default=4_000_000, description="Largest request body the server reads, in bytes.")
    session_days: float = Field(default=30, gt=0, description="Days a session token stays valid.")
    sessions_per_minute: int = Field(default=60, ge=1, description="New sessions one client address may start per minute (behind a proxy, run uvicorn with --forwarded-allow-ips so the address is the client's; raise it for `organic simulate --url`).")
    max_new_tokens: int = Field(default=64, description="Longest generated reply, in tokens.")
    trim_cut_off: bool = Field(default=True, description="End a reply that the token limit cut off mid-sentence at its last whole sentence (recorded in its traces); bench/serve.py turns it off to count every generated token.")
    report_dir: Path | None = Field(default=None, description="Folder of the `organic analyze --out` report that the console at /admin serves; default <home>/report.")
    plan_refresh_s: float = Field(default=30, ge=0, description="Seconds between the server's looks at the serving plan in the store, which it then follows (`organic ab` / `promote` / `rollback`, another server's console, `organic loop --watch`); 0: only at start.")
    memory: bool = Field(default=False, description="Long-term memory as in BB3: remember what each side says about itself and recall it when relevant.")

    @property
    def url(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{self.home / 'organic.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
