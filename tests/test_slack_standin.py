"""The Slack stand-in, driven by the real slack-sdk AsyncWebClient and a real slack-bolt AsyncApp.

These tests pin the stand-in's promises (wire format, limits, error codes, faults, Socket Mode) so
the product's tests can trust it.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.support.slack_standin import (
    BOT_USER,
    EnvelopeNotAcknowledged,
    SlackStandIn,
    sign_http_request,
    validate_blocks,
)

CHANNEL = "C0STAFF01"
ALICE = "UALICE01"
MALLORY = "UMALLORY"
CASE_METADATA = {"event_type": "privacy_case", "event_payload": {"case_ref": "PRIV-0001", "status": "open"}}


class FakeClock:
    """A hand-driven clock for trigger expiry."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` on the loop until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as s:
        yield s


@pytest.fixture
def client(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=standin.bot_token, base_url=standin.base_url)


def case_blocks(ref: str = "PRIV-0001") -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": f"Access request {ref}"}},
        {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "From *someone*"}},
        {
            "type": "actions",
            "block_id": "case_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "case_claim",
                    "text": {"type": "plain_text", "text": "Claim"},
                    "value": ref,
                    "style": "primary",
                },
                {
                    "type": "static_select",
                    "action_id": "case_status",
                    "placeholder": {"type": "plain_text", "text": "Status"},
                    "options": [
                        {"text": {"type": "plain_text", "text": s}, "value": s} for s in ("open", "closed")
                    ],
                },
            ],
        },
    ]


# ---- Web API: messages ---------------------------------------------------------------------------


async def test_post_update_and_history_with_metadata(standin: SlackStandIn, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(
        channel=CHANNEL,
        text="New case PRIV-0001",
        blocks=case_blocks(),
        metadata=CASE_METADATA,
        unfurl_links=False,
        unfurl_media=False,
    )
    ts = posted["ts"]
    assert posted["message"]["metadata"] == CASE_METADATA
    [root] = standin.roots()
    assert root["ts"] == ts and root["unfurl_links"] is False and root["unfurl_media"] is False
    assert root["blocks"][0]["block_id"]  # Slack fills in missing block ids

    updated = await client.chat_update(channel=CHANNEL, ts=ts, text="Claimed PRIV-0001")
    assert updated["text"] == "Claimed PRIV-0001"
    assert root["updates"] == 1 and root["blocks"], "omitted blocks are kept by chat.update"

    plain = await client.conversations_history(channel=CHANNEL)
    assert [m["ts"] for m in plain["messages"]] == [ts]
    assert "metadata" not in plain["messages"][0], "metadata only with include_all_metadata"
    full = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert full["messages"][0]["metadata"] == CASE_METADATA
    assert full["messages"][0]["edited"]["user"] == BOT_USER


async def test_history_and_replies_paginate_newest_first(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    stamps = [(await client.chat_postMessage(channel=CHANNEL, text=f"m{i}"))["ts"] for i in range(3)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    for i in range(2):
        await client.chat_postMessage(channel=CHANNEL, text=f"reply {i}", thread_ts=stamps[0])

    first = await client.conversations_history(channel=CHANNEL, limit=2)
    assert [m["ts"] for m in first["messages"]] == stamps[:0:-1] and first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    second = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
    assert [m["ts"] for m in second["messages"]] == [stamps[0]] and second["has_more"] is False
    assert second["messages"][0]["reply_count"] == 2, "replies are not top-level history entries"

    thread = await client.conversations_replies(channel=CHANNEL, ts=stamps[0], limit=2)
    assert [m["text"] for m in thread["messages"]] == ["m0", "reply 0"] and thread["has_more"]
    rest = await client.conversations_replies(
        channel=CHANNEL, ts=stamps[0], cursor=thread["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["reply 1"]
    assert [r["text"] for r in standin.replies(stamps[0])] == ["reply 0", "reply 1"]


async def test_thread_must_name_a_top_level_message(standin: SlackStandIn, client: AsyncWebClient) -> None:
    parent = (await client.chat_postMessage(channel=CHANNEL, text="root"))["ts"]
    reply = (await client.chat_postMessage(channel=CHANNEL, text="r", thread_ts=parent))["ts"]
    for bad in ("1234567890.000001", reply):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=CHANNEL, text="lost", thread_ts=bad)
        assert err.value.response["error"] == "thread_not_found"
    assert len(standin.messages) == 2


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C0NOTHERE", "text": "x"}, "channel_not_found"),
        ({"channel": CHANNEL, "text": "x" * 40001}, "msg_too_long"),
        (
            {"channel": CHANNEL, "text": "x", "metadata": {"event_type": "privacy_case"}},
            "invalid_metadata_format",
        ),
    ],
)
async def test_post_message_errors(client: AsyncWebClient, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(**kwargs)
    assert err.value.response["error"] == error


@pytest.mark.parametrize(
    ("blocks", "detail"),
    [
        ([{"type": "divider"}] * 51, "no more than 50 items allowed [json-pointer:/blocks]"),
        (
            [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            [{"type": "divider", "block_id": "same"}, {"type": "divider", "block_id": "same"}],
            "duplicate block_id 'same' [json-pointer:/blocks/1/block_id]",
        ),
        (
            [
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "Why"},
                    "element": {"type": "plain_text_input", "action_id": "why"},
                }
            ],
            "only allowed in modals",
        ),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h", "verbatim": True}}], "verbatim"),
    ],
    ids=[
        "51-blocks",
        "3001-section",
        "151-header",
        "duplicate-block-id",
        "input-in-message",
        "plain-verbatim",
    ],
)
async def test_block_limits_rejected(
    standin: SlackStandIn, client: AsyncWebClient, blocks: list[dict[str, Any]], detail: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="fallback", blocks=blocks)
    assert err.value.response["error"] == "invalid_blocks"
    assert any(detail in m for m in err.value.response["response_metadata"]["messages"])
    assert standin.messages == []


def test_validator_accepts_limits_and_reports_every_rule() -> None:
    at_limit = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "x" * 3000},
            "fields": [{"type": "plain_text", "text": "f" * 2000}] * 10,
        }
    ] + [{"type": "divider"}] * 49
    assert validate_blocks(at_limit) == []
    problems = validate_blocks(
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "b" * 76},
                        "value": "v" * 2001,
                    },
                    {"type": "button", "action_id": "a", "text": {"type": "mrkdwn", "text": "ok"}},
                ],
            },
            {"type": "carousel"},
        ]
    )
    assert len(problems) == 5, problems
    # action_id is documented as unique within its block; two blocks may reuse one
    reuse = [
        {
            "type": "actions",
            "elements": [
                {"type": "button", "action_id": "open", "text": {"type": "plain_text", "text": "Open"}}
            ],
        }
    ] * 2
    assert validate_blocks(reuse) == []
    assert validate_blocks(reuse, action_id_scope="surface") != []


