"""`/privacy` and the App Home, driven through the Slack stand-in.

The Bolt app runs for real over Socket Mode against the stand-in, on a real SQLite store, with the
outbox worker the runtime builds (`build_outbox`: case messages and App Home refreshes). Slash
commands are sent as `slash_commands` envelopes, the Home tab as an `app_home_opened` event; the
clock is injected (the desk's "today" is Wednesday 25 November 2026) and moved, never slept on.

What this proves:

- every `/privacy` subcommand answers staff ephemerally, with the right cases in the right order —
  reference linked to the case's thread (`chat.getPermalink`), kind, due date, days left or late,
  assignee — and gives a usage message for what it cannot read; long lists are cut with a count;
- anyone else gets the same one line whatever they typed: no reference, address or count leaks,
  and nothing is posted in the channel;
- every command is acknowledged within Slack's 3 seconds;
- the App Home shows a staff member's cases, then the team's overdue, due soon and unassigned ones,
  an outsider nothing; once opened, it is published again when a case it shows changes, with at
  most one refresh waiting per user.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_client, create_app
from bot.outbox import OutboxWorker
from bot.runtime import build_outbox
from bot.settings import Settings
from handlers.cases.actions import claim, resolve
from handlers.cases.inventory import load_inventory
from handlers.slack.commands import NOT_STAFF
from storage.store import Store
from tests.conftest import CHANNEL, OUTSIDER, STAFF, wait_until
from tests.support.factory import new_case
from tests.support.slack_standin import TEAM_DOMAIN, SlackStandIn

ALICE, BOB = STAFF
#: 10:30 in Brussels on Wednesday 25 November 2026: the desk's today.
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
TODAY = date(2026, 11, 25)
REF = re.compile(r"PRIV-\d{4}-\d{4}")
TITLE = re.compile(r"^\*(?P<title>.+)\* \((?P<total>\d+)\)$")


@dataclass
class Clock:
    """The app's clock, movable by the tests."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Answer:
    """What Slack shows the person who typed a `/privacy` command."""

    ack: dict[str, Any]  # the envelope's ack, with its timing
    body: dict[str, Any]  # the message: from the ack's payload, or posted to the response_url
    applied: str  # how the stand-in showed it: "ephemeral", "in_channel", ...

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.body.get("blocks") or [])

    @property
    def shown(self) -> str:
        """The words on screen, one line per line (the fallback text when there are no blocks)."""
        return as_text(self.blocks) if self.blocks else str(self.body.get("text") or "")

    @property
    def refs(self) -> list[str]:
        return REF.findall(self.shown)

    def line(self, ref: str) -> str:
        [line] = [x for x in self.shown.splitlines() if ref in x]
        return line


