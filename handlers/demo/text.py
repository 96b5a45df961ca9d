"""Block Kit as plain text for a terminal (pure), and the demo's transcript as a text page.

`blocks_text(blocks)` turns a message's blocks into lines a person reads: a header underlined,
a section's fields as aligned "label value" lines, preformatted text indented, quotes marked,
buttons as `[Claim]`, checkboxes as `☐ name — what to do`, mrkdwn formatting dropped and
mentions written `@name`. Nothing depends on the terminal: the same blocks give the same lines.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from handlers.demo.mrkdwn import EMOJI, Line, parse, plain, unescape
from handlers.demo.transcript import Heading, Letter, Narration, Posted, Transcript

__all__ = ["WIDTH", "blocks_text", "transcript_text"]

#: The width the text is wrapped to (an email's own line breaks are kept; longer lines are wrapped).
WIDTH = 100
_SHORTCODE = re.compile(r":([a-z0-9_+'-]+):")


def _wrap(text: str, width: int, prefix: str = "") -> list[str]:
    if not text.strip():
        return [prefix.rstrip()]
    room = max(20, width - len(prefix))
    wrapped = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]
    return [f"{prefix}{line}" for line in wrapped]


def _hanging(text: str, width: int, first: str, rest: str) -> list[str]:
    """`text` wrapped with a marker on its first line and the others indented under it."""
    return textwrap.wrap(
        text,
        width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _plain_text(obj: Mapping[str, Any]) -> str:
    words = unescape(str(obj.get("text") or ""))
    if obj.get("emoji"):
        words = _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), words)
    return words


def _mrkdwn(text: str, users: Mapping[str, str], width: int) -> list[str]:
    lines: list[str] = []
    for part in parse(text):
        quote = "▎ " if part.quoted else ""
        if isinstance(part, Line):
            lines += _wrap(plain(part.spans, users), width, quote)
            continue
        for line in part.text.split("\n"):
            prefix = f"{quote}  "
            if len(prefix) + len(line) <= width:
                lines.append(f"{prefix}{line}".rstrip())
            else:
                lines += [f"{prefix}{piece}" for piece in textwrap.wrap(line, width - len(prefix))]
    return lines


def _text(obj: Mapping[str, Any] | None, users: Mapping[str, str], width: int) -> list[str]:
    if not obj:
        return []
    if obj.get("type") == "mrkdwn":
        return _mrkdwn(str(obj.get("text") or ""), users, width)
    return [
        line for part in _plain_text(obj).split("\n") for line in _wrap(part, width)
    ]  # Slack keeps breaks


def _field(obj: Mapping[str, Any], users: Mapping[str, str]) -> tuple[str, str]:
    """A field as (label, value): its first line when that is all bold (as in "*Due*\\n…"), or
    of a plain_text field, its first line ("Requester\\n…")."""
    if obj.get("type") != "mrkdwn":
        label, _, value = _plain_text(obj).partition("\n")
        return (label, value.replace("\n", " / ")) if value else ("", label)
    parts = parse(str(obj.get("text") or ""))
    first = parts[0] if parts else None
    if isinstance(first, Line) and len(first.spans) == 1 and first.spans[0].kind == "bold" and len(parts) > 1:
        rest = [plain(p.spans, users) if isinstance(p, Line) else p.text for p in parts[1:]]
        return plain(first.spans, users), " / ".join(rest)
    return "", " / ".join(plain(p.spans, users) if isinstance(p, Line) else p.text for p in parts)


def _element(element: Mapping[str, Any], users: Mapping[str, str]) -> list[str]:
    """An interactive element: a button `[Claim]`, a select `[Assign to… ▾]`, checkbox lines."""
    kind = element.get("type")
    if kind == "button":
        return [f"[{_plain_text(element.get('text') or {})}]"]
    if kind in ("checkboxes", "radio_buttons"):
        chosen = {o.get("value") for o in element.get("initial_options") or []}
        if kind == "radio_buttons" and element.get("initial_option"):
            chosen = {element["initial_option"].get("value")}
        mark = ("☑", "☐") if kind == "checkboxes" else ("◉", "○")
        lines = []
        for option in element.get("options") or []:
            words = _text(option.get("text"), users, 10_000)[0]
            description = option.get("description")
            if description:
                words += f" — {_text(description, users, 10_000)[0]}"
            lines.append(f"{mark[0] if option.get('value') in chosen else mark[1]} {words}")
        return lines
    placeholder = element.get("placeholder")
    if placeholder:
        return [f"[{_plain_text(placeholder)} ▾]"]
    if kind == "overflow":
        return ["[⋯]"]
    return [f"[{kind}]"]


def _inline_row(tokens: Sequence[str], width: int) -> list[str]:
    """Buttons side by side, wrapped at `width`."""
    rows, row = [], ""
    for token in tokens:
        if row and len(row) + 1 + len(token) > width:
            rows.append(row)
            row = token
        else:
            row = f"{row} {token}" if row else token
    return [*rows, row] if row else rows


def blocks_text(
    blocks: Iterable[Mapping[str, Any]], *, users: Mapping[str, str] | None = None, width: int = WIDTH
) -> list[str]:
    """The lines a person reads in a message's blocks (`users`: display names of user ids)."""
    users = users or {}
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _plain_text(block.get("text") or {})
            lines += [title, "─" * min(width, max(3, len(title)))]
        elif kind == "section":
            lines += _text(block.get("text"), users, width)
            fields = [_field(f, users) for f in block.get("fields") or []]
            if fields:
                room = max((len(label) for label, _ in fields), default=0) + 2
                for label, value in fields:
                    lines += _wrap(value, width, f"{label:<{room}}") if label else _wrap(value, width)
            accessory = block.get("accessory")
            if accessory:
                lines += _element(accessory, users)
        elif kind == "context":
            for element in block.get("elements") or []:
                if element.get("type") == "image":
                    lines.append(f"[image: {element.get('alt_text', '')}]")
                else:
                    lines += _text(element, users, width)
        elif kind == "divider":
            lines.append("─" * min(width, 40))
        elif kind == "actions":
            buttons: list[str] = []
            for element in block.get("elements") or []:
                rendered = _element(element, users)
                if element.get("type") in ("checkboxes", "radio_buttons"):
                    lines += _inline_row(buttons, width)
                    buttons = []
                    lines += rendered
                else:
                    buttons += rendered
            lines += _inline_row(buttons, width)
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        else:
            lines.append(f"[{kind} block]")
    return lines


