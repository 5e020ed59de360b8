"""The MiniMax Agent (era C, ``/minimax-cloud/api/v1``): control routes and the SSE turn.

Control origin (``Emulator.agent_url``): ``GET /v1/api/user/info``, ``GET {prefix}/config``,
``GET {prefix}/agent``, ``POST {prefix}/agent/{agent_id}/session`` and
``GET {prefix}/session/{session_id}/message`` (stored history).
Stream origin (``Emulator.agent_stream_url``): ``POST {prefix}/session/{session_id}/message``.

Every call is checked as the real service is reported to check it, in this order:

1. ``token`` in the header **and** in the query, both the account's valid token: else 401,
   empty body; ``user_id`` in the query must be the account's ``realUserID`` (except on
   ``/v1/api/user/info`` and ``/v1/api/user/renewal``): else 401, empty body; a ``uuid``
   in the query (every call; the web app always sends one): else 401, empty body;
2. the browser's signing recipe, strictly (§12.1, see
   :func:`~langchain_hailuo.emulator.signing.agent_browser_problem`): ``x-signature``,
   whole-second ``unix``, the parameter order, ``region`` on agent-API calls only, and
   ``yy`` with ``op_ticket=undefined`` (absolute on the stream host): else 400
   ``invalid signature``;
3. ``device_id`` numeric (except on ``/v1/api/user/info``): else 400 with
   ``base_resp.status_code`` 1406011050;
4. message only: ``/config`` called by the account first (switchable, ``require_config``):
   else 500 ``[1400010501] Environment Variables not configured``; the session is the
   account's (else 404) and not answering another turn (else 409).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from langchain_hailuo.emulator.core import (
    BASE_RESP_OK,
    QUOTA_WALL_TEXT,
    EmulatorAccount,
    EmulatorState,
    EventStream,
    Fault,
    default_reasoning,
    default_reply,
    error_response,
    json_text,
    random_digits,
    wait_first_byte,
)
from langchain_hailuo.emulator.signing import agent_browser_problem
from langchain_hailuo.emulator.uploads import AgentUploads

__all__ = [
    "DEFAULT_API_PREFIX",
    "MODEL_CATALOG",
    "QUOTA_ERROR_CODE",
    "RENEWAL_PATH",
    "TRANSIENT_ERROR_TEXT",
    "USER_INFO_PATH",
    "AgentRoutes",
    "AgentSession",
]

DEFAULT_API_PREFIX: Final = "/minimax-cloud/api/v1"
USER_INFO_PATH: Final = "/v1/api/user/info"
RENEWAL_PATH: Final = "/v1/api/user/renewal"
MEMBERSHIP_PATH: Final = "/matrix/api/v1/commerce/get_membership_info"
QUOTA_ERROR_CODE: Final = 2056
"""Code of the ``stream_error`` fault's error frame (Token Plan quota exhausted)."""
TRANSIENT_ERROR_TEXT: Final = "sandbox connection error"

MODEL_CATALOG: Final[dict[str, dict[str, Any]]] = {
    "MiniMax-M3": {
        "context_limit": 450000,
        "supported_variants": ["", "thinking"],
        "forced_thinking": False,
    },
    "MiniMax-M2.7": {
        "context_limit": 200000,
        "supported_variants": ["thinking"],
        "forced_thinking": True,
    },
}
"""What ``/config`` says about each model (others get the ``MiniMax-M3`` entry)."""

logger = logging.getLogger(__name__)

_OTHER_ROLES: Final = ("general", "coder", "verifier", "chat")
_TYPE_MESSAGE: Final = 2
_TYPE_CHUNK: Final = 6
_TYPE_HEARTBEAT: Final = 10
_HEARTBEAT_EVERY: Final = 4


