"""Turning an email's body into the text a person wrote now.

Two pure functions:

- `html_to_text(html)`: readable text from an HTML part (block structure kept, scripts and
  styles dropped, `<blockquote>` and the common "quoted reply" containers rendered as `> ` lines).
- `split_reply(text)`: the sender's new text, separated from the quoted history below or
  between it, from the signature and from legal disclaimers.

Both work line by line with anchored patterns, so their cost grows linearly with the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["ReplyParts", "html_to_text", "split_reply"]

# ---------------------------------------------------------------------------------------------
# HTML -> text

_BLOCK_TAGS = frozenset(
    (
        "address",
        "article",
        "aside",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
        "center",
    )
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "object"})
_VOID_TAGS = frozenset(
    (
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    )
)
# Containers that mail clients use for the quoted message in a reply.
_QUOTE_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted", "protonmail_quote")
_QUOTE_IDS = ("appendonsend", "divrplyfwdmsg", "mail-editor-reference-message-container")
# Markers after which Outlook puts the whole earlier message, *outside* the marker element.
_HISTORY_FOLLOWS_IDS = ("appendonsend", "divrplyfwdmsg")


class _TextExtractor(HTMLParser):
    """Collects text with line structure; see `html_to_text`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        # stack of (tag, is_quote) for open elements that may close a quote region
        self.stack: list[tuple[str, bool]] = []
        self.quote_depth = 0
        self.history_follows = False  # an Outlook reply marker was seen: the rest is quoted

    def _flush(self) -> None:
        text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", "".join(self.current)).strip()
        self.current = []
        prefix = "> " * max(self.quote_depth, 1 if self.history_follows else 0)
        if text:
            self.lines.append(prefix + text)
        elif self.lines and self.lines[-1].strip("> ") != "":
            self.lines.append(prefix.rstrip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
            return
        if tag == "br":
            self._flush()
            return
        if tag in _VOID_TAGS:
            if tag == "hr":
                self._flush()
            return
        attr = {k.lower(): (v or "") for k, v in attrs}
        classes = attr.get("class", "").lower()
        is_quote = tag == "blockquote" or (
            tag == "div"
            and (any(c in classes for c in _QUOTE_CLASSES) or attr.get("id", "").lower() in _QUOTE_IDS)
        )
        if tag in _BLOCK_TAGS or tag in ("blockquote", "li", "td", "th"):
            self._flush()
        if tag == "div" and attr.get("id", "").lower() in _HISTORY_FOLLOWS_IDS:
            self.history_follows = True
        if tag == "li":
            self.current.append("- ")
        self.stack.append((tag, is_quote))
        if is_quote:
            self.quote_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag in _VOID_TAGS:
            return
        # close up to the matching open tag (HTML in mail is often unbalanced)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                if tag in _BLOCK_TAGS or tag in ("blockquote", "li", "td", "th"):
                    self._flush()
                for _t, q in self.stack[i:]:
                    if q:
                        self.quote_depth = max(0, self.quote_depth - 1)
                del self.stack[i:]
                break
        if tag in ("td", "th"):
            self.current.append(" ")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        self.current.append(data)

    def result(self) -> str:
        self._flush()
        text = "\n".join(self.lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML email part.

    Paragraphs and line breaks become lines, list items start with "- ", scripts, styles and
    the document head are dropped, and quoted replies (`<blockquote>`, Gmail/Thunderbird/Outlook
    quote containers) become lines starting with "> ", so `split_reply` can set them apart.
    Never raises on malformed HTML.
    """
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but assertion errors are possible on garbage
        pass
    return parser.result()


# ---------------------------------------------------------------------------------------------
# Reply splitting


@dataclass(frozen=True, slots=True)
class ReplyParts:
    """The pieces of one message body.

    `new_text` is what the sender wrote in this message; `quoted` is the history it quotes
    (inline `>` lines, or everything from an attribution line / "Original message" separator /
    forwarded header block on); `signature` holds the signature and any legal disclaimer;
    `forwarded` is true when the history is a forwarded message rather than a reply.
    """

    new_text: str
    quoted: str
    signature: str
    forwarded: bool


_ATTRIBUTION = re.compile(
    r"""^\s*(?:
        (?:on|am|op|le|el|il)\b.{3,250}?           # On <date>, <name> wrote: / Le ... a écrit : ...
        (?:wrote|schrieb|schreef|a\s+écrit|escribió|ha\s+scritto|het\s+volgende\s+geschreven)
        [^:\n]{0,80}:
      | .{0,120}\b(?:wrote|schrieb|schreef|a\s+écrit)\s*:     # "John Doe wrote:"
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_SEPARATOR = re.compile(
    r"""^\s*[-_=*\s]{2,}\s*(?:
        original\s+message|forwarded\s+message|begin\s+forwarded\s+message
      | message\s+d'origine|message\s+original|message\s+transf[ée]r[ée]|courriel\s+original
      | oorspronkelijk\s+bericht|origineel\s+bericht|doorgestuurd\s+bericht
      | urspr[üu]ngliche\s+nachricht|weitergeleitete\s+nachricht|original-nachricht
    )\s*[-_=*\s]*$""",
    re.IGNORECASE | re.VERBOSE,
)
_BARE_FORWARD = re.compile(
    r"^\s*(?:begin forwarded message|d[ée]but du message r[ée]exp[ée]di[ée])\s*:?\s*$", re.I
)
_FORWARD_WORDS = re.compile(r"forward|transf[ée]r|doorgestuurd|weitergeleitet|r[ée]exp[ée]di", re.I)
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|de|van|von|da|envoyé par)\s*\*?\s?:\s*\S", re.IGNORECASE)
_HEADER_OTHER = re.compile(
    r"^\s*\*?(?:sent|date|to|subject|cc|envoyé|à|a|objet|verzonden|datum|aan|onderwerp|gesendet|an|"
    r"betreff|inviato|oggetto)\s*\*?\s?:\s*",
    re.IGNORECASE,
)
_OUTLOOK_RULE = re.compile(r"^\s*_{20,}\s*$")
_SIG_DELIMITER = re.compile(r"^-- ?$")
_MOBILE_SIG = re.compile(
    r"^\s*(?:sent\s+from\s+my|sent\s+from\s+(?:outlook|mail\s+for)|get\s+outlook\s+for|"
    r"envoy[ée]\s+(?:de|depuis)\s+mon|envoy[ée]\s+depuis|"
    r"verzonden\s+(?:vanaf|met|van)\s+mijn|verstuurd\s+(?:vanaf|met|van)\s+mijn|"
    r"von\s+meinem\s+\S+\s+gesendet|gesendet\s+von\s+meinem|gesendet\s+mit)\b",
    re.IGNORECASE,
)
_DISCLAIMER = re.compile(
    r"intended\s+recipient|received\s+this\s+(?:e-?mail|message|communication)\s+in\s+error|"
    r"this\s+(?:e-?mail|message)\s+(?:and\s+any\s+attachments?\s+)?(?:is|are|may\s+be)\s+(?:strictly\s+)?confidential|"
    r"destinataire|re[çc]u\s+ce\s+(?:message|courriel|mail)\s+par\s+erreur|"
    r"geadresseerde|per\s+vergissing|abusievelijk|vertrouwelijk|"
    r"irrt[üu]mlich|nicht\s+der\s+richtige\s+adressat|vertraulich|bestimmten\s+empf[äa]nger|"
    r"think\s+before\s+(?:you\s+)?print|pensez\s+[àa]\s+l'environnement|denk\s+aan\s+het\s+milieu|"
    r"consider\s+the\s+environment",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^\s*(?:(?:kind|best|warm|many\s+thanks\s+and)?\s*regards|best(?:\s+wishes)?|cheers|thanks?(?:\s+you)?|"
    r"sincerely|yours(?:\s+(?:sincerely|faithfully|truly))?|"
    r"cordialement|bien\s+[àa]\s+vous|bien\s+cordialement|salutations|meilleures\s+salutations|"
    r"sinc[èe]res\s+salutations|merci(?:\s+d'avance|\s+beaucoup)?|"
    r"met\s+vriendelijke\s+groet(?:en)?|vriendelijke\s+groet(?:en)?|groet(?:en|jes)?|mvg|hartelijke\s+groet(?:en)?|"
    r"alvast\s+bedankt|dank\s+u(?:\s+wel)?|bedankt|"
    r"mit\s+freundlichen\s+gr[üu](?:ß|ss)en|freundliche\s+gr[üu](?:ß|ss)e|viele\s+gr[üu](?:ß|ss)e|"
    r"beste\s+gr[üu](?:ß|ss)e|liebe\s+gr[üu](?:ß|ss)e|gr[üu](?:ß|ss)e|mfg|lg|danke(?:\s+sch[öo]n)?|vielen\s+dank)"
    r"\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_POSTSCRIPT = re.compile(r"^\s*p\.?\s?s\.?\b", re.IGNORECASE)
_QUOTE_PREFIX = re.compile(r"^\s*(?:>\s?)+")


def _is_header_block(lines: list[str], i: int) -> bool:
    """A "From: … / Sent: … / To: …" block as Outlook and others write above the history."""
    if not _HEADER_FROM.match(lines[i]):
        return False
    others = 0
    for line in lines[i + 1 : i + 6]:
        if _HEADER_OTHER.match(line):
            others += 1
        elif line.strip() and others == 0 and len(line) > 120:
            return False
    return others >= 2


def _history_start(lines: list[str]) -> tuple[int | None, bool]:
    """Index of the first line of quoted or forwarded history, and whether it is a forward."""
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line) or _BARE_FORWARD.match(line):
            return i, bool(_FORWARD_WORDS.search(line))
        if (
            _OUTLOOK_RULE.match(line)
            and i + 1 < len(lines)
            and any(_HEADER_FROM.match(x) for x in lines[i + 1 : i + 3])
        ):
            return i, False
        if _is_header_block(lines, i):
            return i, False
        if _ATTRIBUTION.match(line) and len(line) < 300:
            if _quote_follows(lines, i + 1):
                continue  # "> " lines follow: inline quoting, the sender may answer below it
            return i, False
        # attribution wrapped over two lines: "On Mon, 3 Jun 2024 at 10:02, Jane Doe <\njane@x> wrote:"
        if i + 1 < len(lines) and re.match(r"^\s*(?:on|op|le|am)\s", line, re.I) and len(line) < 200:
            joined = line.rstrip() + " " + lines[i + 1].strip()
            if _ATTRIBUTION.match(joined) and re.search(r":\s*$", lines[i + 1]):
                if _quote_follows(lines, i + 2):
                    continue
                return i, False
    return None, False


_ATTRIBUTION_START = re.compile(r"^\s*(?:on|op|le|am)\s", re.IGNORECASE)


def _attribution_above_quote(lines: list[str], i: int) -> bool:
    """Whether line i is (part of) an attribution line, possibly wrapped over two lines, that
    introduces "> " quoted lines."""
    line = lines[i]
    if _ATTRIBUTION.match(line) and _quote_follows(lines, i + 1):
        return True
    if (
        i + 1 < len(lines)
        and _ATTRIBUTION_START.match(line)
        and _quote_follows(lines, i + 2)
        and _ATTRIBUTION.match(line.rstrip() + " " + lines[i + 1].strip())
    ):
        return True
    if i > 0 and _ATTRIBUTION_START.match(lines[i - 1]) and _quote_follows(lines, i + 1):
        return bool(_ATTRIBUTION.match(lines[i - 1].rstrip() + " " + line.strip()))
    return False


def _quote_follows(lines: list[str], start: int) -> bool:
    """Whether the next non-blank line from `start` on is a "> " quoted line."""
    nxt = next((x for x in lines[start:] if x.strip()), "")
    return nxt.lstrip().startswith(">")


_SENTENCE_END = re.compile(r"[.?!…]\s*$")


def _signature_like(line: str) -> bool:
    """A name, title, phone number or address line, not a sentence or a postscript."""
    if len(line) >= 70 or _POSTSCRIPT.match(line):
        return False
    return not (_SENTENCE_END.search(line) and len(line.split()) >= 4)


def _split_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    """Separate signature and disclaimer lines at the end of the new text."""
    cut = len(lines)
    for i, line in enumerate(lines):
        if _SIG_DELIMITER.match(line):
            cut = i
            break
    # mobile signatures ("Sent from my iPhone") on one of the last lines
    for i in range(max(0, cut - 4), cut):
        if _MOBILE_SIG.match(lines[i]) and len(lines[i]) < 80:
            cut = i
            break
    # legal disclaimers: a trailing paragraph that speaks of intended recipients, confidentiality…
    paragraphs: list[tuple[int, int]] = []
    start = None
    for i in range(cut):
        if lines[i].strip():
            if start is None:
                start = i
        elif start is not None:
            paragraphs.append((start, i))
            start = None
    if start is not None:
        paragraphs.append((start, cut))
    for p_start, p_end in reversed(paragraphs[1:]):
        block = " ".join(lines[p_start:p_end])
        if _DISCLAIMER.search(block) and (p_end - p_start >= 2 or len(block) > 80):
            cut = p_start
        else:
            break
    # a sign-off ("Kind regards,") followed only by a few short lines: name, role, phone
    # (the lines below it must look like a signature, not like sentences: "Thanks\nplease delete
    # my account.\nJo" keeps the request)
    for i in range(max(0, cut - 12), cut):
        if _SIGN_OFF.match(lines[i]):
            tail = [x for x in lines[i + 1 : cut] if x.strip()]
            if len(tail) <= 8 and all(_signature_like(x) for x in tail) and any(x.strip() for x in lines[:i]):
                cut = i
                break
    return lines[:cut], lines[cut:]


def split_reply(text: str) -> ReplyParts:
    """Split a plain-text body into new text, quoted history and signature.

    Quoted history is recognised by `>` prefixes (also inline, between the sender's answers),
    attribution lines in English, French, Dutch and German ("On … wrote:", "Le … a écrit :",
    "Op … schreef …:", "Am … schrieb …:"), "Original message"/"Forwarded message" separators
    and Outlook-style header blocks. The signature starts at an RFC 3676 "-- " line, a mobile
    signature, a trailing legal disclaimer, or a sign-off followed only by a few short lines.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start, forwarded = _history_start(lines)
    body, history = (lines, []) if start is None else (lines[:start], lines[start:])
    new_lines: list[str] = []
    inline_quotes: list[str] = []
    for idx, line in enumerate(body):
        if line.lstrip().startswith(">"):
            inline_quotes.append(line)
            continue
        # an attribution line directly above an inline quote belongs to the quote (also when it
        # is wrapped over two lines)
        if _attribution_above_quote(body, idx):
            inline_quotes.append(line)
            continue
        new_lines.append(line)
    if not forwarded:  # an HTML forward arrives as "> " lines: look for its marker there
        forwarded = any(
            (_SEPARATOR.match(q) and _FORWARD_WORDS.search(q)) or _BARE_FORWARD.match(q)
            for q in (_QUOTE_PREFIX.sub("", x) for x in inline_quotes[:40])
        )
    new_lines, sig_lines = _split_signature(new_lines)
    new_text = re.sub(r"\n{3,}", "\n\n", "\n".join(new_lines)).strip()
    quoted = "\n".join(inline_quotes + history).strip()
    signature = "\n".join(sig_lines).strip()
    return ReplyParts(new_text=new_text, quoted=quoted, signature=signature, forwarded=forwarded)
