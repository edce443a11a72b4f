"""The real command line against hostile input: one line on stderr, a non-zero exit, nothing changed.

Each case runs ``python -m agent.cli.main`` in a subprocess (the console script's own entry point)
and checks the exit code, that stderr is exactly one line, and that no traceback appears anywhere.
Corrupt registries are checksummed before and after; a drive offered with a broken registry is
checksummed too: it must not be touched.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.store.registry import RUN_AS_ROOT, SCHEMA_VERSION, Registry
from tests.conftest import WIPE_AGENT, LoopDevice, run_cli

PROFILE = "nist-clear-overwrite"


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single stderr line of a refused command (asserting the exit code and no traceback)."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def sha256(path: Path | str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture
def good_registry(state_dir: Path) -> Path:
    """A real registry (schema created by the code under test), closed, as a station leaves it."""
    Registry(state_dir).open().close()
    return state_dir / "registry.sqlite3"


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, it is an operator's shopping list\n" * 200)


def _truncated_mid_page(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 1000)


def _truncated_at_a_page(path: Path) -> None:
    os.truncate(path, 2 * 4096)


def _other_sqlite(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)")
    db.close()


def _newer_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()


def _zeroed_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:100] = bytes(100)
    path.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage": (_garbage, "file is not a database"),
    "truncated mid-page": (_truncated_mid_page, "truncated"),
    "truncated at a page boundary": (_truncated_at_a_page, "malformed"),
    "another program's sqlite": (_other_sqlite, "no wipe-agent schema"),
    "newer schema": (_newer_schema, "schema 99, newer than this wipe-agent"),
    "zeroed header": (_zeroed_header, "file is not a database"),
}
REGISTRY_COMMANDS = [["jobs"], ["job", "abc"], ["eligibility", "ASSET-1"], ["audit", "verify"],
                     ["jobs", "--json"]]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_registry_is_refused_and_left_untouched(good_registry: Path, damage: str) -> None:
    corrupt, expected = DAMAGE[damage]
    corrupt(good_registry)
    before = sha256(good_registry)
    for command in REGISTRY_COMMANDS:
        result = run_cli(*command)
        if "--json" in command:
            assert result.returncode == 2 and '"bad_config"' in result.stdout and "Traceback" not in result.stderr
        else:
            line = one_line_error(result)
            assert expected in line and str(good_registry) in line, line
            assert "refusing; nothing was changed" in line
        assert sha256(good_registry) == before, f"{command} changed the registry"
    # no journal files were left beside it either (nothing opened it for writing)
    assert sorted(path.name for path in good_registry.parent.iterdir()) == ["registry.sqlite3"]


def test_the_daemon_refuses_a_damaged_registry(good_registry: Path, tmp_path: Path) -> None:
    _garbage(good_registry)
    before = sha256(good_registry)
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "s1"\nstate_dir = "{good_registry.parent}"\n'
                      f'api_socket = "{tmp_path}/api.sock"\n')
    result = run_cli("--config", str(config), "run", "--udev-source", "kernel", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "is not a wipe-agent registry or is corrupt" in result.stderr
    assert sha256(good_registry) == before


def test_damaged_records_in_a_sound_registry_are_one_line(good_registry: Path, state_dir: Path) -> None:
    """SQLite is fine, a job's stored JSON is not: `jobs` and `job` say which job, no KeyError."""
    with sqlite3.connect(good_registry) as db:
        db.execute("INSERT INTO drives(model, serial, transport, media, size_bytes, identity_json, first_seen, "
                   "last_seen) VALUES('m', 's', 'sata', 'hdd', 1, '{\"model\": \"m\"}', 'x', 'x')")
        db.execute("INSERT INTO jobs(id, drive_id, device_path, profile, operator, authorised_by, state, created_at,"
                   " decisions_json) VALUES('feedface00000000', 1, '/dev/sdx', 'p', 'o', 'o', 'failed', 'x', '[[[')")
    db.close()
    for command in (["jobs"], ["job", "feedface"]):
        line = one_line_error(run_cli(*command))
        assert "feedface00000000" in line and "damaged" in line, line


def test_a_registry_directory_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("x")
    assert "is a file" in one_line_error(run_cli("--state-dir", str(blocker), "jobs"))  # click's check
    line = one_line_error(run_cli("jobs", env={"WIPE_AGENT_STATE_DIR": str(blocker)}))  # ours
    assert "is not a directory" in line, line
    assert blocker.read_text() == "x"


