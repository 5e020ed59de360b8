"""A local stand-in for both wire protocols: the Hailuo v4 web chat and MiniMax Agent.

Start it with ``async with Emulator() as emulator:``, with ``with serving() as emulator:``
(a thread of its own; no pytest needed), with the ``hailuo_emulator`` pytest fixture from
``langchain_hailuo.emulator.pytest_plugin``, or run ``hailuo emulator [--script FILE]`` to
keep one in the foreground, scripted from a JSON-lines file and its loopback control route
(:mod:`langchain_hailuo.emulator.control`).
"""

from __future__ import annotations

from langchain_hailuo.emulator.agent import DEFAULT_API_PREFIX, AgentRoutes, AgentSession
from langchain_hailuo.emulator.app import Emulator, run_forever
from langchain_hailuo.emulator.control import CONTROL_PATH, apply_entries, load_script
from langchain_hailuo.emulator.core import (
    AGENT_FAULTS,
    FAULT_KINDS,
    NOT_CONFIGURED_TEXT,
    QUOTA_WALL_TEXT,
    V4_FAULTS,
    EmulatorAccount,
    Fault,
    RecordedRequest,
    ScriptedReply,
    make_token,
)
from langchain_hailuo.emulator.pages import LOGIN_API_PATH
from langchain_hailuo.emulator.threaded import serving
from langchain_hailuo.emulator.uploads import AgentUploads, StoredObject
from langchain_hailuo.emulator.v4 import V4Chat, V4Routes

__all__ = [
    "AGENT_FAULTS",
    "CONTROL_PATH",
    "DEFAULT_API_PREFIX",
    "FAULT_KINDS",
    "LOGIN_API_PATH",
    "NOT_CONFIGURED_TEXT",
    "QUOTA_WALL_TEXT",
    "V4_FAULTS",
    "AgentRoutes",
    "AgentSession",
    "AgentUploads",
    "Emulator",
    "EmulatorAccount",
    "Fault",
    "RecordedRequest",
    "ScriptedReply",
    "StoredObject",
    "V4Chat",
    "V4Routes",
    "apply_entries",
    "load_script",
    "make_token",
    "run_forever",
    "serving",
]
