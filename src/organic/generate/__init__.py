"""Generation backends behind one interface: a local transformers model (batched), the same model through
CTranslate2 (faster on CPU), any OpenAI-compatible server (vLLM, llama.cpp), or an echo for tests; plus
model preparation.

    from organic.generate import GenerationSettings, make_backend
    backend = make_backend(settings)             # settings.backend picks the kind
    async for delta in backend.stream(messages, GenerationSettings(max_new_tokens=64)):
        ...

Nothing here checks safety or stores messages: the server does both around a backend.
"""

from organic.generate.base import Backend, GenerationError, GenerationSettings
from organic.generate.ct2_backend import CT2Backend, generate_replies_ct2
from organic.generate.echo import EchoBackend
from organic.generate.openai_backend import OpenAIBackend
from organic.generate.prepare import BUNDLED_MODEL, bundled_gguf, local_backend, make_backend, prepare_model
from organic.generate.transformers_backend import TransformersBackend, model_version

__all__ = [
    "BUNDLED_MODEL",
    "Backend",
    "CT2Backend",
    "EchoBackend",
    "GenerationError",
    "GenerationSettings",
    "OpenAIBackend",
    "TransformersBackend",
    "bundled_gguf",
    "generate_replies_ct2",
    "local_backend",
    "make_backend",
    "model_version",
    "prepare_model",
]
