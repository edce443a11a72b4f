"""Batch manifests and destruction reports: signed, verifiable, refused with reasons, never shipped twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.reuse.errors import ReuseInputError, ReuseRefused
from agent.reuse.service import create_manifest, destroy
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from certs.manifest import check_certificates
from certs.verify import load_trust_bundle, verify_with_bundle
from tests.unit.reuse.kit import World, drive, make_job, ready_device


def _manifest(store: ReuseStore, world: World, out: Path, assets: list[str] | None = None,
              scheme: str = "schools") -> dict[str, object]:
    return create_manifest(store, scheme, assets=assets, all_eligible=assets is None, out_dir=out,
                           signer=world.signer, bundle=load_trust_bundle(world.bundle))


def test_manifest_is_signed_lists_everything_and_verifies(store: ReuseStore, world: World, tmp_path: Path) -> None:
    jobs = ready_device(store, world, "PC-1", [drive("SSD-1"), drive("SSD-2")])
    ready_device(store, world, "PC-2", [drive("SSD-3")])
    created = _manifest(store, world, tmp_path / "out", ["PC-1", "PC-2"])
    bundle = load_trust_bundle(world.bundle)
    report = verify_with_bundle(Path(str(created["pdf"])), bundle)
    assert report.valid and report.kind == "manifest", report.reason
    document = report.document
    assert document is not None and document["scheme"]["name"] == "schools"
    assert Path(str(created["json"])).read_bytes() == json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    devices = {device["asset"]: device for device in document["devices"]}
    assert [d["serial"] for d in devices["PC-1"]["drives"]] == ["SSD-1", "SSD-2"]
    first = devices["PC-1"]["drives"][0]
    assert first["job_id"] == jobs[0].id and first["level"] == "Purge" and len(first["record_sha256"]) == 64
    assert first["method"] == "nvme.sanitize.crypto" and first["sanitised_at"] == jobs[0].finished_at
    assert Path(str(created["csv"])).read_bytes().count(b"\r\n") == 3  # heading + 2 devices
    assert first["validations"][0]["by"] == "Ms Validator"
    assert document["scheme"]["destination"] == "External reuse: schools programme (via the GLA reuse scheme)"
    assert not document["demo"] and devices["PC-1"]["attestations"]["mdm-removed"]["by"] == "Sgt Example"
    checks = check_certificates(document, Path(str(created["certificates"])), bundle)
    assert len(checks) == 3 and all(check.ok for check in checks)
    assert store.audit.entries(str(created["manifest_id"]))[0].kind == "manifest"
    assert store.audit.verify().valid


def test_ineligible_assets_are_refused_with_reasons_and_nothing_is_written(store: ReuseStore, world: World,
                                                                           tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    ready_device(store, world, "PC-2", [drive("HDD-1", "hdd")], level="clear", mode="full")
    out = tmp_path / "out"
    with pytest.raises(ReuseRefused) as refused:
        _manifest(store, world, out, ["PC-1", "PC-2"])
    assert refused.value.reasons and all(reason.startswith("PC-2: ") for reason in refused.value.reasons)
    assert "requires Purge for hdd" in refused.value.message
    assert not out.exists() and store.shipped_in("PC-1") is None
    # the same asset is fine for the scheme that accepts it
    assert _manifest(store, world, out, ["PC-2"], scheme="gla-reuse")["assets"] == ["PC-2"]


def test_an_asset_is_never_in_two_manifests(store: ReuseStore, world: World, tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    first = _manifest(store, world, tmp_path / "one", ["PC-1"])
    with pytest.raises(ReuseRefused, match=f"already in manifest {first['manifest_id']}"):
        _manifest(store, world, tmp_path / "two", ["PC-1"])
    assert not (tmp_path / "two").exists()
    with pytest.raises(ReuseRefused, match="no asset"):
        _manifest(store, world, tmp_path / "three")
    # nor can the same drive reappear under another asset tag
    store.register_host("PC-X", drive_serials=("SSD-1",))
    for item in ("firmware-password-cleared", "mdm-removed", "asset-labels-removed"):
        store.attest("PC-X", item, "Sgt Example")
    with pytest.raises(ReuseRefused, match="already in manifest"):
        _manifest(store, world, tmp_path / "four", ["PC-X"])


def test_all_eligible_picks_only_eligible_unshipped_assets(store: ReuseStore, world: World, tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    ready_device(store, world, "PC-2", [drive("SSD-2")], validate=False)
    assert _manifest(store, world, tmp_path / "out")["assets"] == ["PC-1"]


def test_bad_manifest_input(store: ReuseStore, world: World, tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ReuseInputError, match="new or empty directory"):
        _manifest(store, world, tmp_path / "full", ["PC-1"])
    with pytest.raises(ReuseInputError, match="unknown asset 'NOPE'"):
        _manifest(store, world, tmp_path / "out", ["NOPE"])
    for again in ("PC-1", "pc-1", "\uff30\uff23-1"):  # the same label typed again, in another case, full width
        with pytest.raises(ReuseInputError, match="named twice"):
            _manifest(store, world, tmp_path / "out", ["PC-1", again])


def test_a_manifest_tampered_after_signing_is_invalid(store: ReuseStore, world: World, tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    pdf = Path(str(_manifest(store, world, tmp_path / "out", ["PC-1"])["pdf"]))
    bundle = load_trust_bundle(world.bundle)
    data = pdf.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x20  # inside the signed byte range
    pdf.write_bytes(bytes(flipped))
    report = verify_with_bundle(pdf, bundle)
    assert not report.valid and report.code in {"modified", "bad_signature", "damaged"}
    pdf.write_bytes(data + b"\n% appended after signing\n")
    assert verify_with_bundle(pdf, bundle).code == "unsigned_tail"


def test_missing_or_swapped_certificate_in_the_folder(store: ReuseStore, world: World, tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1"), drive("SSD-2")])
    created = _manifest(store, world, tmp_path / "out", ["PC-1"])
    bundle = load_trust_bundle(world.bundle)
    document = verify_with_bundle(Path(str(created["pdf"])), bundle).document or {}
    folder = Path(str(created["certificates"]))
    names = [drive["certificate_file"] for drive in document["devices"][0]["drives"]]
    shutil.copyfile(folder / names[1], folder / names[0])  # a valid certificate, but not the listed one
    (folder / names[1]).unlink()
    problems = [check.problem for check in check_certificates(document, folder, bundle)]
    assert "the manifest lists" in problems[0]
    assert problems[1].startswith("certificate") and "missing" in problems[1]


def test_destruction_report_is_signed_and_recorded_once(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-1", [drive("HDD-1", "hdd")], smart="ata-hitachi-hds721050-failing.json")
    record = destroy(store, "PC-1", method="shred", witness="PC Witness", reference="WEEE-123", operator="op",
                     signer=world.signer)
    report = verify_with_bundle(Path(record["report_path"]), load_trust_bundle(world.bundle))
    assert report.valid and report.kind == "destruction", report.reason
    assert report.document is not None and report.document["drives"][0]["serial"] == "HDD-1"
    assert report.document["witness"] == "PC Witness" and report.document["reference"] == "WEEE-123"
    assert store.audit.entries("PC-1")[-1].kind == "destruction"
    with pytest.raises(ReuseRefused, match="already recorded"):
        destroy(store, "PC-1", method="crush", witness="X", reference=None, operator="op", signer=world.signer)
    with pytest.raises(ReuseInputError, match="--method must be one of"):
        destroy(store, "PC-1", method="burn", witness="X", reference=None, operator="op", signer=world.signer)


def test_a_shipped_device_cannot_be_recorded_destroyed(store: ReuseStore, world: World, tmp_path: Path) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    _manifest(store, world, tmp_path / "out", ["PC-1"])
    with pytest.raises(ReuseRefused, match="has left for reuse"):
        destroy(store, "PC-1", method="shred", witness="X", reference=None, operator="op", signer=world.signer)


def test_failure_report_is_not_a_certificate_for_eligibility(store: ReuseStore, world: World) -> None:
    make_job(store.registry, world.signer, drive("SSD-1"), asset="PC-1", state="failed")
    job = store.held_drives("PC-1")[0]
    assert job.certificate_path and "failure-report" in job.certificate_path


def test_a_kill_while_issuing_leaves_no_signed_manifest_the_registry_does_not_know(
        store: ReuseStore, world: World, tmp_path: Path) -> None:
    """H9: SIGKILL after the manifest is signed and before it is published. The registry and the chain
    recorded it before signing; the PDF exists only as ``.issuing`` (no ``.pdf`` to hand over); the next
    ``manifest create`` voids it (chained) and frees the asset, so one valid manifest is issued, recorded."""
    import os
    import signal

    from agent.reuse import service
    from agent.store.registry import Registry

    ready_device(store, world, "PC-K", [drive("SSD-K")])
    out = tmp_path / "killed"
    child = os.fork()
    if child == 0:  # pragma: no cover - the child dies by SIGKILL
        try:
            registry = Registry(world.state).open()
            service.read_back = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[assignment]
            _manifest(ReuseStore(registry), world, out, ["PC-K"])
        finally:
            os._exit(3)
    _pid, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not list(out.glob("*.pdf")) and len(list(out.glob("*.pdf.issuing"))) == 1
    killed = store.shipped_in("PC-K")
    assert killed is not None  # recorded before anything was signed
    assert [entry.kind for entry in store.audit.entries(killed)] == ["manifest"]
    created = _manifest(store, world, tmp_path / "again", ["PC-K"])
    assert not list(out.glob("*.issuing")) and store.shipped_in("PC-K") == created["manifest_id"]
    assert [entry.kind for entry in store.audit.entries(killed)] == ["manifest", "manifest-voided"]
    assert verify_with_bundle(Path(str(created["pdf"])), load_trust_bundle(world.bundle)).valid
    assert store.audit.verify().valid


def test_one_drive_cannot_be_registered_to_two_hosts_and_a_shared_drive_is_named(
        store: ReuseStore, world: World) -> None:
    """L6: ``host add PC-B --drive-serial SSD-1`` after PC-A holds SSD-1 is refused; a manifest listing one
    job under two assets names the shared drive, not "another manifest"."""
    store.register_host("PC-A", drive_serials=("SSD-1",))
    with pytest.raises(ReuseInputError, match="drive SSD-1 is already registered to host PC-A"):
        store.register_host("PC-B", drive_serials=("SSD-1",))
    assert store.registered_host("PC-B") is None
    store.register_host("PC-A", make="Dell", drive_serials=("SSD-1",))  # re-registering the owner is fine
    one = {"job_id": "J1", "serial": "SSD-1"}
    manifest = {"document_id": "MF-L6", "scheme": {"name": "schools"}, "created_at": "2026-12-02T10:00:00+00:00",
                "devices": [{"asset": "PC-A", "drives": [one]}, {"asset": "PC-B", "drives": [one]}]}
    with pytest.raises(ReuseRefused, match="assets PC-A and PC-B share drive SSD-1 in this manifest"):
        store.record_manifest(manifest, "x.pdf", "x.json", "0" * 64)
    assert store.shipped_in("PC-A") is None


def test_a_certificate_naming_another_host_than_its_manifest_row(store: ReuseStore, world: World,
                                                                 tmp_path: Path) -> None:
    """M13: SSD-1 is registered to PC-B (HP) but was wiped under asset PC-A: the station refuses to put
    it in PC-B's row, and the partner's folder check names a row whose certificate names another host."""
    store.register_host("PC-A", make="Dell", model="Latitude 5440", serial="HOST-A")
    store.register_host("PC-B", make="HP", model="EliteBook", serial="HOST-B", drive_serials=("SSD-1",))
    ready_device(store, world, "PC-A", [drive("SSD-1")])  # the certificate names host PC-A, a Dell
    for item in ("firmware-password-cleared", "mdm-removed", "asset-labels-removed"):
        store.attest("PC-B", item, "Sgt Example")
    with pytest.raises(ReuseRefused, match=r"PC-B: drive SSD-1: certificate .* names host PC-A, the manifest row is "
                                           r"PC-B"):
        _manifest(store, world, tmp_path / "out", ["PC-B"])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.pdf"))
    store.register_host("PC-C", make="Dell", serial="HOST-C")
    ready_device(store, world, "PC-C", [drive("SSD-3")])
    created = _manifest(store, world, tmp_path / "good", ["PC-C"])
    document = json.loads(Path(str(created["json"])).read_text())
    bundle = load_trust_bundle(world.bundle)
    assert all(check.ok for check in check_certificates(document, Path(str(created["certificates"])), bundle))
    document["devices"][0]["asset"] = "PC-Z"  # the row a lying manifest would print
    (problem,) = [check.problem for check in check_certificates(document, Path(str(created["certificates"])), bundle)
                  if not check.ok]
    assert "names host PC-C, the manifest row is PC-Z" in problem
    document["devices"][0].update(asset="PC-C", serial="HOST-OTHER")
    (problem,) = [check.problem for check in check_certificates(document, Path(str(created["certificates"])), bundle)
                  if not check.ok]
    assert "names host serial HOST-C, the manifest row (PC-C) has HOST-OTHER" in problem


def test_a_kill_between_signing_and_linking_a_certificate_never_yields_a_second_one(
        registry: Registry, world: World) -> None:
    """H9 for certify: SIGKILL after the certificate is published, before the registry links it. The chain
    named it (issuing) before it was signed; the next certify links that same file, signs nothing new."""
    import os
    import signal

    from agent.jobs.certify import ISSUING_KIND, certify
    from tests.unit.reuse.kit import REAL_SETTINGS

    job = make_job(registry, None, drive("SSD-Q"), asset="PC-Q")
    child = os.fork()
    if child == 0:  # pragma: no cover - the child dies by SIGKILL
        try:
            own = Registry(world.state).open()
            own.attach_certificate = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[method-assign]
            certify(own, own.job(job.id), world.signer, REAL_SETTINGS)
        finally:
            os._exit(3)
    _pid, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    folder = world.state / "certificates"
    (published,) = folder.glob("*.pdf")
    assert registry.job(job.id).certificate_path is None
    assert [entry.kind for entry in registry.audit.entries(job.id)][-1] == ISSUING_KIND
    path = certify(registry, registry.job(job.id), world.signer, REAL_SETTINGS)
    assert path == published and list(folder.glob("*.pdf")) == [published] and not list(folder.glob("*.issuing"))
    assert registry.job(job.id).certificate_path == str(published)
    assert registry.audit.verify().valid


def test_a_certificate_or_folder_that_is_a_symbolic_link_is_named(store: ReuseStore, world: World,
                                                                  tmp_path: Path) -> None:
    """M3 (loose end): links to files or folders outside the delivery are not taken for the delivery."""
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    created = _manifest(store, world, tmp_path / "out", ["PC-1"])
    document = json.loads(Path(str(created["json"])).read_text())
    folder = Path(str(created["certificates"]))
    bundle = load_trust_bundle(world.bundle)
    (certificate,) = folder.iterdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(certificate, elsewhere / certificate.name)
    certificate.symlink_to(elsewhere / certificate.name)
    (check,) = check_certificates(document, folder, bundle)
    assert not check.ok and check.problem == f"{certificate} is a symbolic link, not a file of the delivery"
    certificate.unlink()
    shutil.rmtree(folder)
    folder.symlink_to(elsewhere)
    (check,) = check_certificates(document, folder, bundle)
    assert not check.ok and "is a symbolic link" in check.problem


def test_a_hand_over_is_recorded_once_chained_and_ends_voiding(store: ReuseStore, world: World,
                                                                 tmp_path: Path) -> None:
    from agent.reuse.service import handover_manifest

    ready_device(store, world, "PC-1", [drive("SSD-1")])
    ready_device(store, world, "PC-2", [drive("SSD-2")])
    created = _manifest(store, world, tmp_path / "out", ["PC-1", "PC-2"])
    manifest_id = str(created["manifest_id"])
    for bad in ({"received_by": "  "}, {"partner": ""}, {"received_by": "C. Patel\n(forged line)"},
                {"reference": "x" * 121}):
        arguments = {"received_by": "C. Patel", "partner": "City Schools Trust", "reference": None, **bad}
        with pytest.raises(ReuseInputError):
            handover_manifest(store, manifest_id, operator="op", **arguments)  # type: ignore[arg-type]
    with pytest.raises(ReuseRefused, match="no manifest M-NOPE"):
        handover_manifest(store, "M-NOPE", received_by="C. Patel", partner="City Schools Trust", reference=None,
                          operator="op")
    done = handover_manifest(store, manifest_id, received_by="C. Patel", partner="City Schools Trust",
                             reference="COLL-77", operator="op")
    assert done["assets"] == ["PC-1", "PC-2"] and store.handover(manifest_id)["reference"] == "COLL-77"
    entry = store.audit.entries(manifest_id)[-1]
    assert entry.kind == "manifest-handed-over" and entry.data["assets"] == ["PC-1", "PC-2"]
    assert entry.data["received_by"] == "C. Patel" and store.audit.verify().valid
    with pytest.raises(ReuseRefused, match="handed over already"):
        handover_manifest(store, manifest_id, received_by="C. Patel", partner="City Schools Trust", reference=None,
                          operator="op")
    with pytest.raises(ReuseRefused, match="cannot be voided"):
        store.void_manifest(manifest_id, "too late")
    assert store.shipped_in("PC-1") == manifest_id


def test_a_manifest_never_published_cannot_be_handed_over(store: ReuseStore, world: World, tmp_path: Path) -> None:
    from agent.reuse.service import handover_manifest

    ready_device(store, world, "PC-1", [drive("SSD-1")])
    created = _manifest(store, world, tmp_path / "out", ["PC-1"])
    Path(str(created["pdf"])).unlink()
    with pytest.raises(ReuseRefused, match="never published"):
        handover_manifest(store, str(created["manifest_id"]), received_by="C. Patel", partner="City Schools Trust",
                          reference=None, operator="op")
    assert store.handover(str(created["manifest_id"])) is None


def test_a_hand_over_recorded_while_a_void_is_under_way_wins(store: ReuseStore, world: World, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (the CLI, the daemon's reconcile) records the hand-over between the void's look at the
    manifest and its write: the void must see it (the check and the write are one transaction) and refuse."""
    from agent.reuse.service import handover_manifest

    ready_device(store, world, "PC-1", [drive("SSD-1")])
    manifest_id = str(_manifest(store, world, tmp_path / "out", ["PC-1"])["manifest_id"])
    other = Registry(world.state).open()
    real_write = ReuseStore._write

    def write_after_the_other_process(self: ReuseStore) -> Any:
        monkeypatch.setattr(ReuseStore, "_write", real_write)
        handover_manifest(ReuseStore(other), manifest_id, received_by="C. Patel", partner="City Schools Trust",
                          reference=None, operator="op")
        return real_write(self)

    monkeypatch.setattr(ReuseStore, "_write", write_after_the_other_process)
    try:
        with pytest.raises(ReuseRefused, match="cannot be voided"):
            store.void_manifest(manifest_id, "raced")
    finally:
        other.close()
    assert store.handover(manifest_id) is not None and store.shipped_in("PC-1") == manifest_id
    assert [entry.kind for entry in store.audit.entries(manifest_id)][-1] == "manifest-handed-over"


@pytest.mark.parametrize(("asset", "problem"), [
    ("PC-7 ", "has white space at its start or end"), ("PC\u00a07", "has white space other than single spaces"),
    ("PC  7", "has white space other than single spaces"), ("\uff30C-7", "has compatibility characters"),
    ("pc-7", "is host 'PC-7' spelled another way"), ("PC-\u202e7", "contains the control or format character"),
])
def test_a_host_is_registered_under_one_spelling_of_its_tag(store: ReuseStore, asset: str, problem: str) -> None:
    """A second spelling of a registered host's tag would be a second host, its drives shippable twice."""
    store.register_host("PC-7", make="Dell", model="Latitude", serial="DL7")
    with pytest.raises(ReuseInputError, match=problem):
        store.register_host(asset, make="Dell", model="Latitude", serial="DL7b", drive_serials=("SSD-77",))
    assert store.assets() == ["PC-7"]
    store.register_host("PC-7", make="Dell", model="Latitude 5440", serial="DL7")  # the same spelling updates it
