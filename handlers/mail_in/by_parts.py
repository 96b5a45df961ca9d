"""A big message read in parts: what to fetch of it, and the raw message put back together.

A message above `BIG_MESSAGE` bytes is not fetched whole (a 20 MB attachment would be held, decoded
and copied several times over). The mailbox watcher fetches its BODYSTRUCTURE and header first,
then the MIME header of every part (`BODY.PEEK[n.MIME]`), and the content of only those parts that
`parse_email` reads as the body (`reads_as_text`), each at most `TEXT_LIMIT` bytes. `assemble`
then writes the message back as `strip_attachments` would have left it: the header, the text
parts, and each attachment with its MIME headers and `X-Privacy-Desk-Removed` giving its size
(from BODYSTRUCTURE), its content never downloaded. A text part longer than `TEXT_LIMIT` is cut at
a line end and says so in the same header, which `parse_email` names among the problems.

BODYSTRUCTURE arrives as imapclient parses it: a part is a tuple `(type, subtype, params, id,
description, encoding, size, ...)`; a multipart is `([parts...], subtype, params, ...)`. Pure
functions, no client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from handlers.mail_in.parsing import REMOVED_HEADER, reads_as_text

__all__ = ["BIG_MESSAGE", "TEXT_LIMIT", "Section", "assemble", "outline", "reads_as_text_header"]

#: Messages above this size (RFC822.SIZE) are fetched in parts.
BIG_MESSAGE = 1024 * 1024
#: At most this many bytes of each text part are fetched (the body text kept is shorter still).
TEXT_LIMIT = 1024 * 1024
_MAX_DEPTH = 40  # as deep as parse_email looks


@dataclass(frozen=True, slots=True)
class Section:
    """One part of a message: its IMAP section number ("1", "2.1"), and for a multipart its
    boundary and parts; for a leaf its transfer encoding and size in octets as stored."""

    path: str
    parts: tuple[Section, ...] = ()
    boundary: bytes = b""
    encoding: str = ""
    size: int = 0

    @property
    def multipart(self) -> bool:
        return bool(self.parts) or bool(self.boundary)

    def leaves(self) -> list[Section]:
        """The parts that are not multiparts, in message order."""
        if not self.multipart:
            return [self]
        return [leaf for part in self.parts for leaf in part.leaves()]


def outline(structure: Any) -> Section:
    """The sections of a message from its BODYSTRUCTURE. Raises `ValueError` on a structure it
    cannot use (the caller then fetches the message whole)."""
    return _section(structure, "", 0)


def _section(structure: Any, path: str, depth: int) -> Section:
    if not isinstance(structure, tuple | list) or not structure or depth > _MAX_DEPTH:
        raise ValueError("unusable BODYSTRUCTURE")
    if isinstance(structure[0], list | tuple):  # a multipart: its parts, then its subtype
        params = _params(structure[2] if len(structure) > 2 else None)
        boundary = params.get("boundary", b"")
        if not boundary:
            raise ValueError("a multipart without a boundary")
        prefix = f"{path}." if path else ""
        parts = tuple(_section(p, f"{prefix}{i}", depth + 1) for i, p in enumerate(structure[0], start=1))
        return Section(path, parts=parts, boundary=boundary)
    if len(structure) < 7:
        raise ValueError("unusable BODYSTRUCTURE")
    encoding = structure[5].decode("ascii", "replace").lower() if isinstance(structure[5], bytes) else ""
    size = int(structure[6]) if isinstance(structure[6], int) else 0
    return Section(path or "1", encoding=encoding, size=size)


def _params(value: Any) -> dict[str, bytes]:
    if not isinstance(value, tuple | list):
        return {}
    items = [v if isinstance(v, bytes) else b"" for v in value]
    return {items[i].decode("ascii", "replace").lower(): items[i + 1] for i in range(0, len(items) - 1, 2)}


def reads_as_text_header(mime_header: bytes) -> bool:
    """Whether the part with these MIME headers is read as the body (so its content is fetched)."""
    return reads_as_text(BytesHeaderParser(policy=policy.compat32).parsebytes(mime_header))


def assemble(header: bytes, tree: Section, mime: dict[str, bytes], texts: dict[str, bytes]) -> bytes:
    """The raw message without its attachments' content: `header` (BODY[HEADER]), then each
    part with its MIME headers (`mime`, by section) and, for the text parts, what was fetched of
    them (`texts`, by section; at most `TEXT_LIMIT` bytes each)."""
    if not tree.multipart:  # a single part: the message header is its MIME header
        return _leaf(header, tree, texts)
    return header + _multipart(tree, mime, texts)


def _multipart(tree: Section, mime: dict[str, bytes], texts: dict[str, bytes]) -> bytes:
    out = []
    for part in tree.parts:
        head = mime.get(part.path, b"\r\n")
        out.append(b"--" + tree.boundary + b"\r\n")
        out.append(head + _multipart(part, mime, texts) if part.multipart else _leaf(head, part, texts))
        out.append(b"\r\n")
    out.append(b"--" + tree.boundary + b"--\r\n")
    return b"".join(out)


_CTE = re.compile(rb"^content-transfer-encoding:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)


def _leaf(head: bytes, part: Section, texts: dict[str, bytes]) -> bytes:
    lines = head.rstrip(b"\r\n") + b"\r\n"
    text = texts.get(part.path)
    if text is None:  # an attachment: headers only, as strip_attachments leaves it
        size = part.size * 57 // 78 if part.encoding == "base64" else part.size  # decoded, about
        lines = _CTE.sub(b"", lines)
        return lines + f"{REMOVED_HEADER}: content not stored ({size} bytes)\r\n\r\n".encode()
    if part.size > len(text):  # cut: end at a line, so no encoded character is split
        end = text.rfind(b"\n")
        text = text[: end + 1] if end > 0 else text
        lines += f"{REMOVED_HEADER}: text cut after {len(text)} of {part.size} bytes\r\n".encode()
    return lines + b"\r\n" + text
