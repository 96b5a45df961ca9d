"""An in-process stand-in for Slack's Web API, Socket Mode and response_url, on loopback.

The product reaches it exactly as it reaches Slack: through ``AsyncWebClient(base_url=...)``
(``SLACK_API_URL``) and Socket Mode (``apps.connections.open`` -> websocket).  It speaks Slack's
wire formats (form, JSON or query arguments; ``Authorization: Bearer``; ``{"ok": ...}`` answers;
Socket Mode ``hello``/envelope/ack frames) and enforces Slack's documented limits and error codes,
so a test fails where Slack would refuse.  Tests inspect plain recorded state (``messages``,
``calls``, ``ephemerals``, ``responses``, ``views``, ``home``, ``envelopes``), inject faults
(429 with ``Retry-After``, 503, per-channel pacing, per-method errors, a full outage) and drive
interactions with payload builders instead of hand-written Slack JSON.

Sources for the rules: ``/work/shared/notes/platform-conventions.md`` sections 2-6 (Slack docs,
slack_sdk model validators, bolt-python).  Where Slack's behaviour is not documented the choice
is stated in a comment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import inspect
import itertools
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

logger = logging.getLogger(__name__)

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_SCOPES",
    "BOT_USER",
    "TEAM",
    "EnvelopeNotAcknowledged",
    "SlackStandIn",
    "sign_http_request",
    "validate_blocks",
    "validate_view",
]

TEAM = "T0FAKE"
TEAM_DOMAIN = "privacydesk-test"
BOT_USER = "UBOT0001"
BOT_ID = "BBOT0001"
APP_ID = "A0FAKE01"
CHANNEL_NAME = "privacy-requests"
VERIFICATION_TOKEN = "legacy-verification-token"  # the deprecated `token` field in payloads
#: The bot token scopes manifest.yaml asks for: what the stand-in grants unless told otherwise
#: (tests/test_check.py checks that this matches the manifest).
BOT_SCOPES = (
    "chat:write",
    "commands",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "im:write",
    "im:history",
)
APP_SCOPES = ("connections:write",)  # an app-level token for Socket Mode

BLOCK_TYPES = frozenset(
    {
        "section",
        "header",
        "divider",
        "context",
        "actions",
        "input",
        "image",
        "rich_text",
        "markdown",
        "file",
        "video",
    }
)
MAX_BLOCKS = {"message": 50, "modal": 100, "home": 100}
INPUT_ONLY_ELEMENTS = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "file_input",
    }
)
SINGLE_OPTION_ELEMENTS = frozenset({"static_select", "external_select", "overflow", "radio_buttons"})
OPTION_ELEMENTS = frozenset(
    {"static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"}
)
INTERACTIVE_ELEMENTS = INPUT_ONLY_ELEMENTS | frozenset(
    {
        "button",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "overflow",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "checkboxes",
        "radio_buttons",
        "workflow_button",
    }
)
FAULTABLE_PREFIXES = ("chat.", "views.", "conversations.", "users.")
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
RESPONDING_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})
TRIGGER_LIFETIME = 3.0  # seconds: "Pass a valid trigger_id within 3 seconds of receiving it"
RESPONSE_URL_LIFETIME = 30 * 60  # response_url: up to 5 uses within 30 minutes
RESPONSE_URL_USES = 5


# ---------------------------------------------------------------------------------------------
# Block Kit validation: plain functions, Slack-style problem strings with a JSON pointer.
# ---------------------------------------------------------------------------------------------


class _Problems(list[str]):
    def add(self, pointer: str, rule: str) -> None:
        self.append(f"[ERROR] {rule} [json-pointer:{pointer}]")


def _check_str(p: _Problems, value: object, ptr: str, *, max_len: int, min_len: int = 0) -> None:
    if not isinstance(value, str):
        p.add(ptr, "must provide a string")
    elif len(value) < min_len:
        p.add(ptr, f"must be at least {min_len} characters")
    elif len(value) > max_len:
        p.add(ptr, f"must be less than {max_len + 1} characters")


def _check_text(
    p: _Problems, obj: object, ptr: str, *, max_len: int = 3000, plain_only: bool = False
) -> None:
    if not isinstance(obj, dict):
        p.add(ptr, "must provide an object (a plain_text or mrkdwn text object)")
        return
    kind = obj.get("type")
    if kind not in ("plain_text", "mrkdwn"):
        p.add(f"{ptr}/type", f"text object type must be plain_text or mrkdwn, not {kind!r}")
        return
    if plain_only and kind != "plain_text":
        p.add(f"{ptr}/type", "must be a plain_text text object")
    text = obj.get("text")
    if not isinstance(text, str):
        p.add(f"{ptr}/text", "must provide a string")
    elif not text:
        p.add(f"{ptr}/text", "must be more than 0 characters")
    elif len(text) > max_len:
        p.add(f"{ptr}/text", f"must be less than {max_len + 1} characters")
    if kind == "plain_text" and "verbatim" in obj:
        p.add(f"{ptr}/verbatim", "verbatim is only allowed on mrkdwn text objects")


def _check_option(p: _Problems, opt: object, ptr: str, *, plain_only: bool) -> None:
    if not isinstance(opt, dict):
        p.add(ptr, "must provide an object")
        return
    _check_text(p, opt.get("text"), f"{ptr}/text", max_len=75, plain_only=plain_only)
    _check_str(p, opt.get("value"), f"{ptr}/value", max_len=150)
    if "description" in opt:
        _check_text(p, opt["description"], f"{ptr}/description", max_len=75, plain_only=plain_only)


def _check_confirm(p: _Problems, obj: object, ptr: str) -> None:
    if not isinstance(obj, dict):
        p.add(ptr, "must provide an object")
        return
    for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
        _check_text(p, obj.get(key), f"{ptr}/{key}", max_len=limit, plain_only=key != "text")


def _check_element(p: _Problems, el: object, ptr: str, action_ids: set[str], *, in_input: bool) -> None:
    if not isinstance(el, dict):
        p.add(ptr, "must provide an object")
        return
    kind = el.get("type")
    if kind not in INTERACTIVE_ELEMENTS:
        p.add(f"{ptr}/type", f"unsupported element type: {kind!r}")
        return
    if kind in INPUT_ONLY_ELEMENTS and not in_input:
        p.add(f"{ptr}/type", f"{kind} is only allowed inside an input block")
    if in_input and kind in ("button", "overflow", "workflow_button"):
        p.add(f"{ptr}/type", f"{kind} is not allowed inside an input block")
    if "action_id" in el:
        aid = el["action_id"]
        _check_str(p, aid, f"{ptr}/action_id", max_len=255, min_len=1)
        if isinstance(aid, str):
            if aid in action_ids:
                p.add(f"{ptr}/action_id", f"duplicate action_id {aid!r}")
            action_ids.add(aid)
    if kind == "button":
        _check_text(p, el.get("text"), f"{ptr}/text", max_len=75, plain_only=True)
        if "value" in el:
            _check_str(p, el["value"], f"{ptr}/value", max_len=2000)
        if "url" in el:
            _check_str(p, el["url"], f"{ptr}/url", max_len=3000)
        if "style" in el and el["style"] not in ("primary", "danger"):
            p.add(f"{ptr}/style", "style must be primary or danger")
    if "placeholder" in el:
        _check_text(p, el["placeholder"], f"{ptr}/placeholder", max_len=150, plain_only=True)
    if "confirm" in el:
        _check_confirm(p, el["confirm"], f"{ptr}/confirm")
    if kind in OPTION_ELEMENTS:
        plain_only = kind not in ("radio_buttons", "checkboxes")
        options, groups = el.get("options"), el.get("option_groups")
        if options is None and groups is None:
            p.add(f"{ptr}/options", "must provide options or option_groups")
        limit = {"overflow": 5, "radio_buttons": 10, "checkboxes": 10}.get(kind, 100)
        if options is not None:
            if not isinstance(options, list) or not options:
                p.add(f"{ptr}/options", "must provide a non-empty array")
            else:
                if len(options) > limit:
                    p.add(f"{ptr}/options", f"no more than {limit} items allowed")
                if kind == "overflow" and len(options) < 2:
                    p.add(f"{ptr}/options", "must provide at least 2 items")
                for i, opt in enumerate(options):
                    _check_option(p, opt, f"{ptr}/options/{i}", plain_only=plain_only)
        if isinstance(groups, list):
            if len(groups) > 100:
                p.add(f"{ptr}/option_groups", "no more than 100 items allowed")
            for g, group in enumerate(groups):
                gptr = f"{ptr}/option_groups/{g}"
                if not isinstance(group, dict):
                    p.add(gptr, "must provide an object")
                    continue
                _check_text(p, group.get("label"), f"{gptr}/label", max_len=75, plain_only=True)
                for i, opt in enumerate(group.get("options") or []):
                    _check_option(p, opt, f"{gptr}/options/{i}", plain_only=True)
    if kind == "plain_text_input":
        for key in ("min_length", "max_length"):
            if key in el and not (isinstance(el[key], int) and 0 <= el[key] <= 3000):
                p.add(f"{ptr}/{key}", "must be an integer between 0 and 3000")


def _check_image(p: _Problems, obj: dict[str, Any], ptr: str) -> None:
    if "slack_file" not in obj:
        _check_str(p, obj.get("image_url"), f"{ptr}/image_url", max_len=3000, min_len=1)
    _check_str(p, obj.get("alt_text"), f"{ptr}/alt_text", max_len=2000, min_len=1)


def _check_block(
    p: _Problems,
    block: object,
    ptr: str,
    surface: str,
    block_ids: set[str],
    surface_action_ids: set[str] | None,
) -> int:
    """Check one block; returns the number of markdown characters it carries (cumulative cap)."""
    if not isinstance(block, dict):
        p.add(ptr, "must provide an object")
        return 0
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        p.add(f"{ptr}/type", f"unsupported block type: {kind!r}")
        return 0
    if "block_id" in block:
        bid = block["block_id"]
        _check_str(p, bid, f"{ptr}/block_id", max_len=255, min_len=1)
        if isinstance(bid, str):
            if bid in block_ids:
                p.add(f"{ptr}/block_id", f"duplicate block_id {bid!r}")
            block_ids.add(bid)
    # Slack documents action_id as "unique among all other action_ids in the containing block";
    # pass action_id_scope="surface" to demand uniqueness across the whole message/view.
    action_ids: set[str] = surface_action_ids if surface_action_ids is not None else set()
    if kind == "section":
        if "text" not in block and "fields" not in block:
            p.add(ptr, "a section block must provide text or fields")
        if "text" in block:
            _check_text(p, block["text"], f"{ptr}/text", max_len=3000)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not fields:
                p.add(f"{ptr}/fields", "must provide a non-empty array")
            else:
                if len(fields) > 10:
                    p.add(f"{ptr}/fields", "no more than 10 items allowed")
                for i, f in enumerate(fields):
                    _check_text(p, f, f"{ptr}/fields/{i}", max_len=2000)
        acc = block.get("accessory")
        if isinstance(acc, dict) and acc.get("type") == "image":
            _check_image(p, acc, f"{ptr}/accessory")
        elif acc is not None:
            _check_element(p, acc, f"{ptr}/accessory", action_ids, in_input=False)
    elif kind == "header":
        _check_text(p, block.get("text"), f"{ptr}/text", max_len=150, plain_only=True)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            p.add(f"{ptr}/elements", "must provide a non-empty array")
        else:
            if len(elements) > 10:
                p.add(f"{ptr}/elements", "no more than 10 items allowed")
            for i, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") == "image":
                    _check_image(p, el, f"{ptr}/elements/{i}")
                else:
                    _check_text(p, el, f"{ptr}/elements/{i}")
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            p.add(f"{ptr}/elements", "must provide a non-empty array")
        else:
            if len(elements) > 25:
                p.add(f"{ptr}/elements", "no more than 25 items allowed")
            for i, el in enumerate(elements):
                _check_element(p, el, f"{ptr}/elements/{i}", action_ids, in_input=False)
    elif kind == "input":
        if surface == "message":
            p.add(f"{ptr}/type", "input blocks are only allowed in modals and Home tabs")
        _check_text(p, block.get("label"), f"{ptr}/label", max_len=2000, plain_only=True)
        if "hint" in block:
            _check_text(p, block["hint"], f"{ptr}/hint", max_len=2000, plain_only=True)
        if "element" not in block:
            p.add(f"{ptr}/element", "missing required field: element")
        else:
            _check_element(p, block["element"], f"{ptr}/element", action_ids, in_input=True)
    elif kind == "image":
        _check_image(p, block, ptr)
        if "title" in block:
            _check_text(p, block["title"], f"{ptr}/title", max_len=2000, plain_only=True)
    elif kind == "rich_text":
        if not isinstance(block.get("elements"), list):
            p.add(f"{ptr}/elements", "must provide an array")
    elif kind == "markdown":
        _check_str(p, block.get("text"), f"{ptr}/text", max_len=12000, min_len=1)
        return len(block.get("text") or "") if isinstance(block.get("text"), str) else 0
    elif kind == "file":
        _check_str(p, block.get("external_id"), f"{ptr}/external_id", max_len=255, min_len=1)
        if block.get("source") != "remote":
            p.add(f"{ptr}/source", "source must be 'remote'")
    elif kind == "video":
        for key in ("alt_text", "video_url", "thumbnail_url"):
            _check_str(p, block.get(key), f"{ptr}/{key}", max_len=3000, min_len=1)
        _check_text(p, block.get("title"), f"{ptr}/title", max_len=200, plain_only=True)
    return 0


def validate_blocks(blocks: object, *, surface: str = "message", action_id_scope: str = "block") -> list[str]:
    """Return every Block Kit rule ``blocks`` breaks for ``surface`` ("message", "modal", "home").

    Each problem reads like Slack's ``response_metadata.messages`` entries:
    ``"[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"``.
    An empty list means Slack would accept the blocks.  ``action_id_scope`` is "block" (Slack's
    documented rule) or "surface" (stricter: unique across the whole message or view).
    """
    p = _Problems()
    if not isinstance(blocks, list):
        p.add("/blocks", "must provide an array")
        return p
    limit = MAX_BLOCKS[surface]
    if len(blocks) > limit:
        p.add("/blocks", f"no more than {limit} items allowed")
    block_ids: set[str] = set()
    surface_ids: set[str] | None = set() if action_id_scope == "surface" else None
    markdown_chars = 0
    for i, block in enumerate(blocks):
        markdown_chars += _check_block(p, block, f"/blocks/{i}", surface, block_ids, surface_ids)
    if markdown_chars > 12000:
        p.add("/blocks", "markdown blocks may carry at most 12000 characters in total")
    return p


def validate_view(view: object, *, action_id_scope: str = "block") -> list[str]:
    """Return every rule a modal or Home view breaks (title/submit/close ≤24, private_metadata ≤3000,
    callback_id/external_id ≤255, submit required with input blocks, and its blocks); [] when valid."""
    p = _Problems()
    if not isinstance(view, dict):
        p.add("/view", "must provide an object")
        return p
    kind = view.get("type")
    if kind not in ("modal", "home"):
        p.add("/view/type", "view type must be modal or home")
        return p
    if kind == "modal":
        _check_text(p, view.get("title"), "/view/title", max_len=24, plain_only=True)
        for key in ("submit", "close"):
            if key in view:
                _check_text(p, view[key], f"/view/{key}", max_len=24, plain_only=True)
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and "submit" not in view:
            p.add("/view/submit", "submit is required when the view has input blocks")
    if not isinstance(view.get("blocks"), list):
        p.add("/view/blocks", "missing required field: blocks (an array)")
        return p
    for key, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        if key in view:
            _check_str(p, view[key], f"/view/{key}", max_len=limit)
    for problem in validate_blocks(view["blocks"], surface=kind, action_id_scope=action_id_scope):
        p.append(problem.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks"))
    return p


def sign_http_request(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack would send with ``body`` to an HTTP-mode Request URL, signed with ``secret``
    (``X-Slack-Request-Timestamp`` and the ``v0=`` HMAC-SHA256 ``X-Slack-Signature``)."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}


# ---------------------------------------------------------------------------------------------
# Wire helpers
# ---------------------------------------------------------------------------------------------


class EnvelopeNotAcknowledged(TimeoutError):
    """Raised by ``send_envelope`` when the app did not ack the envelope in time."""


class _SlackError(Exception):
    def __init__(
        self,
        error: str,
        *,
        messages: list[str] | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages
        self.status = status
        self.headers = headers


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    serial: int
    pending: dict[str, asyncio.Future[tuple[dict[str, Any], float]]] = field(default_factory=dict)


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, (str, int)) and str(value).lower() in ("1", "true"))


def _json_fields(args: dict[str, Any]) -> dict[str, Any]:
    for key in ("blocks", "attachments", "view", "metadata"):
        if isinstance(args.get(key), str):
            with contextlib.suppress(ValueError):  # a bad string stays; the method refuses it
                args[key] = json.loads(args[key])
    return args


async def _read_args(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Decode query + body like Slack: form fields (JSON-encoded blocks/view/metadata) or a JSON body.
    The token comes from ``Authorization: Bearer`` or a form field (never the JSON body)."""
    args: dict[str, Any] = dict(request.query.items())
    args.pop("token", None)  # tokens in query strings are refused for current apps
    token: str | None = None
    if request.can_read_body:
        if request.content_type == "application/json":
            raw = await request.text()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                raise _SlackError("invalid_json") from exc
            if not isinstance(body, dict):
                raise _SlackError("invalid_json")
            body.pop("token", None)
            args.update({k: v for k, v in body.items() if v is not None})
        else:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
            token = args.pop("token", None)
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[len("Bearer ") :].strip()
    return _json_fields(args), token


