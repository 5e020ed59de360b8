"""The seed's protocol: the Hailuo AI web chat (``POST /v4/api/chat/msg``).

* :mod:`~langchain_hailuo.v4.crypt`: the ``yy`` signature and the fingerprint query;
* :mod:`~langchain_hailuo.v4.stream`: the answer stream decoder (bytes -> events);
* :mod:`~langchain_hailuo.v4.client`: the signed multipart POST, redirects, retries, timeouts;
* :mod:`~langchain_hailuo.v4.provider`: :class:`HailuoAI`, the seed's provider interface.
"""

from langchain_hailuo.v4.client import V4Client
from langchain_hailuo.v4.provider import HailuoAI
from langchain_hailuo.v4.stream import V4StreamDecoder

__all__ = ["HailuoAI", "V4Client", "V4StreamDecoder"]
