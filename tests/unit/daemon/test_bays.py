"""A bay shows only the drive that is in it: seatings, the derived state, intake claims, the watch screen."""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.api.client import ApiClient, StationUnavailable
from agent.api.server import ApiServer
from agent.app import Application
from agent.cli.bay_view import RECONNECTING, WatchSession, bay_row, columns_for, render_status
from agent.config import Bay, StationConfig
from agent.daemon import station as station_module
from agent.daemon.bays import BayState, PullAdvice, derive_view
from agent.daemon.station import Station, boot_id
from agent.discovery.guard import Assessment
from agent.discovery.identity import DriveIdentity
from agent.discovery.monitor import INSERTED, REMOVED, DriveEvent, PipeDriveSource
from agent.operators import VIA_DAEMON, Operators, unnamed_text
from agent.store.registry import Registry

IDENTITY = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="TEST DRIVE", serial="SERIAL-A", firmware=None, vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=512, rotational=True, transport="sata", media="hdd",
    removable=False, read_only=False, id_path=None,
)

# an auto-start job nobody signed in for says so (agent.operators), never "station s1" as if a person
UNNAMED_AUTO_START = unnamed_text(os.geteuid(), VIA_DAEMON)


class _Guard:
    def assess(self, path: str, ignore_pids: Iterable[int] = ()) -> Assessment:
        return Assessment(path, "sdz", ())


class _Kernel:
    """The seam for ``medium_identity``: what dev_t and diskseq the medium at the node has now."""

    def __init__(self) -> None:
        self.dev_t, self.diskseq, self.written, self.size = 2049, 40, 1000, 1 << 30

    def __call__(self, name: str, path: str) -> tuple[int | None, int | None]:
        return self.dev_t, self.diskseq


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> _Kernel:
    fake = _Kernel()
    monkeypatch.setattr(station_module, "medium_identity", fake)
    monkeypatch.setattr(station_module, "sectors_written", lambda name: fake.written)
    monkeypatch.setattr(station_module, "medium_size", lambda name: fake.size)
    return fake


def _station(tmp_path: Path, auto_start: bool = False, registry: Registry | None = None) -> Station:
    config = StationConfig("s1", state_dir=tmp_path,
                           bays=(Bay("bay-1", (("ID_SERIAL_SHORT", "X"),), auto_start=auto_start, profile=None),))
    app = Application.from_config(config, identify=lambda path: IDENTITY, guard=_Guard())  # type: ignore[arg-type]
    station = Station(app, PipeDriveSource())
    station._registry = registry or Registry(tmp_path).open()
    station.store.create()
    return station


def _event(action: str) -> DriveEvent:
    return DriveEvent(action, "sdz", "/dev/sdz", {"ID_SERIAL_SHORT": "X"}, 1 << 30 if action == INSERTED else 0, "t")


def _bay(station: Station) -> dict[str, Any]:
    return station.status()["bays"][0]  # type: ignore[no-any-return]


def _finish(station: Station, outcome: str, **extra: Any) -> None:
    """The bay's job ends with ``outcome`` (what ``_finish`` hands to ``_release``)."""
    job = station.slots["bay-1"].job
    assert job is not None
    station.queue.clear()
    with station.lock:
        station._release(job, {"job_id": "J-" + outcome, "outcome": outcome, "certificate": None, **extra})


def test_removal_and_a_new_seating_clear_the_outcome(tmp_path: Path, kernel: _Kernel) -> None:
    station = _station(tmp_path)
    station._on_event(_event(INSERTED))
    with station.lock:
        station._enqueue(station.slots["bay-1"], "nist-purge", "alice")
    assert _bay(station)["state"] == "queued" and _bay(station)["safe_to_pull"]
    _finish(station, "sanitised")
    bay = _bay(station)
    assert (bay["state"], bay["outcome"]["job_id"]) == ("sanitised", "J-sanitised")
    station._on_event(_event(REMOVED))
    bay = _bay(station)
    assert bay["state"] == "empty" and bay["outcome"] is None and bay["pull"] == PullAdvice.NOTHING.value
    assert bay["previous"]["label"] == "previous drive S/N SERIAL-A: sanitised"
    kernel.diskseq = 41  # another medium - with the very same serial, as a loop over the same path would be
    station._on_event(_event(INSERTED))
    bay = _bay(station)
    assert bay["state"] == "present" and bay["outcome"] is None and bay["seating"]["diskseq"] == 41
    assert bay["previous"]["outcome"] == "sanitised"  # shown only as the previous drive's


