"""The words of the domain, defined once: kinds of message, rights, statuses, outcomes.

Each tuple is the list of allowed values in display order; each `*_LABELS` mapping gives the
words staff read in Slack.
"""

from __future__ import annotations

__all__ = [
    "AUTOMATED_KINDS",
    "CASE_STATUSES",
    "FULFILLING_OUTCOMES",
    "IDENTITY_LABELS",
    "IDENTITY_METHODS",
    "IDENTITY_REQUIRED",
    "KINDS",
    "KIND_LABELS",
    "OUTCOMES",
    "OUTCOME_LABELS",
    "RECIPIENTS_REQUIRED",
    "REQUEST_KINDS",
    "RIGHTS",
    "STATUS_LABELS",
    "WAITING_FOR",
    "WAITING_LABELS",
    "kind_label",
]

#: Rights a data subject exercises (GDPR art. 15–21), in the order used for display.
REQUEST_KINDS = ("access", "rectification", "erasure", "restriction", "objection", "portability")
#: The rights a case's data-system checklist is made for (the same six).
RIGHTS = REQUEST_KINDS
#: Every `kind` a human message can get.
KINDS = (*REQUEST_KINDS, "complaint", "other")
#: Machine traffic that never opens a case.
AUTOMATED_KINDS = ("auto_reply", "bounce")

KIND_LABELS = {
    "access": "Access (art. 15)",
    "rectification": "Rectification (art. 16)",
    "erasure": "Erasure (art. 17)",
    "restriction": "Restriction (art. 18)",
    "portability": "Portability (art. 20)",
    "objection": "Objection (art. 21)",
    "complaint": "Complaint",
    "other": "Other / not a request",
    "auto_reply": "Automatic reply",
    "bounce": "Bounce",
}

#: Where a case stands (INTERFACE.md: the `status` of the root's metadata).
CASE_STATUSES = ("new", "in_progress", "awaiting_requester", "extended", "resolved")
STATUS_LABELS = {
    "new": "New",
    "in_progress": "In progress",
    "awaiting_requester": "Awaiting requester",
    "extended": "Extended",
    "resolved": "Resolved",
}

#: How a case ended.
OUTCOME_LABELS = {
    "fulfilled": "Fulfilled",
    "partial": "Partially fulfilled",
    "refused_unfounded": "Refused as manifestly unfounded or excessive (art. 12(5))",
    "refused_identity": "Refused: identity not confirmed",
    "withdrawn": "Withdrawn by the requester",
    "not_a_request": "Not a privacy request",
}
OUTCOMES = tuple(OUTCOME_LABELS)
#: Outcomes that grant the request (wholly or in part).
FULFILLING_OUTCOMES = ("fulfilled", "partial")
#: Rights whose fulfilment discloses or destroys data: identity must be settled first.
IDENTITY_REQUIRED = ("access", "portability", "erasure")
#: Rights after which the recipients of the data must be told (art. 19).
RECIPIENTS_REQUIRED = ("erasure", "rectification")

#: How a requester's identity was established.
IDENTITY_LABELS = {
    "same_address": "same address as our records",
    "id_document": "ID document checked",
    "known_contact": "known contact",
}
IDENTITY_METHODS = {**IDENTITY_LABELS, "not_needed": "not needed"}

#: What a case waiting for the requester waits for.
WAITING_LABELS = {"identity": "identity documents", "clarification": "a clarification"}
WAITING_FOR = tuple(WAITING_LABELS)


def kind_label(kind: str) -> str:
    """The kind as staff read it ("Erasure (art. 17)")."""
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())
