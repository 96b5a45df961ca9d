"""Sender checks from our own mail server's Authentication-Results header (RFC 8601)."""

from __future__ import annotations

import pytest

from handlers.mail_in.parsing import parse_email
from handlers.mail_in.sender_check import check_sender, parse_authentication_results

OURS = "mx.imal.example"


def with_results(*values: str) -> bytes:
    headers = "".join(f"Authentication-Results: {v}\r\n" for v in values)
    return (
        f"{headers}From: ana@example.org\r\nTo: privacy@imal.example\r\nSubject: access\r\n"
        "Message-ID: <a@example.org>\r\n\r\nSend me my data.\r\n"
    ).encode()


def test_parse_rfc8601_with_comments_and_version() -> None:
    authserv, results = parse_authentication_results(
        "mx.imal.example 1; spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.org; "
        "dkim=fail (bad signature) header.d=example.org; dmarc=fail (p=REJECT sp=REJECT) header.from=example.org"
    )
    assert authserv == "mx.imal.example"
    assert results == {"spf": "pass", "dkim": "fail", "dmarc": "fail"}


def test_parse_microsoft_form_without_authserv_id() -> None:
    authserv, results = parse_authentication_results(
        "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.org; dkim=pass (signature was verified) "
        "header.d=example.org;dmarc=bestguesspass action=none header.from=example.org;compauth=pass reason=109"
    )
    assert authserv == ""
    assert results["dmarc"] == "bestguesspass" and results["compauth"] == "pass"


@pytest.mark.parametrize(
    ("value", "status", "detail"),
    [
        (
            f"{OURS}; spf=pass smtp.mailfrom=example.org; dkim=pass; dmarc=pass",
            "pass",
            "SPF pass, DKIM pass, DMARC pass",
        ),
        (f"{OURS}; spf=pass; dkim=none; dmarc=fail", "fail", "DMARC fail"),
        (f"{OURS}; spf=softfail; dkim=fail", "fail", "SPF softfail and DKIM fail"),
        (f"{OURS}; spf=fail", "fail", "SPF fail and DKIM none"),
        (f"{OURS}; spf=none; dkim=pass header.d=example.org", "pass", "SPF none, DKIM pass"),
        (f"{OURS.upper()}; dmarc=permerror", "fail", "DMARC permerror"),
        (f"{OURS}; none", "unknown", "no usable result from our mail server"),
    ],
)
def test_check_sender(value: str, status: str, detail: str) -> None:
    check = check_sender(parse_email(with_results(value)), OURS)
    assert (check.status, check.detail) == (status, detail)


def test_headers_from_other_servers_are_ignored_and_the_topmost_of_ours_wins() -> None:
    email = parse_email(
        with_results(
            f"{OURS}; spf=fail; dkim=fail; dmarc=fail",  # added last, by our server: the one that counts
            f"{OURS}; spf=pass; dkim=pass; dmarc=pass",  # forged further down by the sender
            "evil.example; dmarc=pass",
        )
    )
    assert check_sender(email, OURS).status == "fail"
    forged_only = parse_email(with_results("evil.example; spf=fail; dkim=fail; dmarc=fail"))
    assert check_sender(forged_only, OURS).status == "unknown"


def test_without_an_authserv_id_nothing_is_judged() -> None:
    email = parse_email(with_results(f"{OURS}; dmarc=fail"))
    assert check_sender(email, None).status == "unknown"
