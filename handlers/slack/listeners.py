"""Slack listeners for the case buttons, pickers, checklists and modals.

Thin on purpose: `ack()` first (modals are opened with their trigger_id before any slow work),
check that the person is staff, call the use case in `handlers.cases.actions`, and let the
publisher re-render the root and post the thread note from the database. Refusals are ephemeral;
modal submissions answer with field errors.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import TransitionError, unwritable_storage
from handlers.cases import actions as case_actions
from handlers.mail_out.templates import OFFERED
from handlers.slack import modals as views
from storage.models import Case

__all__ = ["UNSAVED", "register", "tell_unsaved"]

logger = logging.getLogger(__name__)

NOT_STAFF = "Only the privacy team can act on privacy cases."


def register(app: AsyncApp) -> None:
    """Map the case action, picker, checklist and modal ids to their listeners."""
    app.action("case.claim")(claim_clicked)
    app.action("case.assign")(assignee_picked)
    app.action("case.answered")(answered_clicked)
    app.action("case.checklist")(checklist_ticked)
    app.action("case.split")(split_clicked)
    app.action("case.reply_template")(reply_template_picked)
    for action_id, opener in _OPENERS.items():
        app.action(action_id)(opener)
    for callback_id, submitted in _SUBMISSIONS.items():
        app.view(callback_id)(submitted)


# --- helpers -------------------------------------------------------------------------------------


async def _staff(desk: Any, body: dict[str, Any], respond: Any) -> str | None:
    """The acting user's id when they are staff; otherwise an ephemeral refusal and None."""
    user = (body.get("user") or {}).get("id", "")
    if await desk.staff.is_staff(user):
        return str(user)
    logger.info("refused a case action from someone who is not staff")
    await respond(text=NOT_STAFF, response_type="ephemeral", replace_original=False)
    return None


async def _refuse(respond: Any, error: TransitionError) -> None:
    await respond(text=str(error), response_type="ephemeral", replace_original=False)


#: what a person is told when their click or command could not be saved because the database
#: cannot be written (the channel has the storage alarm)
UNSAVED = (
    ":warning: Nothing was changed: the bot cannot save anything right now ({reason}). "
    "Please try again once the channel says it can store mail again."
)


async def tell_unsaved(respond: Any, error: BaseException) -> bool:
    """Tell the person their change was not saved when `error` says the database cannot be
    written; returns whether it did."""
    reason = unwritable_storage(error)
    if reason is None or respond is None:
        return False
    await respond(text=UNSAVED.format(reason=reason), response_type="ephemeral", replace_original=False)
    return True


def _case_id(body: dict[str, Any]) -> int:
    try:
        return int(body["actions"][0].get("value") or 0)
    except (KeyError, IndexError, ValueError, TypeError):
        return 0


def _case_id_of_message(body: dict[str, Any]) -> int:
    """The case of the root a picker sits on (pickers carry no value; the root's buttons do)."""
    for block in (body.get("message") or {}).get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == "case.claim":
                try:
                    return int(element.get("value") or 0)
                except ValueError:
                    return 0
    return 0


async def _open_case(desk: Any, case_id: int, respond: Any) -> Case | None:
    case = await desk.store.cases.get(case_id)
    if case is None:
        await respond(text="This case no longer exists.", response_type="ephemeral", replace_original=False)
        return None
    return case


# --- buttons that act at once ----------------------------------------------------------------------