@dataclass
class Desk:
    """The app, the outbox worker and the stand-in, with helpers to act as staff would."""

    slack: SlackStandIn
    store: Store
    settings: Settings
    clock: Clock
    outbox: OutboxWorker
    acks: list[dict[str, Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    # --- the outbox ----------------------------------------------------------------------------
    def start_outbox(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.outbox.run(self.stop))

    async def pause_outbox(self) -> None:
        """Stop the worker's loop: the test then works the outbox one round at a time."""
        self.stop.set()
        if self.task is not None:
            await self.task
            self.task = None

    async def settle(self) -> None:
        """Wait until the outbox worker has brought Slack up to date with the database."""
        self.outbox.notify()
        for _ in range(500):
            if await self.outbox.drained():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the outbox did not settle")

    # --- Slack ---------------------------------------------------------------------------------
    def root(self, ref: str) -> dict[str, Any]:
        return next(r for r in self.slack.roots(CHANNEL) if r["metadata"]["event_payload"]["case_ref"] == ref)

    def link(self, ref: str) -> str:
        """The permalink Slack gives for the case's root message."""
        ts = self.root(ref)["ts"]
        return f"https://{TEAM_DOMAIN}.slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}"

    async def command(self, text: str, *, user: str) -> Answer:
        """Type `/privacy TEXT` in the staff channel; returns what the person sees."""
        payload = self.slack.slash_command_payload(text, user=user)
        rid = payload["response_url"].rsplit("/", 1)[-1]
        result = await self.slack.send_envelope("slash_commands", payload)
        self.acks.append(result)
        acked = (result["ack"] or {}).get("payload") or {}
        if acked.get("text") or acked.get("blocks"):
            return Answer(result, acked, acked.get("response_type") or "ephemeral")
        response = await wait_until(lambda: next((r for r in self.slack.responses if r["id"] == rid), None))
        assert isinstance(response, dict)
        assert response["error"] is None, response["error"]
        answer = Answer(result, response["body"], response["applied"])
        assert answer.applied == "ephemeral", f"/privacy {text} was answered {answer.applied}"
        return answer

    async def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = await self.slack.send_envelope("interactive", payload)
        self.acks.append(result)
        return result

    async def click(self, ref: str, action_id: str, *, user: str) -> None:
        await self.send(self.slack.block_actions_payload(self.root(ref), action_id, user=user))

    async def resolve_in_slack(self, ref: str, *, user: str) -> None:
        """Resolve (withdrawn) through the Resolve button and its modal."""
        before = set(self.slack.views)
        await self.click(ref, "case.resolve", user=user)
        opened = await wait_until(lambda: [v for k, v in self.slack.views.items() if k not in before])
        assert isinstance(opened, list)
        [view] = opened
        state: dict[str, dict[str, dict[str, Any]]] = {}
        for block in view["blocks"]:
            if block["type"] != "input" or block["block_id"] not in ("outcome", "note"):
                continue
            element = block["element"]
            if block["block_id"] == "outcome":
                [option] = [o for o in element["options"] if o["value"] == "withdrawn"]
                entry: dict[str, Any] = {"selected_option": option}
            else:
                entry = {"value": "the requester withdrew"}
            state[block["block_id"]] = {element["action_id"]: entry}
        result = await self.send(self.slack.view_submission_payload(view, user=user, values=state))
        assert not (result["ack"] or {}).get("payload"), result["ack"]

    async def open_home(self, user: str) -> dict[str, Any]:
        """Open the app's Home tab; returns the view published for it."""
        published = len(self.publications(user))
        result = await self.slack.send_envelope("events_api", self.slack.app_home_opened_event(user))
        self.acks.append(result)
        await wait_until(lambda: len(self.publications(user)) > published)
        return self.slack.home[user]

    def publications(self, user: str) -> list[dict[str, Any]]:
        """The views published (views.publish accepted) for `user`'s Home, oldest first."""
        return [
            c["args"]["view"]
            for c in self.slack.calls_to("views.publish")
            if c["args"].get("user_id") == user and c["error"] is None
        ]


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store) -> AsyncIterator[Desk]:
    clock = Clock()
    client = build_client(settings)
    outbox = build_outbox(settings, store, client, clock=clock)
    outbox.idle_interval = 0.05
    app = create_app(
        settings, store=store, client=client, inventory=load_inventory(), notify=outbox.notify, clock=clock
    )
    assert settings.slack.app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack.app_token.reveal(), web_client=client)
    await handler.connect_async()
    await slack.wait_for_socket()
    harness = Desk(slack=slack, store=store, settings=settings, clock=clock, outbox=outbox)
    harness.start_outbox()
    try:
        yield harness
    finally:
        await harness.pause_outbox()
        await handler.close_async()
    slow = [a["ack_seconds"] for a in harness.acks if not a["ack_seconds"] < 3]
    assert not slow, f"every request is acknowledged within Slack's 3 seconds, not {slow}"


