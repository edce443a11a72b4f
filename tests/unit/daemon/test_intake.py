"""Intake links and drive routes, in the registry's SQLite file next to its own tables."""

from __future__ import annotations

from pathlib import Path

from agent.daemon.intake import REPEATED_FAILURES, StationStore
from agent.discovery.identity import DriveIdentity
from agent.store.registry import Registry

DRIVE = DriveIdentity(path="/dev/sdz", name="sdz", by_id=None, model="Disk", serial="S1", firmware=None, vendor=None,
                      size_bytes=1 << 30, logical_sector=512, physical_sector=512, rotational=True, transport="sata",
                      media="hdd", removable=False, read_only=False, id_path="pci-0000:00:17.0-ata-3")


def _store(tmp_path: Path) -> tuple[StationStore, Registry]:
    registry = Registry(tmp_path).open()
    store = StationStore(tmp_path)
    store.create()
    return store, registry


def _job(registry: Registry, state: str, error_code: str | None = None, route: str = "hold") -> str:
    job_id = registry.create_job(DRIVE, "nist-purge", "op", "bay bay-3")
    registry.transition(job_id, state, "test", error_code=error_code, route=route)
    return job_id


def test_intake_is_pending_until_consumed_and_a_new_one_replaces_it(tmp_path: Path) -> None:
    store, registry = _store(tmp_path)
    try:
        assert store.pending("bay-3") is None
        first = store.add_intake("bay-3", "A-1", None, None, None, "alice")
        second = store.add_intake("bay-3", "A-2", "PF3", "Lenovo", "T14", "bob")
        pending = store.pending("bay-3")
        assert pending == second and pending.id != first.id
        assert pending.host() == {"asset_tag": "A-2", "serial": "PF3", "make": "Lenovo", "model": "T14",
                                  "intake_operator": "bob", "intake_at": second.created_at, "intake_id": second.id}
        store.consume(second.id, "job1")
        assert store.pending("bay-3") is None and store.pending("bay-4") is None
    finally:
        registry.close()


def test_repeated_failures_route_the_drive_to_destruction_but_removals_do_not(tmp_path: Path) -> None:
    store, registry = _store(tmp_path)
    try:
        for _ in range(5):
            _job(registry, "failed", "drive_removed")
            assert store.note_outcome("Disk", "S1") is None
        for count in range(1, REPEATED_FAILURES):
            _job(registry, "failed", "command_failed")
            assert store.note_outcome("Disk", "S1") is None, count
        _job(registry, "failed", "command_failed")
        assert store.note_outcome("Disk", "S1") == "destroy"
        route = store.route("Disk", "S1")
        assert route is not None and route["reason"] == f"{REPEATED_FAILURES} failed jobs in a row"
    finally:
        registry.close()


def test_a_hardware_fault_routes_at_once_and_success_resets(tmp_path: Path) -> None:
    store, registry = _store(tmp_path)
    try:
        _job(registry, "failed", "command_failed")
        _job(registry, "sanitised", route="reuse")
        _job(registry, "failed", "command_failed")
        assert store.note_outcome("Disk", "S1") is None  # the success in between resets the count
        _job(registry, "failed", "media_error", route="destroy")
        assert store.note_outcome("Disk", "S1") == "destroy"
        assert store.route("Disk", "S1") == {"route": "destroy", "reason": "hardware fault: media_error",
                                             "at": store.route("Disk", "S1")["at"]}  # type: ignore[index]
    finally:
        registry.close()


def test_drives_without_a_serial_are_never_routed_by_each_others_failures(tmp_path: Path) -> None:
    import dataclasses

    store, registry = _store(tmp_path)
    try:
        stick = dataclasses.replace(DRIVE, model="USB Flash", serial="unknown")
        for _ in range(REPEATED_FAILURES + 1):  # several different sticks of one model, all failing
            job_id = registry.create_job(stick, "nist-clear-overwrite", "op", "bay bay-3")
            registry.transition(job_id, "failed", "test", error_code="command_failed", route="hold")
            assert store.note_outcome("USB Flash", "unknown") is None
        assert store.route("USB Flash", "unknown") is None and store.route("USB Flash", "") is None
    finally:
        registry.close()


def test_look_alikes_of_another_size_do_not_share_a_route(tmp_path: Path) -> None:
    """Attack B2: disks behind one USB bridge report the bridge's serial; their sizes still differ."""
    store, registry = _store(tmp_path)
    try:
        for _ in range(REPEATED_FAILURES):  # a failing 500 GB disk behind the bridge
            job_id = _job(registry, "failed", "command_failed")
            store.note_job_medium(job_id, "Disk", "S1", 500 << 30, None, None, "boot")
            store.note_outcome("Disk", "S1", 500 << 30)
        assert store.route("Disk", "S1", 500 << 30) is not None  # that disk is routed to destruction
        assert store.route("Disk", "S1", 1 << 40) is None  # a healthy 1 TB disk behind the same bridge is not
        healthy = _job(registry, "failed", "command_failed")  # its first failure counts only its own jobs
        store.note_job_medium(healthy, "Disk", "S1", 1 << 40, None, None, "boot")
        assert store.note_outcome("Disk", "S1", 1 << 40) is None
    finally:
        registry.close()
