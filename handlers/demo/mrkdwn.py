"""Slack's mrkdwn read into a small tree (pure), for the demo's text and HTML renderers.

What the bot writes, read the way Slack reads it: ```preformatted``` blocks, `>` and `>>>`
quotes, *bold*, _italics_, ~strike~, `code`, `<url|label>` links, `<@U…>` mentions, `<#C…|name>`
channels, `<!here>`, `:emoji:` shortcodes, and the three entities (`&amp;`, `&lt;`, `&gt;`).
Formatting markers count only at word boundaries, as in Slack (`snake_case` stays as it is).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EMOJI", "Line", "Pre", "Span", "emoji", "parse", "plain", "unescape"]

#: The shortcodes the bot writes, as characters (any other is shown as it is written).
EMOJI = {
    "ballot_box_with_check": "☑️",
    "calendar": "📅",
    "envelope": "✉️",
    "grey_question": "❔",
    "hourglass_flowing_sand": "⏳",
    "link": "🔗",
    "no_bell": "🔕",
    "outbox_tray": "📤",
    "robot_face": "🤖",
    "rotating_light": "🚨",
    "twisted_rightwards_arrows": "🔀",
    "warning": "⚠️",
    "wastebasket": "🗑️",
    "wave": "👋",
    "white_check_mark": "✅",
    "x": "❌",
}


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of a line: `kind` is text, bold, italic, strike, code, link, user, channel,
    special (`<!here>`) or emoji; `text` is the words (the label of a link, the id of a user or
    channel, the name of an emoji), `url` a link's target, `children` what a style applies to."""

    kind: str
    text: str = ""
    url: str = ""
    children: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    """One line of formatted text, possibly quoted."""

    spans: tuple[Span, ...]
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Pre:
    """A preformatted block (its text unescaped), possibly quoted."""

    text: str
    quoted: bool = False


_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<angle><[^<>\n]+>)"
    r"|(?P<emoji>:[a-z0-9_+'-]+:)"
    r"|(?<![\w*])\*(?=\S)(?P<bold>[^*\n]*?\S)\*(?![\w*])"
    r"|(?<![\w_])_(?=\S)(?P<italic>[^_\n]*?\S)_(?![\w_])"
    r"|(?<![\w~])~(?=\S)(?P<strike>[^~\n]*?\S)~(?![\w~])"
)
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def unescape(text: str) -> str:
    """Slack's three entities back to characters (`&amp;` last, so `&amp;lt;` stays `&lt;`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def emoji(name: str) -> str:
    """The character of a shortcode the bot uses, or the shortcode as written."""
    return EMOJI.get(name, f":{name}:")


def _angle(inner: str) -> Span:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return Span("user", target[1:])
    if target.startswith("#"):
        return Span("channel", unescape(label) or target[1:])
    if target.startswith("!"):
        word = target[1:].split("^")[0]
        return Span("special", _SPECIAL.get(word, unescape(label) or f"@{word}"))
    return Span("link", unescape(label) if label else unescape(target), url=unescape(target))


def inline(text: str) -> tuple[Span, ...]:
    """The spans of one line of mrkdwn."""
    spans: list[Span] = []
    at = 0
    for m in _INLINE.finditer(text):
        if m.start() > at:
            spans.append(Span("text", unescape(text[at : m.start()])))
        if m.group("code") is not None:
            spans.append(Span("code", unescape(m.group("code")[1:-1])))
        elif m.group("angle") is not None:
            spans.append(_angle(m.group("angle")[1:-1]))
        elif m.group("emoji") is not None:
            name = m.group("emoji")[1:-1]
            spans.append(Span("emoji", name) if name in EMOJI else Span("text", m.group("emoji")))
        else:
            kind = next(k for k in ("bold", "italic", "strike") if m.group(k) is not None)
            spans.append(Span(kind, children=inline(m.group(kind))))
        at = m.end()
    if at < len(text):
        spans.append(Span("text", unescape(text[at:])))
    return tuple(spans)


def parse(text: str) -> list[Line | Pre]:
    """A mrkdwn text as lines and preformatted blocks, in order."""
    parts = text.rstrip().split("```")
    if len(parts) % 2 == 0:  # an unmatched fence is text
        parts[-2:] = ["```".join(parts[-2:])]
    out: list[Line | Pre] = []
    quoting = False  # a `>>>` quotes everything after it
    for n, part in enumerate(parts):
        if n % 2:
            out.append(Pre(unescape(part.strip("\n")), quoting))
            continue
        if n > 0:
            part = part.removeprefix("\n")
        if n < len(parts) - 1:
            part = part.removesuffix("\n")
        if not part:
            continue
        for raw in part.split("\n"):
            quoted = quoting
            if not quoting and raw.startswith(">>>"):
                quoting = quoted = True
                raw = raw[3:].lstrip(" ")
            elif not quoting and raw.startswith(">"):
                quoted = True
                raw = raw[1:].lstrip(" ")
            out.append(Line(inline(raw), quoted))
    return out


def plain(spans: tuple[Span, ...], users: Mapping[str, str] | None = None) -> str:
    """The words of some spans without their formatting (mentions as `@name`)."""
    words = []
    for span in spans:
        if span.children:
            words.append(plain(span.children, users))
        elif span.kind == "user":
            words.append(f"@{(users or {}).get(span.text, span.text)}")
        elif span.kind == "channel":
            words.append(f"#{span.text}")
        elif span.kind == "emoji":
            words.append(emoji(span.text))
        else:
            words.append(span.text)
    return "".join(words)