@dataclass
class AgentSession:
    """A server-side Agent session.

    Attributes:
        session_id: The 15-digit session id.
        account: The owner's account name.
        agent_id: The agent it was opened on.
        model: The model object it was created with.
        turns: ``(user text, answer)`` pairs, oldest first.
        busy: Whether a turn is streaming right now.
    """

    session_id: str
    account: str
    agent_id: str
    model: dict[str, Any]
    turns: list[tuple[str, str]] = field(default_factory=list)
    busy: bool = False


@dataclass
class _Caller:
    """A request that passed the identity and signature checks."""

    account: EmulatorAccount
    body: Any
    fault: Fault | None


def _model_info(model_id: str) -> dict[str, Any]:
    """The catalog entry of a model (the default model's for an unknown id)."""
    return MODEL_CATALOG.get(model_id, MODEL_CATALOG["MiniMax-M3"])


def _model_object(raw: Any) -> dict[str, Any]:
    """Normalise the model of a session / message body (object or ``provider/model`` text)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        provider, _, model_id = raw.rpartition("/")
        return {"provider_id": provider or "minimax", "model_id": model_id}
    return {}


def _wants_reasoning(model: dict[str, Any]) -> bool:
    """Reasoning is on when the model says so, asks for the thinking variant, or forces it."""
    if (
        _model_info(str(model.get("model_id", ""))).get("forced_thinking")
        and model.get("model_id") in MODEL_CATALOG
    ):
        return True
    return model.get("reasoning") is True or model.get("variant") == "thinking"


def _pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of ``size`` characters."""
    step = max(size, 1)
    return [text[start : start + step] for start in range(0, len(text), step)]


