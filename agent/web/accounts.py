"""Local accounts of the web console: name, role, title, partner, and an scrypt password hash.

The file (JSON, written atomically) holds no password, only ``scrypt$N$r$p$salt$hash`` (RFC 7914,
N=2^15, r=8, p=1: 32 MiB and about 0.1 s per check). A check of an unknown name still costs one
scrypt, so the time of a refusal does not tell which names exist. The file is 0600 when this code
creates it; a rewrite keeps the owner, group and mode it had (``chgrp wipe-web``, ``chmod 0640`` so
the console's own user reads it), and a file that others may read or anyone but its owner may write
is refused, and so is a symbolic link, or a file owned by anyone but root or the reading user. A change
(``add``, ``remove``) takes an exclusive lock beside the file and re-reads it first, so changes made at
once are all kept, and writes a fresh temporary file (``O_EXCL``: never a planted link) renamed over it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

FORMAT = "wipe-agent-web-accounts/1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 12
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # Unicode categories no title may hold
MAX_FILE = 16 * 1024 * 1024  # bytes: far more than any station's accounts
PARTNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._&()-]{0,79}")


class Role(StrEnum):
    """What a signed-in person may see and do."""

    OPERATOR = "operator"      # the station's bays: start, cancel
    COMPLIANCE = "compliance"  # sample, exceptions, per-asset records, downloads
    PARTNER = "partner"        # only the manifests allocated to their own partner name
    AUDITOR = "auditor"        # read-only everything, the audit chains' status
    ADMIN = "admin"            # everything


class AccountsError(ConfigError):
    """The accounts file or an account change is invalid."""

    code = "bad_accounts"


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``password`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=SCRYPT_MAXMEM, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


_DUMMY = hash_password(secrets.token_urlsafe(16))


def check_password(stored: str, password: str) -> bool:
    """True when ``password`` matches ``stored`` (constant-time compare; a malformed hash never matches)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or int(n) > 2**20 or int(r) > 16 or int(p) > 4:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r),
                                p=int(p), maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)


@dataclass(frozen=True)
class Account:
    """One person who may sign in."""

    name: str
    role: Role
    title: str
    password_hash: str
    partner: str | None = None  # a partner account sees only this partner's manifests

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role.value, "title": self.title, "partner": self.partner,
                "password_hash": self.password_hash}


def _account(item: Any, where: str) -> Account:
    if not isinstance(item, dict) or set(item) != {"name", "role", "title", "partner", "password_hash"}:
        raise AccountsError(f"{where}: an account is an object with name, role, title, partner, password_hash")
    name, role, title, partner, stored = (item[k] for k in ("name", "role", "title", "partner", "password_hash"))
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AccountsError(f"{where}: bad account name {name!r}")
    if role not in {r.value for r in Role}:
        raise AccountsError(f"{where}: account {name}: unknown role {role!r} (one of {', '.join(Role)})")
    if not isinstance(title, str) or not title.strip() or len(title) > 120:
        raise AccountsError(f"{where}: account {name}: title must be 1-120 characters")
    if any(unicodedata.category(ch) in HIDDEN for ch in title):
        # the title goes to pages, terminals, the audit chains and the daemon's job records: no line breaks,
        # terminal escapes or bidirectional overrides (a title that reads as someone else's)
        raise AccountsError(f"{where}: account {name}: the title has a control or formatting character "
                            f"({next(ch for ch in title if unicodedata.category(ch) in HIDDEN)!a})")
    if (role == Role.PARTNER) != (partner is not None):
        raise AccountsError(f"{where}: account {name}: a partner account (and only one) names its partner")
    if partner is not None and (not isinstance(partner, str) or not PARTNER.fullmatch(partner)):
        raise AccountsError(f"{where}: account {name}: bad partner name {partner!r}")
    if not isinstance(stored, str) or not stored.startswith("scrypt$") or stored.count("$") != 5:
        raise AccountsError(f"{where}: account {name}: password_hash is not an scrypt hash")
    return Account(name, Role(role), title, stored, partner)