#: name: (kind, local receipt date — due 30 days later —, requester, assignee)
CASES: dict[str, tuple[str, date, str, str]] = {
    "late5": ("access", date(2026, 10, 21), "ana.lopez@example.org", ALICE),  # due Fri 20 Nov
    "late1": ("erasure", date(2026, 10, 25), "ben.martin@example.org", ""),  # due Tue 24 Nov
    "today": ("objection", date(2026, 10, 26), "chloe.petit@example.org", BOB),  # due Wed 25 Nov
    "in3": ("rectification", date(2026, 10, 29), "david.roux@example.org", ALICE),  # due Sat 28 Nov
    "in5": ("portability", date(2026, 10, 31), "emma.blanc@example.org", ""),  # due Mon 30 Nov
    "in20": ("access", date(2026, 11, 15), "Ana.Lopez@Example.org", ""),  # due Tue 15 Dec
    "in25": ("complaint", date(2026, 11, 20), "farid.nour@example.org", ALICE),  # due Sun 20 Dec
    "resolved": ("restriction", date(2026, 11, 5), "gina.moreau@example.org", BOB),  # due Sat 5 Dec
}


async def open_cases(desk: Desk, cases: dict[str, tuple[str, date, str, str]]) -> dict[str, str]:
    """Open the cases (roots posted in Slack), assign them; returns name → reference."""
    refs: dict[str, str] = {}
    for n, (name, (kind, received, requester, assignee)) in enumerate(cases.items()):
        case = await new_case(
            desk.store,
            f"<case-{n}@example.org>",
            now=desk.clock(),
            kind=kind,
            received_at=datetime.combine(received, time(9, 0), UTC),
            received_date=received,
            requester_email=requester,
            requester_name=f"Requester {n}",
        )
        if assignee:
            await claim(desk.store, case_id=case.id, actor=assignee, assignee=assignee, now=desk.clock())
        refs[name] = case.ref
    await desk.settle()
    return refs


@pytest.fixture
async def cases(desk: Desk) -> dict[str, str]:
    """Eight cases around today: overdue, due today, in 3, 5, 20 and 25 days, one resolved today."""
    refs = await open_cases(desk, CASES)
    resolved = await desk.store.cases.by_ref(refs["resolved"])
    assert resolved is not None
    await resolve(
        desk.store,
        case_id=resolved.id,
        actor=BOB,
        outcome="withdrawn",
        note="withdrawn by email",
        recipients=[],
        now=desk.clock(),
        calendar=desk.settings.calendar,
    )
    await desk.settle()
    return refs


def as_text(blocks: list[dict[str, Any]]) -> str:
    """The words of Block Kit blocks, as they read on screen."""
    out: list[str] = []
    for block in blocks:
        if block["type"] in ("section", "header"):
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"]]
    return "\n".join(out)


@dataclass
class Group:
    total: int
    refs: list[str]
    more: str | None = None


def groups(view: dict[str, Any]) -> dict[str, Group]:
    """The App Home's groups: title → (the count shown, the references listed, "…and N more")."""
    found: dict[str, Group] = {}
    current: Group | None = None
    for line in as_text(view["blocks"]).splitlines():
        title = TITLE.match(line)
        if title:
            current = found[title["title"].split(": ")[-1]] = Group(int(title["total"]), [])
        elif current is not None and line.startswith("…and "):
            current.more = line
        elif current is not None:
            current.refs += REF.findall(line)
    return found


def assert_ephemeral(answer: Answer, desk: Desk, *, posted_before: int) -> None:
    assert answer.applied == "ephemeral"
    assert answer.body.get("response_type", "ephemeral") == "ephemeral"
    assert not answer.body.get("replace_original")
    assert len(desk.slack.messages) == posted_before, "nothing is posted in the channel"


# --- /privacy, for staff ---------------------------------------------------------------------------


async def test_overdue_lists_the_late_cases_most_late_first_linked_to_their_threads(
    desk: Desk, cases: dict[str, str]
) -> None:
    posted = len(desk.slack.messages)
    answer = await desk.command("overdue", user=ALICE)
    assert_ephemeral(answer, desk, posted_before=posted)
    assert answer.shown == "\n".join(
        [
            "*Overdue cases* (2)",
            f"*<{desk.link(cases['late5'])}|{cases['late5']}>* · Access (art. 15) · due Fri 20 Nov 2026 · "
            "*5 days late* · <@UALICE01>",
            f"*<{desk.link(cases['late1'])}|{cases['late1']}>* · Erasure (art. 17) · due Tue 24 Nov 2026 · "
            "*1 day late* · _unassigned_",
        ]
    )
    assert answer.body["text"] == "Overdue cases: 2"
    print("\n/privacy overdue, as a staff member sees it:\n" + answer.shown)


