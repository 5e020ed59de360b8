"""An LCEL chain: prompt | ChatHailuo | output parser, streamed, with a system prompt.

Run: ``python examples/lcel_chain.py`` (uses the local emulator when no Hailuo credentials are
set, so it works offline).
"""

from __future__ import annotations

import asyncio

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_hailuo.demo import example_model


async def main() -> None:
    async with example_model() as model:
        prompt = ChatPromptTemplate.from_messages(
            [
                ("system", "You are a concise assistant. Answer in at most two sentences."),
                ("human", "Explain {topic} to a ten-year-old."),
            ]
        )
        chain = prompt | model | StrOutputParser()
        async for text in chain.astream({"topic": "why the sky is blue"}):
            print(text, end="", flush=True)
        print()
        # The same chain, once more, without streaming.
        print(await chain.ainvoke({"topic": "rainbows"}))


if __name__ == "__main__":
    asyncio.run(main())