async def test_form_encoded_post_and_token_rules(standin: SlackStandIn) -> None:
    form = AsyncWebClient(token=standin.bot_token, base_url=standin.base_url)
    resp = await form.api_call(
        "chat.postMessage",
        data={
            "channel": CHANNEL,
            "text": "via form",
            "blocks": json.dumps(case_blocks()),
            "metadata": json.dumps(CASE_METADATA),
        },
    )
    assert standin.messages[-1]["metadata"] == CASE_METADATA and resp["ok"]

    for token, error in (
        (None, "not_authed"),
        ("xoxb-someone-else", "invalid_auth"),
        (standin.app_token, "not_allowed_token_type"),
    ):
        with pytest.raises(SlackApiError) as err:
            await AsyncWebClient(token=token, base_url=standin.base_url).auth_test()
        assert err.value.response["error"] == error
    with pytest.raises(SlackApiError) as err:
        await form.apps_connections_open(app_token=standin.bot_token)
    assert err.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as err:
        await form.api_call("chat.postMesage")
    assert err.value.response["error"] == "unknown_method" and standin.calls_to("chat.postMesage")


async def test_users_members_ephemeral_permalink(standin: SlackStandIn, client: AsyncWebClient) -> None:
    assert (await client.users_info(user=ALICE))["user"]["id"] == ALICE
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="UNOBODY1")
    assert err.value.response["error"] == "user_not_found"
    members = await client.conversations_members(channel=CHANNEL, limit=2)
    more = await client.conversations_members(
        channel=CHANNEL, cursor=members["response_metadata"]["next_cursor"]
    )
    assert members["members"] + more["members"] == [*standin.staff, BOT_USER]

    await client.chat_postEphemeral(channel=CHANNEL, user=ALICE, text="only you")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postEphemeral(channel=CHANNEL, user=MALLORY, text="not a member")
    assert err.value.response["error"] == "user_not_in_channel"
    assert [e["user"] for e in standin.ephemerals] == [ALICE]

    im = (await client.conversations_open(users=ALICE))["channel"]["id"]
    assert im.startswith("D")
    ts = (await client.chat_postMessage(channel=im, text="hello"))["ts"]
    link = await client.chat_getPermalink(channel=im, message_ts=ts)
    assert link["permalink"].endswith(f"/archives/{im}/p{ts.replace('.', '')}")