async def test_open_lists_every_open_case_soonest_due_first_with_its_status(
    desk: Desk, cases: dict[str, str]
) -> None:
    posted = len(desk.slack.messages)
    answer = await desk.command("open", user=BOB)
    assert_ephemeral(answer, desk, posted_before=posted)
    order = ["late5", "late1", "today", "in3", "in5", "in20", "in25"]
    assert answer.refs == [cases[n] for n in order]
    assert answer.shown.splitlines()[0] == "*Open cases* (7)"
    assert cases["resolved"] not in answer.shown
    assert answer.line(cases["today"]) == (
        f"*<{desk.link(cases['today'])}|{cases['today']}>* · Objection (art. 21) · In progress · "
        "due Wed 25 Nov 2026 · *due today* · <@UBOB0001>"
    )
    assert answer.line(cases["in3"]).endswith("In progress · due Sat 28 Nov 2026 · 3 days left · <@UALICE01>")
    assert answer.line(cases["in20"]).endswith("· New · due Tue 15 Dec 2026 · 20 days left · _unassigned_")
    assert " · Complaint · " in answer.line(cases["in25"])
    # each root's permalink is asked of Slack once, then remembered
    again = await desk.command("open", user=BOB)
    assert again.shown == answer.shown
    asked = [c["args"]["message_ts"] for c in desk.slack.calls_to("chat.getPermalink")]
    assert sorted(asked) == sorted(desk.root(cases[n])["ts"] for n in order)


async def test_due_lists_what_is_due_within_the_days_asked_overdue_included(
    desk: Desk, cases: dict[str, str]
) -> None:
    by_default = await desk.command("due", user=ALICE)
    assert by_default.shown.splitlines()[0] == "*Due within 7 days (overdue included)* (5)"
    assert by_default.refs == [cases[n] for n in ("late5", "late1", "today", "in3", "in5")]
    assert f"*<{desk.link(cases['in5'])}|{cases['in5']}>* · Portability (art. 20) · due Mon 30 Nov 2026" in (
        by_default.shown
    )

    three = await desk.command("due 3", user=ALICE)
    assert three.shown.splitlines()[0] == "*Due within 3 days (overdue included)* (4)"
    assert three.refs == [cases[n] for n in ("late5", "late1", "today", "in3")]

    one = await desk.command("due 1", user=ALICE)
    assert one.shown.splitlines()[0] == "*Due within 1 day (overdue included)* (3)"
    assert (await desk.command("due 0", user=ALICE)).refs == one.refs
    month = await desk.command("due 30", user=ALICE)
    assert month.refs == [cases[n] for n in ("late5", "late1", "today", "in3", "in5", "in20", "in25")]


async def test_find_by_reference_ignores_case_and_shows_resolved_cases_too(
    desk: Desk, cases: dict[str, str]
) -> None:
    posted = len(desk.slack.messages)
    found = await desk.command(f"find {cases['in3'].lower()}", user=BOB)
    assert_ephemeral(found, desk, posted_before=posted)
    assert found.shown == "\n".join(
        [
            "*Found* (1)",
            f"*<{desk.link(cases['in3'])}|{cases['in3']}>* · Rectification (art. 16) · In progress · "
            "due Sat 28 Nov 2026 · 3 days left · <@UALICE01>",
        ]
    )
    closed = await desk.command(f"find {cases['resolved']}", user=BOB)
    assert closed.refs == [cases["resolved"]]
    assert closed.line(cases["resolved"]).endswith("· Resolved · due Sat 5 Dec 2026 · resolved · <@UBOB0001>")

    missing = await desk.command("find PRIV-2026-9999", user=BOB)
    assert missing.shown == "*Found* (0)\nNo case matches."


