"""The server's routes, one ``APIRouter`` per area, each made from the ``Server`` the app shares (``serve.server``):

- ``session``: consent, the pseudonymous session, your data (``/api/session``, ``/api/me``);
- ``chat``: the web chat page and conversations (``/``, ``/api/conversations``);
- ``feedback``: ratings and traces of replies (``/api/messages/{id}/...``);
- ``openai``: the OpenAI-compatible ``/v1/chat/completions``;
- ``admin``: a conversation and the totals, with the admin token (``/api/admin/...``);
- ``annotate``, ``compare``, ``console``: the annotators', raters' and operator's pages and APIs.

Routes hold no SQL and no rule of the loop: they check the request, call ``ChatStore``, ``Turns`` or a store
module, and shape the answer. The route modules do not use ``from __future__ import annotations``: FastAPI reads
a route's parameter types when it is declared, and ``Who`` (the caller of a session) is local to each router.
"""