def test_a_drive_written_after_its_job_is_no_longer_shown_sanitised(tmp_path: Path, kernel: _Kernel) -> None:
    station = _station(tmp_path)
    station._on_event(_event(INSERTED))
    with station.lock:
        station._enqueue(station.slots["bay-1"], "nist-purge", "alice")
    _finish(station, "sanitised")
    assert _bay(station)["state"] == "sanitised"  # nothing written since: still this seating's outcome
    kernel.written += 16384  # an automounter, a copy, a VM: 8 MiB written while the drive stays seated
    bay = _bay(station)
    assert bay["state"] == "present" and bay["outcome"] is None and bay["modified_since_job"]
    assert bay["needs_rerun"] and "written after its job (16384 sectors)" in bay["reason"]
    assert bay["previous"]["outcome"] == "sanitised" and "before it was written" in bay["previous"]["label"]
    assert station.slots["bay-1"].job is None  # nothing starts by itself; the operator re-runs it


def test_a_restart_does_not_prove_a_seating_written_since(tmp_path: Path, kernel: _Kernel) -> None:
    registry = Registry(tmp_path).open()
    done = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(done, "running", "method-start", method="overwrite.zero")
    registry.transition(done, "sanitised", "verified", route="reuse")
    station = _station(tmp_path, registry=registry)
    station.store.note_seating("bay-1", IDENTITY.model, IDENTITY.serial, 2049, 40, boot_id(), 1000, done)
    kernel.written = 1008  # written while the station was down
    station._coldplug = True
    station._on_event(_event(INSERTED))
    assert _bay(station)["state"] == "present"


def test_a_second_drive_matching_an_occupied_bay_is_shown_outside_it(tmp_path: Path, kernel: _Kernel) -> None:
    station = _station(tmp_path)
    station._on_event(_event(INSERTED))
    other = DriveEvent(INSERTED, "sdy", "/dev/sdy", {"ID_SERIAL_SHORT": "X"}, 1 << 30, "t")
    station._on_event(other)  # the bay's match fits it too (no per-port property)
    status = station.status()
    assert status["bays"][0]["drive"]["device"] == "/dev/sdz"  # the bay keeps the drive it holds
    outside = status["unbayed_drives"]
    assert [drive["device"] for drive in outside] == ["/dev/sdy"] and "already holds SERIAL-A" in outside[0]["note"]
    station._on_event(DriveEvent(REMOVED, "sdy", "/dev/sdy", {}, 0, "t"))
    assert station.status()["unbayed_drives"] == [] and _bay(station)["drive"]["device"] == "/dev/sdz"


def test_a_medium_changed_under_the_same_name_is_a_new_seating(tmp_path: Path, kernel: _Kernel) -> None:
    station = _station(tmp_path)
    station._on_event(_event(INSERTED))
    with station.lock:
        station._enqueue(station.slots["bay-1"], "nist-purge", "alice")
    _finish(station, "sanitised")
    kernel.diskseq = 99  # no removal event seen (a dropped uevent), but the kernel says a new medium
    station._on_event(_event(INSERTED))
    assert _bay(station)["state"] == "present" and _bay(station)["previous"]["outcome"] == "sanitised"


def test_a_job_ending_after_its_drive_was_pulled_is_the_previous_drive_s(tmp_path: Path, kernel: _Kernel) -> None:
    station = _station(tmp_path)
    station._on_event(_event(INSERTED))
    with station.lock:
        job = station._enqueue(station.slots["bay-1"], "nist-purge", "alice")
    station.queue.clear()
    job.state = "running"
    assert _bay(station)["state"] == "running" and _bay(station)["pull"] == "do not pull"
    assert not _bay(station)["safe_to_pull"]
    station._on_event(_event(REMOVED))
    kernel.diskseq = 41
    station._on_event(_event(INSERTED))  # drive B seated before A's worker reported
    with station.lock:
        station._release(job, {"job_id": "J-A", "outcome": "sanitised"})
    bay = _bay(station)
    assert bay["state"] == "present" and bay["outcome"] is None
    assert bay["previous"]["job_id"] == "J-A" and "SERIAL-A" in bay["previous"]["label"]