@pytest.mark.root
def test_a_registry_on_a_read_only_filesystem(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        Registry(mount / "state").open().close()
        before = sha256(mount / "state" / "registry.sqlite3")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        for command in REGISTRY_COMMANDS[:4]:
            line = one_line_error(run_cli("--state-dir", str(mount / "state"), *command))
            assert "read-only filesystem" in line, line
        assert sha256(mount / "state" / "registry.sqlite3") == before
        # and a state directory that does not exist yet cannot be made there
        line = one_line_error(run_cli("--state-dir", str(mount / "new"), "jobs"))
        assert "cannot create it" in line and "Read-only file system" in line, line
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.root
def test_a_full_state_filesystem_is_said_plainly(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    # room for a registry with every table of its ladder (about 40 pages) and its WAL
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        Registry(mount / "state").open().close()
        # a registry of the previous schema: opening it must write (its upgrade), which a full filesystem refuses
        # (a current one is read without writing: every table exists from its first open)
        db = sqlite3.connect(mount / "state" / "registry.sqlite3")
        try:
            with db:
                db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION - 1),))
        finally:
            db.close()  # before the umount below, also on failure
        before = sha256(mount / "state" / "registry.sqlite3")
        filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(filler, bytes(4096)):
                pass
        except OSError:
            pass  # ENOSPC: the filesystem is full now
        finally:
            os.close(filler)
        line = one_line_error(run_cli("--state-dir", str(mount / "state"), "jobs"))
        assert "the state filesystem is full" in line, line
        assert sha256(mount / "state" / "registry.sqlite3") == before
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- as an unprivileged user -------------------------------------------------------------------
def _as_nobody(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *WIPE_AGENT, *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd()),
                                                          **(env or {})}, cwd=Path.cwd())


@pytest.mark.root
def test_unprivileged_runs_say_run_as_root(good_registry: Path, loop_factory: Callable[..., LoopDevice]) -> None:
    reachable = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r",
                                str(Path(WIPE_AGENT[0]))], capture_output=True, check=False)
    if reachable.returncode != 0:
        pytest.skip(f"an unprivileged user cannot read this checkout's {WIPE_AGENT[0]} (a checkout under /root?): "
                    "the program cannot even start as one")
    loop = loop_factory(4 << 20)
    os.chmod(good_registry.parent, 0o700)  # as /var/lib/wipe-agent is: root only
    os.chmod(good_registry.parent.parent, 0o755)
    for command in (["jobs"], ["job", "abc"], ["wipe", loop.path, "--profile", PROFILE, "--yes"],
                    ["eligibility", "ASSET-1"], ["audit", "verify"]):
        line = one_line_error(_as_nobody(*command))
        assert RUN_AS_ROOT in line and "unable to open database file" not in line, (command, line)
    line = one_line_error(_as_nobody("verify-media", loop.path))
    assert "needs read access" in line and "writing" not in line, line
    # a missing state directory a plain user cannot create
    line = one_line_error(_as_nobody("--state-dir", str(good_registry.parent / "sub"), "jobs"))
    assert RUN_AS_ROOT in line, line