# --- the transcript ----------------------------------------------------------------------------


def _posted(message: Posted, t: Transcript) -> list[str]:
    when = f"{message.at:%H:%M}"
    if message.thread_ts:
        head = f"    ↳ reply in the thread of {message.case_ref or 'a message'} · {t.app_name} · {when}"
        gutter = "    │ "
    else:
        head = f"#{t.channel_name} · {t.app_name} · {when}"
        if message.edited:
            head += f" · edited: the root of {message.case_ref} now reads"
        gutter = "│ "
    body = blocks_text(message.blocks, users=t.users, width=WIDTH - len(gutter))
    return ["", head, *(f"{gutter}{line}".rstrip() for line in body)]


def _letter(letter: Letter) -> list[str]:
    out = [
        "",
        "✉ The acknowledgement queued for the requester (the demo sends no email):",
        f"  To: {letter.to}",
        f"  Subject: {letter.subject}",
        f"  Content-Language: {letter.language}",
        *(f"  ┆ {line}".rstrip() for line in letter.lines),
    ]
    if letter.more:
        out.append(f"  ┆ … {letter.more} more lines")
    return out


def _heading(heading: Heading) -> list[str]:
    if heading.level == 1:
        rule = "═" * WIDTH
        return ["", "", rule, heading.title.upper(), *_wrap(heading.detail, WIDTH), rule]
    title = f"━━ {heading.title} "
    lines = ["", "", title + "━" * max(3, WIDTH - len(title))]
    return lines + (_wrap(heading.detail, WIDTH) if heading.detail else [])


def transcript_text(t: Transcript) -> str:
    """The whole demo as text: title, then each entry in order."""
    lines = [t.title, *_wrap(t.subtitle, WIDTH)]
    for entry in t.entries:
        if isinstance(entry, Heading):
            lines += _heading(entry)
        elif isinstance(entry, Narration):
            lines += ["", *_hanging(entry.text, WIDTH, "» ", "  ")]
        elif isinstance(entry, Posted):
            lines += _posted(entry, t)
        else:
            lines += _letter(entry)
    return "\n".join(lines) + "\n"