def test_sanitised_across_a_restart_only_for_the_proven_seating(tmp_path: Path, kernel: _Kernel) -> None:
    registry = Registry(tmp_path).open()
    done = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(done, "running", "method-start", method="overwrite.zero")
    registry.transition(done, "sanitised", "verified", route="reuse")
    first = _station(tmp_path, registry=registry)
    first.store.note_seating("bay-1", IDENTITY.model, IDENTITY.serial, 2049, 40, boot_id(), 1000, done)
    first._coldplug = True
    first._on_event(_event(INSERTED))  # the drive found at start-up, never pulled: same dev_t, diskseq, boot
    assert (_bay(first)["state"], _bay(first)["outcome"]["job_id"]) == ("sanitised", done)

    kernel.diskseq = 41  # re-seated while the station was down (or a look-alike with the same serial)
    second = _station(tmp_path, registry=registry)
    second._coldplug = True
    second._on_event(_event(INSERTED))
    bay = _bay(second)
    assert bay["state"] == "present" and bay["outcome"] is None
    assert bay["history"]["outcome"] == "sanitised" and "not this seating" in bay["history"]["label"]


def test_an_interrupted_drive_in_a_manual_bay_needs_a_re_run(tmp_path: Path, kernel: _Kernel) -> None:
    registry = Registry(tmp_path).open()
    old = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(old, "interrupted", "owner-gone", reason="the station was shut down during the job")
    station = _station(tmp_path, auto_start=False, registry=registry)
    station._restart_interrupted = [registry.job(old)]
    station._on_event(_event(INSERTED))
    bay = _bay(station)
    assert bay["state"] == "interrupted" and bay["needs_rerun"] and bay["reason"].startswith("needs re-run")
    assert bay["job"] is None  # a manual bay: the operator decides
    assert bay_row(bay).label == "needs re-run"


def test_intake_is_claimed_by_the_drive_that_writes_and_consumed_by_its_certified_end(tmp_path: Path) -> None:
    station = _station(tmp_path)
    intake = station.store.add_intake("bay-1", "LAPTOP-7", "HS-7", None, None, "bob")
    assert station.store.usable("bay-1", "ANY") == intake  # unclaimed: the next drive's
    station.store.claim(intake.id, "SERIAL-A", "J1")  # SERIAL-A started writing with it
    assert station.store.usable("bay-1", "SERIAL-B") is None  # never another drive's now
    claimed = station.store.usable("bay-1", "SERIAL-A")
    assert claimed is not None and claimed.claimed_serial == "SERIAL-A"
    station.store.consume(intake.id, "J2")
    assert station.store.pending("bay-1") is None


def test_derived_states() -> None:
    empty = derive_view(present=False, job=None, outcome=None, protected=(), waiting=False, history=None)
    assert (empty.state, empty.advice) == (BayState.EMPTY, PullAdvice.NOTHING)
    running = derive_view(present=True, job={"state": "verifying", "phase": "verify"}, outcome=None, protected=(),
                          waiting=False, history=None)
    assert (running.state, running.reason, running.advice) == (BayState.RUNNING, "verify", PullAdvice.DO_NOT_PULL)
    refused = derive_view(present=True, job=None, outcome={"outcome": "refused", "reason": "virtual media"},
                          protected=(), waiting=False, history=None)
    assert (refused.state, refused.reason) == (BayState.REFUSED, "virtual media")
    waiting = derive_view(present=True, job=None, outcome=None, protected=("busy: pid 9",), waiting=True, history=None)
    assert waiting.state is BayState.WAITING
    protected = derive_view(present=True, job=None, outcome=None, protected=("mounted",), waiting=False, history=None)
    assert protected.state is BayState.PROTECTED
    # the registry says this serial was sanitised once: still only "present" (history never becomes state)
    history = derive_view(present=True, job=None, outcome=None, protected=(), waiting=False,
                          history={"outcome": "sanitised", "job_id": "J"})
    assert history.state is BayState.PRESENT
    cancelled = derive_view(present=True, job=None, outcome={"outcome": "cancelled", "reason": "by bob"},
                            protected=(), waiting=False, history=None)
    assert cancelled.state is BayState.PRESENT


