"""Shared builders for the reuse tests: a PKI world and finished, certified jobs in a temporary registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.discovery.identity import DriveIdentity
from agent.jobs.certify import CertificateSettings, certify
from agent.store.registry import JobRow, Registry
from certs import pki

SMART_DATA = Path(__file__).resolve().parents[2] / "data" / "smart"
BASE = DriveIdentity(
    path="/dev/sdq", name="sdq", by_id=None, model="TEST DRIVE", serial="SERIAL", firmware="1.0", vendor=None,
    size_bytes=256 << 30, logical_sector=512, physical_sector=512, rotational=False, transport="sata", media="ssd",
    removable=False, read_only=False, id_path=None,
)
DEMO_SETTINGS = CertificateSettings(organisation="Test Constabulary", demo=True)
REAL_SETTINGS = CertificateSettings(organisation="Test Constabulary")
_METHODS = {"purge": "nvme.sanitize.crypto", "clear": "overwrite.zero"}


@dataclass
class World:
    """A CA, this station's key installed in ``state``, and the partners' trust bundle."""

    state: Path
    ca: Path
    bundle: Path
    signer: pki.StationSigner


def build_world(root: Path) -> World:
    """Create the PKI (EC keys: milliseconds)."""
    ca = root / "ca"
    pki.init_ca("Test Constabulary", ca)
    state = root / "state"
    pki.issue_station(ca, "station-test", state)
    bundle = pki.make_bundle(ca, root / "bundle.pem")
    return World(state, ca, bundle, pki.load_station_signer(state))


def drive(serial: str, media: str = "ssd", model: str = "TEST DRIVE") -> DriveIdentity:
    """A drive identity of the given media."""
    transport = {"virtual": "virtual", "usb": "usb"}.get(media, "sata")
    return replace(BASE, serial=serial, media=media, model=model, transport=transport, rotational=media == "hdd",
                   path=f"/dev/test-{serial}")


def make_job(registry: Registry, signer: pki.StationSigner | None, identity: DriveIdentity, *, asset: str | None = None,
             host: dict[str, Any] | None = None, state: str = "sanitised", level: str = "purge",
             mode: str = "sampling", passed: bool = True, route: str | None = None, demo: bool = False) -> JobRow:
    """A finished job (and its certificate when ``signer`` is given and the job is certifiable)."""
    method = _METHODS[level]
    job_id = registry.create_job(identity, "test-profile", "PC Test", "explicit", asset, host)
    registry.transition(job_id, "checking", "guard")
    registry.transition(job_id, "running", "method-start", method=method, level=level,
                        decisions_json=json.dumps([{"method": method, "taken": True, "level": level,
                                                    "reason": "test"}]))
    if state in ("sanitised", "failed") and not (state == "failed" and route == "destroy"):
        registry.record_verification(job_id, identity, {"mode": mode, "passed": passed, "coverage": 0.1,
                                                        "bytes_checked": 4096, "seed": "1", "subsections": 1000,
                                                        "samples": 2000})
    if state == "sanitised":
        registry.transition(job_id, "sanitised", "done", route="reuse")
    elif state == "failed":
        registry.transition(job_id, "failed", "media-error", reason="write failed: Input/output error",
                            error_code="media_error", route=route or "hold")
    else:
        registry.transition(job_id, state, "stopped", reason="stopped")
    if signer is not None and state in ("sanitised", "failed"):
        certify(registry, registry.job(job_id), signer, DEMO_SETTINGS if demo else REAL_SETTINGS)
    return registry.job(job_id)


ATTESTATIONS = ("firmware-password-cleared", "mdm-removed", "asset-labels-removed")


def healthy(name: str = "constructed-ata-ssd-healthy.json") -> Any:
    """A recorded or constructed smartctl JSON sample."""
    return json.loads((SMART_DATA / name).read_text())


def ready_device(store: Any, world: World, asset: str, drives: list[DriveIdentity], *, level: str = "purge",
                 mode: str = "sampling", smart: str = "constructed-ata-ssd-healthy.json",
                 role: str = "information-security-officer", attest: tuple[str, ...] = ATTESTATIONS,
                 validate: bool = True) -> list[JobRow]:
    """Sanitised, certified drives of one host with health, attestations and validation recorded."""
    from agent.reuse.health import parse_smartctl

    jobs = [make_job(store.registry, world.signer, identity, asset=asset, level=level, mode=mode)
            for identity in drives]
    for job in jobs:
        store.record_health(parse_smartctl(healthy(smart), smart), drive_serial=job.drive.serial,
                            drive_model=job.drive.model)
    for item in attest:
        store.attest(asset, item, "Sgt Example")
    if validate:
        from agent.reuse.service import validate as sign_validation

        sign_validation(store, [job.id for job in jobs], decision="accept", by="Ms Validator", role=role, reason="",
                        station=world.signer, officer=None, bundle=None, out_dir=world.state / "validations")
    return jobs