# ---- faults --------------------------------------------------------------------------------------


async def test_rate_limit_retry_after_is_honoured(standin: SlackStandIn) -> None:
    standin.faults(rate_limit_every=2, retry_after=1)
    client = AsyncWebClient(
        token=standin.bot_token,
        base_url=standin.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    await client.chat_postMessage(channel=CHANNEL, text="first")
    await client.chat_postMessage(channel=CHANNEL, text="second")
    posts = standin.calls_to("chat.postMessage")
    assert [c["fault"] for c in posts] == [None, 429, None]
    assert posts[2]["at"] - posts[1]["at"] >= 1.0, "the retry waited Retry-After"
    assert [m["text"] for m in standin.messages] == ["first", "second"]

    bare = AsyncWebClient(token=standin.bot_token, base_url=standin.base_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        await bare.users_info(user=ALICE)  # the 4th faultable call
    assert err.value.response.status_code == 429 and err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "1"


async def test_server_errors_outage_and_method_failures(standin: SlackStandIn) -> None:
    client = AsyncWebClient(
        token=standin.bot_token,
        base_url=standin.base_url,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )
    standin.faults(server_error_every=1)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response.status_code == 503 and len(standin.calls_to("chat.postMessage")) == 2
    standin.faults(server_error_every=0, down=True)
    with pytest.raises(SlackApiError) as err:
        await client.auth_test()
    assert err.value.response.status_code == 503
    standin.faults(down=False, fail_method={"chat.update": "cant_update_message"})
    ts = (await client.chat_postMessage(channel=CHANNEL, text="x"))["ts"]
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=CHANNEL, ts=ts, text="y")
    assert err.value.response["error"] == "cant_update_message" and standin.messages[0]["updates"] == 0


async def test_per_channel_pacing(standin: SlackStandIn) -> None:
    clock = FakeClock()
    standin.clock = clock
    standin.faults(per_channel_rate=1.0, per_channel_burst=2)
    client = AsyncWebClient(token=standin.bot_token, base_url=standin.base_url, retry_handlers=[])
    await client.chat_postMessage(channel=CHANNEL, text="1")
    await client.chat_postMessage(channel=CHANNEL, text="2")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="3")
    assert err.value.response.status_code == 429 and err.value.response.headers["Retry-After"] == "1"
    clock.now += 1.0
    await client.chat_postMessage(channel=CHANNEL, text="3")
    assert [m["text"] for m in standin.messages] == ["1", "2", "3"]


async def test_hook_runs_after_store_before_response(standin: SlackStandIn, client: AsyncWebClient) -> None:
    seen: list[tuple[str, int]] = []

    async def hook(message: dict[str, Any]) -> None:
        seen.append((message["ts"], len(standin.messages)))

    standin.on_message_posted = hook
    ts = (await client.chat_postMessage(channel=CHANNEL, text="stored"))["ts"]
    assert seen == [(ts, 1)]


# ---- views and triggers --------------------------------------------------------------------------


def modal(title: str = "Close case", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "close_case",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Close"},
        "private_metadata": "PRIV-0001",
        "blocks": [
            {
                "type": "input",
                "block_id": "outcome",
                "label": {"type": "plain_text", "text": "Outcome"},
                "element": {"type": "plain_text_input", "action_id": "text"},
            }
        ],
        **extra,
    }


async def test_trigger_ids_expire_and_are_single_use(standin: SlackStandIn, client: AsyncWebClient) -> None:
    clock = FakeClock()
    standin.clock = clock
    fresh = standin.new_trigger_id()
    opened = await client.views_open(trigger_id=fresh, view=modal())
    assert standin.views[opened["view"]["id"]]["private_metadata"] == "PRIV-0001"
    stale = standin.new_trigger_id()
    clock.now += 3.5
    for trigger, error in (
        (fresh, "exchanged_trigger_id"),
        (stale, "expired_trigger_id"),
        ("1.2.unknown", "invalid_trigger_id"),
    ):
        with pytest.raises(SlackApiError) as err:
            await client.views_open(trigger_id=trigger, view=modal())
        assert err.value.response["error"] == error