def _estimate_tokens(text: str) -> int:
    """A rough token count (four characters a token), at least one."""
    return max(1, len(text) // 4)


class AgentRoutes:
    """The Agent control and stream routes, with their sessions."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        chunk_size: int,
        chunk_delay: float,
        api_prefix: str,
        require_config: bool,
        final_message: bool,
        first_byte_delay: float = 0.0,
    ) -> None:
        """Serve ``chunk_size`` characters per chunk frame, ``chunk_delay`` seconds apart.

        ``require_config`` refuses messages until the account called ``/config``;
        ``final_message`` sends a type-2 ``agent_message`` with usage after ``finish``;
        ``first_byte_delay`` delays a turn's headers (production: about 0.4 s, §12.2).
        """
        self.state = state
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.prefix = api_prefix.rstrip("/")
        self.require_config = require_config
        self.final_message = final_message
        self.first_byte_delay = first_byte_delay
        self.sessions: dict[str, AgentSession] = {}
        self.configured: set[str] = set()
        self._other_agents: dict[str, dict[str, str]] = {}
        self.uploads = AgentUploads(state, check=self._check, prefix=self.prefix)

    def add_control_to(self, app: web.Application) -> None:
        """Register the control routes."""
        app.router.add_get(USER_INFO_PATH, self.user_info)
        app.router.add_post(RENEWAL_PATH, self.renewal)
        app.router.add_get(f"{self.prefix}/config", self.config)
        app.router.add_get(f"{self.prefix}/agent", self.agents)
        app.router.add_post(f"{self.prefix}/agent/{{agent_id}}/session", self.create_session)
        app.router.add_get(f"{self.prefix}/session/{{session_id}}/message", self.history)
        app.router.add_post(MEMBERSHIP_PATH, self.membership)
        app.router.add_get(f"{self.prefix}/credit/details", self.credit_details)
        self.uploads.add_prepare_to(app)

    def add_stream_to(self, app: web.Application) -> None:
        """Register the stream route."""
        app.router.add_post(f"{self.prefix}/session/{{session_id}}/message", self.message)

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _signature_problem(request: web.Request, text: str, *, stream: bool) -> str | None:
        """What differs from the browser's signing recipe (§12.1), or ``None``."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        return agent_browser_problem(
            path=raw_path,
            raw_query=raw_query,
            body=text,
            headers=request.headers,
            stream_origin=f"{request.scheme}://{request.host}" if stream else None,
        )

    async def _check(
        self, request: web.Request, endpoint: str, *, identity: bool = True, stream: bool = False
    ) -> _Caller | web.Response:
        """Record the request, check identity and signature: the caller, or the error response."""
        text = await request.text()
        body: Any = text or None
        if text:
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        account, fault, refused = self.state.caller_of(
            request, protocol="agent", endpoint=endpoint, body=self.state.redact_body(body)
        )
        if refused is not None:
            return refused
        if (
            account is None
            or not self.state.token_is_valid(account)
            or request.query.get("token") != account.token
            or (identity and request.query.get("user_id") != account.real_user_id)
            or not request.query.get("uuid")
        ):
            return error_response("http_401_empty", "agent")
        problem = self._signature_problem(request, text, stream=stream)
        if problem is not None:
            logger.info("refused %s %s: %s", request.method, request.path, problem)
            return error_response("invalid_signature", "agent")
        if identity and not request.query.get("device_id", "").isdigit():
            return error_response("device_id", "agent")
        return _Caller(account=account, body=body, fault=fault)

    # ------------------------------------------------------------------ control routes

    async def user_info(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/api/user/info``: the account's ``realUserID`` (no ``user_id`` needed)."""
        caller = await self._check(request, "user_info", identity=False)
        if isinstance(caller, web.StreamResponse):
            return caller
        account = caller.account
        info = {
            "realUserID": account.real_user_id,
            "userID": account.user_id,
            "name": account.name,
            "isAnonymous": False,
        }
        return web.json_response(
            {"statusInfo": {"code": 0, "message": "Success"}, "data": {"userInfo": info}}
        )

    # ------------------------------------------------------------------ token renewal

    async def renewal(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/api/user/renewal``: a new token ~40 days out; the old one is revoked.

        Counted in :attr:`EmulatorState.renewals`. Checked like user info (no ``user_id``
        needed, a hex ``device_id`` accepted); an expired token gets the 401 of any call.
        """
        caller = await self._check(request, "renewal", identity=False)
        if isinstance(caller, web.StreamResponse):
            return caller
        token = self.state.renew_token(caller.account.name)
        return web.json_response(
            {"statusInfo": {"code": 0, "message": "Success"}, "data": {"token": token}}
        )

    async def config(self, request: web.Request) -> web.StreamResponse:
        """``GET {prefix}/config``: the models; marks the account as configured."""
        caller = await self._check(request, "config")
        if isinstance(caller, web.StreamResponse):
            return caller
        self.configured.add(caller.account.name)
        models = []
        for model_id in caller.account.models:
            info = _model_info(model_id)
            models.append(
                {
                    "provider_id": "minimax",
                    "model_id": model_id,
                    "display_name": model_id,
                    "context_limit": info["context_limit"],
                    "supported_variants": info["supported_variants"],
                    "thinking_config": {"forced": info["forced_thinking"]},
                }
            )
        return web.json_response({"models": models, "base_resp": dict(BASE_RESP_OK)})

    async def membership(self, request: web.Request) -> web.StreamResponse:
        """``POST /matrix/.../get_membership_info``: plan, string balance, older fields at 0.

        As §7.3 reports after the "op" migration: ``op_credit_summary.total_remaining_amount``
        is the balance, the older fields read 0.
        """
        caller = await self._check(request, "membership")
        if isinstance(caller, web.StreamResponse):
            return caller
        account = caller.account
        data = {
            "plan_name": account.plan,
            "plan_type": account.plan.lower(),
            "total_remains_credit": 0,
            "opcredit_balance": 0,
            "daily_login_gift_credit_remaining": 0,
            "has_token_plan": False,
            "op_credit_summary": {"total_remaining_amount": f"{account.credits:.2f}"},
        }
        return web.json_response({"data": data, "base_resp": dict(BASE_RESP_OK)})

    async def credit_details(self, request: web.Request) -> web.StreamResponse:
        """``GET {prefix}/credit/details``: the grants (flat; ``details`` absent when none)."""
        caller = await self._check(request, "credit_details")
        if isinstance(caller, web.StreamResponse):
            return caller
        left = caller.account.credits
        grants = [min(left, 800.0), max(left - 800.0, 0.0)] if left > 0 else []
        details = [
            {"grant_type": "daily" if i else "signup", "remaining_amount": f"{amount:.2f}"}
            for i, amount in enumerate(grants)
            if amount > 0
        ]
        body: dict[str, Any] = {"total_count": len(details), "base_resp": dict(BASE_RESP_OK)}
        if details:
            body["details"] = details
        return web.json_response(body)

    def _agent_ids(self, account: EmulatorAccount) -> dict[str, str]:
        """Agent id -> role for an account (``mavis`` first)."""
        others = self._other_agents.setdefault(
            account.name, {random_digits(15): role for role in _OTHER_ROLES}
        )
        return {account.agent_id: "mavis", **others}

    async def agents(self, request: web.Request) -> web.StreamResponse:
        """``GET {prefix}/agent``: the account's agents; ``name`` is the numeric id."""
        caller = await self._check(request, "agents")
        if isinstance(caller, web.StreamResponse):
            return caller
        agents = [
            {"name": agent_id, "agent_role": role, "display_name": role.capitalize()}
            for agent_id, role in self._agent_ids(caller.account).items()
        ]
        return web.json_response(
            {"agents": agents, "has_more": False, "base_resp": dict(BASE_RESP_OK)}
        )

    async def create_session(self, request: web.Request) -> web.StreamResponse:
        """``POST {prefix}/agent/{agent_id}/session``: a new 15-digit session."""
        caller = await self._check(request, "session")
        if isinstance(caller, web.StreamResponse):
            return caller
        agent_id = request.match_info["agent_id"]
        if not agent_id.isdigit():
            return web.json_response(
                {"agent_name": agent_id, "base_resp": dict(BASE_RESP_OK)}
            )  # as the real one: no id
        if agent_id not in self._agent_ids(caller.account):
            return error_response("not_found", "agent", message="agent not found")
        body = caller.body if isinstance(caller.body, dict) else {}
        model = _model_object(body.get("model"))
        session_id = random_digits(15)
        while session_id in self.sessions:
            session_id = random_digits(15)
        self.sessions[session_id] = AgentSession(session_id, caller.account.name, agent_id, model)
        return web.json_response(
            {"agent_name": agent_id, "session_id": session_id, "base_resp": dict(BASE_RESP_OK)}
        )

    def _own_session(self, caller: _Caller, session_id: str) -> AgentSession | None:
        """The session ``session_id`` when the caller's account owns it, else ``None``."""
        session = self.sessions.get(session_id)
        return session if session is not None and session.account == caller.account.name else None

    async def history(self, request: web.Request) -> web.StreamResponse:
        """``GET {prefix}/session/{session_id}/message``: the stored turns."""
        caller = await self._check(request, "history")
        if isinstance(caller, web.StreamResponse):
            return caller
        session = self._own_session(caller, request.match_info["session_id"])
        if session is None:
            return error_response("not_found", "agent", message="session not found")
        messages: list[dict[str, Any]] = []
        for user_text, answer in session.turns:
            messages.append(
                {"role": "user", "msg_type": 1, "msg_content": user_text, "source": "api"}
            )
            messages.append(
                {"role": "assistant", "msg_type": 1, "msg_content": answer, "finish_reason": "stop"}
            )
        return web.json_response(
            {
                "messages": messages,
                "has_more": False,
                "next_cursor": "",
                "base_resp": dict(BASE_RESP_OK),
            }
        )

    # ------------------------------------------------------------------ the turn

    def _turn_problem(
        self, request: web.Request, caller: _Caller
    ) -> web.Response | tuple[AgentSession, dict[str, Any]]:
        """The error answer for a message that cannot start, or its session and body."""
        if self.require_config and caller.account.name not in self.configured:
            return error_response("not_configured", "agent")
        session = self._own_session(caller, request.match_info["session_id"])
        if session is None:
            return error_response("not_found", "agent", message="session not found")
        body = caller.body if isinstance(caller.body, dict) else {}
        if not isinstance(body.get("content"), str) or not body.get("turn_id"):
            return error_response(
                "bad_request", "agent", message="content and turn_id are required"
            )
        if session.busy:
            return error_response("http_409", "agent")
        refused = self.uploads.refusal(caller.account.name, body, caller.fault)
        return refused if refused is not None else (session, body)

    async def message(self, request: web.Request) -> web.StreamResponse:
        """``POST {prefix}/session/{session_id}/message``: stream one turn as SSE."""
        caller = await self._check(request, "chat", stream=True)
        if isinstance(caller, web.StreamResponse):
            return caller
        checked = self._turn_problem(request, caller)
        if isinstance(checked, web.StreamResponse):
            return checked
        session, body = checked
        await wait_first_byte(caller.fault)
        if self.first_byte_delay > 0:
            await asyncio.sleep(self.first_byte_delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        stream = EventStream(request, response, self.state, caller.fault, self.chunk_delay)
        session.busy = True
        try:
            await stream.serve(_Turn(self, stream, session, caller, body).run)
        finally:
            session.busy = False  # also when the client left mid-turn or during a stall
        return response


class _Turn:
    """Writes the frames of one Agent turn."""

    def __init__(
        self,
        routes: AgentRoutes,
        stream: EventStream,
        session: AgentSession,
        caller: _Caller,
        body: dict[str, Any],
    ) -> None:
        self.routes = routes
        self.stream = stream
        self.session = session
        self.fault = caller.fault
        self.account = caller.account
        self.content: str = body["content"]
        self.attachments = routes.uploads.describe(body)
        self.turn_id = str(body["turn_id"])
        self.model = _model_object(body.get("model")) or session.model
        self.msg_id = random_digits(18)
        self._sent = 0

    async def _send(self, payload: dict[str, Any]) -> None:
        """One ``data:`` frame; every other one has no space after the colon."""
        prefix = "data:" if self._sent % 2 == 0 else "data: "
        self._sent += 1
        await self.stream.send(f"{prefix}{json_text(payload)}\n\n")

    async def _keep_alive(self, count: int) -> None:
        """A heartbeat during a long answer, in the three forms production uses (§12.3)."""
        form = count % 3
        if form == 0:
            await self._send({"type": _TYPE_HEARTBEAT, "timestamp": int(time.time() * 1000)})
        elif form == 1:
            await self.stream.send(": ping\n\n")  # an SSE comment line
        else:
            await self._send({"type": "heartbeat"})

    async def _chunk(self, text: str = "", thinking: str = "", *, finish: bool = False) -> None:
        """Send one type-6 ``agent_message_chunk`` frame."""
        chunk = {
            "role": "assistant",
            "msg_content": text,
            "thinking_content": thinking,
            "finish": finish,
            "finish_reason": "stop" if finish else "",
        }
        await self._send(
            {
                "type": _TYPE_CHUNK,
                "session_id": self.session.session_id,
                "msg_id": self.msg_id,
                "agent_message_chunk": chunk,
            }
        )

    async def _error_frame(self, message: str, code: int | None) -> None:
        """Send a type-2 frame with ``finish_reason: "error"`` (and the code, if any)."""
        frame: dict[str, Any] = {
            "role": "assistant",
            "msg_content": message,
            "thinking_content": "",
            "finish_reason": "error",
        }
        payload: dict[str, Any] = {
            "type": _TYPE_MESSAGE,
            "session_id": self.session.session_id,
            "agent_message": frame,
        }
        if code is not None:
            frame["error_code"] = code
            payload["base_resp"] = {"status_code": code, "status_msg": message}
        await self._send(payload)

    def _plan(self) -> tuple[str, str]:
        """The answer and reasoning texts of this turn."""
        kind = self.fault.kind if self.fault else None
        if kind == "quota_wall" and self.fault is not None:
            return str(self.fault.params.get("text") or QUOTA_WALL_TEXT), ""
        if (
            kind == "session_transient"
            and self.fault is not None
            and self.fault.params.get("as_answer")
        ):
            return TRANSIENT_ERROR_TEXT, ""
        scripted = self.routes.state.next_script(self.account.name, self.content)
        answer = (
            scripted.text if scripted else default_reply(self.content, len(self.session.turns) + 1)
        )
        if not scripted and self.attachments:
            answer = f"{answer} {self.attachments}"
        reasoning = ""
        if _wants_reasoning(self.model) or _wants_reasoning(self.session.model):
            reasoning = (scripted.reasoning if scripted else None) or default_reasoning(
                self.content
            )
        return answer, reasoning

    def _error_at(self) -> tuple[int, str, int | None] | None:
        """Where (chunk index) and which error frame a fault puts into the answer."""
        if self.fault is None:
            return None
        params = self.fault.params
        if self.fault.kind == "stream_error":
            code = int(params.get("code", QUOTA_ERROR_CODE))
            return (
                int(params.get("after", 1)),
                str(params.get("message", "Token Plan quota exhausted")),
                code,
            )
        if self.fault.kind == "session_transient" and not params.get("as_answer"):
            return int(params.get("after", 0)), TRANSIENT_ERROR_TEXT, None
        return None

    async def run(self) -> None:
        """Echo, heartbeat, reasoning and answer chunks, the tail re-send, finish, final message."""
        await self._send(
            {
                "type": _TYPE_MESSAGE,
                "session_id": self.session.session_id,
                "agent_message": {
                    "role": "user",
                    "msg_content": self.content,
                    "turn_id": self.turn_id,
                },
            }
        )
        await self._send({"type": _TYPE_HEARTBEAT, "timestamp": int(time.time() * 1000)})
        await self._extra_frames()
        answer, reasoning = self._plan()
        error = self._error_at()
        pieces = [("", thought) for thought in _pieces(reasoning, self.routes.chunk_size)]
        pieces += [(text, "") for text in _pieces(answer, self.routes.chunk_size)]
        for index, (text, thinking) in enumerate(pieces):
            if error is not None and index == error[0]:
                await self._error_frame(error[1], error[2])
                return
            if index and index % _HEARTBEAT_EVERY == 0:
                await self._keep_alive(index // _HEARTBEAT_EVERY)
            await self._chunk(text, thinking)
        if error is not None:
            await self._error_frame(error[1], error[2])
            return
        self.session.turns.append((self.content, answer))
        await self._chunk(answer)  # the real service re-sends the whole answer as a last chunk
        await self._chunk(finish=True)
        if self.routes.final_message:
            await self._final(answer, reasoning)

    async def _extra_frames(self) -> None:
        """The ``frames`` fault: send its frames before the answer (any §12.3 kind).

        ``frames`` is a list: a dict goes out as a ``data:`` frame, a string as written
        (``: ping`` is a comment line, ``data: {...}`` a frame spelt by hand); each is
        followed by a blank line. ``{"type": "error", ...}`` or a ``session_status`` frame
        ends the turn as the real one would.
        """
        if self.fault is None or self.fault.kind != "frames":
            return
        for frame in self.fault.params.get("frames") or []:
            if isinstance(frame, dict):
                await self._send({"session_id": self.session.session_id, **frame})
            else:
                await self.stream.send(f"{frame}\n\n")

    async def _final(self, answer: str, reasoning: str) -> None:
        """The type-2 ``agent_message`` with the whole answer and usage."""
        prompt_tokens = _estimate_tokens(self.content)
        output_tokens = _estimate_tokens(answer + reasoning)
        usage = {
            "input_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
        }
        message = {
            "role": "assistant",
            "msg_id": self.msg_id,
            "msg_content": answer,
            "thinking_content": reasoning,
            "finish_reason": "stop",
            "usage": usage,
        }
        await self._send(
            {"type": _TYPE_MESSAGE, "session_id": self.session.session_id, "agent_message": message}
        )