async def test_find_by_address_lists_the_requesters_cases_newest_first_however_slack_formats_it(
    desk: Desk, cases: dict[str, str]
) -> None:
    expected = [cases["in20"], cases["late5"]]  # received 15 Nov, then 21 Oct
    plain = await desk.command("find ANA.LOPEZ@example.org", user=ALICE)
    assert plain.shown.splitlines()[0] == "*Found* (2)"
    assert plain.refs == expected
    linked = await desk.command("find <mailto:ana.lopez@example.org|ana.lopez@example.org>", user=ALICE)
    assert linked.shown == plain.shown
    # the answer names the cases, never the requester
    assert "ana" not in plain.shown.lower() and "example.org" not in plain.shown
    nobody = await desk.command("find someone.else@example.org", user=ALICE)
    assert nobody.shown == "*Found* (0)\nNo case matches."


async def test_mine_lists_the_open_cases_of_whoever_asks(desk: Desk, cases: dict[str, str]) -> None:
    alice = await desk.command("mine", user=ALICE)
    assert alice.shown.splitlines()[0] == "*Your open cases* (3)"
    assert alice.refs == [cases[n] for n in ("late5", "in3", "in25")]
    assert all(line.endswith("<@UALICE01>") for line in alice.shown.splitlines()[1:])
    bob = await desk.command("MINE", user=BOB)
    assert bob.refs == [cases["today"]]  # his resolved case is not listed


async def test_mine_with_nothing_assigned_says_so(desk: Desk) -> None:
    answer = await desk.command("mine", user=BOB)
    assert answer.shown == "*Your open cases* (0)\nNothing is assigned to you."
    overdue = await desk.command("overdue", user=BOB)
    assert overdue.shown == "*Overdue cases* (0)\nNothing is overdue."


async def test_stats_counts_the_open_cases_and_the_last_30_days(desk: Desk, cases: dict[str, str]) -> None:
    posted = len(desk.slack.messages)
    answer = await desk.command("stats", user=ALICE)
    assert_ephemeral(answer, desk, posted_before=posted)
    assert answer.shown == "\n".join(
        [
            "*Open:* 7 (Access (art. 15) 2, Complaint 1, Erasure (art. 17) 1, Objection (art. 21) 1, "
            "Portability (art. 20) 1, Rectification (art. 16) 1)",
            "*Overdue:* 2 · *due within 7 days:* 3 · *unassigned:* 3 · *extended:* 0",
            "*Resolved in the last 30 days:* 1 · on time 100 % · median 20 days to answer · 0 extended",
        ]
    )


async def test_help_and_unknown_subcommands_explain_every_subcommand(
    desk: Desk, cases: dict[str, str]
) -> None:
    posted = len(desk.slack.messages)
    help_ = await desk.command("help", user=ALICE)
    assert_ephemeral(help_, desk, posted_before=posted)
    for usage in ("overdue", "open", "due [DAYS]", "find REF-OR-EMAIL", "mine", "stats", "help"):
        assert f"`/privacy {usage}`" in help_.shown
    assert "only you see the answers" in help_.shown
    for text in ("", "   ", "frobnicate", "list all", "HELP"):
        assert (await desk.command(text, user=ALICE)).shown == help_.shown, text
    assert help_.refs == ["PRIV-2026-0042"]  # an example, not a case


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("due abc", "Usage: `/privacy due [DAYS]`"),
        ("due -3", "Usage: `/privacy due [DAYS]`"),
        ("due 400", "Usage: `/privacy due [DAYS]`"),
        ("due 3 days", "Usage: `/privacy due [DAYS]`"),
        ("find", "Usage: `/privacy find REF-OR-EMAIL`"),
        ("find two words", "Usage: `/privacy find REF-OR-EMAIL`"),
    ],
)
async def test_input_it_cannot_read_gets_a_usage_message(
    desk: Desk, cases: dict[str, str], text: str, usage: str
) -> None:
    posted = len(desk.slack.messages)
    answer = await desk.command(text, user=BOB)
    assert_ephemeral(answer, desk, posted_before=posted)
    assert answer.shown.startswith(usage)
    assert not set(answer.refs) & set(cases.values()), "no case is listed"


