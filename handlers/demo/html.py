"""Block Kit as HTML (pure), and the demo's transcript as a page that looks like a Slack channel.

`blocks_html(blocks)` draws a message's blocks roughly as Slack does: headers large, fields in two
columns, context small and grey, mrkdwn bold, italics, strike, `code` and preformatted text,
quotes with a bar, mentions highlighted, buttons as buttons, checkboxes as boxes. Every piece of
text is escaped; a link becomes an in-page link when `links` maps its URL to an anchor, and plain
words otherwise, so the page never points outside itself.

`transcript_html(transcript)` is a whole page: a sidebar (workspace, the channel, the app, and a
table of contents), the channel's header, and the demo's entries as a timeline — day dividers,
messages with the app's avatar, name and time, thread replies indented under their root, the
demo's narration in notes of their own, and each acknowledgement as an email card. Inline CSS
only: no script, no font, image or stylesheet fetched from anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from handlers.demo.mrkdwn import EMOJI, Line, Pre, Span, emoji, inline, parse, unescape
from handlers.demo.transcript import Heading, Letter, Narration, Posted, Transcript

__all__ = ["anchor", "blocks_html", "mrkdwn_html", "transcript_html"]

_SHORTCODE = re.compile(r":([a-z0-9_+'-]+):")


def _e(text: str) -> str:
    return escape(text, quote=True)


def anchor(ts: str) -> str:
    """The element id of the message with this Slack ts."""
    return "msg-" + re.sub(r"[^0-9A-Za-z]", "-", ts)


def _spans(spans: Iterable[Span], users: Mapping[str, str], links: Mapping[str, str]) -> str:
    out = []
    for span in spans:
        if span.kind == "text":
            out.append(_e(span.text))
        elif span.kind in ("bold", "italic", "strike"):
            tag = {"bold": "b", "italic": "i", "strike": "s"}[span.kind]
            out.append(f"<{tag}>{_spans(span.children, users, links)}</{tag}>")
        elif span.kind == "code":
            out.append(f"<code>{_e(span.text)}</code>")
        elif span.kind == "link":
            target = links.get(span.url)
            label = _e(span.text)
            out.append(
                f'<a href="{_e(target)}">{label}</a>' if target else f'<span class="link">{label}</span>'
            )
        elif span.kind == "user":
            out.append(f'<span class="mention">@{_e(users.get(span.text, span.text))}</span>')
        elif span.kind == "channel":
            out.append(f'<span class="mention">#{_e(span.text)}</span>')
        elif span.kind == "special":
            out.append(f'<span class="mention">{_e(span.text)}</span>')
        else:
            out.append(f'<span class="emoji">{_e(emoji(span.text))}</span>')
    return "".join(out)


def mrkdwn_html(
    text: str, *, users: Mapping[str, str] | None = None, links: Mapping[str, str] | None = None
) -> str:
    """A mrkdwn text as HTML: lines, preformatted blocks, quotes (consecutive quoted parts in one
    `blockquote`)."""
    users, links = users or {}, links or {}
    groups: list[tuple[bool, list[str]]] = []
    for part in parse(text):
        if isinstance(part, Pre):
            piece = f"<pre>{_e(part.text)}</pre>"
        else:
            assert isinstance(part, Line)
            piece = _spans(part.spans, users, links)
        if groups and groups[-1][0] == part.quoted:
            groups[-1][1].append(piece)
        else:
            groups.append((part.quoted, [piece]))
    out = []
    for quoted, pieces in groups:
        body = ""
        for n, piece in enumerate(pieces):
            previous_pre = n > 0 and pieces[n - 1].startswith("<pre>")
            if n and not piece.startswith("<pre>") and not previous_pre:
                body += "<br>"
            body += piece
        out.append(f"<blockquote>{body}</blockquote>" if quoted else body)
    return "".join(out)


def _plain(obj: Mapping[str, Any]) -> str:
    words = unescape(str(obj.get("text") or ""))
    if obj.get("emoji"):
        words = _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), words)
    return _e(words).replace("\n", "<br>")  # Slack keeps a plain_text's line breaks


def _text(obj: Mapping[str, Any] | None, users: Mapping[str, str], links: Mapping[str, str]) -> str:
    if not obj:
        return ""
    if obj.get("type") == "mrkdwn":
        return mrkdwn_html(str(obj.get("text") or ""), users=users, links=links)
    return _plain(obj)


def _element(element: Mapping[str, Any], users: Mapping[str, str], links: Mapping[str, str]) -> str:
    kind = element.get("type")
    if kind == "button":
        style = element.get("style")
        css = f"btn {style}" if style in ("primary", "danger") else "btn"
        return f'<button type="button" class="{css}">{_plain(element.get("text") or {})}</button>'
    if kind in ("checkboxes", "radio_buttons"):
        chosen = {o.get("value") for o in element.get("initial_options") or []}
        if element.get("initial_option"):
            chosen.add(element["initial_option"].get("value"))
        marks = ("☑", "☐") if kind == "checkboxes" else ("◉", "○")
        rows = []
        for option in element.get("options") or []:
            mark = marks[0] if option.get("value") in chosen else marks[1]
            description = option.get("description")
            rows.append(
                f'<div class="check"><span class="box">{mark}</span>'
                f"<span>{_text(option.get('text'), users, links)}"
                + (f'<span class="desc">{_text(description, users, links)}</span>' if description else "")
                + "</span></div>"
            )
        return f'<div class="checks">{"".join(rows)}</div>'
    placeholder = element.get("placeholder")
    if placeholder:
        return f'<button type="button" class="btn select">{_plain(placeholder)} <span class="caret">▾</span></button>'
    if kind == "overflow":
        return '<button type="button" class="btn">⋯</button>'
    return f'<span class="unsupported">[{_e(str(kind))}]</span>'


def blocks_html(
    blocks: Iterable[Mapping[str, Any]],
    *,
    users: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
) -> str:
    """A message's blocks as HTML (`users`: display names of user ids; `links`: URL → in-page
    href for the links that should stay clickable)."""
    users, links = users or {}, links or {}
    out = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            out.append(f'<div class="b-header">{_plain(block.get("text") or {})}</div>')
        elif kind == "section":
            inner = ""
            if block.get("text"):
                inner += f'<div class="b-text">{_text(block["text"], users, links)}</div>'
            fields = block.get("fields") or []
            if fields:
                cells = "".join(f'<div class="b-field">{_text(f, users, links)}</div>' for f in fields)
                inner += f'<div class="b-fields">{cells}</div>'
            accessory = block.get("accessory")
            side = f'<div class="b-accessory">{_element(accessory, users, links)}</div>' if accessory else ""
            out.append(f'<div class="b-section"><div class="b-main">{inner}</div>{side}</div>')
        elif kind == "context":
            elements = []
            for element in block.get("elements") or []:
                if element.get("type") == "image":
                    elements.append(f'<span class="ctx">[{_e(str(element.get("alt_text", "")))}]</span>')
                else:
                    elements.append(f'<span class="ctx">{_text(element, users, links)}</span>')
            out.append(f'<div class="b-context">{"".join(elements)}</div>')
        elif kind == "divider":
            out.append('<hr class="b-divider">')
        elif kind == "actions":
            controls = "".join(_element(e, users, links) for e in block.get("elements") or [])
            out.append(f'<div class="b-actions">{controls}</div>')
        elif kind == "image":
            out.append(f'<div class="b-image">[{_e(str(block.get("alt_text", "")))}]</div>')
        else:
            out.append(f'<div class="unsupported">[{_e(str(kind))} block]</div>')
    return "".join(out)


# --- the page ----------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.46 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d1c1d;background:#fff}
.sidebar{position:fixed;top:0;bottom:0;left:0;width:260px;background:#3f0e40;color:#cfc3cf;overflow-y:auto;
 padding-bottom:24px}
.ws{color:#fff;font-weight:900;font-size:18px;padding:14px 16px 12px;border-bottom:1px solid #5d2c5d}
.ws small{display:block;font-weight:400;font-size:12px;color:#cfc3cf}
.nav-title{font-size:13px;margin:16px 16px 4px;color:#bcabbc}
.nav-item{padding:3px 16px;font-size:15px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.nav-item.active{background:#1164a3;color:#fff;font-weight:700}
.nav-item a{color:inherit;text-decoration:none}
.nav-item.sub{font-size:13px;padding-left:28px}
.nav-item.nav-part{color:#fff;font-weight:700;font-size:13px;margin-top:8px}
.mini{display:inline-block;width:18px;height:18px;border-radius:4px;background:#2eb67d;color:#fff;font-size:9px;
 font-weight:900;text-align:center;line-height:18px;margin-right:6px;vertical-align:-3px}
main{margin-left:260px;min-height:100vh;padding-bottom:48px}
.ch-head{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #e2e2e2;padding:10px 20px}
.ch-name{font-weight:900;font-size:18px}
.ch-topic{font-size:13px;color:#616061;margin-top:2px}
.intro{padding:20px 20px 8px}
.intro h1{font-size:22px;margin:0 0 6px}
.intro p{margin:0;color:#616061;max-width:900px}
.part{margin:36px 20px 12px;padding:14px 18px;background:#f4ede4;border-radius:8px}
.part h2{margin:0 0 4px;font-size:18px}
.part p{margin:0;color:#616061;font-size:14px}
.day{display:flex;align-items:center;margin:22px 0 2px;padding:0 20px}
.day:before,.day:after{content:"";flex:1;border-top:1px solid #e2e2e2}
.day span{border:1px solid #e2e2e2;border-radius:24px;padding:3px 16px;font-size:13px;font-weight:700;
 background:#fff}
.day-detail{text-align:center;font-size:12px;color:#616061;margin:2px 20px 6px}
.msg{display:flex;gap:10px;padding:6px 20px}
.msg:hover{background:#f8f8f8}
.avatar{flex:none;width:36px;height:36px;border-radius:6px;background:#2eb67d;color:#fff;font-weight:900;
 font-size:13px;display:flex;align-items:center;justify-content:center;margin-top:3px}
.msg-body{min-width:0;flex:1}
.who{font-weight:900}
.app{font-size:10px;font-weight:700;color:#616061;background:#e8e8e8;border-radius:3px;padding:1px 4px;
 margin-left:5px;vertical-align:2px}
.when{font-size:12px;color:#616061;margin-left:7px}
.edited{font-size:12px;color:#868686;margin-left:4px}
.caption{font-size:12px;color:#616061;padding:6px 20px 0 66px}
.caption a,.thread-caption a{color:#1264a3;text-decoration:none}
.thread{margin:0 20px 6px 66px;border-left:3px solid #e2e2e2}
.thread .msg{padding:4px 12px}
.thread .avatar{width:26px;height:26px;font-size:10px;border-radius:5px}
.thread-caption{font-size:12px;color:#616061;padding:4px 12px 0}
.b-header{font-size:18px;font-weight:900;margin:4px 0}
.b-section{display:flex;gap:12px;margin:4px 0}
.b-main{flex:1;min-width:0}
.b-fields{display:grid;grid-template-columns:1fr 1fr;gap:8px 24px;margin:6px 0;max-width:640px}
.b-context{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px;color:#616061;margin:4px 0}
.b-context code{font-size:11px}
.b-divider{border:0;border-top:1px solid #e2e2e2;margin:8px 0}
.b-actions{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 4px}
.btn{font:inherit;font-size:13px;font-weight:700;color:#1d1c1d;background:#fff;border:1px solid #bbbabb;
 border-radius:4px;padding:3px 12px;cursor:default}
.btn.primary{background:#007a5a;border-color:#007a5a;color:#fff}
.btn.danger{background:#e01e5a;border-color:#e01e5a;color:#fff}
.btn.select{font-weight:400;color:#616061}
.caret{font-size:11px;margin-left:6px}
.checks{width:100%}
.check{display:flex;gap:8px;margin:3px 0;font-size:14px}
.box{font-size:16px;line-height:1.2;color:#616061}
.desc{display:block;font-size:12px;color:#616061}
code{font:12px Monaco,Menlo,Consolas,"Courier New",monospace;color:#c01343;background:#f6f6f6;
 border:1px solid #e2e2e2;border-radius:3px;padding:1px 3px}
pre{font:12px/1.5 Monaco,Menlo,Consolas,"Courier New",monospace;background:#f8f8f8;border:1px solid #e2e2e2;
 border-radius:4px;padding:8px 10px;margin:4px 0;white-space:pre-wrap;word-wrap:break-word}
blockquote{border-left:4px solid #dddddd;margin:4px 0;padding:0 0 0 12px}
.mention{background:#e8f5fa;color:#1264a3;border-radius:3px;padding:0 2px;font-weight:500}
a{color:#1264a3;text-decoration:none}
.link{color:#1264a3}
.narration{margin:8px 20px 8px 66px;padding:6px 12px;background:#fff8e1;border-left:3px solid #ecb22e;
 border-radius:0 4px 4px 0;font-size:13px;color:#4d3d00;max-width:900px}
.narration .t{font-weight:700;margin-right:6px}
.email{margin:6px 20px 12px 66px;border:1px solid #d9d9d9;border-radius:6px;max-width:760px;overflow:hidden}
.email-head{background:#f4f6f8;padding:8px 12px;font-size:13px;border-bottom:1px solid #e2e2e2}
.email-head div{margin:1px 0}
.email-head .k{display:inline-block;width:118px;color:#616061}
.email-title{font-weight:700;margin-bottom:4px}
.email-text{font:12px/1.5 Monaco,Menlo,Consolas,"Courier New",monospace;white-space:pre-wrap;padding:8px 12px;
 margin:0;border:0;border-radius:0;background:#fff}
.email-more{font-size:12px;color:#616061;padding:0 12px 8px}
.unsupported{color:#868686;font-size:12px}
"""