def _status(bays: list[dict[str, Any]]) -> dict[str, Any]:
    return {"station_id": "station-7", "running": 1, "queued": 0, "bays": bays, "unbayed_drives": []}


def _drive(serial: str) -> dict[str, Any]:
    return {"device": "/dev/sdb", "serial": serial, "model": "WDC WD10EZEX-08WN4A0", "protected": []}


WIDE_BAYS = [
    {"name": "front-bay-10", "state": "running", "drive": _drive("WD-WCC6Y0LNSXYZ1234"), "pull": "do not pull",
     "job": {"state": "verifying", "phase": "verify", "overall_progress": 0.75, "elapsed_seconds": 3725,
             "rate_bytes_per_second": 150 << 20, "eta_seconds": 600, "asset_tag": "MPS-LAP-0042"},
     "asset_tag": "MPS-LAP-0042"},
    {"name": "front-bay-11", "state": "interrupted", "needs_rerun": True,
     "reason": "needs re-run: job J did not finish", "drive": _drive("S3Z9NB0K123456X"), "pull": "safe to pull"},
    {"name": "front-bay-12", "state": "sanitised", "drive": _drive("ZA1B2C3D"), "pull": "safe to pull",
     "outcome": {"outcome": "sanitised", "job_id": "J3", "certificate": None,
                 "warning": "no certificate (this station has no signing key)"}},
    {"name": "front-bay-13", "state": "refused", "drive": _drive("LOOP-1"), "pull": "safe to pull",
     "reason": "profile nist-purge does not take virtual media (it takes: ssd, hdd)",
     "outcome": {"outcome": "refused", "job_id": None}},
    {"name": "front-bay-14", "state": "empty", "drive": None, "pull": "bay empty",
     "previous": {"label": "previous drive S/N OLD-1: sanitised", "outcome": "sanitised"}},
]


def _render(data: dict[str, Any], width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False).print(render_status(data, width))
    return out.getvalue()


def test_watch_at_80_columns_keeps_the_priority_columns_and_whole_bay_names() -> None:
    text = _render(_status(WIDE_BAYS), 80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert len(lines) <= 24, text
    header = next(line for line in lines if "BAY" in line)
    for column in ("BAY", "SERIAL", "PHASE", "PROGRESS", "STATE"):
        assert column in header, header
    rows = {name: next(line for line in lines if line.startswith(name)) for name in
            ("front-bay-10", "front-bay-11", "front-bay-12", "front-bay-13", "front-bay-14")}
    assert "75.0%" in rows["front-bay-10"] and "verify" in rows["front-bay-10"]
    assert "…6Y0LNSXYZ1234" in rows["front-bay-10"]  # the serial's distinctive tail
    assert "needs re-run" in rows["front-bay-11"]
    assert "sanitised" in rows["front-bay-12"]
    assert "empty" in rows["front-bay-14"] and "sanitised" not in rows["front-bay-14"]  # never the previous drive's
    assert "refused" in rows["front-bay-13"]
    assert "front-bay-13: refused: profile nist-purge does not take virtual media" in text.replace("\n", " ")
    assert "front-bay-12: no certificate" in text
    assert "do not pull: front-bay-10 (running)" in text
    assert "ELAPSED" in header and "1h02m" in rows["front-bay-10"]  # the first optional column fits at 80


def test_eight_bays_with_long_names_fit_24_lines_with_their_names_whole() -> None:
    bays = [{"name": f"rack-2-front-upper-bay-{index:02d}", "state": "running", "pull": "do not pull",
             "drive": _drive(f"WD-WCC6Y0LNSXYZ{index}"),
             "job": {"state": "running", "phase": "overwrite", "overall_progress": 0.5, "elapsed_seconds": 65}}
            for index in range(8)]
    text = _render(_status(bays), 80)
    lines = text.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), text
    for index in range(8):
        assert any(line.startswith(f"rack-2-front-upper-bay-{index:02d} ") for line in lines), text


