"""The langchain-tests media flags of ChatHailuo (one copy for the unit and integration suites)."""

from __future__ import annotations


class AgentMediaFlags:
    """Images, image URLs and PDFs in messages and tool results: on for the Agent protocol.

    Bytes go through the Agent's attachment pipeline; an image URL is passed by URL for the
    service to fetch (protocol notes §6.2). v4 refuses them. Put this class before the
    langchain-tests base class, so its properties win; override :attr:`takes_media` where
    the protocol is chosen at run time.
    """

    @property
    def takes_media(self) -> bool:
        """Whether the suite's model speaks a protocol that takes images and files."""
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return self.takes_media

    @property
    def supports_image_urls(self) -> bool:
        return self.takes_media

    @property
    def supports_pdf_inputs(self) -> bool:
        return self.takes_media

    @property
    def supports_image_tool_message(self) -> bool:
        return self.takes_media

    @property
    def supports_pdf_tool_message(self) -> bool:
        return self.takes_media
