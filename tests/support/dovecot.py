"""A real Dovecot IMAP server on loopback, started from a temp dir for the tests.

One server per test session; each test gets its own mail user (a line in the passwd file, which
Dovecot re-reads when it changes), so tests never see each other's mail. Plain IMAP, IMAPS and
STARTTLS are all served, with a throwaway self-signed certificate.
See ../shared/notes/dovecot-for-tests.md for the reasons behind each setting.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

__all__ = ["Dovecot", "MailUser", "dovecot_binary"]

USERS = 300  # mailboxes prepared per server

CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = dovecot-test-{imap_port}
log_path = {tmp}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
ssl = yes
ssl_cert = <{tmp}/cert.pem
ssl_key = <{tmp}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {tmp}/passwd
}}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


def dovecot_binary() -> str | None:
    """Path of the dovecot binary (Debian puts it in /usr/sbin), or None."""
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MailUser:
    """One test mailbox on the server."""

    server: Dovecot
    name: str
    password: str

    def client(self) -> IMAPClient:
        """A logged-in plain IMAP client (the caller logs out)."""
        c = IMAPClient("127.0.0.1", port=self.server.imap_port, ssl=False, timeout=30)
        c.login(self.name, self.password)
        return c

    def append(self, raw: bytes, *, folder: str = "INBOX", msg_time: object = None) -> None:
        """Deliver a message to a folder (optionally with a given INTERNALDATE)."""
        c = self.client()
        try:
            c.append(folder, raw, msg_time=msg_time)
        finally:
            c.logout()

    def env(self, *, tls: str = "none") -> dict[str, str]:
        """The IMAP_* settings that reach this mailbox."""
        port = self.server.imaps_port if tls == "ssl" else self.server.imap_port
        host = "localhost" if tls != "none" else "127.0.0.1"
        return {
            "IMAP_HOST": host,
            "IMAP_PORT": str(port),
            "IMAP_USERNAME": self.name,
            "IMAP_PASSWORD": self.password,
            "IMAP_TLS": tls,
            "IMAP_FOLDER": "INBOX",
        }


class Dovecot:
    """Start with `Dovecot().start()`, stop with `.stop()`; `new_user()` for a fresh mailbox."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="dv-"))
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._noidle_ids = itertools.count(1)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.run_user, self.run_group = "nobody", grp.getgrgid(pw.pw_gid).gr_name
        else:
            pw = pwd.getpwuid(os.geteuid())
            self.run_user, self.run_group = pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    @property
    def cert_file(self) -> Path:
        """The self-signed certificate (CN localhost, SAN localhost and 127.0.0.1)."""
        return self.tmp / "cert.pem"

    def start(self) -> Dovecot:
        """Write the config and certificate, start Dovecot and wait for its greeting."""
        os.chmod(self.tmp, 0o755)
        (self.tmp / "home").mkdir()
        if os.geteuid() == 0:
            os.chown(self.tmp / "home", self.uid, self.gid)
        self._add_users()
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(self.tmp / "key.pem"),
                "-out",
                str(self.cert_file),
            ],
            check=True,
            capture_output=True,
        )
        (self.tmp / "dovecot.conf").write_text(
            CONF.format(
                tmp=self.tmp,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                user=self.run_user,
                group=self.run_group,
            )
        )
        self._launch()
        return self

    def _launch(self) -> None:
        exe = dovecot_binary()
        if exe is None:
            raise RuntimeError("dovecot is not installed (apt-get install dovecot-imapd)")
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.tmp / "dovecot.conf"), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("dovecot did not greet within 10 s: " + self.log())

    def _add_users(self) -> None:
        """Create the pool of test users before the first login (Dovecot re-reads the passwd
        file at most once a second, so users added later could be missed)."""
        lines = []
        for n in range(1, USERS + 1):
            for prefix, extra in (("user", ""), ("noidle", " userdb_imap_capability=IMAP4rev1")):
                name = f"{prefix}{n}"
                home = self.tmp / "home" / name
                home.mkdir()
                if os.geteuid() == 0:
                    os.chown(home, self.uid, self.gid)
                # nodelay: no auth-failure delay or penalty, so wrong-password tests stay fast
                lines.append(
                    f"{name}:{{PLAIN}}secret-{name}:{self.uid}:{self.gid}::{home}::nodelay=yes{extra}\n"
                )
        (self.tmp / "passwd").write_text("".join(lines))

    def new_user(self, *, idle: bool = True) -> MailUser:
        """A fresh, empty mailbox with its own login; `idle=False` hides the IDLE capability
        from this user's sessions (to exercise polling)."""
        n = next(self._ids) if idle else next(self._noidle_ids)
        if n > USERS:
            raise RuntimeError(f"more than {USERS} test mailboxes requested from one Dovecot")
        name = f"user{n}" if idle else f"noidle{n}"
        return MailUser(self, name, f"secret-{name}")

    def log(self) -> str:
        """The end of Dovecot's log (startup and auth errors only show there)."""
        try:
            return (self.tmp / "dovecot.log").read_text()[-3000:]
        except OSError:
            return ""

    def stop_server(self, *, crash: bool = False) -> None:
        """Stop the server but keep its files; `crash=True` kills it as an outage would (its
        children exit by themselves; a clean SIGTERM waits for open sessions to end)."""
        if self.proc and self.proc.poll() is None:
            if crash:  # the master and every session process at once
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart_server(self) -> None:
        """Start the server again after `stop_server`."""
        self._launch()

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self.stop_server()
        shutil.rmtree(self.tmp, ignore_errors=True)