# -- device arguments ----------------------------------------------------------------------------
@pytest.fixture
def not_devices(tmp_path: Path) -> Iterator[dict[str, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    regular = tmp_path / "image.img"
    regular.write_bytes(bytes(1 << 20))
    yield {"empty": "", "blank": "  ", "directory": str(tmp_path), "regular file": str(regular),
           "character device": "/dev/null", "fifo": str(fifo), "missing": "/dev/wipe-agent-no-such-disk",
           "slash only": "/", "dot dot": "/dev/../dev/"}


def _device_commands(device: str) -> list[list[str]]:
    return [["wipe", device, "--profile", PROFILE, "--yes"], ["verify-media", device], ["inspect", device]]


@pytest.mark.root
def test_arguments_that_are_not_block_devices_are_refused_and_nothing_recorded(
        state_dir: Path, not_devices: dict[str, str]) -> None:
    for kind, argument in not_devices.items():
        for command in _device_commands(argument):
            line = one_line_error(run_cli(*command))
            assert line.startswith(("wipe-agent: error: ", "error: ")), (kind, line)
    # the non-UTF-8 name goes in as bytes, as a shell would pass it
    result = subprocess.run([*WIPE_AGENT, "wipe", b"/dev/\xff\xfe", "--profile", PROFILE, "--yes"],
                            capture_output=True, timeout=60)
    assert result.returncode == 2 and b"Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    registry = Registry(state_dir).open()
    try:
        assert registry.jobs() == []  # not one bogus failed job
    finally:
        registry.close()


@pytest.mark.root
def test_a_trailing_slash_names_the_same_device(state_dir: Path, loop_factory: Callable[..., LoopDevice]) -> None:
    """``/dev/loopN/`` was a traceback and a bogus failed job: now it is ``/dev/loopN``, by device number."""
    loop = loop_factory(4 << 20)
    result = run_cli("wipe", loop.path + "/", "--profile", PROFILE, "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert loop.read() == bytes(loop.size)  # really wiped, through the resolved name
    registry = Registry(state_dir).open()
    try:
        assert [job.device_path for job in registry.jobs()] == [loop.path]
    finally:
        registry.close()
    assert run_cli("verify-media", loop.path + "//").returncode == 0


@pytest.mark.root
@pytest.mark.parametrize("damage", ["garbage", "truncated mid-page", "newer schema"])
def test_wipe_without_a_working_registry_never_touches_the_drive(
        good_registry: Path, loop_factory: Callable[..., LoopDevice], damage: str) -> None:
    loop = loop_factory(4 << 20)
    drive_before = hashlib.sha256(loop.read()).hexdigest()
    DAMAGE[damage][0](good_registry)
    registry_before = sha256(good_registry)
    line = one_line_error(run_cli("wipe", loop.path, "--profile", PROFILE, "--yes"))
    assert "refusing; nothing was changed" in line
    assert hashlib.sha256(loop.read()).hexdigest() == drive_before
    assert sha256(good_registry) == registry_before


# -- TOML inputs ----------------------------------------------------------------------------------
DEEP = "x = " + "[" * 5000 + "]" * 5000 + "\n"


def test_deeply_nested_toml_is_one_line_everywhere(tmp_path: Path, state_dir: Path) -> None:
    overrides = tmp_path / "profiles"
    overrides.mkdir()
    (overrides / "deep.toml").write_text("schema = 1\n" + DEEP)
    schemes = tmp_path / "schemes"
    schemes.mkdir()
    (schemes / "deep.toml").write_text(DEEP)
    station = tmp_path / "station.toml"
    station.write_text('station_id = "s1"\n' + DEEP)
    env = {"WIPE_AGENT_PROFILE_DIR": str(overrides), "WIPE_AGENT_SCHEME_DIR": str(schemes)}
    cases = [
        ["profiles", "check", str(overrides / "deep.toml")],
        ["profiles", "show", "deep"],
        ["profiles", "list"],  # a site override file is read by the listing too
        ["schemes", "check", str(schemes / "deep.toml")],
        ["schemes", "list"],
        ["--config", str(station), "jobs"],
        ["--config", str(station), "status"],
    ]
    for command in cases:
        line = one_line_error(run_cli(*command, env=env))
        assert ("nested more than 16 levels deep" in line and "deep.toml" in line) or "station.toml" in line, line


@pytest.mark.parametrize(("text", "message"), [
    ("schema = true\n", "schema must be 1, got True"),
    ('schema = "1"\n', "schema must be 1, got '1'"),
    ("schema = 1.0\n", "schema must be 1, got 1.0"),
])
def test_profiles_check_wants_an_integer_schema(tmp_path: Path, text: str, message: str) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(text + '[[steps]]\nmethod = "overwrite.zero"\n')
    assert message in one_line_error(run_cli("profiles", "check", str(profile)))


def test_file_inputs_that_are_not_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    huge = tmp_path / "huge.toml"
    huge.write_text("# padding\n" * 500_000)  # 5 MB: past every bound (TOML 256 KiB, JSON 4 MiB, dump)
    for path, message in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                          (huge, "larger than"), (tmp_path / "missing.toml", "no such")):
        for command in (["profiles", "check", str(path)], ["schemes", "check", str(path)],
                        ["--config", str(path), "jobs"], ["inspect", "--dump", str(path), "--kind", "ata-identify"],
                        ["health", "/dev/sdx", "--from-json", str(path)]):
            line = one_line_error(run_cli(*command))
            assert message in line, (command, line)
    line = one_line_error(run_cli("profiles", "check", str(tmp_path)))  # a directory
    assert "is a directory" in line


def test_non_utf8_profile_file(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_bytes(b"schema = 1\nsummary = \"\xff\xfe\"\n")
    assert "not UTF-8" in one_line_error(run_cli("profiles", "check", str(profile)))


# -- numbers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["1", "0", "-1", "15", "4097", "99999999999999999999999", "abc", ""])
def test_demo_size_out_of_range_is_one_line(size: str) -> None:
    line = one_line_error(run_cli("demo", "--size", size))
    assert "--size" in line


@pytest.mark.parametrize("limit", ["0", "-1", "99999999999999999999999", "abc", ""])
def test_jobs_limit_out_of_range_is_one_line(state_dir: Path, limit: str) -> None:
    assert "--limit" in one_line_error(run_cli("jobs", "--limit", limit))


def test_usage_errors_are_one_line() -> None:
    for command in (["no-such-command"], ["wipe"], ["wipe", "/dev/null"], ["jobs", "--no-such-option"],
                    ["verify-media", "/dev/null", "--mode", "quick"]):
        line = one_line_error(run_cli(*command))
        assert "--help" in line, line


def test_the_console_script_has_the_same_entry_point() -> None:
    """The tests run ``python -m agent.cli.main``; the installed script must be that same main()."""
    script = Path(sys.executable).with_name("wipe-agent")
    if not script.exists():
        pytest.skip("no console script in this environment")
    result = subprocess.run([str(script), "demo", "--size", "1"], capture_output=True, text=True, timeout=60)
    assert one_line_error(result).endswith("got 1")


def test_init_ca_never_makes_a_shared_directory_private(tmp_path: Path) -> None:
    """``pki init-ca --out /tmp`` chmodded /tmp to 0700; a directory that holds anything is refused."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    os.chmod(shared, 0o1777)
    (shared / "someone-else.txt").write_text("x")
    result = run_cli("pki", "init-ca", "--org", "X", "--out", str(shared))
    assert "is not empty" in one_line_error(result, code=1)
    assert shared.stat().st_mode & 0o7777 == 0o1777
    assert sorted(path.name for path in shared.iterdir()) == ["someone-else.txt"]
    assert "exists and is not a directory" in one_line_error(
        run_cli("pki", "init-ca", "--org", "X", "--out", str(shared / "someone-else.txt")), code=1)


def test_non_utf8_arguments_are_refused_once_at_the_door() -> None:
    for command in ([b"job", b"\xff\xfe"], [b"start", b"bay-\xff"], [b"host", b"add", b"\xff"]):
        result = subprocess.run([*WIPE_AGENT, *command], capture_output=True, timeout=60)
        assert result.returncode == 2 and b"Traceback" not in result.stderr
        assert result.stderr.count(b"\n") == 1 and b"not valid UTF-8" in result.stderr


def test_non_ascii_bay_and_job_names_reach_the_daemon_as_one_segment(tmp_path: Path) -> None:
    """``start bäy`` was a UnicodeEncodeError in the request line; a name no bay or job can have (the
    configuration allows letters, digits, . _ - only) is refused before any request is made."""
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "s1"\napi_socket = "{tmp_path}/api.sock"\nstate_dir = "{tmp_path}/state"\n')
    for command in (["start", "bäy"], ["cancel", "jöb/../x"], ["cancel", "--bay", "b ä y"]):
        line = one_line_error(run_cli("--config", str(config), *command))
        assert "not a valid" in line, line


@pytest.mark.root
def test_the_state_filesystem_filling_mid_job(tmp_path: Path, loop_factory: Callable[..., LoopDevice]) -> None:
    """ENOSPC under the registry while the drive is being written: one line, exit 1, and the job
    ends interrupted with route hold as soon as the registry can be written again."""
    mount = tmp_path / "small"
    mount.mkdir()
    # room for a registry with every table of its ladder (about 45 pages) and its WAL
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        loop = loop_factory(4 << 20)
        env = {**os.environ, "WIPE_AGENT_STATE_DIR": str(mount / "state")}
        result = subprocess.run(
            [sys.executable, "-m", "tests.unit.inputs.enospc_child", str(mount / "filler"),
             "wipe", loop.path, "--profile", PROFILE, "--yes"],
            capture_output=True, text=True, timeout=120, env=env)
        line = one_line_error(result, code=1)
        assert "the state filesystem is full" in line, line
        (mount / "filler").unlink()
        listed = run_cli("jobs", "--json", env={"WIPE_AGENT_STATE_DIR": str(mount / "state")})
        assert listed.returncode == 0, listed.stderr
        import json

        [job] = json.loads(listed.stdout)["jobs"]
        assert (job["state"], job["route"]) == ("interrupted", "hold")  # never sanitised, never destroy
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.root
def test_control_characters_in_drive_identity_are_shown_escaped(state_dir: Path) -> None:
    """A loop's serial is its backing path; ESC sequences in it must not repaint the operator's screen."""
    backing = Path(f"/dev/shm/wipe-agent-test-{os.getpid()}-\x1b[1A\x1b[2K\u202espoof.img")
    backing.write_bytes(bytes(4 << 20))
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        wiped = run_cli("wipe", device, "--profile", PROFILE, "--yes")
        assert wiped.returncode == 0, wiped.stderr
        registry = Registry(state_dir).open()
        job_id = registry.jobs()[0].id
        registry.close()
        for result in (wiped, run_cli("drives"), run_cli("jobs"), run_cli("job", job_id),
                       run_cli("verify-media", device)):
            shown = result.stdout + result.stderr
            assert "\x1b" not in shown and "\u202e" not in shown, shown
        assert "\\x1b[1A" in run_cli("job", job_id).stdout  # shown, escaped
        assert "\\u001b[1A" in run_cli("job", job_id, "--json").stdout  # the raw value, JSON-escaped
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        backing.unlink()


def test_a_bad_config_is_refused_by_every_command(tmp_path: Path) -> None:
    """``--config /dev/zero drives`` printed the drive list: the operator never learnt the site file was unreadable."""
    bad = tmp_path / "station.toml"
    bad.write_bytes(b'station_id = "\xff"\n')
    for config, message in ((str(bad), "not UTF-8"), ("/dev/zero", "not a regular file")):
        for command in (["drives"], ["profiles", "list"], ["pki", "bundle"]):
            assert message in one_line_error(run_cli("--config", config, *command)), command


@pytest.mark.root
def test_a_certificate_that_cannot_be_written_is_one_line_naming_the_job(
        state_dir: Path, configured_station: Path, tmp_path: Path, loop_factory: Callable[..., LoopDevice]) -> None:
    """The certificate folder is on a read-only mount (a real EROFS from the kernel): the job stays
    recorded as it ended, and the operator reads which job has no certificate."""
    ca = tmp_path / "ca"
    run_cli("pki", "init-ca", "--org", "Test Constabulary", "--out", str(ca), check=True)
    run_cli("pki", "issue-station", "--ca", str(ca), "--station-id", "station-07", "--state-dir", str(state_dir),
            check=True)
    certificates = state_dir / "certificates"
    certificates.mkdir()
    subprocess.run(["mount", "--bind", str(certificates), str(certificates)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(certificates)], check=True)
        loop = loop_factory(4 << 20)
        line = one_line_error(run_cli("wipe", loop.path, "--profile", PROFILE, "--yes"))
        assert "is recorded sanitised, but its certificate was not written" in line, line
        assert "Read-only file system" in line
    finally:
        subprocess.run(["umount", str(certificates)], check=False)
    registry = Registry(state_dir).open()
    try:
        [job] = registry.jobs()
        assert (job.state, job.certificate_path) == ("sanitised", None)
    finally:
        registry.close()


@pytest.mark.root
def test_an_immutable_registry_is_refused_untouched(good_registry: Path) -> None:
    """Root can write a 0444 file, but not one with the immutable attribute: say so, not "run as root"."""
    if subprocess.run(["chattr", "+i", str(good_registry)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable attribute (chattr +i)")
    try:
        before = sha256(good_registry)
        line = one_line_error(run_cli("jobs"))
        assert "cannot be written (immutable?)" in line and RUN_AS_ROOT not in line, line
        assert sha256(good_registry) == before
    finally:
        subprocess.run(["chattr", "-i", str(good_registry)], check=False)


@pytest.mark.parametrize(("arguments", "message"), [
    (["wipe", "/dev/null"], "--profile is required (see '"),
    (["verify-media", "/dev/null", "--mode", "quick"], "--mode must be one of sampling, full, not 'quick'"),
    (["host", "add", "PC-1", "--kind", "boat"], "--kind must be one of laptop, desktop, tablet, not 'boat'"),
    (["validate", "JOB", "--by", "A. Smith"], "--decision accept|reject is required"),
    (["jobs", "--colour"], "No such option '--colour'"),
    (["--colour", "jobs"], "No such option '--colour'"),
])
def test_usage_mistakes_click_finds_keep_the_one_line_and_json_contract(tmp_path: Path, arguments: list[str],
                                                                        message: str) -> None:
    """required=True and OneOf are declared on the options; what click refuses reads like every other refusal."""
    environment = {"WIPE_AGENT_STATE_DIR": str(tmp_path)}
    line = one_line_error(run_cli(*arguments, env=environment))
    assert line.startswith("wipe-agent: error: ") and message in line
    assert line.endswith(" --help')")  # the next step
    result = run_cli(*arguments, "--json", env=environment)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    import json

    error = json.loads(result.stdout)["error"]
    assert error == {"code": "bad_config", "message": line.removeprefix("wipe-agent: error: ")}
    assert not list(tmp_path.iterdir())  # refused before anything was opened


def test_json_after_the_end_of_options_is_an_argument_not_the_flag() -> None:
    from agent.cli.output import asks_for_json

    assert asks_for_json(["wipe", "--json"]) and not asks_for_json(["host", "add", "--", "--json"])