async def test_a_long_list_is_cut_with_a_count_of_the_rest(desk: Desk) -> None:
    many = {
        f"case{i}": ("access", date(2026, 10, 10) + timedelta(days=i), f"r{i}@example.org", "")
        for i in range(30)
    }
    refs = await open_cases(desk, many)
    answer = await desk.command("open", user=ALICE)
    assert answer.shown.splitlines()[0] == "*Open cases* (30)"
    assert answer.refs == [refs[f"case{i}"] for i in range(20)]
    assert answer.shown.splitlines()[-1] == "…and 10 more."
    overdue = await desk.command("overdue", user=ALICE)  # due 9 Nov to 24 Nov: 16 of them
    assert overdue.shown.splitlines()[0] == "*Overdue cases* (16)"
    assert len(overdue.refs) == 16 and "more" not in overdue.shown

    view = await desk.open_home(ALICE)
    home = groups(view)
    assert (home["Unassigned"].total, len(home["Unassigned"].refs)) == (30, 10)
    assert home["Unassigned"].more == "…and 20 more."
    assert (home["Overdue"].total, home["Overdue"].more) == (16, "…and 6 more.")


# --- /privacy, for anyone else ---------------------------------------------------------------------


async def test_someone_outside_the_team_learns_nothing_whatever_they_type(
    desk: Desk, cases: dict[str, str]
) -> None:
    posted = len(desk.slack.messages)
    typed = [
        "overdue",
        "open",
        "due",
        "due 3",
        "due abc",
        "mine",
        "stats",
        "help",
        "",
        "frobnicate",
        "find",
        f"find {cases['late5']}",  # exists
        "find PRIV-2026-9999",  # does not
        "find ana.lopez@example.org",  # asked for two cases
        "find <mailto:ana.lopez@example.org|ana.lopez@example.org>",
        "find nobody@example.org",  # never wrote
    ]
    answers = [await desk.command(text, user=OUTSIDER) for text in typed]
    for text, answer in zip(typed, answers, strict=True):
        assert_ephemeral(answer, desk, posted_before=posted)
        assert answer.body == answers[0].body, text
        assert _without_id(answer.ack["ack"]) == _without_id(answers[0].ack["ack"]), text
    assert answers[0].shown == NOT_STAFF
    assert "\n" not in NOT_STAFF and not re.search(r"\d|@|PRIV", answers[0].shown)
    assert all(e["user"] == OUTSIDER for e in desk.slack.ephemerals[-len(typed) :])
    assert not desk.slack.calls_to("chat.getPermalink"), "nothing about a case was looked up for them"


def _without_id(ack: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (ack or {}).items() if k != "envelope_id"}


async def test_every_command_is_acknowledged_within_three_seconds(desk: Desk, cases: dict[str, str]) -> None:
    texts = ["overdue", "open", "due", "due 3", "find " + cases["late1"], "find x@example.org", "mine"]
    texts += ["stats", "help", "due abc", "find", "nonsense"]
    for user in (ALICE, OUTSIDER):
        for text in texts:
            answer = await desk.command(text, user=user)
            assert answer.ack["ack_seconds"] < 3, (user, text, answer.ack["ack_seconds"])
    commands = [e for e in desk.slack.envelopes if e["envelope"]["type"] == "slash_commands"]
    assert len(commands) == 2 * len(texts) and all(e["ack_seconds"] < 3 for e in commands)


# --- the App Home -----------------------------------------------------------------------------------


async def test_the_home_of_a_staff_member_shows_their_cases_then_the_teams(
    desk: Desk, cases: dict[str, str]
) -> None:
    view = await desk.open_home(ALICE)
    assert view["type"] == "home"
    text = as_text(view["blocks"])
    assert text.splitlines()[0] == "Privacy Desk"
    home = groups(view)
    assert list(home) == ["Your open cases", "Overdue", "Due within 7 days", "Unassigned"]
    assert home["Your open cases"] == Group(3, [cases[n] for n in ("late5", "in3", "in25")])
    assert home["Overdue"] == Group(2, [cases[n] for n in ("late5", "late1")])
    assert home["Due within 7 days"] == Group(3, [cases[n] for n in ("today", "in3", "in5")])
    assert home["Unassigned"] == Group(3, [cases[n] for n in ("late1", "in5", "in20")])
    assert cases["resolved"] not in text
    for name in ("late5", "late1", "today", "in3", "in5", "in20", "in25"):
        assert f"<{desk.link(cases[name])}|{cases[name]}>" in text, name
    assert "due Fri 20 Nov 2026 · *5 days late* · <@UALICE01>" in text
    assert "/privacy help" in text
    assert "ana.lopez" not in text.lower()

    bob = groups(await desk.open_home(BOB))
    assert bob["Your open cases"] == Group(1, [cases["today"]])
    assert bob["Overdue"] == home["Overdue"]