def test_a_route_recorded_for_a_serial_is_a_note_not_the_drive_s_state() -> None:
    seated = {"name": "bay-1", "state": "present", "drive": _drive("BRIDGE-0001"), "pull": "safe to pull",
              "drive_route": {"route": "destroy", "reason": "3 failed jobs in a row", "at": "-"}}
    row = bay_row(seated)
    assert row.label == "present" and any("on record for destruction" in note for note in row.notes)
    failed = {**seated, "state": "failed", "reason": "media error",
              "outcome": {"outcome": "failed", "drive_route": "destroy", "job_id": "J"}}
    assert bay_row(failed).label == "failed → destroy"


def test_wider_consoles_add_rate_eta_and_asset() -> None:
    assert [header for header, _, _ in columns_for(80, 12)][-1] == "STATE"
    wide = [header for header, _, _ in columns_for(160, 12)]
    assert wide == ["BAY", "SERIAL", "PHASE", "PROGRESS", "ELAPSED", "ETA", "RATE", "ASSET", "STATE"]
    text = _render(_status(WIDE_BAYS), 160)
    assert "MPS-LAP-0042" in text and "157.3 MB/s" in text  # decimal units, as on the certificate and "10m00s" in text


class _Service:
    def __init__(self, name: str) -> None:
        self.name = name

    def status(self) -> dict[str, Any]:
        return _status([{"name": self.name, "state": "present", "drive": _drive("S-1"), "pull": "safe to pull"}])

    def __getattr__(self, item: str) -> Any:
        raise AssertionError(f"not used here: {item}")


@pytest.fixture
def socket_path() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="wa-watch-", dir="/tmp"))
    yield directory / "api.sock"
    (directory / "api.sock").unlink(missing_ok=True)
    directory.rmdir()


def test_watch_reconnects_after_the_daemon_restarts(socket_path: Path) -> None:
    client = ApiClient(socket_path, timeout=5)
    session = WatchSession(lambda: client.get("/v1/status"), lambda: 80)
    with pytest.raises(StationUnavailable):
        session.frame()  # no daemon at all when watch starts: an error the operator sees at once
    server = ApiServer(socket_path, _Service("bay-before"), "wipe-operators-test-nonexistent")  # type: ignore[arg-type]
    try:
        assert "bay-before" in _text(session.frame())
    finally:
        server.close()  # the daemon stops (a restart)
    restarting = _text(session.frame())
    assert RECONNECTING in restarting and not session.connected
    server = ApiServer(socket_path, _Service("bay-after"), "wipe-operators-test-nonexistent")  # type: ignore[arg-type]
    try:
        assert "bay-after" in _text(session.frame()) and session.connected
    finally:
        server.close()


