"""The station daemon under a real systemd PID 1: ``systemd/wipe-agent.service`` as shipped, with its
tmpfiles/sysusers snippets and full hardening, in a guest whose PID 1 is the host's systemd
(``Guest(init="systemd")``: journald, udevd and the harness's command loop, nothing of the host's
boot). The unit goes to ``/run/systemd/system`` (the guest's systemd sees no other unit directory
of the host), the snippets to ``/usr/lib/{tmpfiles,sysusers}.d`` and are applied with
``systemd-sysusers``/``systemd-tmpfiles --create``; the station key is issued on the host.

Everything is read back from systemd (``systemctl show``), the journal, the registry (``wipe-agent
jobs --json`` from a shell), ``/proc``, the block device and the backing image, never taken from an
exit code. In the order the test does it:

1. ``Type=notify``: the unit is seen ``activating`` with a live main process and turns ``active`` only
   after READY (``StatusText`` then carries the daemon's status line, ``NotifyAccess=main``); with
   ``WatchdogSec=3`` its pings keep it alive (same PID, no restart, ``WatchdogTimestamp`` advancing)
   for more than twice that.
2. Under the full hardening the drive in an auto-start bay is sanitised by itself: zeros read back
   from outside the service (and on the host), a certificate that verifies against the CA; the API
   socket is 0660 root:wipe-operators; ``wipe-agent status --json`` works from a shell. The
   hardening is shown to be live: ``NoNewPrivs``, seccomp, the capability bounding set, a read-only
   root, and the device policy (a shell moved into the unit's cgroup is refused ``/dev/mem``, which
   it reads from outside, but reads the drive).
3. ``kill -9`` of the main process while a job runs → ``Restart=on-failure`` brings it back; the job
   is ``interrupted``, without a certificate.
4. The watchdog fires: a SIGSTOPped daemon misses its pings; systemd logs the timeout, kills it
   (``Failed with result 'watchdog'``) and restarts it.
5. ``systemctl stop`` in the middle of a job ends cleanly (``Result=success``) in < 10 s, with the
   daemon's "station stopped" in ``journalctl -u`` and the job ``interrupted``.

Test-only changes to the unit, in one drop-in (nothing else differs from the shipped file):
``WatchdogSec=3`` (shipped: 30), and — only when the interpreter or the checkout lives under
``/root``/``/home`` or ``/tmp`` (here: pyenv in ``/root``) — ``ProtectHome=tmpfs`` plus
``BindReadOnlyPaths=`` of exactly those trees, which ``ProtectHome=yes``/``PrivateTmp=yes`` hide from
the service. ``ExecStart=/usr/bin/wipe-agent`` stays: the guest gets a ``/usr/bin/wipe-agent`` that
runs this checkout with the test run's interpreter (``python -P -m agent.cli.main``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from certs.pki import init_ca, issue_station, make_bundle
from certs.verify import verify_file
from tests.system.qemu import REPOSITORY, Guest, Nvme

pytestmark = pytest.mark.system

UNIT = "wipe-agent.service"
STATION_ID = "guest-station"
WATCHDOG_SECONDS = 3
STOP_BOUND_SECONDS = 10.0  # the unit's TimeoutStopSec; the issue demands a stop well inside it
SMALL_SERIAL = "WA-SYSTEMD-SMALL"
BIG_SERIAL = "WA-SYSTEMD-BIG"
SMALL_BYTES = 16 << 20
# bay-2's drive: 512 MiB at 16 MiB/s (QEMU throttling), so a job on it runs for a minute on any host
BIG = Nvme(serial=BIG_SERIAL, size="512M", backend={"throttling.bps-total": str(16 << 20)})
STATUS_LINE = re.compile(r"^\d+ job\(s\) running, \d+ queued, \d+/\d+ bays occupied$")
PROPERTIES = ("ActiveState", "SubState", "Result", "MainPID", "NRestarts", "StatusText", "Type", "NotifyAccess",
              "WatchdogUSec", "WatchdogTimestampMonotonic", "ActiveEnterTimestampMonotonic",
              "ExecMainStartTimestampMonotonic")

STATION_TOML = f"""\
station_id = "{STATION_ID}"
organisation = "wipe-agent system tests"
[[bays]]
name = "bay-1"
match = {{ ID_SERIAL_SHORT = "{SMALL_SERIAL}" }}
auto_start = true
profile = "nist-clear-overwrite"
[[bays]]
name = "bay-2"
match = {{ ID_SERIAL_SHORT = "{BIG_SERIAL}" }}
auto_start = true
profile = "nist-clear-overwrite-full"
"""

# Installs the unit and its snippets as a package would, applies the snippets the way their
# systemd-*.service units do at boot, and starts the service without waiting for it.
INSTALL = """\
set -e
setup=/results/setup
# a fresh station: whatever the host left in its own state or configuration is not this test's
rm -rf /var/lib/wipe-agent /etc/wipe-agent
install -D -m 0644 systemd/wipe-agent.service /run/systemd/system/wipe-agent.service
install -D -m 0644 systemd/wipe-agent.tmpfiles.conf /usr/lib/tmpfiles.d/wipe-agent.conf
install -D -m 0644 systemd/wipe-agent.sysusers.conf /usr/lib/sysusers.d/wipe-agent.conf
systemd-sysusers wipe-agent.conf
systemd-tmpfiles --create wipe-agent.conf
install -m 0755 $setup/wipe-agent /usr/bin/wipe-agent
install -D -m 0644 $setup/test.conf /run/systemd/system/wipe-agent.service.d/test.conf
install -m 0644 $setup/station.toml /etc/wipe-agent/station.toml
cp -a $setup/state/pki /var/lib/wipe-agent/pki
systemctl daemon-reload
systemctl start --no-block wipe-agent.service
"""


# Read back from outside the service: its API socket, credentials, root mount, device policy, and the
# drive's bytes (O_DIRECT: no page cache between us and the device).
HARDENING = """\
for d in /sys/block/nvme*; do read -r s <$d/device/serial; [ "$s" = {serial} ] && name=${{d##*/}}; done
echo "socket $(stat -c '%a %U %G %F' /run/wipe-agent/api.sock)"
grep -E '^(NoNewPrivs|Seccomp|CapBnd):' /proc/{pid}/status
echo "root-mount $(awk '$5 == "/" {{print $6}}' /proc/{pid}/mountinfo)"
echo "mem-outside $(head -c1 /dev/mem >/dev/null 2>&1 && echo read || echo denied)"
sh -c 'echo $$ >/sys/fs/cgroup/system.slice/wipe-agent.service/cgroup.procs
echo "mem-inside $(head -c1 /dev/mem >/dev/null 2>&1 && echo read || echo denied)"
echo "drive-inside $(dd if=/dev/'$name' bs=512 count=1 iflag=direct status=none | wc -c)"'
dd if=/dev/$name bs=1M iflag=direct status=none | cmp -n {size} - /dev/zero && echo "drive zeros"
"""


def _hidden_trees(paths: list[Path]) -> tuple[list[Path], bool]:
    """Of the trees the service must read, those ProtectHome=yes / PrivateTmp=yes hide, and whether
    any of them lies under a home directory."""
    hidden: list[Path] = []
    home = False
    for path in paths:
        parts = path.parts
        if parts[1:2] in (("root",), ("home",)) or parts[1:3] == ("run", "user"):
            home = True
        elif not (parts[1:2] == ("tmp",) or parts[1:3] == ("var", "tmp")):
            continue
        if not any(path.is_relative_to(other) for other in hidden):
            hidden.append(path)
    return hidden, home


def _drop_in(python: Path) -> str:
    trees = [REPOSITORY, Path(sys.prefix), Path(sys.base_prefix).resolve(), python.resolve().parent]
    hidden, home = _hidden_trees(sorted({tree.resolve() for tree in trees}, key=lambda tree: len(tree.parts)))
    lines = ["# test-only: see tests/system/test_systemd_service.py", "[Service]", f"WatchdogSec={WATCHDOG_SECONDS}"]
    if home:
        lines.append("ProtectHome=tmpfs")
    lines += [f"BindReadOnlyPaths={tree}" for tree in hidden]
    return "\n".join(lines) + "\n"


def _wrapper(python: Path) -> str:
    """``/usr/bin/wipe-agent`` for the guest: this checkout's code with the test run's interpreter."""
    return (f"#!/bin/sh\n# the console script, as installed for tests/system/test_systemd_service.py\n"
            f"PYTHONPATH={shlex.quote(str(REPOSITORY))} exec {shlex.quote(str(python))} -P -m agent.cli.main \"$@\"\n")


class Service:
    """``wipe-agent.service`` in a running systemd guest, read back through systemctl and journalctl."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest

    def sh(self, command: str, timeout: float = 120.0) -> str:
        """Run a shell command in the guest; its output (AssertionError with it if it fails)."""
        result = self.guest.run(command, timeout=timeout)
        assert result.exit_code == 0, f"{command!r} exited {result.exit_code}:\n{result.output}"
        return result.output

    def show(self) -> dict[str, str]:
        """The unit's properties, plus ``now`` (the guest's CLOCK_MONOTONIC-like uptime, in µs)."""
        output = self.sh(f"cat /proc/uptime; systemctl show {UNIT} -p {','.join(PROPERTIES)}")
        first, *lines = output.splitlines()
        state = dict(line.split("=", 1) for line in lines if "=" in line)
        state["now"] = str(int(float(first.split()[0]) * 1e6))
        return state

    def wait(self, predicate: Callable[[dict[str, str]], bool], what: str, timeout: float = 150.0,
             seen: list[dict[str, str]] | None = None) -> dict[str, str]:
        """Poll ``show()`` until ``predicate``; every sample goes to ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.show()
            if seen is not None:
                seen.append(state)
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {state}\n{self.journal_text()}")
            time.sleep(0.2)

    def journal(self) -> list[dict[str, Any]]:
        """``journalctl -u wipe-agent.service -o json``: systemd's lines about the unit and the daemon's."""
        output = self.sh(f"journalctl -u {UNIT} -o json --no-pager")
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]

    def journal_text(self) -> str:
        """The unit's journal as text (for failure messages)."""
        return self.guest.run(f"journalctl -u {UNIT} --no-pager -o short-monotonic | tail -n 60").output

    def wait_journal(self, predicate: Callable[[dict[str, Any]], bool], what: str,
                     timeout: float = 150.0) -> dict[str, Any]:
        """Poll the unit's journal until an entry passes ``predicate``; that entry."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.journal():
                if predicate(entry):
                    return entry
                # the daemon gave up on something it was meant to do: no use waiting any longer
                assert entry.get("PRIORITY") not in ("0", "1", "2", "3") or entry.get("_PID") == "1", (
                    f"the daemon logged an error while waiting for {what}: {entry.get('MESSAGE')} {entry}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for journal entry: {what}\n{self.journal_text()}")
            time.sleep(0.3)


def _daemon(message: str, pid: str, **fields: str) -> Callable[[dict[str, Any]], bool]:
    """A journal predicate: the daemon (process ``pid``) logged ``message`` with these fields."""
    def matches(entry: dict[str, Any]) -> bool:
        return (entry.get("MESSAGE") == message and entry.get("_PID") == pid
                and all(entry.get(key) == value for key, value in fields.items()))
    return matches


def _systemd(fragment: str, after: int = 0) -> Callable[[dict[str, Any]], bool]:
    """A journal predicate: systemd (PID 1) said something containing ``fragment`` about the unit."""
    def matches(entry: dict[str, Any]) -> bool:
        return (entry.get("_PID") == "1" and fragment in str(entry.get("MESSAGE", ""))
                and int(entry.get("__MONOTONIC_TIMESTAMP", 0)) > after)
    return matches


def _running(state: dict[str, str], restarts: int) -> bool:
    return state["ActiveState"] == "active" and state["NRestarts"] == str(restarts) and state["MainPID"] != "0"


def _durations(started: float, phases: dict[str, float]) -> str:
    """``name +seconds`` for each phase, from the previous one (the first from ``started``)."""
    previous, parts = started, []
    for name, moment in phases.items():
        parts.append(f"{name} +{moment - previous:.1f}")
        previous = moment
    return ", ".join(parts)


def _startup_seconds(state: dict[str, str]) -> float:
    """From exec of the main process to READY, by systemd's clock."""
    return (int(state["ActiveEnterTimestampMonotonic"]) - int(state["ExecMainStartTimestampMonotonic"])) / 1e6


# A root shell's process holding the drive open without O_EXCL (prints its pid).
HOLD = """\
for d in /sys/block/nvme*; do read -r s <$d/device/serial; [ "$s" = {serial} ] && name=${{d##*/}}; done
sh -c 'exec 3</dev/'$name'; exec sleep 600' >/dev/null 2>&1 &
echo $!
"""


@pytest.mark.timeout(600)
def test_station_daemon_under_systemd_pid1(guest_factory: Callable[..., Guest], tmp_path: Path) -> None:
    # The small drive carries data (not zeros) before the daemon sees it: reading back zeros means something.
    small_image = tmp_path / "small.raw"
    small_image.write_bytes(os.urandom(SMALL_BYTES))
    python = Path(os.path.abspath(sys.executable))
    started = time.monotonic()
    small = Nvme(serial=SMALL_SERIAL, size=SMALL_BYTES, image=small_image)
    guest = guest_factory([small], init="systemd", timeout=560, python=python)
    boot_seconds = guest.boot_seconds
    setup = guest.share / "setup"
    setup.mkdir()
    (setup / "station.toml").write_text(STATION_TOML)
    (setup / "test.conf").write_text(_drop_in(python))
    (setup / "wipe-agent").write_text(_wrapper(python))
    init_ca("wipe-agent system tests", tmp_path / "ca")
    issue_station(tmp_path / "ca", STATION_ID, setup / "state")
    bundle = make_bundle(tmp_path / "ca", tmp_path / "bundle.pem")
    service = Service(guest)
    service.sh(INSTALL)
    phases: dict[str, float] = {"booted": time.monotonic()}

    # 1. Type=notify: activating with a live main process, active only once READY came with a STATUS
    seen: list[dict[str, str]] = []
    first = service.wait(lambda state: state["ActiveState"] not in ("activating", "inactive"), "READY", seen=seen)
    assert _running(first, 0), (first, service.journal_text())
    ready_seconds = time.monotonic() - started
    assert any(state["ActiveState"] == "activating" and state["SubState"] == "start" and state["MainPID"] != "0"
               for state in seen), f"never saw the unit waiting for READY: {seen}"
    assert (first["Type"], first["NotifyAccess"], first["WatchdogUSec"]) == ("notify", "main", "3s"), first
    assert STATUS_LINE.match(first["StatusText"]), first["StatusText"]
    pid = first["MainPID"]
    service.wait_journal(_daemon("station ready", pid), "the daemon's 'station ready'")
    # ... from a shell, as an operator would (concurrently with the watchdog window below)
    status_command = guest.spawn("wipe-agent status --json")

    # Watchdog pings keep it alive past 2x WatchdogSec: same process, no restart, pings still arriving.
    def pinged_long_enough(state: dict[str, str]) -> bool:
        assert _running(state, 0) and state["MainPID"] == pid, (state, service.journal_text())
        last_ping = int(state["WatchdogTimestampMonotonic"])
        return last_ping - int(first["ActiveEnterTimestampMonotonic"]) > 2 * WATCHDOG_SECONDS * 1_000_000

    phases["ready"] = time.monotonic()
    alive = service.wait(pinged_long_enough, f"watchdog pings for > {2 * WATCHDOG_SECONDS} s", timeout=120)
    assert STATUS_LINE.match(alive["StatusText"]), alive["StatusText"]

    phases["watchdog window"] = time.monotonic()
    # 2. Under the full hardening: the drive in bay-1 is sanitised by itself.
    finished = service.wait_journal(_daemon("job finished", pid, BAY="bay-1"), "bay-1's job to finish", timeout=240)
    assert finished.get("OUTCOME") == "sanitised", (finished, service.journal_text())
    sanitised_job = finished["JOB_ID"]
    # The hardening is live, not just written down (a kernel or systemd lacking a feature may skip
    # it): read back the daemon's credentials and root mount; a shell put in the service's cgroup is
    # refused /dev/mem (it reads it from outside) but may read the drive.
    readback = service.sh(HARDENING.format(pid=pid, serial=SMALL_SERIAL, size=SMALL_BYTES))
    facts = dict(line.split(None, 1) for line in readback.splitlines() if line.strip())
    assert facts["socket"] == "660 root wipe-operators socket", readback
    assert (facts["NoNewPrivs:"], facts["Seccomp:"]) == ("1", "2"), readback
    # CHOWN, DAC_READ_SEARCH, SYS_RAWIO, SYS_PTRACE, SYS_ADMIN
    assert int(facts["CapBnd:"], 16) == (1 << 0) | (1 << 2) | (1 << 17) | (1 << 19) | (1 << 21), readback
    assert facts["root-mount"].split(",")[0] == "ro", readback
    assert (facts["mem-outside"], facts["mem-inside"], facts["drive-inside"]) == ("read", "denied", "512"), readback
    assert facts["drive"] == "zeros", readback
    phases["job 1 sanitised"] = time.monotonic()
    status_result = status_command.wait(timeout=180)
    assert status_result.exit_code == 0, status_result.output
    status = json.loads(status_result.output)
    assert status["station_id"] == STATION_ID and status["pid"] == int(pid), status
    assert [bay["name"] for bay in status["bays"]] == ["bay-1", "bay-2"], status
    # The guard sees a plain opener from inside the hardened service: a root shell (more capabilities
    # than the daemon) holds the drive open; 'start' re-assesses and refuses, naming it.
    holder = service.sh(HOLD.format(serial=SMALL_SERIAL)).split()[-1]
    refused = guest.run("wipe-agent start bay-1 --json")
    assert refused.exit_code == 2, refused.output
    error = json.loads(refused.output[refused.output.index("{"):])["error"]
    assert error["code"] == "drive_protected" and f"busy: open by pid {holder} (sleep)" in error["message"], error
    service.sh(f"kill {holder}")
    # The operator takes the sanitised drive out.
    guest.unplug(small)
    service.wait_journal(_daemon("drive removed", pid, BAY="bay-1"), "the daemon to see the drive go")
    phases["status CLI, unplug"] = time.monotonic()

    # 3. kill -9 while a job runs → Restart=on-failure; the registry calls that job interrupted.
    guest.hotplug(BIG)
    job = service.wait_journal(_daemon("job started", pid, BAY="bay-2"), "bay-2's job to start")
    killed_job = job["JOB_ID"]
    service.sh(f"kill -9 {pid}")
    second = service.wait(lambda state: _running(state, 1) and state["MainPID"] != pid, "the restart after kill -9")
    pid = second["MainPID"]
    # The registry from a shell (the restarted daemon reconciled it before READY), while we go on.
    jobs_command = guest.spawn("wipe-agent jobs --json")
    phases["kill -9, restart"] = time.monotonic()

    # 1 (end). The watchdog fires: a stopped daemon misses its pings; systemd kills it (its SIGABRT is
    # followed by a SIGCONT, so even a stopped process receives it) and restarts it.
    before = int(service.show()["now"])
    service.sh(f"kill -STOP {pid}")
    service.wait_journal(_systemd("Watchdog timeout", after=before), "systemd's watchdog timeout", timeout=60)
    service.wait_journal(_systemd("Failed with result 'watchdog'", after=before), "the watchdog failure")
    third = service.wait(lambda state: _running(state, 2) and state["MainPID"] != pid, "the watchdog's restart")
    watchdog_seconds = (int(third["ActiveEnterTimestampMonotonic"]) - before) / 1e6
    pid = third["MainPID"]
    phases["watchdog kill, restart"] = time.monotonic()

    # The drive is still in its auto-start bay: a new attempt starts. Stop the station in the middle of
    # it (an overwrite with full read-back at 16 MiB/s: it outlasts the registry query by far).
    restarted = service.wait_journal(_daemon("job started", pid, BAY="bay-2"), "bay-2's job to start again")
    jobs_result = jobs_command.wait(timeout=180)
    assert jobs_result.exit_code == 0, jobs_result.output
    phases["job started, jobs CLI"] = time.monotonic()
    stop = service.sh("read -r a _ </proc/uptime; systemctl stop wipe-agent.service; read -r b _ </proc/uptime; "
                      "echo \"$a $b\"")
    stop_started, stop_ended = map(float, stop.split()[-2:])
    stop_seconds = stop_ended - stop_started
    stopped = service.show()
    assert (stopped["ActiveState"], stopped["Result"]) == ("inactive", "success"), stopped
    after = int(stop_started * 1e6)
    stopping = service.wait_journal(_systemd("Stopping wipe-agent.service", after=after), "systemd's 'Stopping'")
    deactivated = service.wait_journal(_systemd("Deactivated successfully", after=after), "a clean stop")
    journal_stop_seconds = (int(deactivated["__MONOTONIC_TIMESTAMP"]) - int(stopping["__MONOTONIC_TIMESTAMP"])) / 1e6
    assert stop_seconds < STOP_BOUND_SECONDS and journal_stop_seconds < STOP_BOUND_SECONDS, (stop, journal_stop_seconds)
    service.wait_journal(_daemon("station stopped", pid, STATION=STATION_ID), "the daemon's 'station stopped'")
    cut_short = service.wait_journal(_daemon("job finished", pid, JOB_ID=restarted["JOB_ID"]), "the stopped job")
    assert cut_short.get("OUTCOME") == "interrupted", cut_short

    phases["stop"] = time.monotonic()
    # The registry, read from a shell after the stop: one sanitised job with a certificate; the
    # killed one interrupted, without. Who wrote "interrupted" is a race the outcome does not depend
    # on: the restarted daemon's reconcile (the worker was SIGKILLed by systemd, KillMode=mixed) or
    # the worker itself (PR_SET_PDEATHSIG's SIGTERM cancelled it before systemd's SIGKILL landed).
    jobs = {row["job_id"]: row for row in json.loads(jobs_result.output)["jobs"]}
    assert jobs[sanitised_job]["state"] == "sanitised" and jobs[sanitised_job]["certificate"], jobs[sanitised_job]
    assert jobs[killed_job]["state"] == "interrupted", jobs[killed_job]
    assert jobs[killed_job]["certificate"] is None, jobs[killed_job]
    service.sh(f"cp {shlex.quote(jobs[sanitised_job]['certificate'])} /results/certificate.pdf")
    guest.shutdown()
    phases["power-off"] = time.monotonic()

    report = verify_file(guest.share / "certificate.pdf", bundle)
    assert report.valid, report.to_json()
    with open(small_image, "rb") as image:  # read back on the host too
        data = image.read()
    assert len(data) == SMALL_BYTES and data.count(0) == SMALL_BYTES
    sys.stderr.write(f"systemd guest: boot {boot_seconds:.1f} s, first READY {ready_seconds:.1f} s after QEMU start, "
                     f"exec→READY {_startup_seconds(first):.1f}/{_startup_seconds(second):.1f}/"
                     f"{_startup_seconds(third):.1f} s, watchdog: SIGSTOP→active again {watchdog_seconds:.1f} s, "
                     f"stop {stop_seconds:.2f} s (journal {journal_stop_seconds:.2f} s), "
                     f"killed job: {jobs[killed_job]['reason']!r}, "
                     f"whole test {time.monotonic() - started:.1f} s; phases: {_durations(started, phases)}\n")
