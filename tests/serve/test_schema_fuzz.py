"""Schemathesis against a real uvicorn server on both databases: no request its OpenAPI schema allows, and none it
generates to break that schema, may get a server error.

Each operation is called as the role that can reach it (a consented user, an annotator, a rater or the admin), so
the fuzz gets past authentication into the handlers; the examples are derandomized, so a run is repeatable."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as examples
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from scripted_chat import CONSENT
from support import both_databases

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def settings(settings):
    """The suite's settings, with room for a new session per fuzzed call."""
    return settings.model_copy(update={"sessions_per_minute": 100_000})


@pytest.fixture
def server(live_server) -> tuple[str, dict[str, str]]:
    """A live server, and an annotator's and a rater's token."""
    base = live_server()
    tokens = {}
    for role in ("annotators", "raters"):
        issued = httpx.post(f"{base}/api/admin/{role}", json={"name": role}, headers=ADMIN, timeout=30)
        assert issued.status_code == 201, issued.text
        tokens[role] = issued.json()["token"]
    return base, tokens


@pytest.fixture
def api_schema(server):
    schema = schemathesis.openapi.from_url(f"{server[0]}/openapi.json")
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=True)
    return schema


def caller(path: str, base: str, tokens: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The headers of the role that may call the operation at ``path``, and the ids of a conversation and a reply in
    the store. The chat's own routes get a new user each time: a fuzzed call may log its user out or delete it."""
    user = {"Authorization": f"Bearer {httpx.post(f'{base}/api/session', json=CONSENT, timeout=30).json()['token']}"}
    owned = {}
    if "{" in path:
        conversation = httpx.post(f"{base}/api/conversations", headers=user, timeout=30).json()["id"]
        sent = httpx.post(f"{base}/api/conversations/{conversation}/messages?stream=false", json={"text": "hi"},
                          headers=user, timeout=30).json()
        owned = {"conversation_id": conversation, "message_id": sent["reply"]["id"]}
    if path.startswith("/api/admin/"):
        return ADMIN, owned
    for prefix, role in (("/api/annotate", "annotators"), ("/api/compare", "raters")):
        if path.startswith(prefix):
            return {"Authorization": f"Bearer {tokens[role]}"}, owned
    return user, owned


schema = schemathesis.pytest.from_fixture("api_schema")


@both_databases
@schema.parametrize()
@examples(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, server):
    headers, owned = caller(case.operation.path, *server)
    if case.meta.generation.mode is GenerationMode.POSITIVE:  # valid ids too, to get past the lookups
        case.path_parameters = {**(case.path_parameters or {}), **{k: owned[k] for k in case.path_parameters or {}}}
    case.call_and_validate(headers={**headers, **(case.headers or {})}, checks=[not_a_server_error], timeout=60)