async def test_view_limits_update_hash_and_publish(standin: SlackStandIn, client: AsyncWebClient) -> None:
    for bad in (modal(title="t" * 25), modal(private_metadata="m" * 3001)):
        with pytest.raises(SlackApiError) as err:
            await client.views_open(trigger_id=standin.new_trigger_id(), view=bad)
        assert err.value.response["error"] == "invalid_arguments"
    view = (await client.views_open(trigger_id=standin.new_trigger_id(), view=modal()))["view"]
    updated = (await client.views_update(view_id=view["id"], hash=view["hash"], view=modal(title="Closing")))[
        "view"
    ]
    assert updated["hash"] != view["hash"]
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    assert err.value.response["error"] == "hash_conflict"
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "3 open cases"}}],
    }
    await client.views_publish(user_id=ALICE, view=home)
    assert standin.home[ALICE]["blocks"][0]["text"]["text"] == "3 open cases"


async def test_view_actions_push_limit(standin: SlackStandIn, client: AsyncWebClient) -> None:
    picker = {
        "type": "actions",
        "block_id": "more",
        "elements": [
            {"type": "button", "action_id": "details", "text": {"type": "plain_text", "text": "Details"}}
        ],
    }
    view = (await client.views_open(trigger_id=standin.new_trigger_id(), view=modal(blocks=[picker])))["view"]
    for depth in (2, 3):
        payload = standin.view_block_actions_payload(standin.views[view["id"]], "details", user=ALICE)
        assert payload["container"] == {"type": "view", "view_id": view["id"]}
        pushed = (await client.views_push(trigger_id=payload["trigger_id"], view=modal(blocks=[picker])))[
            "view"
        ]
        assert pushed["root_view_id"] == view["id"] and len(standin.views) == depth
    payload = standin.view_block_actions_payload(standin.views[view["id"]], "details", user=ALICE)
    with pytest.raises(SlackApiError) as err:
        await client.views_push(trigger_id=payload["trigger_id"], view=modal(blocks=[picker]))
    assert err.value.response["error"] == "push_limit_reached"


