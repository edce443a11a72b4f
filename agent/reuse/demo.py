"""The reuse part of ``wipe-agent demo``: three demo laptops, two to the demo schools scheme, one destroyed.

Called after the demo's four jobs are certified. Everything here is labelled DEMONSTRATION: the
scheme is ``demo-schools`` (which accepts only virtual media and demonstration certificates), the
people are fictitious, and laptop C's "failing SMART reading" is a recorded smartctl sample of a
real failing disk applied to a virtual drive *as demo input*, to show the health gate at work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.reuse.health import not_applicable, parse_smartctl
from agent.reuse.schemes import load_all_schemes
from agent.reuse.service import attest, create_manifest, decide, destroy, validate
from agent.reuse.store import ReuseStore
from agent.store.registry import JobRow, Registry
from certs.manifest import check_certificates
from certs.pki import StationSigner
from certs.verify import load_trust_bundle, verify_with_bundle

DEMO_SCHEME = "demo-schools"
DEMO_PREFIX = "DEMO-LAPTOP-"
DEMO_HOSTS = {"DEMO-LAPTOP-A": ("DEMO-LAPTOP-1", "DEMO-LAPTOP-2"), "DEMO-LAPTOP-B": ("DEMO-LAPTOP-3",),
              "DEMO-LAPTOP-C": ("DEMO-LAPTOP-4",)}


def demo_hosts(prefix: str = DEMO_PREFIX) -> dict[str, tuple[str, ...]]:
    """The demo's three laptops and their drives' tags under ``prefix`` (each station of a fleet demo its own)."""
    return {prefix + host[len(DEMO_PREFIX):]: tuple(prefix + tag[len(DEMO_PREFIX):] for tag in tags)
            for host, tags in DEMO_HOSTS.items()}
DEMO_PERSON = "Demo Officer (fictitious)"
DEMO_VALIDATOR = ("Demo Validator (fictitious)", "information-security-officer")
DEMO_WITNESS = "Demo Witness (fictitious)"
# DEMO INPUT: an excerpt of a recorded `smartctl -j -a` output of a failing Hitachi HDS721050DLE630
# (public test data of AnalogJ/scrutiny, smart-fail2.json; see tests/data/smart/README.md).
DEMO_FAILING_SMART: dict[str, Any] = {
    "json_format_version": [1, 0],
    "smartctl": {"version": [7, 1], "exit_status": 216},
    "device": {"name": "/dev/sdc", "type": "usbjmicron", "protocol": "ATA"},
    "model_name": "Hitachi HDS721050DLE630", "serial_number": "MSK423Y20S3HBC",
    "smart_status": {"passed": False},
    "ata_smart_attributes": {"revision": 16, "table": [
        {"id": 5, "name": "Reallocated_Sector_Ct", "value": 1, "worst": 1, "thresh": 5, "when_failed": "now",
         "raw": {"value": 1975, "string": "1975"}},
        {"id": 197, "name": "Current_Pending_Sector", "value": 100, "worst": 100, "thresh": 0, "when_failed": "",
         "raw": {"value": 8, "string": "8"}},
        {"id": 198, "name": "Offline_Uncorrectable", "value": 100, "worst": 100, "thresh": 0, "when_failed": "",
         "raw": {"value": 0, "string": "0"}},
    ]},
}


@dataclass
class DemoReuseResult:
    """What the reuse demo did: a JSON-able summary, human lines, and whether it ended as expected."""

    ok: bool
    summary: dict[str, Any]
    lines: list[str] = field(default_factory=list)


def run_reuse_demo(registry: Registry, signer: StationSigner, trust_bundle: Path, jobs: Mapping[str, JobRow],
                   out_dir: Path | None = None, tsa_url: str | None = None,
                   prefix: str = DEMO_PREFIX) -> DemoReuseResult:
    """Register the demo laptops, sign off, decide, destroy C, ship A and B in a verified manifest."""
    hosts = demo_hosts(prefix)
    laptop_a, laptop_b, laptop_c = (prefix + letter for letter in "ABC")
    store = ReuseStore(registry)
    bundle = load_trust_bundle(trust_bundle)
    schemes = load_all_schemes()
    lines = [f"Reuse: three demo laptops under the DEMONSTRATION scheme {DEMO_SCHEME}"]
    for host, tags in hosts.items():
        serials = tuple(jobs[tag].drive.serial for tag in tags if tag in jobs)
        store.register_host(host, kind="laptop", make="Demo", model="Virtual laptop (demonstration)",
                            serial=f"{host}-SN", drive_serials=serials)
        for tag in tags:
            if tag not in jobs:
                continue
            drive = jobs[tag].drive
            if host == laptop_c:
                reading = parse_smartctl(DEMO_FAILING_SMART, "DEMO INPUT: recorded smartctl -j sample of a failing "
                                                             "Hitachi HDS721050DLE630 applied to a virtual demo drive")
            else:
                reading = not_applicable(drive.model, drive.serial, drive.media)
            # demo input: a recorded sample of another disk, deliberately filed under the virtual drive
            store.record_health(reading, drive_serial=drive.serial, drive_model=drive.model)
    for host in (laptop_a, laptop_b):
        for item in sorted({item for scheme in schemes if scheme.name == DEMO_SCHEME for item in scheme.attestations}):
            attest(store, host, item, DEMO_PERSON)
    validated = [jobs[tag].id for host in (laptop_a, laptop_b) for tag in hosts[host]
                 if tag in jobs and jobs[tag].state == "sanitised"]
    if validated:
        by, role = DEMO_VALIDATOR
        statement = validate(store, validated, decision="accept", by=by, role=role, reason="", station=signer,
                             officer=None, bundle=bundle, out_dir=registry.state_dir / "validations",
                             tsa_url=tsa_url)
        lines.append(f"  validation statement {statement['statement_id']} signed by the station on the "
                     f"instruction of {by}: {statement['pdf']}")
    decisions = {host: decide(store, host, schemes=schemes, bundle=bundle) for host in hosts}
    for host, decision in decisions.items():
        why = "; ".join(decision.route_reasons[:2])
        lines.append(f"  {host:<14} → {decision.route:<20} {why[:160]}")
    lines.append("  (laptop C's failing SMART reading is a recorded sample of a real failing disk, used as demo input)")
    summary: dict[str, Any] = {"scheme": DEMO_SCHEME,
                               "decisions": {host: d.to_json() for host, d in decisions.items()}}
    expected = {laptop_a: f"reuse:{DEMO_SCHEME}", laptop_b: f"reuse:{DEMO_SCHEME}", laptop_c: "destroy"}
    ok = all(decisions[host].route == route for host, route in expected.items())
    if decisions[laptop_c].route == "destroy":
        record = destroy(store, laptop_c, method="shred", witness=DEMO_WITNESS,
                         reference="DEMO-DESTRUCTION-0001", operator="demo", signer=signer, demo=True, tsa_url=tsa_url,
                         note="DEMONSTRATION: the failing SMART reading is a recorded sample of a real failing disk "
                              "(Hitachi HDS721050DLE630) applied to this virtual drive as demo input; nothing was "
                              "physically destroyed")
        report = verify_with_bundle(Path(record["report_path"]), bundle)
        summary["destruction"] = {"report": record["report_path"], "valid": report.valid, "reason": report.reason}
        ok = ok and report.valid
        lines.append(f"  destruction report {record['report_path']}: {'VALID' if report.valid else report.reason}")
    eligible = [host for host, d in decisions.items() if d.route == f"reuse:{DEMO_SCHEME}"]
    if eligible:
        target = out_dir or registry.state_dir / "manifests" / "demo"
        created = create_manifest(store, DEMO_SCHEME, assets=eligible, all_eligible=False, out_dir=target,
                                  signer=signer, bundle=bundle, tsa_url=tsa_url)
        report = verify_with_bundle(Path(created["pdf"]), bundle)
        checks = check_certificates(report.document or {}, Path(created["certificates"]), bundle)
        complete = report.valid and bool(checks) and all(check.ok for check in checks)
        summary["manifest"] = {**created, "valid": report.valid, "reason": report.reason,
                               "certificates_checked": [check.to_json() for check in checks]}
        ok = ok and complete
        lines.append(f"  manifest {created['pdf']} ({', '.join(created['assets'])}): "
                     f"{'VALID' if report.valid else report.reason}, {sum(c.ok for c in checks)}/{len(checks)} "
                     "certificates present and matching")
        lines.append(f"    check it: wipe-agent verify {created['pdf']} --trust {trust_bundle} --expect manifest "
                     "(checks the certificates/ folder beside it)")
    audit = store.audit.verify()
    summary["audit"] = audit.to_json()
    ok = ok and audit.valid
    lines.append(f"  audit log: {audit.entries} entries, chain {'intact' if audit.valid else 'BROKEN'}")
    summary["ok"] = ok
    return DemoReuseResult(ok, summary, lines)