def _acting(
    act: Callable[[Any, dict[str, Any], str, Any], Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """A listener that acks, checks that the person is staff, runs `act(desk, body, user, respond)`,
    tells them ephemerally why a refused change was refused, and asks for Slack to be brought up to
    date after a change."""

    async def listener(ack: Any, body: dict[str, Any], respond: Any, desk: Any) -> None:
        await ack()
        user = await _staff(desk, body, respond)
        if user is None:
            return
        try:
            await act(desk, body, user, respond)
        except TransitionError as e:
            await _refuse(respond, e)
            return
        except Exception as e:
            # told here rather than by the app's error handler: Bolt loses the ack of a listener
            # that fails within moments of acking (its runner has not seen the ack yet)
            if not await tell_unsaved(respond, e):
                raise
            return
        desk.notify()

    listener.__doc__ = act.__doc__
    return listener


@_acting
async def claim_clicked(desk: Any, body: dict[str, Any], user: str, respond: Any) -> None:
    """Claim: assign the case to the person who clicked."""
    await case_actions.claim(desk.store, case_id=_case_id(body), actor=user, assignee=user, now=desk.clock())


@_acting
async def assignee_picked(desk: Any, body: dict[str, Any], user: str, respond: Any) -> None:
    """Assign to…: assign the case to the staff member picked."""
    assignee = str(body["actions"][0].get("selected_user") or "")
    if not await desk.staff.is_staff(assignee):
        raise TransitionError("Cases can only be assigned to members of the privacy team.")
    await case_actions.claim(
        desk.store, case_id=_case_id_of_message(body), actor=user, assignee=assignee, now=desk.clock()
    )


@_acting
async def answered_clicked(desk: Any, body: dict[str, Any], user: str, respond: Any) -> None:
    """Requester answered: end the wait (when the answer came another way than by email)."""
    await case_actions.stop_waiting(
        desk.store,
        case_id=_case_id(body),
        actor=user,
        now=desk.clock(),
        calendar=desk.calendar,
        pause_clock=desk.settings.clock_pause_on_wait,
    )


@_acting
async def checklist_ticked(desk: Any, body: dict[str, Any], user: str, respond: Any) -> None:
    """A checklist box was ticked or unticked: the selection of that group becomes the truth."""
    action = body["actions"][0]
    selected = {
        int(o["value"]) for o in action.get("selected_options") or [] if str(o.get("value", "")).isdigit()
    }
    parts = str(action.get("block_id", "")).split("-")  # "checklist-<case id>-<group of ten>"
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise TransitionError("This checklist message is not one of ours.")
    case_id, group = int(parts[1]), int(parts[2])
    items = await desk.store.cases.checklist(case_id)
    in_group = {i.id for i in items[group * 10 : group * 10 + 10]}
    done = {i.id for i in items if i.done and i.id not in in_group} | (selected & in_group)
    await case_actions.tick_checklist(
        desk.store, case_id=case_id, actor=user, done_ids=done, now=desk.clock()
    )


@_acting
async def split_clicked(desk: Any, body: dict[str, Any], user: str, respond: Any) -> None:
    """Split into a new case: the follow-up's new right gets a linked case of its own."""
    result = await case_actions.split_off(
        desk.store,
        email_id=_case_id(body),
        actor=user,
        now=desk.clock(),
        calendar=desk.calendar,
        inventory=desk.inventory,
    )
    logger.info("case %s split off %s", result.new_case.ref, result.original.ref)


# --- buttons that open a modal -------------------------------------------------------------------------


def _opener(build: Callable[[Any, Case], Awaitable[dict[str, Any] | str]]) -> Callable[..., Awaitable[None]]:
    """A listener that checks staff, builds the modal for the case (or a refusal) and opens it
    with the trigger_id at once."""

    async def open_modal(
        ack: Any, body: dict[str, Any], respond: Any, client: AsyncWebClient, desk: Any
    ) -> None:
        await ack()
        if await _staff(desk, body, respond) is None:
            return
        case = await _open_case(desk, _case_id(body), respond)
        if case is None:
            return
        view = await build(desk, case)
        if isinstance(view, str):
            await respond(text=view, response_type="ephemeral", replace_original=False)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    return open_modal


async def _change_type(desk: Any, case: Case) -> dict[str, Any] | str:
    return "Reopen the case before changing its type." if not case.is_open else views.change_type_view(case)


async def _verify(desk: Any, case: Case) -> dict[str, Any] | str:
    return "Reopen the case first." if not case.is_open else views.verify_view(case)


async def _extend(desk: Any, case: Case) -> dict[str, Any] | str:
    calendar = desk.calendar
    try:
        one_month = case_actions.check_extendable(case, calendar=calendar, now=desk.clock())
    except TransitionError as e:
        return str(e)
    extended = calendar.due_date(case.received_at, extended=True, paused_days=case.paused_days)
    return views.extend_view(case, one_month_due=one_month, extended_due=extended)


async def _wait(desk: Any, case: Case) -> dict[str, Any] | str:
    if not case.is_open:
        return "The case is resolved."
    if case.status == "awaiting_requester":
        return f"{case.ref} is already waiting for the requester."
    return views.wait_view(case, pause_clock=desk.settings.clock_pause_on_wait)


async def _resolve(desk: Any, case: Case) -> dict[str, Any] | str:
    return (
        f"{case.ref} is already resolved."
        if not case.is_open
        else views.resolve_view(case, inventory=desk.inventory)
    )


async def _reply(desk: Any, case: Case) -> dict[str, Any] | str:
    if desk.settings.smtp is None:
        return "Replies are sent by email: set SMTP_HOST (and MAIL_FROM) to answer requesters from Slack."
    if not case.is_open:
        return f"{case.ref} is resolved; reopen it to write to the requester."
    if "@" not in case.requester_email:
        return f"{case.ref} has no address to answer to."
    return views.reply_view(case, pause_clock=desk.settings.clock_pause_on_wait)


async def _reply_notice(desk: Any, case: Case) -> dict[str, Any] | str:
    view = await _reply(desk, case)
    if isinstance(view, str) or case.extended_at is None:
        return view
    return _reply_from(desk, case, "extension_notice")


def _reply_from(desk: Any, case: Case, template: str) -> dict[str, Any]:
    """The Reply modal pre-filled with a template, in the requester's language."""
    letter = desk.settings.writer().write(template, case, extension_reason=case.extension_reason)
    return views.reply_view(
        case,
        pause_clock=desk.settings.clock_pause_on_wait,
        initial=letter.body,
        template=template,
        wait_for="identity" if template == "identity_request" else "",
    )


async def reply_template_picked(ack: Any, body: dict[str, Any], client: AsyncWebClient, desk: Any) -> None:
    """A template chosen in the Reply modal: the modal again, its message pre-filled with it."""
    await ack()
    user = str((body.get("user") or {}).get("id", ""))
    if not await desk.staff.is_staff(user):
        logger.info("refused a template choice from someone who is not staff")
        return
    view = body.get("view") or {}
    chosen = ((body.get("actions") or [{}])[0].get("selected_option") or {}).get("value", "")
    case = await desk.store.cases.get(views.metadata_of(view))
    if case is None or chosen not in OFFERED:
        return
    if not case.is_open or "@" not in case.requester_email:
        return
    await client.views_update(
        view_id=view.get("id"), hash=view.get("hash"), view=_reply_from(desk, case, chosen)
    )


async def _reopen(desk: Any, case: Case) -> dict[str, Any] | str:
    return f"{case.ref} is not resolved." if case.is_open else views.reopen_view(case)


_OPENERS = {
    "case.change_type": _opener(_change_type),
    "case.verify": _opener(_verify),
    "case.extend": _opener(_extend),
    "case.wait": _opener(_wait),
    "case.resolve": _opener(_resolve),
    "case.reopen": _opener(_reopen),
    "case.reply": _opener(_reply),
    "case.reply_notice": _opener(_reply_notice),
}


# --- modal submissions -----------------------------------------------------------------------------

#: What a use case may need from the desk besides the store, the case, the actor and the time.
_SERVICES: dict[str, Callable[[Any], object]] = {
    "calendar": lambda desk: desk.calendar,
    "inventory": lambda desk: desk.inventory,
    "pause_clock": lambda desk: desk.settings.clock_pause_on_wait,
    "mail_from": lambda desk: desk.settings.mail_from_address,
    "country": lambda desk: desk.calendar.holidays_country,
}


def _submission(
    use_case: Callable[..., Awaitable[object]],
    *,
    texts: tuple[str, ...] = (),
    lists: tuple[str, ...] = (),
    services: tuple[str, ...] = (),
    prepare: Callable[[Any, dict[str, Any]], dict[str, Any]] = lambda desk, fields: fields,
    template: bool = False,
) -> Callable[..., Awaitable[None]]:
    """A view_submission listener: check staff, read the modal's fields (`texts` as strings,
    `lists` as lists of strings; `prepare` may check or reshape them), apply the use case (which
    checks the case's current state), and answer with field errors when it refuses."""
    first_field = (texts or lists)[0]

    async def submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], desk: Any) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        if not await desk.staff.is_staff(user):
            logger.info("refused a case modal from someone who is not staff")
            await ack(response_action="errors", errors={first_field: NOT_STAFF})
            return
        values = views.values_of(view)
        fields = {f: _str(values, f) for f in texts} | {f: _list(values, f) for f in lists}
        if template:
            fields["template"] = views.template_of(view)
        try:
            await use_case(
                desk.store,
                case_id=views.metadata_of(view),
                actor=user,
                now=desk.clock(),
                **prepare(desk, fields),
                **{name: _SERVICES[name](desk) for name in services},
            )
        except TransitionError as e:
            await ack(response_action="errors", errors={e.field or first_field: str(e)[:150]})
            return
        await ack()
        desk.notify()

    return submitted


