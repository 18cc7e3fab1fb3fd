"""HTML to plain text for reply extraction: stdlib only, linear, never raising.

``<blockquote>`` becomes ``> `` lines so that one set of text rules in
``mailbridge.reply`` handles HTML and plain mail alike. This is not the
display path: agents see HTML through ``mailbridge.sanitize``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset(
    (
        "p", "div", "br", "li", "tr", "table", "ul", "ol", "pre", "hr", "blockquote", "section",
        "h1", "h2", "h3", "h4", "h5", "h6",
    )
)  # fmt: skip
_SKIP = frozenset(("script", "style", "head", "title"))
_INDENT = re.compile(r"^((?:> )*)[ \t]+")
_MAX_QUOTE_DEPTH = 10  # deeper blockquotes are quoted this deep: all are history anyway


class _TextRenderer(HTMLParser):
    """HTML to plain text, rendering ``<blockquote>`` as ``> `` lines.

    Quoting the blockquote lets one set of text rules handle HTML and plain
    mail alike (Gmail, Apple Mail and Thunderbird all quote that way).
    Outlook's ``OLK_SRC_BODY_SECTION`` and Gmail's ``gmail_quote`` wrappers are
    only markers around the same header lines, which the text rules catch.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0
        self.skipping = 0

    def _newline(self) -> None:
        self.parts.append("\n" + "> " * min(self.depth, _MAX_QUOTE_DEPTH))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        if tag == "blockquote":
            self.depth += 1
        if tag in _BLOCK:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        if tag == "blockquote":
            self.depth = max(0, self.depth - 1)
        if tag in _BLOCK and tag != "br":
            self._newline()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            prefix = "\n" + "> " * min(self.depth, _MAX_QUOTE_DEPTH)
            self.parts.append(prefix.join(re.sub(r"[ \t\r\f\v]+", " ", data).split("\n")))


def html_to_text(html: str) -> str:
    """Render HTML as plain text for extraction and for tests; never raises on bad markup."""
    renderer = _TextRenderer()
    renderer.feed(html)
    renderer.close()
    # indentation in HTML source is not content: keep the quote prefix, drop the rest
    lines = [_INDENT.sub(r"\1", line).rstrip() for line in "".join(renderer.parts).split("\n")]
    text = "\n".join(line for line in lines if line.strip(" >") or not line.startswith(">"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()