class Accounts:
    """The accounts file; read once at start and re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._accounts: dict[str, Account] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file (a missing file is no accounts); a bad file raises :class:`AccountsError`.

        The file is opened without following a symbolic link and judged by what was opened (no swap between
        the check and the read): its mode, and its owner, root or this process's user, since whoever owns
        it could give themselves any role."""
        where = str(self.path)
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self._accounts, self._stamp = {}, None
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise AccountsError(f"{where}: is a symbolic link: the accounts file must be a regular file") from None
            raise AccountsError(f"{where}: cannot read accounts: {exc.strerror}") from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise AccountsError(f"{where}: not a regular file")
        with os.fdopen(descriptor, "rb") as handle:
            # a rewrite is a new inode (os.replace); a chmod or chown changes ctime only
            stamp = (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)
            if stamp == self._stamp:
                return
            if info.st_mode & 0o027:
                raise AccountsError(f"{where}: mode {info.st_mode & 0o777:04o} lets others read it or its group "
                                    f"write it: chmod 0600 (or 0640 for the console's group)")
            if info.st_uid not in (0, os.geteuid()):
                raise AccountsError(f"{where}: owned by uid {info.st_uid}, not root or this user: whoever owns it "
                                    f"can give themselves any role (chown root)")
            try:
                text = handle.read(MAX_FILE + 1).decode("utf-8")
                if len(text) > MAX_FILE:
                    raise ValueError(f"larger than {MAX_FILE} bytes")
                data = json.loads(text)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise AccountsError(f"{where}: cannot read accounts: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("accounts"), list):
            raise AccountsError(f"{where}: not a wipe-agent accounts file (format {FORMAT})")
        accounts: dict[str, Account] = {}
        for index, item in enumerate(data["accounts"]):
            account = _account(item, f"{where}: accounts[{index}]")
            if account.name in accounts:
                raise AccountsError(f"{where}: account {account.name} appears twice")
            accounts[account.name] = account
        self._accounts, self._stamp = accounts, stamp

    def get(self, name: str) -> Account | None:
        return self._accounts.get(name)

    def all(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.name)

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account when name and password match; otherwise None, after the same work."""
        account = self._accounts.get(name)
        if account is None:
            check_password(_DUMMY, password)
            return None
        return account if check_password(account.password_hash, password) else None

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Account]]:
        """The accounts as the file holds them now, under an exclusive lock beside it, for one change: two
        ``web account add`` at once each see the other's account (neither change is lost)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_name(f".{self.path.name}.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            self.reload()
            yield dict(self._accounts)
        finally:
            os.close(lock)  # releases the lock

    def _write(self, accounts: dict[str, Account]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        payload = json.dumps({"format": FORMAT, "accounts": [a.to_json() for a in sorted(
            accounts.values(), key=lambda a: a.name)]}, indent=2) + "\n"
        # a new file of our own: never a name planted beforehand (a symbolic or hard link to another file)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                try:  # keep the group and mode the administrator gave the file (never more than 0640)
                    before = os.stat(self.path, follow_symlinks=False)
                    os.fchown(handle.fileno(), before.st_uid, before.st_gid)
                    os.fchmod(handle.fileno(), before.st_mode & 0o640)
                except FileNotFoundError:
                    pass
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._stamp = None
        self.reload()

    def add(self, name: str, role: Role, title: str, password: str, partner: str | None = None,
            *, replace: bool = False) -> Account:
        """Add (or with ``replace`` change) an account; the password is checked and hashed here."""
        if len(password) < MIN_PASSWORD:
            raise AccountsError(f"the password must have at least {MIN_PASSWORD} characters")
        account = _account({"name": name, "role": role.value, "title": title, "partner": partner,
                            "password_hash": hash_password(password)}, "account")
        with self._changing() as current:
            if name in current and not replace:
                raise AccountsError(f"account {name} exists (use --replace to change it)")
            self._write({**current, name: account})
        return account

    def remove(self, name: str) -> None:
        with self._changing() as current:
            if name not in current:
                raise AccountsError(f"no account {name}")
            self._write({k: v for k, v in current.items() if k != name})