async def test_the_home_of_someone_outside_the_team_shows_nothing_of_the_cases(
    desk: Desk, cases: dict[str, str]
) -> None:
    view = await desk.open_home(OUTSIDER)
    text = as_text(view["blocks"])
    assert "nothing to show you here" in text
    assert not re.search(r"\d|PRIV|<@|<http", text)
    assert not desk.slack.calls_to("chat.getPermalink")
    # and it is not followed: a change to a case publishes nothing more for them
    await desk.click(cases["in20"], "case.claim", user=BOB)
    await wait_until(lambda: desk.root(cases["in20"])["metadata"]["event_payload"]["assignee"] == BOB)
    await desk.settle()
    assert len(desk.publications(OUTSIDER)) == 1
    assert not [r for r in await desk.store.outbox.due(now=desk.clock()) if r.recipient == OUTSIDER]


async def test_an_opened_home_is_published_again_when_a_case_it_shows_changes(
    desk: Desk, cases: dict[str, str]
) -> None:
    await desk.open_home(ALICE)
    assert not desk.publications(BOB)

    # Bob claims an unassigned case in the channel: Alice's home follows
    await desk.click(cases["in20"], "case.claim", user=BOB)
    await wait_until(lambda: cases["in20"] not in groups(desk.slack.home[ALICE])["Unassigned"].refs)
    home = groups(desk.slack.home[ALICE])
    assert home["Unassigned"] == Group(2, [cases["late1"], cases["in5"]])
    assert len(desk.publications(ALICE)) == 2
    assert not desk.publications(BOB), "a home nobody opened is not published"

    # Alice resolves a case through the Resolve button: it leaves her home
    await desk.resolve_in_slack(cases["in5"], user=ALICE)
    await wait_until(lambda: cases["in5"] not in as_text(desk.slack.home[ALICE]["blocks"]))
    home = groups(desk.slack.home[ALICE])
    assert home["Due within 7 days"] == Group(2, [cases["today"], cases["in3"]])
    assert home["Unassigned"] == Group(1, [cases["late1"]])

    # a new case reaching the channel appears on it, linked to its thread
    new = await new_case(desk.store, "<newest@example.org>", now=desk.clock(), received_at=desk.clock())
    desk.outbox.notify()
    await wait_until(lambda: new.ref in groups(desk.slack.home[ALICE])["Unassigned"].refs)
    await desk.settle()
    assert f"<{desk.link(new.ref)}|{new.ref}>" in as_text(desk.slack.home[ALICE]["blocks"])


async def test_the_days_left_on_the_home_follow_the_clock(desk: Desk, cases: dict[str, str]) -> None:
    await desk.open_home(ALICE)
    desk.clock.now += timedelta(days=1)  # Thursday: a case due yesterday is late now
    await desk.click(cases["in20"], "case.claim", user=BOB)
    await wait_until(lambda: len(desk.publications(ALICE)) == 2)
    await desk.settle()
    home = groups(desk.slack.home[ALICE])
    assert home["Overdue"] == Group(3, [cases[n] for n in ("late5", "late1", "today")])
    assert "due Wed 25 Nov 2026 · *1 day late* · <@UBOB0001>" in as_text(desk.slack.home[ALICE]["blocks"])


