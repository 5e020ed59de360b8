"""A tool-using agent: LangGraph's prebuilt ReAct agent with ChatHailuo.

ChatHailuo calls tools by prompting: ``bind_tools`` describes the tools to the model once per
chat, the answer is parsed into ``AIMessage.tool_calls``, and the tool results go back to the
same server chat as labelled blocks (only the results are sent, not the history).

With credentials (``HAILUO_TOKEN`` or ``hailuo login``) it asks the real service; otherwise it
runs offline against the bundled emulator, whose replies are scripted here (the emulator is a
protocol stand-in, not a model).

Run: ``python examples/react_agent.py`` (``--emulator`` forces the offline run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import warnings
from collections.abc import AsyncIterator

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

from langchain_hailuo import ChatHailuo
from langchain_hailuo.demo import has_credentials

QUESTION = "What is the weather in Paris, and what is 21 times 2?"

CITIES = {"paris": "Sunny, 21 °C", "london": "Light rain, 14 °C"}


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return CITIES.get(city.strip().lower(), f"No weather data for {city}.")


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _call(name: str, arguments: dict[str, object]) -> str:
    """A tool call block as the model is taught to write it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


SCRIPT = (
    # 1st turn: two tool calls at once (prose first, which streams as content).
    "I'll look up the weather and do the sum.\n"
    + _call("get_weather", {"city": "Paris"})
    + "\n"
    + _call("multiply", {"a": 21, "b": 2}),
    # 2nd turn, after the tool results: the final answer.
    "It is sunny and 21 °C in Paris, and 21 times 2 is 42.",
)


@contextlib.asynccontextmanager
async def agent_model(*, use_emulator: bool | None) -> AsyncIterator[ChatHailuo]:
    """ChatHailuo for the real service, or for the emulator with the replies scripted."""
    emulate = not has_credentials() if use_emulator is None else use_emulator
    async with contextlib.AsyncExitStack() as stack:
        if emulate:
            from langchain_hailuo.emulator import Emulator  # noqa: PLC0415 - only offline

            emulator = await stack.enter_async_context(Emulator(chunk_delay=0.005))
            emulator.script(*SCRIPT)
            print(f"No credentials: using the local emulator (scripted) at {emulator.agent_url}.")
            model = ChatHailuo(**emulator.model_kwargs(protocol="agent"))
        else:
            print("Using your Hailuo / MiniMax credentials against the real service.")
            model = ChatHailuo()
        stack.push_async_callback(model.aclose)
        yield model


async def main(*, use_emulator: bool | None = None) -> int:
    """Run the agent on one question and print each step."""
    async with agent_model(use_emulator=use_emulator) as model:
        with warnings.catch_warnings():
            # LangGraph 1.x points to langchain.agents.create_agent (the `langchain` package);
            # the prebuilt agent works the same and needs only langgraph.
            warnings.simplefilter("ignore", DeprecationWarning)
            agent = create_react_agent(model, [get_weather, multiply])
        print(f"you> {QUESTION}")
        state = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
        chat_ids = set()
        for message in state["messages"][1:]:
            if isinstance(message, AIMessage):
                chat_ids.add(message.response_metadata.get("chat_id"))
                if message.content:
                    print(f"hailuo> {message.content}")
                for call in message.tool_calls:
                    print(f"   tool call: {call['name']}({json.dumps(call['args'])})")
            elif isinstance(message, ToolMessage):
                print(f"   tool result [{message.name}]: {message.content}")
        print(f"   [one server chat: {len(chat_ids) == 1}, chat_id={next(iter(chat_ids))}]")
        final = state["messages"][-1]
        return 0 if isinstance(final, AIMessage) and final.content else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emulator", action="store_true", help="always use the local emulator")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(use_emulator=True if args.emulator else None)))