def _str(values: dict[str, Any], field: str) -> str:
    value = values.get(field)
    return value if isinstance(value, str) else ""


def _list(values: dict[str, Any], field: str) -> list[str]:
    value = values.get(field)
    return [str(v) for v in value] if isinstance(value, list) else []


def _types(desk: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The main type first, then the other rights asked for."""
    primary = fields.pop("primary")
    others = fields.pop("labels")
    return {"labels": [primary, *(k for k in others if k != primary)] if primary else []}


def _recipients(desk: Any, fields: dict[str, Any]) -> dict[str, Any]:
    if views.NO_RECIPIENTS in fields["recipients"] and len(fields["recipients"]) > 1:
        raise TransitionError(
            "Either name the recipients informed or choose that there were none.", field="recipients"
        )
    return fields


def _mail_configured(desk: Any, fields: dict[str, Any]) -> dict[str, Any]:
    if desk.settings.smtp is None:
        raise TransitionError("Outgoing mail is not configured (SMTP_HOST).", field="body")
    return fields


_SUBMISSIONS = {
    "case.change_type": _submission(
        case_actions.change_type, texts=("primary",), lists=("labels",), services=("calendar", "inventory"),
        prepare=_types,
    ),
    "case.verify": _submission(case_actions.verify_identity, texts=("method", "note")),
    "case.extend": _submission(case_actions.extend, texts=("reason",), services=("calendar",)),
    "case.wait": _submission(case_actions.start_wait, texts=("waiting_for", "note"), services=("pause_clock",)),
    "case.resolve": _submission(
        case_actions.resolve, texts=("outcome", "note"), lists=("recipients",), services=("calendar",),
        prepare=_recipients,
    ),
    "case.reopen": _submission(case_actions.reopen, texts=("reason",)),
    "case.reply": _submission(
        case_actions.reply_to_requester, texts=("body", "wait_for"), services=("pause_clock", "mail_from", "country"),
        prepare=_mail_configured, template=True,
    ),
}  # fmt: skip