async def test_response_url_replaces_original_and_wears_out(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    await client.chat_postMessage(channel=CHANNEL, text="case", blocks=case_blocks(), metadata=CASE_METADATA)
    [root] = standin.roots()
    url = standin.block_actions_payload(root, "case_claim", user=ALICE)["response_url"]
    webhook = AsyncWebhookClient(url)
    done = [{"type": "section", "text": {"type": "mrkdwn", "text": "Claimed by <@UALICE01>"}}]
    assert (await webhook.send(text="Claimed", blocks=done, replace_original=True)).status_code == 200
    assert root["text"] == "Claimed" and root["blocks"][0]["text"]["text"].startswith("Claimed by")
    assert root["metadata"] == CASE_METADATA and root["updates"] == 1
    for _ in range(4):
        await webhook.send(text="again")
    worn = await webhook.send(text="sixth")
    assert worn.status_code == 404 and json.loads(worn.body)["error"] == "used_url"
    assert [r["applied"] for r in standin.responses] == ["replace_original"] + ["ephemeral"] * 4 + [None]


# ---- Socket Mode with a real bolt app ------------------------------------------------------------


@pytest_asyncio.fixture
async def bolt(standin: SlackStandIn) -> AsyncIterator[AsyncApp]:
    client = AsyncWebClient(token=standin.bot_token, base_url=standin.base_url)
    app = AsyncApp(client=client, signing_secret="unused-in-socket-mode")
    handler = AsyncSocketModeHandler(app, standin.app_token, web_client=client, ping_interval=0.5)
    await handler.connect_async()
    try:
        await standin.wait_for_socket()
        yield app
    finally:
        await handler.close_async()


async def test_block_actions_reach_a_bolt_listener(standin: SlackStandIn, bolt: AsyncApp) -> None:
    clicked: list[dict[str, Any]] = []

    @bolt.action("case_claim")
    async def claim(
        ack: Callable[[], Awaitable[None]],
        body: dict[str, Any],
        client: AsyncWebClient,
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        clicked.append(body)
        await client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text="Claimed")
        await respond(text="You claimed it", response_type="ephemeral")

    ts = (
        await bolt.client.chat_postMessage(
            channel=CHANNEL, text="case", blocks=case_blocks(), metadata=CASE_METADATA
        )
    )["ts"]
    [root] = standin.roots()
    result = await standin.send_envelope(
        "interactive", standin.block_actions_payload(root, "case_claim", user=ALICE)
    )
    assert result["ack"]["envelope_id"] == result["envelope_id"] and result["ack_seconds"] < 3
    await wait_until(lambda: standin.ephemerals)
    assert clicked[0]["actions"][0]["value"] == "PRIV-0001"
    assert clicked[0]["message"]["metadata"] == CASE_METADATA
    assert root["text"] == "Claimed" and root["ts"] == ts
    assert standin.responses[0]["applied"] == "ephemeral" and standin.ephemerals[0]["user"] == ALICE

    chosen: list[str] = []

    @bolt.action("case_status")
    async def status(ack: Callable[[], Awaitable[None]], action: dict[str, Any]) -> None:
        await ack()
        chosen.append(action["selected_option"]["value"])

    option = root["blocks"][2]["elements"][1]["options"][1]
    await standin.send_envelope(
        "interactive", standin.block_actions_payload(root, "case_status", user=ALICE, selected=option)
    )
    await wait_until(lambda: chosen)
    assert chosen == ["closed"]


async def test_slash_command_ack_and_modal(standin: SlackStandIn, bolt: AsyncApp) -> None:
    @bolt.command("/privacy")
    async def privacy(
        ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack(text=f"Looking up {body['text']}")
        await client.views_open(trigger_id=body["trigger_id"], view=modal())

    submitted: list[dict[str, Any]] = []

    @bolt.view("close_case")
    async def close_case(ack: Callable[..., Awaitable[None]], view: dict[str, Any]) -> None:
        await ack(response_action="errors", errors={"outcome": "Say more"})
        submitted.append(view["state"]["values"])

    result = await standin.send_envelope(
        "slash_commands", standin.slash_command_payload("PRIV-0001", user=ALICE)
    )
    assert result["ack"]["payload"]["text"] == "Looking up PRIV-0001"
    [view] = await wait_until(lambda: list(standin.views.values()))
    assert view["callback_id"] == "close_case"

    values = {"outcome": {"text": {"value": "done"}}}
    result = await standin.send_envelope(
        "interactive", standin.view_submission_payload(view, user=ALICE, values=values)
    )
    assert result["ack"]["payload"] == {"response_action": "errors", "errors": {"outcome": "Say more"}}
    assert submitted[0]["outcome"]["text"] == {"type": "plain_text_input", "value": "done"}


async def test_events_and_reconnect(standin: SlackStandIn, bolt: AsyncApp) -> None:
    opened: list[str] = []

    @bolt.event("app_home_opened")
    async def home(event: dict[str, Any]) -> None:
        opened.append(event["user"])

    result = await standin.send_envelope("events_api", standin.app_home_opened_event(ALICE))
    assert result["ack"] == {"envelope_id": result["envelope_id"]}
    assert standin.envelopes[-1]["envelope"]["accepts_response_payload"] is False
    await wait_until(lambda: opened)

    before = standin.connection_count
    assert await standin.close_sockets() == 1
    await standin.wait_for_socket(after=before)
    again = await standin.send_envelope("events_api", standin.app_home_opened_event(ALICE))
    assert again["ack"]["envelope_id"] == again["envelope_id"]
    await wait_until(lambda: len(opened) == 2)


async def test_outage_closes_and_refuses_sockets(standin: SlackStandIn, bolt: AsyncApp) -> None:
    before = standin.connection_count
    standin.down = True
    await wait_until(lambda: standin.open_sockets == 0)
    await wait_until(
        lambda: any(c["method"] == "apps.connections.open" and c["fault"] == 503 for c in standin.calls)
    )
    standin.down = False
    await standin.wait_for_socket(after=before, timeout=10)


async def test_unhandled_envelope_is_not_acknowledged(standin: SlackStandIn, bolt: AsyncApp) -> None:
    await bolt.client.chat_postMessage(channel=CHANNEL, text="case", blocks=case_blocks())
    [root] = standin.roots(event_type=None)
    payload = standin.block_actions_payload(root, "case_claim", user=ALICE)
    with pytest.raises(EnvelopeNotAcknowledged):
        await standin.send_envelope("interactive", payload, timeout=0.5)
    assert standin.envelopes[-1]["ack"] is None


async def test_socket_upgrade_refused_while_down(standin: SlackStandIn) -> None:
    client = AsyncWebClient(base_url=standin.base_url)
    url = (await client.apps_connections_open(app_token=standin.app_token))["url"]
    standin.down = True
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(url)
        assert err.value.status == 503
        standin.down = False
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["num_connections"] == 1
            assert hello["connection_info"]["app_id"]


# ---- HTTP mode helper ----------------------------------------------------------------------------


def test_sign_http_request_is_accepted_by_slack_sdk() -> None:
    body = "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions"}))
    headers = sign_http_request(body, "s3cret")
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
