"""``hailuo serve``: OpenAI- and Anthropic-compatible endpoints over ``ChatHailuo``.

``core`` answers API-neutral requests and remembers chats, ``openai_api``,
``responses_api`` and ``anthropic_api`` translate each API, ``status`` maps failures to
statuses, ``store`` and ``config`` hold the conversation store and settings, ``app`` the
aiohttp app: ``await serve_forever(Server(ChatHailuo(), ServeConfig(port=8000)))``.
"""

from langchain_hailuo.serve.app import Server, serve_forever
from langchain_hailuo.serve.config import ServeConfig
from langchain_hailuo.serve.store import ConversationStore, MemoryStore

__all__ = ["ConversationStore", "MemoryStore", "ServeConfig", "Server", "serve_forever"]