def _slug(title: str, taken: set[str]) -> str:
    """An element id made of a heading's words, unique in the page."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "part"
    ident, n = base, 1
    while ident in taken:
        n += 1
        ident = f"{base}-{n}"
    taken.add(ident)
    return ident


def _time(message: Posted) -> str:
    return f"{message.at:%H:%M}"


def _message(message: Posted, t: Transcript, links: Mapping[str, str], *, with_id: bool) -> str:
    ident = f' id="{anchor(message.ts)}"' if with_id else ""
    edited = '<span class="edited">(edited)</span>' if message.edited else ""
    initials = "".join(word[0] for word in t.app_name.split()[:2]).upper()
    return (
        f'<div class="msg"{ident}><div class="avatar">{_e(initials)}</div><div class="msg-body">'
        f'<div class="msg-head"><span class="who">{_e(t.app_name)}</span><span class="app">APP</span>'
        f'<span class="when">{_time(message)}</span>{edited}</div>'
        f"{blocks_html(message.blocks, users=t.users, links=links)}</div></div>"
    )


def _letter(letter: Letter) -> str:
    more = f'<div class="email-more">… {letter.more} more lines</div>' if letter.more else ""
    return (
        '<div class="email"><div class="email-head">'
        '<div class="email-title">✉️ The acknowledgement queued for the requester '
        "(the demo sends no email)</div>"
        f'<div><span class="k">To</span>{_e(letter.to)}</div>'
        f'<div><span class="k">Subject</span>{_e(letter.subject)}</div>'
        f'<div><span class="k">Content-Language</span>{_e(letter.language)}</div></div>'
        f'<pre class="email-text">{_e(chr(10).join(letter.lines))}</pre>{more}</div>'
    )


def _narration(text: str, users: Mapping[str, str]) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _spans(inline(escaped), users, {})


def transcript_html(t: Transcript) -> str:
    """The whole demo as one self-contained HTML page that looks like the Slack channel."""
    links = {link: f"#{anchor(ts)}" for link, ts in t.permalinks.items()}
    timeline: list[str] = []
    contents: list[str] = []
    roots: dict[str, str] = {}  # ts of a root → its case reference
    thread: str | None = None  # the root whose thread is open

    def close_thread() -> None:
        nonlocal thread
        if thread is not None:
            timeline.append("</div>")
            thread = None

    taken: set[str] = set()
    for entry in t.entries:
        if isinstance(entry, Posted) and entry.thread_ts:
            if thread != entry.thread_ts:
                close_thread()
                ref = entry.case_ref or roots.get(entry.thread_ts, "a message")
                timeline.append(
                    f'<div class="thread"><div class="thread-caption">Thread of '
                    f'<a href="#{anchor(entry.thread_ts)}">{_e(ref)}</a></div>'
                )
                thread = entry.thread_ts
            timeline.append(_message(entry, t, links, with_id=True))
            continue
        close_thread()
        if isinstance(entry, Heading):
            ident = _slug(entry.title, taken)
            if entry.level == 1:
                detail = f"<p>{_narration(entry.detail, t.users)}</p>" if entry.detail else ""
                timeline.append(
                    f'<section class="part" id="{ident}"><h2>{_e(entry.title)}</h2>{detail}</section>'
                )
                contents.append(
                    f'<div class="nav-item nav-part"><a href="#{ident}">{_e(entry.title)}</a></div>'
                )
            else:
                timeline.append(f'<div class="day" id="{ident}"><span>{_e(entry.title)}</span></div>')
                if entry.detail:
                    timeline.append(f'<div class="day-detail">{_e(entry.detail)}</div>')
                contents.append(f'<div class="nav-item sub"><a href="#{ident}">{_e(entry.title)}</a></div>')
        elif isinstance(entry, Narration):
            when = f'<span class="t">{entry.at:%H:%M}</span>' if entry.at else ""
            text = entry.text
            if entry.at and text.startswith(f"{entry.at:%H:%M} · "):
                text = text[len(f"{entry.at:%H:%M} · ") :]
            timeline.append(f'<div class="narration">{when}{_narration(text, t.users)}</div>')
        elif isinstance(entry, Posted):
            if entry.edited:
                timeline.append(
                    f'<div class="caption">The root message of <a href="#{anchor(entry.ts)}">'
                    f"{_e(entry.case_ref or '')}</a> was updated; it now reads:</div>"
                )
            else:
                roots[entry.ts] = entry.case_ref or ""
            timeline.append(_message(entry, t, links, with_id=not entry.edited))
        else:
            timeline.append(_letter(entry))
    close_thread()
    initials = "".join(word[0] for word in t.app_name.split()[:2]).upper()
    sidebar = (
        f'<nav class="sidebar"><div class="ws">{_e(t.workspace)}<small>{_e(t.app_name)} demo</small></div>'
        '<div class="nav-title">Channels</div>'
        f'<div class="nav-item active"># {_e(t.channel_name)}</div>'
        '<div class="nav-title">Apps</div>'
        f'<div class="nav-item"><span class="mini">{_e(initials)}</span>{_e(t.app_name)}</div>'
        f'<div class="nav-title">In this demo</div>{"".join(contents)}</nav>'
    )
    head = (
        f'<header class="ch-head"><div class="ch-name"># {_e(t.channel_name)}</div>'
        f'<div class="ch-topic">Privacy requests from the mailbox, tracked by {_e(t.app_name)}</div></header>'
    )
    intro = f'<div class="intro"><h1>{_e(t.title)}</h1><p>{_narration(t.subtitle, t.users)}</p></div>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(t.title)}</title><style>{_CSS}</style></head>\n"
        f"<body>{sidebar}<main>{head}{intro}\n" + "\n".join(timeline) + "\n</main></body></html>\n"
    )