def _text(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(renderable)
    return out.getvalue()


def test_a_proven_seating_is_not_wiped_again_at_start_up_a_look_alike_is(tmp_path: Path, kernel: _Kernel) -> None:
    registry = Registry(tmp_path).open()
    done = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(done, "running", "method-start", method="overwrite.zero")
    registry.transition(done, "sanitised", "verified", route="reuse")
    same = _station(tmp_path, auto_start=True, registry=registry)
    same.store.note_seating("bay-1", IDENTITY.model, IDENTITY.serial, 2049, 40, boot_id(), 1000, done)
    same._coldplug = True
    same._on_event(_event(INSERTED))
    assert same.slots["bay-1"].job is None and _bay(same)["state"] == "sanitised"
    kernel.diskseq = 41  # the same model and serial on another medium (the attack of issue 12's B1)
    other = _station(tmp_path, auto_start=True, registry=registry)
    other._coldplug = True
    other._on_event(_event(INSERTED))
    assert other.slots["bay-1"].job is not None and _bay(other)["state"] == "queued"


def test_start_answers_a_worker_refusal_as_a_refusal_with_its_reason(tmp_path: Path) -> None:
    from agent.daemon.station import ActiveJob, RequestError

    station = _station(tmp_path)
    job = ActiveJob(1, "bay-1", "/dev/sdz", "sdz", "nist-purge", "alice")
    job.final = {"job_id": "J-9", "outcome": "refused", "reason": "sdz1 is mounted on /media/evidence"}
    job.settled.set()
    with pytest.raises(RequestError) as refused:
        station._await_start(job, {"bay": "bay-1"})
    assert refused.value.code == "refused" and "J-9 refused: sdz1 is mounted" in refused.value.message
    assert refused.value.status == 409  # a 4xx: the CLI exits 2


def test_start_answers_queued_at_once_when_every_slot_is_taken(tmp_path: Path) -> None:
    from agent.daemon.station import ActiveJob

    station = _station(tmp_path)
    station.config = StationConfig("s1", state_dir=tmp_path, max_parallel_jobs=1, bays=station.config.bays)
    busy = ActiveJob(1, "bay-2", "/dev/sdy", "sdy", "nist-purge", "alice")
    busy.process = object()  # type: ignore[assignment]  # a running worker holds the only slot
    station.active[busy.key] = busy
    waiting = ActiveJob(2, "bay-1", "/dev/sdz", "sdz", "nist-purge", "alice")
    station.queue.append(waiting)
    answer = station._await_start(waiting, {"bay": "bay-1"})
    assert (answer["queued"], answer["job_id"], answer["state"]) == (True, None, "queued")


@pytest.mark.parametrize("args", [["start", "bay 1"], ["start", "../status"], ["start", ".."], ["cancel", "a b"],
                                  ["cancel", "--bay", "bay\n1"]])
def test_a_bay_or_job_id_that_cannot_be_one_is_a_clear_error(args: list[str], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agent.cli.station_commands import station_cli

    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "s"\nstate_dir = "{tmp_path}"\napi_socket = "{tmp_path}/api.sock"\n')
    result = CliRunner().invoke(station_cli, [*args, "--config", str(config)])
    assert result.exit_code == 2 and "not a valid" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("boot", "diskseq", "size", "inherits"), [
    ("this", 40, 1 << 30, True),  # a daemon restart, the drive never pulled
    ("this", 41, 1 << 30, False),  # same boot, another medium with the same serial (attack B6)
    ("other", 7, 1 << 30, True),  # a power cut: diskseq restarted, model, serial and size match
    ("other", 7, 1 << 29, False),  # across a reboot a look-alike of another size
])
def test_an_interrupted_job_s_host_link_goes_only_to_its_own_medium(
        tmp_path: Path, kernel: _Kernel, boot: str, diskseq: int, size: int, inherits: bool) -> None:
    registry = Registry(tmp_path).open()
    old = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1", "PC-OLD", {"serial": "HOST-OLD"})
    registry.transition(old, "interrupted", "owner-gone")
    station = _station(tmp_path, auto_start=True, registry=registry)
    station.store.note_job_medium(old, IDENTITY.model, IDENTITY.serial, 1 << 30, 2049, 40,
                                  boot_id() if boot == "this" else "another-boot")
    station._restart_interrupted = [registry.job(old)]
    kernel.diskseq, kernel.size = diskseq, size
    station._on_event(_event(INSERTED))
    job = station.slots["bay-1"].job
    assert job is not None  # wiped either way: an interrupted or unknown drive is never left as it is
    if inherits:  # the asset and host link carry over; the person is whoever is signed in now (M10)
        assert (job.operator, job.asset_tag, job.host) == (UNNAMED_AUTO_START, "PC-OLD", {"serial": "HOST-OLD"})
    else:
        assert (job.operator, job.asset_tag, job.host) == (UNNAMED_AUTO_START, None, None)


def test_a_manual_bay_shows_a_drive_present_once_its_holder_lets_go(tmp_path: Path, kernel: _Kernel) -> None:
    class Held:
        reasons: tuple[str, ...] = ("busy: open by pid 7 (losetup)",)

        def assess(self, path: str, ignore_pids: Iterable[int] = ()) -> Assessment:
            return Assessment(path, "sdz", self.reasons)

    guard = Held()
    station = _station(tmp_path, auto_start=False)
    station.guard = guard  # type: ignore[assignment]
    station._on_event(_event(INSERTED))
    assert _bay(station)["state"] == "waiting"
    guard.reasons = ()
    station.slots["bay-1"].recheck_at = 0.0
    station._reassess_waiting_bays()
    assert _bay(station)["state"] == "present" and station.slots["bay-1"].job is None  # shown free, not started
    assert station._next_recheck() is None  # and no longer looked at


@pytest.mark.parametrize("then", ["shift over", "signed out", "someone else now"])
def test_a_restarted_interrupted_job_names_who_is_signed_in_now_not_its_first_person(
        tmp_path: Path, kernel: _Kernel, then: str) -> None:
    """M10: a job interrupted at 17:55 and re-run at 22:05 was certified as done by the 17:55 person."""
    evening = datetime.now(UTC) - timedelta(hours=5)
    earlier = Registry(tmp_path, clock=lambda: evening).open()
    hours = 1.0 if then == "shift over" else 12.0
    alice = Operators(earlier).sign_in("PC Alice Smith", "Technician", 4242, bays=("bay-1",), shift_hours=hours)
    old = earlier.create_job(IDENTITY, "nist-purge", alice.name, "bay bay-1", "PC-OLD", None,
                             operator_title=alice.title, operator_uid=os.geteuid(), operator_via=VIA_DAEMON)
    earlier.transition(old, "interrupted", "owner-gone")
    earlier.close()
    registry = Registry(tmp_path).open()
    expected = UNNAMED_AUTO_START
    if then == "signed out":
        Operators(registry).sign_out(uid=4242)
    elif then == "someone else now":
        Operators(registry).sign_in("PC Bob Jones", "Night technician", 4343, bays=("bay-1",))
        expected = "PC Bob Jones"
    station = _station(tmp_path, auto_start=True, registry=registry)
    station.store.note_job_medium(old, IDENTITY.model, IDENTITY.serial, 1 << 30, 2049, 40, boot_id())
    station._restart_interrupted = [registry.job(old)]
    station._on_event(_event(INSERTED))
    job = station.slots["bay-1"].job
    assert job is not None and job.asset_tag == "PC-OLD"  # the same drive, re-run from the beginning
    assert job.operator == expected
    assert registry.job(old).operator == "PC Alice Smith"  # her attempt keeps her name, as history


@pytest.mark.parametrize(("field", "value", "named"), [
    ("asset_tag", "PC-\u202e42", "asset tag: contains"),
    ("asset_tag", "PC-42 ", "asset tag: has white space at its start or end"),
    ("asset_tag", "PC\u00a042", "asset tag: has white space other than single spaces"),
    ("asset_tag", "PC-4\u00b2", "asset tag: has compatibility characters"),
    ("host_serial", "SN\u5317", "host serial: contains U+5317"),
    ("make", "\U0001f4bb Dell", "make: contains U+1F4BB"),
    ("model", "M" * 201, "model: longer than 200"),
])
def test_intake_values_a_certificate_cannot_carry_are_refused_at_input(
        tmp_path: Path, field: str, value: str, named: str) -> None:
    """M15: intake's values reach the next drive's certificate; refused now, not after that drive is wiped."""
    station = _station(tmp_path)
    values = {"asset_tag": "PC-42", "host_serial": None, "make": None, "model": None, field: value}
    with pytest.raises(station_module.RequestError) as raised:
        station.intake("bay-1", values["asset_tag"], values["host_serial"], values["make"], values["model"], "op")
    assert raised.value.status == 400 and named in raised.value.message
    assert station.store.usable("bay-1", None) is None  # nothing recorded


@pytest.mark.parametrize("profile", ["clear-random", "nist-clear-overwrite"])
def test_the_console_starts_only_the_profile_the_bay_offers_for_the_drive_identified_now(
        tmp_path: Path, kernel: _Kernel, profile: str) -> None:
    """The console offers the bay's profile, else the media's default, for the drive its page showed (a USB stick:
    nist-clear-overwrite); the daemon judges the drive it identifies now (an HDD swapped in: nist-purge), so a
    console call never starts a weaker profile than the bay would, whatever the console process sends."""
    from agent.operators import ConsoleAccount

    station = _station(tmp_path)
    station.config = dataclasses.replace(station.config, web_console_user="root")
    station._on_event(_event(INSERTED))
    with pytest.raises(station_module.RequestError) as raised:
        station.start_bay("bay-1", profile, "op", caller_uid=0, console=ConsoleAccount("Alex Morgan", "Technician"))
    assert raised.value.code == "profile_not_allowed" and raised.value.status == 409
    assert "may start nist-purge here" in raised.value.message
    assert station.slots["bay-1"].job is None and _bay(station)["outcome"]["error_code"] == "profile_not_allowed"