def _require(args: dict[str, Any], name: str, error: str = "invalid_arguments") -> str:
    value = args.get(name)
    if value is None or value == "":
        raise _SlackError(error, messages=[f"[ERROR] missing required field: {name}"])
    return str(value)


def _limit(args: dict[str, Any], default: int, maximum: int) -> int:
    try:
        value = int(args.get("limit") or default)
    except (TypeError, ValueError) as exc:
        raise _SlackError("invalid_limit") from exc
    return max(1, min(value, maximum))  # Slack clamps rather than refusing (not documented)


def _encode_cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _decode_cursor(cursor: object, kind: str) -> str | None:
    if not cursor:
        return None
    try:
        prefix, _, value = base64.b64decode(str(cursor), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _SlackError("invalid_cursor") from exc
    if prefix != kind or not value:
        raise _SlackError("invalid_cursor")
    return value


class SlackStandIn:
    """Slack's Web API + Socket Mode + response_url on 127.0.0.1, an async context manager.

    Promises: every /api answer is JSON with ``"ok"``; limits and error codes follow Slack's
    documentation; every call is recorded in ``calls`` (method, decoded args, at, token, fault,
    error) before it is answered; messages are recorded in ``messages`` in posting order.
    Times (``at``, ``posted_at``, trigger expiry, pacing) come from ``clock``.
    """

    def __init__(
        self,
        *,
        channel: str = "C0STAFF01",
        staff: Sequence[str] = ("UALICE01", "UBOB0001"),
        outsiders: Sequence[str] = ("UMALLORY",),
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.staff = list(staff)
        self.outsiders = list(outsiders)
        self.bot_token = bot_token
        self.app_token = app_token
        self.clock = clock
        self.base_url = ""
        self.port = 0
        # recorded state
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home: dict[str, dict[str, Any]] = {}
        self.envelopes: list[dict[str, Any]] = []
        # faults
        self.rate_limit_every = 0
        self.retry_after = 1
        self.server_error_every = 0
        self.per_channel_rate = 0.0
        self.per_channel_burst = 3
        self.fail_method: dict[str, str] = {}
        self.action_id_scope = "block"
        # the workspace: the bot token's scopes (sent back in `x-oauth-scopes`, as Slack does on
        # every Web API answer) and whether the bot is a member of the staff channel
        self.scopes: list[str] = list(BOT_SCOPES)
        self.bot_in_channel = True
        self._down = False
        # hook
        self.on_message_posted: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None
        # internals
        self._by_key: dict[tuple[str, str], dict[str, Any]] = {}
        #: each thread's replies by (channel, parent ts), so that posting stays O(1) at any count
        self._threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._last_ts_us = 0
        self._faultable_calls = 0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._triggers: dict[str, dict[str, Any]] = {}
        self._trigger_seq = itertools.count(1)
        self._view_seq = itertools.count(1)
        self._stacks: dict[str, list[str]] = {}
        self._ims: dict[str, str] = {}
        self._response_urls: dict[str, dict[str, Any]] = {}
        self._socket_ids: set[str] = set()
        self._sockets: list[_Socket] = []
        self._socket_serial = 0
        self._sockets_changed = asyncio.Condition()
        self._background: set[asyncio.Task[Any]] = set()
        self._rng = random.Random(0)
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "api.test": lambda a: {"args": a},
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.members": self._members,
            "conversations.info": self._conversation_info,
            "conversations.open": self._conversation_open,
            "users.info": self._user_info,
            "views.open": self._views_open,
            "views.push": lambda a: self._views_open(a, push=True),
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> SlackStandIn:
        """Bind 127.0.0.1 on a free port on the running loop; sets ``port`` and ``base_url``."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{rid}", self._response_url)
        app.router.add_get("/socket/{sid}", self._socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
        logger.debug("Slack stand-in listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        """Close every socket and the listener; idempotent."""
        self._stopping = True
        await self.close_sockets()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- faults ------------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """While true every /api call answers 503, sockets are closed and new ones refused."""
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = bool(value)
        if self._down and self._sockets:
            task = asyncio.get_running_loop().create_task(self.close_sockets())  # needs the running loop
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Set fault knobs by name (rate_limit_every, retry_after, server_error_every,
        per_channel_rate, per_channel_burst, fail_method, down); returns the current settings."""
        names = (
            "rate_limit_every",
            "retry_after",
            "server_error_every",
            "per_channel_rate",
            "per_channel_burst",
            "fail_method",
            "down",
        )
        for key, value in settings.items():
            if key not in names:
                raise TypeError(f"unknown fault {key!r}; known: {', '.join(names)}")
            setattr(self, key, value)
        return {name: getattr(self, name) for name in names}

    # ---- inspection --------------------------------------------------------------------------

    def roots(
        self, channel: str | None = None, event_type: str | None = "privacy_case"
    ) -> list[dict[str, Any]]:
        """Top-level, not deleted messages (in ``channel`` if given) whose metadata has ``event_type``
        (any message when ``event_type`` is None), in posting order."""
        return [
            m
            for m in self.messages
            if not m["thread_ts"]
            and not m["deleted"]
            and (channel is None or m["channel"] == channel)
            and (event_type is None or (m["metadata"] or {}).get("event_type") == event_type)
        ]

    def replies(self, thread_ts: str) -> list[dict[str, Any]]:
        """Not deleted replies in the thread of ``thread_ts``, oldest first."""
        return [m for m in self.messages if m["thread_ts"] == thread_ts and not m["deleted"]]

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """Recorded calls to ``method`` (including faulted and failed ones), in order."""
        return [c for c in self.calls if c["method"] == method]

    # ---- /api dispatch -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call: dict[str, Any] = {
            "method": method,
            "args": {},
            "at": self.clock(),
            "token": None,
            "fault": None,
            "error": None,
        }
        self.calls.append(call)
        headers: dict[str, str] = {}
        try:
            if self._down or self._stopping:
                call["fault"] = 503
                raise _SlackError("service_unavailable", status=503)
            args, token = await _read_args(request)
            call.update(args=args, token=token)
            headers = self._scope_header(token)
            handler = self._methods.get(method)
            if handler is None:
                call["unknown"] = True
                raise _SlackError("unknown_method")
            self._check_token(method, token)
            self._inject_faults(method, args, call)
            if method in self.fail_method:
                raise _SlackError(self.fail_method[method])
            result = handler(args)
            if inspect.isawaitable(result):
                result = await result
        except _SlackError as exc:
            call["error"] = exc.error
            body: dict[str, Any] = {"ok": False, "error": exc.error}
            if exc.messages:
                body["response_metadata"] = {"messages": exc.messages}
            logger.debug("%s -> %s %s", method, exc.status, exc.error)
            return web.json_response(body, status=exc.status, headers={**headers, **(exc.headers or {})})
        return web.json_response({"ok": True, **result}, headers=headers)

    def _scope_header(self, token: str | None) -> dict[str, str]:
        """`x-oauth-scopes` for a known token: its scopes, comma-separated (none for another token)."""
        scopes = {self.bot_token: self.scopes, self.app_token: APP_SCOPES}.get(token or "")
        return {} if scopes is None else {"x-oauth-scopes": ",".join(scopes)}

    def _check_token(self, method: str, token: str | None) -> None:
        if method == "api.test":
            return
        if not token:
            raise _SlackError("not_authed")
        if token.startswith("xapp-"):
            if token != self.app_token:
                raise _SlackError("invalid_auth")
            if method not in APP_TOKEN_METHODS:
                raise _SlackError("not_allowed_token_type")
            return
        if token != self.bot_token:
            raise _SlackError("invalid_auth")
        if method in APP_TOKEN_METHODS:
            raise _SlackError("not_allowed_token_type")

    def _inject_faults(self, method: str, args: dict[str, Any], call: dict[str, Any]) -> None:
        if method.startswith(FAULTABLE_PREFIXES):
            self._faultable_calls += 1
            n = self._faultable_calls
            if self.rate_limit_every and n % self.rate_limit_every == 0:
                call["fault"] = 429
                raise _SlackError(
                    "ratelimited", status=429, headers={"Retry-After": str(int(self.retry_after))}
                )
            if self.server_error_every and n % self.server_error_every == 0:
                call["fault"] = 503
                raise _SlackError("service_unavailable", status=503)
        if method == "chat.postMessage" and self.per_channel_rate > 0:
            # token bucket per channel: refills per_channel_rate tokens/s up to per_channel_burst
            try:
                channel = self._resolve_channel(args.get("channel"), allow_names=True, allow_users=True)
            except _SlackError:
                return  # chat.postMessage itself answers channel_not_found
            now = self.clock()
            tokens, last = self._buckets.get(channel, (float(self.per_channel_burst), now))
            tokens = min(float(self.per_channel_burst), tokens + (now - last) * self.per_channel_rate)
            if tokens < 1.0:
                self._buckets[channel] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.per_channel_rate))
                call["fault"] = 429
                raise _SlackError("ratelimited", status=429, headers={"Retry-After": str(wait)})
            self._buckets[channel] = (tokens - 1.0, now)

    # ---- ids, users, channels ----------------------------------------------------------------

    def _next_ts(self) -> str:
        self._last_ts_us = max(self._last_ts_us + 1, int(self.clock() * 1_000_000))
        return f"{self._last_ts_us / 1_000_000:.6f}"

    def _short_id(self, taken: set[str]) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        while True:
            candidate = "".join(self._rng.choice(alphabet) for _ in range(5))
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    def _known_user(self, user: str) -> bool:
        return user in self.staff or user in self.outsiders or user == BOT_USER

    def _user(self, user: str) -> dict[str, Any]:
        name = user.lower()
        return {
            "id": user,
            "team_id": TEAM,
            "name": name,
            "real_name": f"User {user}",
            "deleted": False,
            "is_bot": user == BOT_USER,
            "is_admin": False,
            "tz": "Europe/Brussels",
            "tz_offset": 3600,
            "profile": {
                "display_name": name,
                "real_name": f"User {user}",
                "email": f"{name}@privacydesk.test",
            },
        }

    def _im_for(self, user: str) -> str:
        return self._ims.setdefault(user, "D" + user[1:])

    def _resolve_channel(self, value: object, *, allow_names: bool = False, allow_users: bool = False) -> str:
        channel = str(value or "")
        if channel == self.channel or (channel.startswith("D") and len(channel) > 1):
            return channel
        if allow_names and channel.lstrip("#") == CHANNEL_NAME:
            return self.channel
        if allow_users and self._known_user(channel) and channel != BOT_USER:
            return self._im_for(channel)  # posting to a user ID posts to the app's DM with them
        raise _SlackError("channel_not_found")

    def _channel_members(self, channel: str) -> list[str]:
        if channel == self.channel:
            return [*self.staff, *([BOT_USER] if self.bot_in_channel else [])]
        user = next((u for u, d in self._ims.items() if d == channel), None)
        return [user, BOT_USER] if user else [BOT_USER]

    # ---- messages ----------------------------------------------------------------------------

    def _normalized_blocks(self, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copy of blocks with the block_id/action_id Slack generates when they are absent."""
        out = copy.deepcopy(blocks)
        taken = {b["block_id"] for b in out if isinstance(b.get("block_id"), str)}
        for block in out:
            block.setdefault("block_id", self._short_id(taken))
            for el in self._elements(block):
                if el.get("type") in INTERACTIVE_ELEMENTS:
                    el.setdefault("action_id", self._short_id(set()))
        return out

    @staticmethod
    def _elements(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if block.get("type") == "actions":
            yield from (e for e in block.get("elements") or [] if isinstance(e, dict))
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                yield block[key]

    def _check_blocks(self, blocks: object, surface: str) -> list[dict[str, Any]]:
        if not isinstance(blocks, list):
            raise _SlackError("invalid_blocks_format")
        problems = validate_blocks(blocks, surface=surface, action_id_scope=self.action_id_scope)
        if problems:
            raise _SlackError("invalid_blocks", messages=problems)
        return self._normalized_blocks(blocks)

    def _check_content(self, args: dict[str, Any], *, require: bool = True) -> None:
        text = args.get("text")
        if require and not any(args.get(k) for k in ("text", "markdown_text", "blocks", "attachments")):
            raise _SlackError("no_text")
        if isinstance(text, str) and len(text) > 40000:
            raise _SlackError("msg_too_long")

    @staticmethod
    def _check_metadata(value: object) -> dict[str, Any]:
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("event_type"), str)
            or not value["event_type"]
            or not isinstance(value.get("event_payload"), dict)
        ):
            raise _SlackError("invalid_metadata_format")
        return copy.deepcopy(value)

    def _public(self, m: dict[str, Any], *, include_metadata: bool) -> dict[str, Any]:
        """The message as Slack's Web API returns it (history, replies, payloads)."""
        out: dict[str, Any] = {
            "type": "message",
            "user": m["user"],
            "bot_id": m["bot_id"],
            "app_id": APP_ID,
            "text": m["text"],
            "ts": m["ts"],
            "team": TEAM,
        }
        if m["blocks"]:
            out["blocks"] = copy.deepcopy(m["blocks"])
        if m.get("attachments"):
            out["attachments"] = copy.deepcopy(m["attachments"])
        if m["thread_ts"]:
            out.update(thread_ts=m["thread_ts"], parent_user_id=BOT_USER)
            if m["reply_broadcast"]:
                out["subtype"] = "thread_broadcast"
        else:
            thread = [r for r in self._threads.get((m["channel"], m["ts"]), ()) if not r["deleted"]]
            if thread:
                out.update(
                    thread_ts=m["ts"],
                    reply_count=len(thread),
                    reply_users=[BOT_USER],
                    reply_users_count=1,
                    latest_reply=thread[-1]["ts"],
                )
        if m["updates"]:
            out["edited"] = {"user": BOT_USER, "ts": m["edited_ts"]}
        if include_metadata and m["metadata"]:
            out["metadata"] = copy.deepcopy(m["metadata"])
        return out

    def _message(self, channel: object, ts: object) -> dict[str, Any]:
        m = self._by_key.get((str(channel or ""), str(ts or "")))
        if m is None or m["deleted"]:
            raise _SlackError("message_not_found")
        return m

    def _store(
        self,
        channel: str,
        args: dict[str, Any],
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any] | None,
    ) -> dict[str, Any]:
        ts = self._next_ts()
        msg = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "text": args.get("text") or "",
            "blocks": blocks,
            "attachments": args.get("attachments"),
            "thread_ts": args.get("thread_ts") or None,
            "metadata": metadata,
            "unfurl_links": _truthy(args["unfurl_links"]) if "unfurl_links" in args else None,
            "unfurl_media": _truthy(args["unfurl_media"]) if "unfurl_media" in args else None,
            "reply_broadcast": _truthy(args.get("reply_broadcast")),
            "deleted": False,
            "updates": 0,
            "posted_at": self.clock(),
            "updated_at": None,
            "edited_ts": None,
            "user": BOT_USER,
            "bot_id": BOT_ID,
        }
        self.messages.append(msg)
        self._by_key[(channel, ts)] = msg
        if msg["thread_ts"]:
            self._threads.setdefault((channel, str(msg["thread_ts"])), []).append(msg)
        return msg

    async def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            raise _SlackError("channel_not_found")
        channel = self._resolve_channel(args["channel"], allow_names=True, allow_users=True)
        self._check_content(args)
        blocks = self._check_blocks(args["blocks"], "message") if "blocks" in args else []
        metadata = self._check_metadata(args["metadata"]) if args.get("metadata") is not None else None
        thread_ts = args.get("thread_ts")
        if thread_ts:
            parent = self._by_key.get((channel, str(thread_ts)))
            if parent is None or parent["deleted"] or parent["thread_ts"]:
                raise _SlackError("thread_not_found")
        msg = self._store(channel, args, blocks, metadata)
        if self.on_message_posted is not None:
            outcome = self.on_message_posted(msg)
            if inspect.isawaitable(outcome):
                await outcome
        return {"channel": channel, "ts": msg["ts"], "message": self._public(msg, include_metadata=True)}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        m = self._message(channel, args.get("ts"))
        if not any(k in args for k in ("text", "blocks", "attachments", "metadata")):
            raise _SlackError("no_text")
        self._check_content(args, require=False)
        blocks = self._check_blocks(args["blocks"], "message") if "blocks" in args else None
        metadata = self._check_metadata(args["metadata"]) if args.get("metadata") is not None else None
        if "text" in args:
            m["text"] = args["text"] or ""
        if blocks is not None:  # omitted blocks are kept; [] removes them (chat.update docs)
            m["blocks"] = blocks
        if "attachments" in args:
            m["attachments"] = args["attachments"]
        if metadata is not None:
            m["metadata"] = metadata
        m["updates"] += 1
        m["updated_at"] = self.clock()
        m["edited_ts"] = self._next_ts()
        public = self._public(m, include_metadata=True)
        return {"channel": channel, "ts": m["ts"], "text": m["text"], "message": public}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        m = self._message(channel, args.get("ts"))
        m["deleted"] = True
        return {"channel": channel, "ts": m["ts"]}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"), allow_names=True)
        user = _require(args, "user", "user_not_found")
        if not self._known_user(user):
            raise _SlackError("user_not_found")
        if user not in self._channel_members(channel):
            raise _SlackError("user_not_in_channel")
        self._check_content(args)
        blocks = self._check_blocks(args["blocks"], "message") if "blocks" in args else []
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": args.get("text") or "",
                "blocks": blocks,
                "thread_ts": args.get("thread_ts"),
                "ts": ts,
                "at": self.clock(),
                "is_ephemeral": True,
            }
        )
        return {"message_ts": ts}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        m = self._message(channel, args.get("message_ts"))
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{m['ts'].replace('.', '')}"
        if m["thread_ts"]:
            link += f"?thread_ts={m['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        limit = _limit(args, 100, 999)
        inclusive = _truthy(args.get("inclusive"))
        oldest = float(args.get("oldest") or 0)
        latest = float(args["latest"]) if args.get("latest") else math.inf
        before = _decode_cursor(args.get("cursor"), "next_ts")
        visible = [
            m
            for m in reversed(self.messages)
            if m["channel"] == channel
            and not m["deleted"]
            and (not m["thread_ts"] or m["reply_broadcast"])
            and (oldest <= float(m["ts"]) if inclusive else oldest < float(m["ts"]))
            and (float(m["ts"]) <= latest if inclusive else float(m["ts"]) < latest)
            and (before is None or float(m["ts"]) <= float(before))
        ]
        page, rest = visible[:limit], visible[limit:]
        with_metadata = _truthy(args.get("include_all_metadata"))
        return {
            "messages": [self._public(m, include_metadata=with_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": _encode_cursor("next_ts", rest[0]["ts"]) if rest else ""},
        }

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        ts = _require(args, "ts", "thread_not_found")
        m = self._by_key.get((channel, ts))
        if m is None or m["deleted"]:
            raise _SlackError("thread_not_found")
        parent = self._by_key[(channel, m["thread_ts"])] if m["thread_ts"] else m
        limit = _limit(args, 1000, 1000)
        after = _decode_cursor(args.get("cursor"), "next_ts")
        thread = [parent] + [r for r in self._threads.get((channel, parent["ts"]), ()) if not r["deleted"]]
        if after is not None:
            thread = [r for r in thread if float(r["ts"]) >= float(after)]
        page, rest = thread[:limit], thread[limit:]
        with_metadata = _truthy(args.get("include_all_metadata"))
        return {
            "messages": [self._public(r, include_metadata=with_metadata) for r in page],
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": _encode_cursor("next_ts", rest[0]["ts"]) if rest else ""},
        }

    # ---- conversations, users ----------------------------------------------------------------

    def _members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        members = self._channel_members(channel)
        limit = _limit(args, 100, 1000)
        start = _decode_cursor(args.get("cursor"), "user")
        if start is not None:
            if start not in members:
                raise _SlackError("invalid_cursor")
            members = members[members.index(start) :]
        page, rest = members[:limit], members[limit:]
        return {
            "members": page,
            "response_metadata": {"next_cursor": _encode_cursor("user", rest[0]) if rest else ""},
        }

    def _conversation_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel"))
        if channel.startswith("D"):
            user = next((u for u, d in self._ims.items() if d == channel), None)
            return {"channel": {"id": channel, "is_im": True, "user": user, "is_open": True, "created": 0}}
        info: dict[str, Any] = {
            "id": channel,
            "name": CHANNEL_NAME,
            "is_channel": True,
            "is_private": True,
            "is_member": self.bot_in_channel,
            "is_archived": False,
            "is_im": False,
            "created": 1_600_000_000,
        }
        if _truthy(args.get("include_num_members")):
            info["num_members"] = len(self._channel_members(channel))
        return {"channel": info}

    def _conversation_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {"channel": {"id": self._resolve_channel(args["channel"])}}
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            raise _SlackError("users_list_not_supplied")
        for user in users:
            if not self._known_user(user):
                raise _SlackError("user_not_found")
        if len(users) > 1:
            raise _SlackError("not_supported", messages=["[ERROR] the stand-in does not model group DMs"])
        already = users[0] in self._ims
        return {"channel": {"id": self._im_for(users[0])}, "already_open": already, "no_op": already}

    def _user_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user") or "")
        if not self._known_user(user):
            raise _SlackError("user_not_found")
        return {"user": self._user(user)}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Privacy Desk Test",
            "user": "privacy-desk",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        sid = uuid.uuid4().hex
        self._socket_ids.add(sid)
        return {"url": f"ws://127.0.0.1:{self.port}/socket/{sid}?ticket={uuid.uuid4()}&app_id={APP_ID}"}

    # ---- views -------------------------------------------------------------------------------

    def _check_view(self, view: object) -> dict[str, Any]:
        if not isinstance(view, dict):
            raise _SlackError(
                "invalid_arguments", messages=["[ERROR] must provide an object [json-pointer:/view]"]
            )
        if len(json.dumps(view)) > 250_000:
            raise _SlackError("view_too_large")
        # Slack reports view problems (including its blocks) as invalid_arguments.
        problems = validate_view(view, action_id_scope=self.action_id_scope)
        if problems:
            raise _SlackError("invalid_arguments", messages=problems)
        return view

    def _new_hash(self) -> str:
        return f"{int(self.clock())}.{uuid.uuid4().hex[:8]}"

    def _store_view(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        root: str | None = None,
        previous: str | None = None,
    ) -> dict[str, Any]:
        view_id = view_id or f"V{next(self._view_seq):08d}"
        stored = {
            "id": view_id,
            "team_id": TEAM,
            "type": view["type"],
            "blocks": self._normalized_blocks(view["blocks"]),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(view.get("clear_on_close")),
            "notify_on_close": bool(view.get("notify_on_close")),
            "root_view_id": root or view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM,
            "bot_id": BOT_ID,
        }
        for key in ("title", "submit", "close"):
            if key in view:
                stored[key] = copy.deepcopy(view[key])
        self.views[view_id] = stored
        return stored

    def _views_open(self, args: dict[str, Any], *, push: bool = False) -> dict[str, Any]:
        trigger_id = _require(args, "trigger_id", "invalid_trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise _SlackError("invalid_trigger_id")
        if trigger["used"]:
            raise _SlackError("exchanged_trigger_id")
        if self.clock() - trigger["issued"] > TRIGGER_LIFETIME:
            raise _SlackError("expired_trigger_id")
        view = self._check_view(args.get("view"))
        if view["type"] != "modal":
            raise _SlackError(
                "invalid_arguments", messages=["[ERROR] view type must be modal [json-pointer:/view/type]"]
            )
        external_id = view.get("external_id")
        if external_id and any(v["external_id"] == external_id for v in self.views.values()):
            raise _SlackError("duplicate_external_id")
        root = self.views.get(trigger.get("view_id") or "", {}).get("root_view_id") if push else None
        if root:  # "After a modal is opened, you can push up to 2 additional views" (views.push)
            stack = self._stacks[root]
            if len(stack) >= 3:
                raise _SlackError("push_limit_reached")
            trigger["used"] = True
            stored = self._store_view(view, root=root, previous=stack[-1])
            stack.append(stored["id"])
        else:
            trigger["used"] = True
            stored = self._store_view(view)
            self._stacks[stored["id"]] = [stored["id"]]
        return {"view": copy.deepcopy(stored)}

    def _find_view(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("view_id"):
            found = self.views.get(str(args["view_id"]))
        elif args.get("external_id"):
            found = next((v for v in self.views.values() if v["external_id"] == args["external_id"]), None)
        else:
            raise _SlackError("invalid_arguments", messages=["[ERROR] view_id or external_id is required"])
        if found is None:
            raise _SlackError("not_found")
        return found

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        current = self._find_view(args)
        view = self._check_view(args.get("view"))
        if args.get("hash") and args["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        stored = self._store_view(
            view, view_id=current["id"], root=current["root_view_id"], previous=current["previous_view_id"]
        )
        if stored["type"] == "home":
            for user, home in self.home.items():
                if home["id"] == stored["id"]:
                    self.home[user] = stored
        return {"view": copy.deepcopy(stored)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = _require(args, "user_id")
        if not self._known_user(user) or user == BOT_USER:
            raise _SlackError("user_not_found")
        view = self._check_view(args.get("view"))
        if view["type"] != "home":
            raise _SlackError(
                "invalid_arguments", messages=["[ERROR] view type must be home [json-pointer:/view/type]"]
            )
        current = self.home.get(user)
        if current and args.get("hash") and args["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        stored = self._store_view(view, view_id=current["id"] if current else None)
        self.home[user] = stored
        return {"view": copy.deepcopy(stored)}

    # ---- response_url ------------------------------------------------------------------------

    def _new_response_url(self, *, user: str, channel: str | None, message_ts: str | None) -> str:
        rid = uuid.uuid4().hex
        self._response_urls[rid] = {
            "user": user,
            "channel": channel,
            "message_ts": message_ts,
            "issued": self.clock(),
            "uses": 0,
        }
        return f"http://127.0.0.1:{self.port}/response/{rid}"

    async def _response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        if self._down or self._stopping:
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        binding = self._response_urls.get(rid)
        try:
            body = await request.json()
        except ValueError:
            body = None
        record: dict[str, Any] = {"id": rid, "body": body, "at": self.clock(), "applied": None, "error": None}
        self.responses.append(record)
        try:
            if binding is None:
                raise _SlackError("invalid_url", status=404)
            if self.clock() - binding["issued"] > RESPONSE_URL_LIFETIME:
                raise _SlackError("expired_url", status=404)
            if binding["uses"] >= RESPONSE_URL_USES:
                raise _SlackError("used_url", status=404)
            if not isinstance(body, dict):
                raise _SlackError("invalid_payload", status=400)
            binding["uses"] += 1
            record["applied"] = self._apply_response(binding, body)
        except _SlackError as exc:
            record["error"] = exc.error
            return web.json_response({"ok": False, "error": exc.error}, status=exc.status)
        return web.json_response({"ok": True})

    def _apply_response(self, binding: dict[str, Any], body: dict[str, Any]) -> str:
        self._check_content(body, require=not _truthy(body.get("delete_original")))
        blocks = self._check_blocks(body["blocks"], "message") if "blocks" in body else []
        original = self._by_key.get((binding["channel"] or "", binding["message_ts"] or ""))
        if _truthy(body.get("delete_original")) and original is not None:
            original["deleted"] = True
            return "delete_original"
        if _truthy(body.get("replace_original")) and original is not None:
            original.update(
                text=body.get("text") or "",
                blocks=blocks,
                updated_at=self.clock(),
                edited_ts=self._next_ts(),
                updates=original["updates"] + 1,
            )
            return "replace_original"
        if body.get("response_type") == "in_channel" and binding["channel"]:
            self._store(binding["channel"], body, blocks, None)
            return "in_channel"
        self.ephemerals.append(
            {
                "channel": binding["channel"],
                "user": binding["user"],
                "text": body.get("text") or "",
                "blocks": blocks,
                "thread_ts": body.get("thread_ts"),
                "ts": self._next_ts(),
                "at": self.clock(),
                "is_ephemeral": True,
            }
        )
        return "ephemeral"

    # ---- Socket Mode -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self._down or self._stopping:
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        if request.match_info["sid"] not in self._socket_ids:
            return web.json_response({"ok": False, "error": "invalid_url"}, status=404)
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings with pongs
        await ws.prepare(request)
        self._socket_serial += 1
        conn = _Socket(ws=ws, serial=self._socket_serial)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {
                    "host": "applink-standin",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        self._sockets.append(conn)
        async with self._sockets_changed:
            self._sockets_changed.notify_all()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(conn, msg.data)
        finally:
            if conn in self._sockets:
                self._sockets.remove(conn)
            for future in conn.pending.values():
                if not future.done():
                    future.set_exception(
                        ConnectionError("socket closed before the envelope was acknowledged")
                    )
        return ws

    def _on_socket_text(self, conn: _Socket, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            logger.warning("non-JSON frame on socket %s: %.200s", conn.serial, data)
            return
        future = conn.pending.get(ack.get("envelope_id", "")) if isinstance(ack, dict) else None
        if future is None:
            logger.warning("frame that acknowledges no pending envelope: %.200s", data)
        elif not future.done():
            future.set_result((ack, time.monotonic()))

    @property
    def connection_count(self) -> int:
        """How many Socket Mode connections have been accepted so far (a serial number)."""
        return self._socket_serial

    @property
    def open_sockets(self) -> int:
        """How many Socket Mode connections are open now."""
        return len(self._sockets)

    async def wait_for_socket(self, timeout: float = 10, *, after: int = 0) -> None:
        """Return once a socket whose serial is greater than ``after`` is open (use
        ``after=connection_count`` to wait for a reconnect); raises TimeoutError otherwise."""
        async with self._sockets_changed:
            try:
                await asyncio.wait_for(
                    self._sockets_changed.wait_for(lambda: any(s.serial > after for s in self._sockets)),
                    timeout,
                )
            except TimeoutError:
                raise TimeoutError(f"no Socket Mode connection (after #{after}) within {timeout}s") from None

    async def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        timeout: float = 10,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> dict[str, Any]:
        """Send one envelope to the newest socket and wait for its ack.

        Returns ``{"envelope_id", "ack": <the ack JSON>, "ack_seconds": <wall time to the ack>}``
        and records it in ``envelopes``; raises EnvelopeNotAcknowledged after ``timeout`` seconds
        and ConnectionError if the socket closes first.  Slack itself gives up after 3 seconds.
        """
        await self.wait_for_socket(timeout)
        conn = self._sockets[-1]
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            # events and block_actions ignore ack payloads; commands, view submissions and options use them
            "accepts_response_payload": type == "slash_commands"
            or (type == "interactive" and payload.get("type") in RESPONDING_INTERACTIONS),
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        record: dict[str, Any] = {"envelope": envelope, "ack": None, "ack_seconds": None, "at": self.clock()}
        self.envelopes.append(record)
        future: asyncio.Future[tuple[dict[str, Any], float]] = asyncio.get_running_loop().create_future()
        conn.pending[envelope_id] = future
        sent = time.monotonic()
        try:
            await conn.ws.send_json(envelope)
            ack, acked_at = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise EnvelopeNotAcknowledged(
                f"{type} envelope {envelope_id} not acknowledged in {timeout}s"
            ) from None
        finally:
            conn.pending.pop(envelope_id, None)
        record.update(ack=ack, ack_seconds=acked_at - sent)
        return {"envelope_id": envelope_id, "ack": ack, "ack_seconds": acked_at - sent}

    async def close_sockets(self) -> int:
        """Close every open socket from the server side (the SDK then reconnects); returns how many."""
        open_now = list(self._sockets)
        for conn in open_now:
            await conn.ws.close(code=1001, message=b"link_disabled")
        return len(open_now)

    # ---- payload builders --------------------------------------------------------------------

    def new_trigger_id(self, *, user: str | None = None, view_id: str | None = None) -> str:
        """A trigger_id valid for 3 seconds by ``clock`` and for one views.open/views.push."""
        trigger_id = f"{next(self._trigger_seq)}.{int(self.clock())}.{uuid.uuid4().hex[:32]}"
        self._triggers[trigger_id] = {"issued": self.clock(), "used": False, "user": user, "view_id": view_id}
        return trigger_id

    def _user_ref(self, user: str) -> dict[str, Any]:
        if not self._known_user(user):
            raise ValueError(f"{user!r} is neither staff nor an outsider of this stand-in")
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM}

    def _channel_ref(self, channel: str) -> dict[str, str]:
        return {"id": channel, "name": CHANNEL_NAME if channel == self.channel else "directmessage"}

    def _find_element(
        self, blocks: list[dict[str, Any]], action_id: str, block_id: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        found = [
            (b, e)
            for b in blocks
            for e in self._elements(b)
            if e.get("action_id") == action_id and (block_id is None or b.get("block_id") == block_id)
        ]
        if not found:
            known = sorted({str(e.get("action_id")) for b in blocks for e in self._elements(b)})
            raise LookupError(
                f"no element with action_id {action_id!r} (block_id={block_id!r}); have {known}"
            )
        if len(found) > 1:
            raise LookupError(f"action_id {action_id!r} is in several blocks; pass block_id")
        return found[0]

    def _action(
        self, block: dict[str, Any], el: dict[str, Any], value: str | None, selected: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The ``actions[0]`` entry and, for stateful elements, its ``state.values`` entry."""
        kind = el["type"]
        action: dict[str, Any] = {
            "action_id": el["action_id"],
            "block_id": block.get("block_id", ""),
            "type": kind,
            "action_ts": f"{self.clock():.6f}",
        }
        state: dict[str, Any] | None = None
        if kind == "button":
            action["text"] = copy.deepcopy(el.get("text"))
            if value is not None or "value" in el:
                action["value"] = value if value is not None else el["value"]
            if "style" in el:
                action["style"] = el["style"]
            return action, None
        if kind in SINGLE_OPTION_ELEMENTS:
            options = list(el.get("options") or []) + [
                o for g in el.get("option_groups") or [] for o in g.get("options", [])
            ]
            option = selected or el.get("initial_option") or (options[0] if options else None)
            if kind != "external_select" and option not in options:
                raise ValueError(f"option {option!r} is not one of the element's options")
            state = {"type": kind, "selected_option": copy.deepcopy(option)}
        elif kind in INPUT_ONLY_ELEMENTS:
            state = {"type": kind, "value": value}
        else:
            state = {"type": kind, **(selected or {})}
        action.update({k: v for k, v in state.items() if k != "type"})
        return action, (None if kind == "overflow" else state)

    def block_actions_payload(
        self,
        message: dict[str, Any],
        action_id: str,
        *,
        user: str,
        value: str | None = None,
        selected: dict[str, Any] | None = None,
        block_id: str | None = None,
    ) -> dict[str, Any]:
        """A block_actions payload for clicking/choosing ``action_id`` in a recorded message (or ephemeral).

        ``value`` overrides a button's value; ``selected`` is the chosen option for selects, overflow and
        radio buttons (it must be one of the element's options), else it is merged into the action
        (e.g. ``{"selected_user": "U…"}``).  Comes with a fresh trigger_id and a response_url bound to
        the message.  Send it with ``send_envelope("interactive", payload)``.
        """
        block, el = self._find_element(message.get("blocks") or [], action_id, block_id)
        action, state = self._action(block, el, value, selected)
        ephemeral = bool(message.get("is_ephemeral"))
        channel = message["channel"]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.new_trigger_id(user=user),
            "team": {"id": TEAM, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": self._channel_ref(channel),
            "state": {"values": {action["block_id"]: {el["action_id"]: state}} if state else {}},
            "response_url": self._new_response_url(user=user, channel=channel, message_ts=message["ts"]),
            "actions": [action],
        }
        if message.get("thread_ts"):
            payload["container"]["thread_ts"] = message["thread_ts"]
        if not ephemeral:  # Slack sends no copy of an ephemeral message
            payload["message"] = self._public(message, include_metadata=True)
        return payload

    def view_block_actions_payload(
        self,
        view: dict[str, Any],
        action_id: str,
        *,
        user: str,
        value: str | None = None,
        selected: dict[str, Any] | None = None,
        block_id: str | None = None,
    ) -> dict[str, Any]:
        """A block_actions payload for an element in a modal or Home view (container type "view");
        its trigger_id may be used with views.push onto that view's stack."""
        block, el = self._find_element(view.get("blocks") or [], action_id, block_id)
        action, state = self._action(block, el, value, selected)
        values = copy.deepcopy(view.get("state", {}).get("values", {}))
        if state:
            values.setdefault(action["block_id"], {})[el["action_id"]] = state
        return {
            "type": "block_actions",
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {"type": "view", "view_id": view["id"]},
            "trigger_id": self.new_trigger_id(user=user, view_id=view["id"]),
            "team": {"id": TEAM, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": dict(copy.deepcopy(view), state={"values": values}),
            "actions": [action],
            "state": {"values": values},
        }

    def view_submission_payload(
        self,
        view: dict[str, Any],
        *,
        user: str,
        values: dict[str, dict[str, dict[str, Any]]],
    ) -> dict[str, Any]:
        """A view_submission payload for ``view`` with ``values`` in ``state.values`` shape
        (``{block_id: {action_id: {...}}}``).  Every block_id must be an input block of the view and
        every action_id its element (ValueError otherwise); a missing ``type`` is filled in."""
        inputs = {
            b.get("block_id"): b.get("element") or {}
            for b in view.get("blocks") or []
            if b.get("type") == "input"
        }
        filled: dict[str, dict[str, dict[str, Any]]] = {}
        for bid, by_action in values.items():
            if bid not in inputs:
                raise ValueError(f"block_id {bid!r} is not an input block of view {view.get('id')}")
            for aid, entry in by_action.items():
                if inputs[bid].get("action_id") != aid:
                    raise ValueError(f"action_id {aid!r} is not the element of input block {bid!r}")
                filled.setdefault(bid, {})[aid] = {"type": inputs[bid].get("type"), **entry}
        return {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": TEAM_DOMAIN},
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.new_trigger_id(user=user, view_id=view.get("id")),
            "view": dict(copy.deepcopy(view), state={"values": filled}),
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def slash_command_payload(
        self,
        text: str,
        *,
        user: str,
        command: str = "/privacy",
        channel: str | None = None,
    ) -> dict[str, Any]:
        """A slash_commands payload (all values strings, as Slack sends them) with a fresh trigger_id
        and a response_url; ``channel`` defaults to the staff channel."""
        channel = channel or self.channel
        self._user_ref(user)
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": self._channel_ref(channel)["name"],
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self._new_response_url(user=user, channel=channel, message_ts=None),
            "trigger_id": self.new_trigger_id(user=user),
        }

    def app_home_opened_event(self, user: str) -> dict[str, Any]:
        """An events_api payload (event_callback wrapper) for ``user`` opening the app's Home tab;
        carries the user's published Home view when there is one."""
        self._user_ref(user)
        now = self.clock()
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": self._im_for(user),
            "tab": "home",
            "event_ts": f"{now:.6f}",
        }
        if user in self.home:
            event["view"] = copy.deepcopy(self.home[user])
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM,
                    "user_id": BOT_USER,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
