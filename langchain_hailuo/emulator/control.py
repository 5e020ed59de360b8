"""Scripting the emulator from outside a test: JSON-lines scripts and a loopback control route.

Each script entry is one JSON object (one per line in a file given to
``hailuo emulator --script FILE``; blank lines and ``#`` comments are skipped):

- ``{"reply": "Hello.", "reasoning": "...", "marker": "TASK-7", "account": "default"}``:
  an exact answer;
- ``{"tool_calls": [{"name": "Bash", "arguments": {"command": "ls"}}], "text": "Let me
  look."}``: an answer calling tools, written in the package's call syntax;
- ``{"fault": "drop", "times": 1, "after": 4}``: a fault (its other keys are the fault's
  parameters: ``on``, ``after``, ``seconds``, ``protocol``...).

``marker`` binds a reply to the first message whose text holds it, so a client's side
requests (titles, warm-ups) do not take it. ``account`` names the emulator account
(default: the default one).

While it runs, ``POST /_emulator/script`` on the v4 origin queues entries (one object or
a list) and ``DELETE /_emulator/script`` forgets queued replies and faults; both answer
loopback callers only.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from langchain_hailuo.emulator.core import ScriptedReply

__all__ = ["CONTROL_PATH", "Scriptable", "add_control_routes", "apply_entries", "load_script"]


class Scriptable(Protocol):
    """What the control route drives: the emulator's script and fault queues."""

    def script(self, *replies: str | ScriptedReply, account: str | None = None) -> None:
        """Queue exact replies for an account (or any)."""

    def fault(self, kind: str, *, account: str | None = None, times: int = 1, **params: Any) -> Any:
        """Make the next request(s) fail."""

    def clear_script(self) -> None:
        """Forget every queued reply and fault."""


CONTROL_PATH = "/_emulator/script"
"""The control route on the emulator's v4 origin."""

_REPLY_KEYS = frozenset({"reply", "tool_calls", "text", "reasoning", "marker", "account"})


def _tool_call_text(text: str, calls: list[Mapping[str, Any]]) -> str:
    """An answer calling tools as the model writes it: the prose, then one block per call."""
    blocks = [
        "<tool_call>\n"
        + json.dumps({"name": call["name"], "arguments": dict(call.get("arguments") or {})})
        + "\n</tool_call>"
        for call in calls
    ]
    return "\n".join(part for part in [text.strip(), *blocks] if part)


def _reply(entry: Mapping[str, Any]) -> ScriptedReply:
    """A reply entry (``reply``, or ``tool_calls`` with an optional ``text``)."""
    unknown = set(entry) - _REPLY_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; a reply takes {sorted(_REPLY_KEYS)}")
    if "tool_calls" in entry:
        calls = entry["tool_calls"]
        if not isinstance(calls, list) or not all(
            isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in calls
        ):
            raise ValueError("tool_calls must be a list of {'name': ..., 'arguments': {...}}")
        text = _tool_call_text(str(entry.get("text") or ""), calls)
    elif isinstance(entry.get("reply"), str):
        text = entry["reply"]
    else:
        raise ValueError("an entry needs 'reply' (text), 'tool_calls' or 'fault'")
    reasoning, marker = entry.get("reasoning"), entry.get("marker")
    return ScriptedReply(
        text,
        reasoning=str(reasoning) if reasoning is not None else None,
        marker=str(marker) if marker is not None else None,
    )


def apply_entries(emulator: Scriptable, entries: Iterable[Any]) -> int:
    """Queue script entries on a running (or not yet started) emulator."""
    count = 0
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError(f"entry {count + 1} is not a JSON object")  # noqa: TRY004 - bad data
        account = entry.get("account")
        if "fault" in entry:
            params = {k: v for k, v in entry.items() if k not in {"fault", "times", "account"}}
            emulator.fault(
                str(entry["fault"]), account=account, times=int(entry.get("times", 1)), **params
            )
        else:
            emulator.script(_reply(entry), account=account)
        count += 1
    return count


def load_script(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a JSON-lines script file."""
    entries: list[dict[str, Any]] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            entry = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{path}, line {number}: not a JSON object")  # noqa: TRY004
        entries.append(entry)
    return entries


def _loopback(request: web.Request) -> bool:
    """Whether the caller is on this machine."""
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def add_control_routes(app: web.Application, emulator: Scriptable) -> None:
    """Add ``POST`` / ``DELETE /_emulator/script`` to the v4 origin's app."""

    async def queue(request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "loopback callers only"}, status=403)
        try:
            body = await request.json()
            entries = body if isinstance(body, list) else [body]
            queued = apply_entries(emulator, entries)
        except (ValueError, KeyError) as exc:  # JSON errors are ValueErrors too
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"queued": queued})

    async def clear(request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "loopback callers only"}, status=403)
        emulator.clear_script()
        return web.json_response({"cleared": True})

    app.router.add_post(CONTROL_PATH, queue)
    app.router.add_delete(CONTROL_PATH, clear)
