"""The accounts file attacked where it lives: changes made at once, planted temporary names, a symbolic link
swapped in, a file another user owns (tests run as root, so another owner is a real chown)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.web.accounts import Accounts, AccountsError, Role

PASSWORD = "correct horse battery"


def names(path: Path) -> list[str]:
    return [item["name"] for item in json.loads(path.read_text())["accounts"]]


def test_two_changes_made_at_once_both_stay(tmp_path: Path) -> None:
    path = tmp_path / "web-accounts.json"
    Accounts(path).add("admin", Role.ADMIN, "Admin", PASSWORD)
    first, second = Accounts(path), Accounts(path)  # two `web account add` that read the file before either wrote
    first.add("alice", Role.OPERATOR, "Alice", PASSWORD)
    second.add("bob", Role.AUDITOR, "Bob", PASSWORD)
    assert names(path) == ["admin", "alice", "bob"]
    second.remove("alice")  # second never saw alice in memory; the file had her
    assert names(path) == ["admin", "bob"]
    with pytest.raises(AccountsError, match="exists"):
        first.add("bob", Role.OPERATOR, "Bob again", PASSWORD)  # first's memory lacks bob: the file decides


def test_a_planted_temporary_name_is_never_written_through(tmp_path: Path) -> None:
    path = tmp_path / "web-accounts.json"
    accounts = Accounts(path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    # whoever can write the folder plants the names a rewrite used to open (O_TRUNC through a hard link)
    os.link(victim, tmp_path / f".{path.name}.{os.getpid()}.tmp")
    (tmp_path / f".{path.name}.{os.getpid()}.tmp2").symlink_to(victim)
    accounts.add("admin", Role.ADMIN, "Admin", PASSWORD)
    assert victim.read_text() == "precious\n"
    assert names(path) == ["admin"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_nlink == 1
                and p.name != f".{path.name}.{os.getpid()}.tmp"]  # no temporary left behind


def test_a_symbolic_link_is_refused_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    Accounts(real).add("admin", Role.ADMIN, "Admin", PASSWORD)
    path = tmp_path / "web-accounts.json"
    path.symlink_to(real)
    with pytest.raises(AccountsError, match="symbolic link"):
        Accounts(path)


def test_a_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file another owner")
    path = tmp_path / "web-accounts.json"
    accounts = Accounts(path)
    accounts.add("admin", Role.ADMIN, "Admin", PASSWORD)
    os.chown(path, 65534, -1)  # nobody: it could rewrite the file and give itself the admin role
    with pytest.raises(AccountsError, match="owned by uid 65534"):
        accounts.reload()
    os.chown(path, 0, -1)
    accounts.reload()
    assert accounts.get("admin") is not None


def test_a_fifo_or_folder_in_its_place_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "web-accounts.json"
    os.mkfifo(path, 0o600)
    with pytest.raises(AccountsError, match="regular file"):
        Accounts(path)  # never blocks on the pipe
    path.unlink()
    path.mkdir(mode=0o700)
    with pytest.raises(AccountsError):
        Accounts(path)


@pytest.mark.parametrize("title", ["Ops\nadmin  Administrator", "\x1b[31mred", "Operator \u202enimda",
                                   "Zero\u200bwidth", "tab\there"])
def test_a_title_with_a_control_or_formatting_character_is_refused(tmp_path: Path, title: str) -> None:
    path = tmp_path / "web-accounts.json"
    accounts = Accounts(path)
    with pytest.raises(AccountsError, match="control or formatting"):
        accounts.add("eve", Role.OPERATOR, title, PASSWORD)
    accounts.add("eve", Role.OPERATOR, "Operator", PASSWORD)
    edited = json.loads(path.read_text())
    edited["accounts"][0]["title"] = title  # edited by hand: refused when read, like any bad field
    path.write_text(json.dumps(edited))
    with pytest.raises(AccountsError, match="control or formatting"):
        Accounts(path)


def test_a_title_in_any_script_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "web-accounts.json"
    Accounts(path).add("jose", Role.OPERATOR, "Técnico de almacén — 倉庫", PASSWORD)
    assert Accounts(path).get("jose") is not None
