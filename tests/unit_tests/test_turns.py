"""The one-way turn pipeline: planned once per call, layered downward, one chunk per read."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

import langchain_hailuo
from langchain_hailuo import _messages, _turns
from langchain_hailuo._prompt import TurnRequest
from langchain_hailuo.types import ProviderEvent, Reasoning
from tests.unit_tests.test_chat_models import FakeProvider, make_model

PACKAGE = Path(langchain_hailuo.__file__).parent

PLANNING_LAYER = {
    "chat_models",
    "_turns",
    "_answer",
    "_messages",
    "_tool_turns",
    "_tools",
    "_structured",
    "_schema",
}
"""The LangChain layer: the model, its planner and answer modules and the prompting core."""

ABOVE = ("serve", "cli", "demo", "__init__")
"""Packages and modules built on ``ChatHailuo`` (they may use anything)."""


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return key.upper()


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count the calls of ``owner.name`` (wrapping it)."""
    calls: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


# --------------------------------------------------------------------------- planned once


def test_a_call_is_rendered_and_planned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    model, provider = make_model(FakeProvider(replies=[["Let me look."], ["Done."]]))
    llm = model.bind_tools([lookup])
    first = llm.invoke([HumanMessage("Look up a")])
    call = AIMessage(
        "",
        tool_calls=[{"name": "lookup", "args": {"key": "a"}, "id": "c1"}],
        response_metadata=first.response_metadata,
    )
    history = [HumanMessage("Look up a"), call, ToolMessage("A", tool_call_id="c1")]
    plans = counting(monkeypatch, _turns, "plan")  # chat_models calls _turns.plan
    renders = counting(monkeypatch, _turns, "render_call")
    anchors = counting(monkeypatch, _turns, "scan_answers")  # the history, scanned once
    mapped = counting(monkeypatch, _messages, "message_to_dict")
    llm.invoke(history)
    assert (len(plans), len(renders), len(anchors)) == (1, 1, 1)
    assert len(mapped) == len(history)  # each message rendered once
    sent = provider.calls[-1]
    assert sent.conversation is not None  # the tool result continued the chat
    assert "<tool_result" in sent.messages[0]["content"]


def test_providers_take_the_planned_request_as_it_is() -> None:
    model, provider = make_model()
    first = model.invoke("One")
    model.invoke(["One", first, "Two"])
    request = provider.requests[-1]
    assert isinstance(request, TurnRequest)
    assert request.continued
    assert request.text == "Two"
    assert request.history_hash


def _imports(path: Path) -> set[str]:
    """The ``langchain_hailuo`` modules a source file imports (relative names resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("langchain_hailuo")}


def test_no_module_below_chat_models_imports_the_planner_or_the_tools_layer() -> None:
    offenders: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
        if module in PLANNING_LAYER or module.startswith(ABOVE):
            continue
        imported = _imports(path)
        offenders.extend(
            f"{module} imports {banned}"
            for banned in ("langchain_hailuo._turns", "langchain_hailuo._tools")
            if any(name == banned or name.startswith(banned + ".") for name in imported)
        )
    assert offenders == []


def test_only_the_model_calls_the_planner() -> None:
    users = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if "langchain_hailuo._turns" in _imports(path)
    ]
    assert users == ["chat_models.py"]


def _module_name(path: Path) -> str:
    """The dotted name of a package source file (``langchain_hailuo.v4.stream``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path) -> set[str]:
    """The package modules a file imports when it is imported (not in functions or
    ``TYPE_CHECKING`` blocks)."""
    found: set[str] = set()
    statements = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.If) and not (
            isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        ):
            statements.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            statements.extend(node.body)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_browser_login_does_not_import_auth() -> None:
    # auth starts a login through _browser; _browser takes what it needs from the modules
    # below both (_config, _routing, types), so it never calls up into auth.
    imported = _imports(PACKAGE / "_browser.py")
    assert not any(
        name == "langchain_hailuo.auth" or name.startswith("langchain_hailuo.auth.")
        for name in imported
    ), imported


def test_module_level_imports_have_no_cycle() -> None:
    # Package __init__ files only re-export, so they are left out of the graph.
    modules = {
        _module_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"
    }
    graph = {
        name: {dep for dep in _module_level_imports(path) if dep in modules and dep != name}
        for name, path in modules.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*trail[trail.index(dep) :], dep] if dep in trail else [name, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
    assert "langchain_hailuo.auth" in graph["langchain_hailuo.chat_models"]  # the graph is real


# --------------------------------------------------------------------------- one read


def test_deltas_of_one_read_make_one_chunk_and_kinds_never_merge() -> None:
    class OneRead(FakeProvider):
        """Every event of the answer arrives in one read."""

        async def stream_turn(
            self, *args: Any, **kwargs: Any
        ) -> AsyncIterator[list[ProviderEvent]]:
            self.calls.append(args)  # type: ignore[arg-type]
            yield [Reasoning("thin"), Reasoning("king"), "Hel", "lo", " world"]

    model, _ = make_model(OneRead())
    chunks = list(model.stream("Hi"))
    reasoning = [c.additional_kwargs.get("reasoning_content") for c in chunks]
    assert [c.content for c in chunks[:-1]] == ["", "Hello world"]
    assert reasoning[:2] == ["thinking", None]
    assert chunks[-1].chunk_position == "last"


def test_importing_and_building_the_model_loads_no_browser_driver_server_or_emulator() -> None:
    code = (
        "import sys; from langchain_hailuo import ChatHailuo; ChatHailuo(token='t', timeout=5); "
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'nodriver' "
        "or m == 'aiohttp.web' or m.startswith('langchain_hailuo.emulator')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


def test_a_single_account_model_loads_no_redis() -> None:
    code = (
        "import sys; from langchain_hailuo import ChatHailuo; ChatHailuo(token='t', timeout=5); "
        "print(any(m.split('.')[0] == 'redis' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
