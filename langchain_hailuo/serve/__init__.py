"""``hailuo serve``: OpenAI- and Anthropic-compatible endpoints over ``ChatHailuo``.

Modules, one job each: :mod:`~langchain_hailuo.serve.core` (a turn in, answer parts out,
conversations remembered), :mod:`~langchain_hailuo.serve.openai_api` and
:mod:`~langchain_hailuo.serve.anthropic_api` (each API's translation),
:mod:`~langchain_hailuo.serve.status` (failures -> statuses),
:mod:`~langchain_hailuo.serve.store` (the conversation store),
:mod:`~langchain_hailuo.serve.config` (settings and the start-up check) and
:mod:`~langchain_hailuo.serve.app` (the aiohttp app, keys, limits, CORS, shutdown).

Example:
    ```python
    server = Server(ChatHailuo(), ServeConfig(port=8000))
    await serve_forever(server, ready=print)
    ```
"""

from langchain_hailuo.serve.app import Server, serve_forever
from langchain_hailuo.serve.config import ServeConfig
from langchain_hailuo.serve.store import ConversationStore, MemoryStore

__all__ = ["ConversationStore", "MemoryStore", "ServeConfig", "Server", "serve_forever"]
