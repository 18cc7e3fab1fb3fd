"""A throwaway Dovecot IMAP server for tests, following shared/TEST-SERVERS.md.

Each instance lives in its own temp dir (config, passwd-file, maildirs,
state, log), listens on a free port on 127.0.0.1 and runs in the
foreground (``dovecot -c CONF -F``) so the fixture can kill it. Mail is
put in with the standard library's ``imaplib`` rather than aioimaplib, so
the client under test never checks its own work.

Run as root (the usual case in CI containers) the maildirs belong to the
``dovecot`` user the Debian package creates, because ``imap-login`` refuses
to run as root; run as anyone else, every Dovecot process is that user.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

DOVECOT = Path("/usr/sbin/dovecot")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DovecotServer:
    """One Dovecot instance with ``users`` (user: password) made at start.

    Dovecot 2.3 does not reliably notice a passwd-file rewritten within the
    same second, so accounts are created up front; :meth:`fresh_user` hands
    out one no test has used yet.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self.users = dict(users)
        self._unused = iter(list(self.users))
        self.root = Path(tempfile.mkdtemp(prefix="billbox-dovecot-"))
        self.root.chmod(0o755)  # Dovecot's unprivileged processes must reach it
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            self.run_user = "dovecot"
            self.login_user = "dovenull"
        else:
            self.run_user = self.login_user = pwd.getpwuid(os.geteuid()).pw_name
        self.conf = self.root / "dovecot.conf"
        self._write_config()

    # --- lifecycle -------------------------------------------------------

    def fresh_user(self) -> str:
        return next(self._unused)

    def _write_config(self) -> None:
        if any(":" in user + password for user, password in self.users.items()):
            raise ValueError("':' separates passwd-file fields; pick other names")
        (self.root / "passwd").write_text(
            "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in self.users.items())
        )
        for sub in ("home", "base", "state"):
            (self.root / sub).mkdir(exist_ok=True)
        self._chown(self.root / "home")
        uid = pwd.getpwnam(self.run_user)
        group = grp.getgrgid(uid.pw_gid).gr_name  # owns Dovecot's internal sockets
        self.conf.write_text(
            f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/base
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
info_log_path = {self.root}/dovecot.log
default_internal_user = {self.run_user}
default_internal_group = {group}
default_login_user = {self.login_user}
first_valid_uid = 1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# No 2 s delay after a failed login (tests log in wrongly on purpose); the
# per-IP penalty that would slow every later login is off in "service anvil".
auth_failure_delay = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid.pw_uid} gid={uid.pw_gid} home={self.root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
        )

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, user=self.run_user, group=self.run_user)

    def start(self, timeout: float = 10.0) -> None:
        """Start Dovecot and wait until it greets on its port."""
        self.proc = subprocess.Popen(
            [str(DOVECOT), "-c", str(self.conf), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() reaches every child
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited at start: {self._diagnostics()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not greet within {timeout}s: {self._diagnostics()}")

    def stop(self) -> None:
        """Stop the master and its children, like a server going down.

        Logged-in ``imap`` processes outlive a stopped master, so the whole
        process group gets SIGTERM: clients see ``* BYE`` and a closed socket.
        """
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 5  # children may still be closing their sockets
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _diagnostics(self) -> str:
        err = b""
        if self.proc is not None and self.proc.stderr is not None and self.proc.poll() is not None:
            err = self.proc.stderr.read()
        log = self.root / "dovecot.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return f"stderr={err.decode(errors='replace')!r} log={tail!r}"

    # --- mailbox state ---------------------------------------------------

    def maildir(self, user: str) -> Path:
        return self.root / "home" / user / "Maildir"

    def reset_uidvalidity(self, user: str) -> None:
        """Give the user's INBOX a new UIDVALIDITY, as a server rebuild would.

        Stop, delete ``dovecot-uidlist`` and restart. Dovecot 2.3 also keeps
        UIDVALIDITY in ``dovecot.index*`` and restores the old value from there,
        so those go too; the messages themselves (``cur/``, ``new/``) stay.
        """
        self.stop()
        for path in self.maildir(user).iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        self.start()

    def url(
        self, user: str, password: str | None = None, folder: str = "INBOX", query: str = ""
    ) -> str:
        secret = quote(self.users[user] if password is None else password, safe="")
        suffix = f"?{query}" if query else ""
        return f"imap://{quote(user, safe='')}:{secret}@127.0.0.1:{self.port}/{folder}{suffix}"

    # --- a plain client, independent of the code under test --------------

    def client(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(user, self.users[user])
        return conn

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> int:
        """APPEND ``raw`` and return the UID Dovecot gave it (from APPENDUID)."""
        with self.client(user) as conn:
            typ, data = conn.append(folder, "", None, raw)
            assert typ == "OK", data
            match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert match, data
            return int(match.group(1))

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as conn:
            typ, data = conn.status(folder, "(UIDVALIDITY)")
            assert typ == "OK", data
            match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert match, data
            return int(match.group(1))

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """Each message's UID and flags in ``folder``, read without changing them."""
        with self.client(user) as conn:
            typ, data = conn.select(folder, readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK", data
            result: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                uid = re.search(rb"UID (\d+)", item)
                flags = re.search(rb"FLAGS \(([^)]*)\)", item)
                if uid and flags:
                    result[int(uid.group(1))] = set(flags.group(1).decode().split())
            return result

    def bodies(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages in ``folder``, in UID order, read with BODY.PEEK[]."""
        with self.client(user) as conn:
            typ, data = conn.select(folder, readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
            assert typ == "OK", data
            items: list[Any] = list(data)  # (header, literal) tuples and b")" closers
            return [bytes(item[1]) for item in items if isinstance(item, tuple)]