async def test_at_most_one_refresh_of_a_home_waits_however_many_cases_change(
    desk: Desk, cases: dict[str, str]
) -> None:
    await desk.open_home(ALICE)
    await desk.open_home(BOB)
    await desk.pause_outbox()  # work the outbox one round at a time from here
    before = {u: len(desk.publications(u)) for u in (ALICE, BOB)}

    async def queued(kind: str) -> list[Any]:
        return await desk.store.outbox.due(now=desk.clock(), kinds=(kind,))

    # three changes in the channel, while the outbox is not being worked
    await desk.click(cases["in20"], "case.claim", user=BOB)
    await eventually(lambda: _has(queued("root_update"), 1))
    await desk.click(cases["late1"], "case.claim", user=ALICE)
    await eventually(lambda: _has(queued("root_update"), 2))
    await desk.resolve_in_slack(cases["in5"], user=ALICE)
    await eventually(lambda: _has(queued("root_update"), 3))

    # one round brings the roots up to date; each update asks for the opened homes' refresh
    assert await desk.outbox.work_once()
    assert not await queued("root_update")
    homes = await queued("home")
    assert sorted(r.recipient for r in homes) == [ALICE, BOB], "one refresh waits per user"
    async with desk.store.transaction(now=desk.clock()) as tx:
        assert await tx.outbox.refresh_homes() == 0  # nothing more is queued while they wait
        await tx.outbox.refresh_home(ALICE)
    assert len(await queued("home")) == 2

    # the next round publishes each home once, showing all three changes
    assert await desk.outbox.work_once()
    assert {u: len(desk.publications(u)) - before[u] for u in (ALICE, BOB)} == {ALICE: 1, BOB: 1}
    alice = groups(desk.slack.home[ALICE])
    assert alice["Your open cases"] == Group(4, [cases[n] for n in ("late5", "late1", "in3", "in25")])
    assert alice["Unassigned"] == Group(0, [])
    assert groups(desk.slack.home[BOB])["Your open cases"] == Group(2, [cases["today"], cases["in20"]])
    assert not await desk.outbox.work_once()
    assert not await queued("home")


async def test_a_home_slack_will_not_publish_for_that_person_does_not_hold_up_the_channel(
    desk: Desk, cases: dict[str, str]
) -> None:
    """views.publish refused for one person (`user_not_found`: they left the workspace) is that
    home's own problem, not a Slack outage: the case messages go on without a pause."""
    await desk.open_home(ALICE)
    desk.slack.fail_method = {"views.publish": "user_not_found"}
    await desk.click(cases["in20"], "case.claim", user=BOB)
    await eventually(lambda: _attempted_home(desk, ALICE))
    assert [c["error"] for c in desk.slack.calls_to("views.publish")][-1] == "user_not_found"
    assert not desk.outbox.outage("slack").ongoing, "one person's home is not a Slack outage"
    [(done, failed, _)] = _home_rows(desk, ALICE)[-1:]
    assert done or failed, "the refused refresh is not retried"
    new = await new_case(desk.store, "<after@example.org>", now=desk.clock(), received_at=desk.clock())
    await desk.settle()
    assert [r for r in desk.slack.roots(CHANNEL) if r["metadata"]["event_payload"]["case_ref"] == new.ref]


def _home_rows(desk: Desk, user: str) -> list[tuple[Any, ...]]:
    """(done_at, failed_at, last_error) of the user's home rows that were attempted, oldest first."""
    with sqlite3.connect(desk.store.path) as conn:
        return conn.execute(
            "SELECT done_at, failed_at, last_error FROM outbox WHERE kind = 'home' AND recipient = ? "
            "AND started_at IS NOT NULL ORDER BY id",
            (user,),
        ).fetchall()


async def _attempted_home(desk: Desk, user: str) -> bool:
    """Whether a refresh of the user's home was tried and its fate recorded (done, failed, or
    waiting with its error)."""
    refused = [c for c in desk.slack.calls_to("views.publish") if c["error"]]
    return bool(refused) and any(done or failed or error for done, failed, error in _home_rows(desk, user))


async def _has(rows: Awaitable[list[Any]], n: int) -> bool:
    return len(await rows) >= n


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll an async predicate until it holds (a listener commits just after its ack)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
