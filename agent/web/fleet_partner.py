"""The fleet console's partner view: the manifests allocated to a partner, their packs, and the upload box.

::

    GET  /partner                                   the manifests of the session's partner (admin: all)
    GET  /partner/manifests/STATION/ID              one manifest: its devices, what the fleet holds of it
    GET  /partner/manifests/STATION/ID/pdf          the signed manifest PDF, as the station signed it
    GET  /partner/manifests/STATION/ID/csv          its devices (the station's CSV: the signed rows)
    GET  /partner/manifests/STATION/ID/pack         a zip: the manifest's folder as the station wrote it
                                                    (PDF, JSON, CSV, certificates/), a README.txt on how
                                                    to verify it offline, and the trust bundle
                                                    (never of a voided manifest)

A fleet manifest has the same pages under /partner/manifests/FLEET/ID (FLEET: the fleet that signed it, never a
station's id: ``pki issue-fleet`` refuses one). Its PDF and signed JSON are the bytes ``fleet manifest create``
kept in ``fleet_manifests`` (the folder it wrote may be anywhere, or gone); its CSV is rendered from the signed
JSON, byte for byte the file create wrote (the verifier checks exactly that); its certificates are the ones the
stations forwarded (``fleet_documents``, by station and id).
    GET  /verify, POST /verify                      upload a signed document; the partners' verifier judges it

Which partner a manifest is allocated to: a station manifest is made for one reuse scheme, and a scheme is
one partner's agreement, so a station manifest belongs to the partner named as its scheme (a partner
account is made with ``--partner SCHEME``, compared without regard to case). A fleet manifest (signed by the
fleet) names its partner, compared the same way. Both are in :func:`manifests_of`, the one place that answers
"the manifests of partner P": every page, download and pack asks it, so a partner cannot reach another
partner's manifest by its URL — the answer is 404, as for a manifest that does not exist.

A manifest's content is read from the signed PDF the fleet holds by the partners' own verifier
(:func:`certs.verify.verify_data` against the console's trust bundle), never from the station's say-so in
its audit entry; the upload box uses the same function, the same bundle and the same kinds as
``wipe-agent verify``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from agent.errors import AgentError
from agent.web.accounts import Role
from agent.web.render import render
from agent.web.server import Console, session_of

if TYPE_CHECKING:
    from agent.web.fleet import FleetContext
    from certs.pki import TrustBundle
    from certs.verify import VerificationReport

log = logging.getLogger("wipe-agent.web")

PARTNER_ROLES = frozenset({Role.PARTNER, Role.ADMIN})
VERIFY_ROLES = frozenset({Role.PARTNER, Role.COMPLIANCE, Role.AUDITOR, Role.ADMIN})
MAX_UPLOAD = 20 << 20
"""The largest document the upload box takes (a certificate is ~100 KB; a 200-row manifest ~1 MB)."""
UPLOAD_BODY = MAX_UPLOAD + (64 << 10)
"""The upload page's request limit: the file and the form around it."""
MAX_SEGMENT = 256
PACK_CHUNK = 20
"""Certificates read from the database per query while a pack streams (memory stays bounded)."""
CACHE_SIZE = 64
CACHE_SECONDS = 600.0
"""A manifest's verdict is reused this long (the document is immutable; the bundle's CRL is what can change)."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_DEVICE_NAME = re.compile(r"(?i)CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9]")


class ManifestUnavailable(AgentError):
    """The fleet holds the manifest's entry but cannot serve its content (no PDF, no trust bundle, not valid)."""

    code = "manifest_unavailable"
    exit_code = 1
    http_status = 503


@dataclass(frozen=True)
class ManifestSummary:
    """One manifest as the partner list shows it."""

    source: str
    """"station": signed by a station; "fleet": a fleet manifest, signed by the fleet (``station_id`` is the
    fleet's name)."""
    station_id: str
    manifest_id: str
    scheme: str
    partner: str
    recorded_at: str
    """When the station recorded it (its audit entry's time)."""
    devices: int
    voided: bool
    pdf_sha256: str | None
    """The SHA-256 of the signed PDF the fleet holds (None: the PDF never reached the fleet)."""
    handed_over: dict[str, str] | None = None
    """The record of the partner's receipt (at, received_by, partner, reference), if any: the station's entry, or
    the fleet's (``fleet manifest handover``) for a fleet manifest."""

    @property
    def fleet(self) -> bool:
        return self.source == "fleet"

    @property
    def href(self) -> str:
        return f"/partner/manifests/{quote(self.station_id, safe='')}/{quote(self.manifest_id, safe='')}"

    @property
    def day(self) -> str:
        return self.recorded_at[:10]


def partner_of_scheme(scheme: str) -> str:
    """The partner a station manifest of ``scheme`` is allocated to (see the module docstring)."""
    return scheme


def _same_partner(first: str, second: str) -> bool:
    """Case-insensitive for ASCII letters only: no Unicode folding may make two partners one (``ß`` and ``ss``,
    the Kelvin sign and ``k``); a name with any other character matches only itself."""
    if first.isascii() and second.isascii():
        return first.lower() == second.lower()
    return first == second


_MANIFESTS = """
WITH m AS (
    SELECT station_id, audit_seq, ref, bool_or(voided) AS voided, count(DISTINCT upper(asset_tag)) AS devices,
           min(at) AS at
    FROM fleet_asset_facts
    WHERE kind = 'manifest' AND (%(station)s::text IS NULL OR station_id = %(station)s)
      AND (%(manifest)s::text IS NULL OR ref = %(manifest)s)
    GROUP BY station_id, audit_seq, ref),
h AS (  -- the hand-over the same station recorded for the manifest (once per manifest; the first if several)
    SELECT DISTINCT ON (f.station_id, f.ref) f.station_id, f.ref, f.at, a.data
    FROM fleet_asset_facts f JOIN fleet_audit a ON a.station_id = f.station_id AND a.seq = f.audit_seq
    WHERE f.kind = 'manifest-handed-over' AND (%(station)s::text IS NULL OR f.station_id = %(station)s)
      AND (%(manifest)s::text IS NULL OR f.ref = %(manifest)s)
      AND EXISTS (SELECT 1 FROM fleet_asset_facts e WHERE e.station_id = f.station_id AND e.kind = 'manifest'
                  AND e.ref = f.ref AND e.audit_seq < f.audit_seq)  -- before its manifest: a hand-over of nothing
    ORDER BY f.station_id, f.ref, f.audit_seq)
SELECT m.station_id, m.ref, m.voided, m.devices, m.at, a.data, d.sha256, h.at, h.data
FROM m JOIN fleet_audit a ON a.station_id = m.station_id AND a.seq = m.audit_seq
LEFT JOIN fleet_documents d ON d.station_id = m.station_id AND d.document_id = m.ref AND d.kind = 'manifest'
LEFT JOIN h ON h.station_id = m.station_id AND h.ref = m.ref
ORDER BY m.at DESC, m.station_id, m.ref
"""


_FLEET_MANIFESTS = """
SELECT m.fleet, m.document_id, m.scheme, m.partner, m.status = 'voided', count(a.asset_tag), m.created_at,
       m.pdf_sha256, h.at, h.received_by, h.reference
FROM fleet_manifests m
LEFT JOIN fleet_manifest_assets a ON a.manifest_id = m.id
LEFT JOIN fleet_manifest_handovers h ON h.manifest_id = m.id
WHERE m.status IN ('issued', 'voided') AND m.pdf_sha256 IS NOT NULL  -- never one left unsigned
  AND (%(station)s::text IS NULL OR m.fleet = %(station)s)
  AND (%(manifest)s::text IS NULL OR m.document_id = %(manifest)s)
GROUP BY m.id, h.manifest_id
"""


def _parsed(data: Any) -> dict[str, Any]:
    """An audit entry's data (the station's canonical JSON), parsed here, not in SQL (jsonb refuses some text a
    station may send); {} when it is not an object."""
    try:
        value = json.loads(data) if data is not None else None
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _handover(at: Any, data: Any) -> dict[str, str] | None:
    if at is None:
        return None
    entry = _parsed(data)
    return {"at": str(at), **{key: str(entry.get(key) or "") for key in ("received_by", "partner", "reference")}}


def manifests_of(db: Any, partner: str | None, *, station: str | None = None, manifest: str | None = None,
                 voided: bool = False) -> list[ManifestSummary]:
    """The manifests allocated to ``partner`` (None: every partner's), newest first; voided ones only with
    ``voided`` (a voided manifest was never handed over). ``station`` and ``manifest`` narrow it to one."""
    found = []
    narrowed = {"station": station, "manifest": manifest}
    for station_id, ref, is_voided, devices, at, data, sha256, handed_at, handed in db.execute(
            _MANIFESTS, narrowed).fetchall():
        scheme = _parsed(data).get("scheme")
        if not isinstance(scheme, str) or not scheme:
            continue  # an entry that names no scheme is allocated to no partner
        found.append(ManifestSummary("station", str(station_id), str(ref), scheme, partner_of_scheme(scheme), str(at),
                                     int(devices), bool(is_voided), str(sha256) if sha256 else None,
                                     _handover(handed_at, handed)))
    for fleet, ref, scheme, named, is_voided, devices, created, sha256, handed_at, received_by, reference in db.execute(
            _FLEET_MANIFESTS, narrowed).fetchall():
        handover = None if handed_at is None else {
            "at": handed_at.astimezone(UTC).isoformat(timespec="seconds"), "received_by": str(received_by),
            "partner": str(named), "reference": str(reference)}
        found.append(ManifestSummary("fleet", str(fleet), str(ref), str(scheme), str(named),
                                     created.astimezone(UTC).isoformat(), int(devices), bool(is_voided), str(sha256),
                                     handover))
    db.commit()
    chosen = [summary for summary in found if (partner is None or _same_partner(summary.partner, partner))
              and (voided or not summary.voided)]
    chosen.sort(key=lambda summary: (summary.station_id, summary.manifest_id))
    chosen.sort(key=lambda summary: summary.recorded_at, reverse=True)  # newest first, then by station and id
    return chosen


def _held_pdf(db: Any, summary: ManifestSummary) -> bytes | None:
    """The signed PDF the fleet holds: as the station forwarded it, or as ``fleet manifest create`` kept it."""
    if summary.fleet:
        row = db.execute("SELECT pdf FROM fleet_manifests WHERE fleet = %s AND document_id = %s AND pdf IS NOT NULL",
                         (summary.station_id, summary.manifest_id)).fetchone()
    else:
        row = db.execute("SELECT pdf FROM fleet_documents WHERE station_id = %s AND document_id = %s "
                         "AND kind = 'manifest'", (summary.station_id, summary.manifest_id)).fetchone()
    db.commit()
    return bytes(row[0]) if row else None


Listed = tuple[str, str]
"""A listed certificate: (the station that issued it, its id)."""
_CERTIFICATES = """
SELECT d.station_id, d.document_id, {what} FROM fleet_documents d
JOIN unnest(%s::text[], %s::text[]) AS w(station_id, document_id)
  ON d.station_id = w.station_id AND d.document_id = w.document_id
WHERE d.kind = 'certificate'
"""


def _held_certificates(db: Any, listed: list[Listed]) -> dict[Listed, bytes]:
    rows = db.execute(_CERTIFICATES.format(what="d.pdf"), ([item[0] for item in listed],
                                                            [item[1] for item in listed])).fetchall()
    db.commit()
    return {(str(station), str(document_id)): bytes(pdf) for station, document_id, pdf in rows}


def _which_certificates(db: Any, listed: list[Listed]) -> set[Listed]:
    rows = db.execute(_CERTIFICATES.format(what="1"), ([item[0] for item in listed],
                                                        [item[1] for item in listed])).fetchall()
    db.commit()
    return {(str(row[0]), str(row[1])) for row in rows}


def safe_name(name: str, fallback: str) -> str:
    """``name`` when it is a plain file name of letters, digits, ``.``, ``_`` and ``-`` (as a station writes
    them), else those characters of it (no separator, no leading dot: nothing that leaves its folder)."""
    if _SAFE_NAME.fullmatch(name) and ".." not in name:
        cleaned = name
    else:
        cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).replace("..", "_").lstrip("._-")[:100]
    cleaned = cleaned.rstrip(".")  # Windows drops a trailing dot: "a.pdf." would land on "a.pdf"
    if _DEVICE_NAME.fullmatch(cleaned.split(".")[0]):  # CON, NUL, COM1 ... are devices on Windows, whatever follows
        cleaned = f"_{cleaned}"[:100]
    return cleaned or fallback


@dataclass(frozen=True)
class HeldManifest:
    """A manifest the session may see, with the signed document read from its PDF by the verifier."""

    summary: ManifestSummary
    pdf: bytes
    document: dict[str, Any]
    report: VerificationReport

    @property
    def base(self) -> str:
        if self.summary.fleet:
            return safe_name(f"fleet-manifest-{self.summary.manifest_id}", "fleet-manifest")
        return safe_name(f"manifest-{self.summary.manifest_id}", "manifest")

    def listed(self) -> list[tuple[Listed, str]]:
        """Each listed certificate, once, with the file name the manifest gives it: a station manifest's are its
        station's, a fleet manifest names the station of each."""
        seen: dict[Listed, str] = {}
        for device in self.document.get("devices", []):
            for drive in device.get("drives", []):
                station = str(drive.get("station_id")) if self.summary.fleet else self.summary.station_id
                seen.setdefault((station, str(drive.get("certificate_id"))), str(drive.get("certificate_file") or ""))
        return list(seen.items())

    def certificate_ids(self) -> list[str]:
        return [certificate for (_station, certificate), _file in self.listed()]

    def csv(self) -> bytes:
        """The signed rows as CSV, byte for byte the file the signer wrote beside the PDF."""
        if self.summary.fleet:
            from certs.fleet_manifest import render_csv as fleet_csv

            return fleet_csv(self.document)
        from certs.manifest import render_csv

        return render_csv(self.document)


def _fleet_held(summary: ManifestSummary, pdf: bytes, report: VerificationReport) -> HeldManifest:
    """A verified fleet manifest, handed out only when what it signs is what the fleet's record says: the partner
    and the scheme (the record decided who sees it; the signed document is what the partner holds)."""
    document = report.document or {}
    scheme = document.get("scheme")
    signed_scheme = str(scheme.get("name")) if isinstance(scheme, dict) else str(scheme)
    if document.get("partner") != summary.partner or signed_scheme != summary.scheme:
        raise ManifestUnavailable(f"the signed fleet manifest is for {document.get('partner')!r} ({signed_scheme}), "
                                  f"the fleet's record says {summary.partner!r} ({summary.scheme}); it is not "
                                  "handed out")
    return HeldManifest(summary, pdf, document, report)


def fleet_drives(document: dict[str, Any]) -> list[dict[str, str]]:
    """A fleet manifest's drives, one row each, as its page lists them (numbered by device, as the signed rows)."""
    found = []
    for number, device in enumerate(document.get("devices", []), start=1):
        make_model = " ".join(str(part) for part in (device.get("make"), device.get("model")) if part)
        for drive in device.get("drives", []):
            found.append({"no": str(number), "asset": str(device.get("asset")), "make_model": make_model or "\u2014",
                          "host_serial": str(device.get("serial") or "\u2014"),
                          **{key: str(drive.get(key) or "\u2014") for key in (
                              "serial", "station_id", "certificate_id", "level", "method")},
                          "sanitised_on": str(drive.get("sanitised_at") or "")[:10] or "\u2014"})
    return found


class TrustFile:
    """The console's trust bundle, re-read when its file changes (a new CRL is handed out as a new bundle)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._bundle: TrustBundle | None = None

    def bundle(self) -> TrustBundle:
        from certs.errors import TrustBundleError
        from certs.verify import load_trust_bundle

        if self.path is None:
            raise ManifestUnavailable("the console has no trust bundle (web serve --trust BUNDLE): "
                                           "nothing can be verified")
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp != self._stamp or self._bundle is None:
                self._bundle, self._stamp = load_trust_bundle(self.path), stamp
        except (OSError, TrustBundleError) as error:
            raise ManifestUnavailable(f"the console's trust bundle cannot be read: {error}") from None
        return self._bundle

    @property
    def stamp(self) -> str:
        """Which bundle file was read last (its mtime and size)."""
        return f"{self._stamp}"

    def raw(self) -> bytes | None:
        if self.path is None:
            return None
        try:
            return self.path.read_bytes()
        except OSError:
            return None


class _Verdicts:
    """Verdicts on held manifest PDFs by their SHA-256 and the bundle's stamp (the same bytes judged with the same
    bundle give the same verdict for a while)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, VerificationReport]] = OrderedDict()

    def get(self, digest: str) -> VerificationReport | None:
        item = self._items.get(digest)
        if item is None or time.monotonic() - item[0] > CACHE_SECONDS:
            return None
        self._items.move_to_end(digest)
        return item[1]

    def put(self, digest: str, report: VerificationReport) -> None:
        self._items[digest] = (time.monotonic(), report)
        while len(self._items) > CACHE_SIZE:
            self._items.popitem(last=False)


def _segment(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > MAX_SEGMENT or not value.isprintable():
        raise web.HTTPNotFound(text="no such manifest")
    return value


def _allowed_partner(request: web.Request) -> str | None:
    """The partner whose manifests this session sees (None: an admin sees every partner's)."""
    session = session_of(request)
    if session.role is Role.ADMIN:
        return None
    if session.role is not Role.PARTNER or not session.partner:
        raise web.HTTPForbidden(text="only a partner account (or an admin) sees manifests")
    return session.partner


def _verify(pdf: bytes, name: str, bundle: TrustBundle, expect: Any) -> VerificationReport:
    from certs.cli import _quiet_pdf_libraries
    from certs.verify import verify_data

    with _quiet_pdf_libraries():
        return verify_data(Path(name), pdf, bundle, expect=expect)


def install(console: Console, fleet: FleetContext) -> None:
    """The partner view and the upload box on the fleet console."""
    trust = TrustFile(fleet.trust)
    verdicts = _Verdicts()

    async def own(request: web.Request) -> HeldManifest:
        partner = _allowed_partner(request)
        station, manifest = _segment(request, "station"), _segment(request, "manifest")
        found = await fleet.run(lambda database: manifests_of(database.db, partner, station=station,
                                                              manifest=manifest, voided=partner is None))
        if not found:  # another partner's or none at all: the same answer, so existence is not revealed
            raise web.HTTPNotFound(text="no such manifest")
        if len(found) > 1:  # a station manifest and a fleet manifest of one name (a station named as the fleet)
            raise ManifestUnavailable(f"two manifests are named {station}/{manifest}: neither is handed out")
        summary = found[0]
        pdf = await fleet.run(lambda database: _held_pdf(database.db, summary))
        if pdf is None or summary.pdf_sha256 is None:
            raise ManifestUnavailable(f"the fleet holds no signed PDF of manifest {manifest} (the station has "
                                           "not forwarded it): ask the organisation")
        bundle = trust.bundle()
        # by the bytes handed out (not the column beside them) and the bundle they were judged with (a new CRL
        # judges again)
        digest = f"{hashlib.sha256(pdf).hexdigest()}:{trust.stamp}"
        report = verdicts.get(digest)
        if report is None:
            from certs.verify import DocumentKind

            kind = DocumentKind.FLEET_MANIFEST if summary.fleet else DocumentKind.MANIFEST
            report = await asyncio.to_thread(_verify, pdf, f"manifest-{manifest}.pdf", bundle, kind)
            verdicts.put(digest, report)
        if not report.valid or report.document is None:
            raise ManifestUnavailable(f"the manifest the fleet holds does not verify now "
                                           f"({report.code}: {report.reason}); it is not handed out")
        signer = "fleet" if summary.fleet else "station_id"
        if report.document.get("document_id") != manifest or report.document.get(signer) != station:
            raise ManifestUnavailable("the held PDF is another manifest's; it is not handed out")
        if summary.fleet:
            return _fleet_held(summary, pdf, report)
        signed = report.document.get("scheme")
        signed_scheme = str(signed.get("name")) if isinstance(signed, dict) else str(signed)
        if not _same_partner(partner_of_scheme(signed_scheme), summary.partner):
            # the station's audit entry allocated it to this partner, the signed manifest to another: the
            # signed document is what a partner holds, so neither is handed out
            raise ManifestUnavailable(f"the signed manifest is for scheme {signed_scheme!r}, its audit entry "
                                           f"says {summary.scheme!r}; it is not handed out")
        return HeldManifest(summary, pdf, report.document, report)

    async def listing(request: web.Request) -> web.StreamResponse:
        partner = _allowed_partner(request)
        found = await fleet.run(lambda database: manifests_of(database.db, partner, voided=partner is None))
        return render(request, "fleet_partner.html", manifests=found, partner=partner)

    async def detail(request: web.Request) -> web.StreamResponse:
        from certs.manifest import manifest_rows

        held = await own(request)
        listed = [item for item, _file in held.listed()]
        held_now = await fleet.run(lambda database: _which_certificates(database.db, listed))
        missing = [certificate for (station, certificate) in listed if (station, certificate) not in held_now]
        stated = held.document.get("scheme")
        scheme = {key: str(stated.get(key) or "") for key in ("name", "summary", "destination")} \
            if isinstance(stated, dict) else {"name": str(stated), "summary": "", "destination": ""}
        if held.summary.fleet:
            return render(request, "fleet_partner_fleet_manifest.html", held=held, drives=fleet_drives(held.document),
                          present=held_now, missing=missing, scheme=scheme)
        present = {certificate for _station, certificate in held_now}
        return render(request, "fleet_partner_manifest.html", held=held, rows=manifest_rows(held.document),
                      present=present, missing=missing, scheme=scheme)

    def _download(data: bytes, name: str, content_type: str, charset: str | None = None) -> web.Response:
        return web.Response(body=data, content_type=content_type, charset=charset, headers={
            "Content-Disposition": f'attachment; filename="{name}"'})

    def _record(request: web.Request, what: str, held: HeldManifest, **extra: Any) -> None:
        session = session_of(request)
        console.record("web-partner-download", session.name, {
            "what": what, "source": held.summary.source, "station_id": held.summary.station_id,
            "manifest_id": held.summary.manifest_id,
            "partner": session.partner, **extra})

    async def pdf(request: web.Request) -> web.StreamResponse:
        held = await own(request)
        _record(request, "pdf", held, sha256=held.summary.pdf_sha256)
        return _download(held.pdf, f"{held.base}.pdf", "application/pdf")

    async def csv(request: web.Request) -> web.StreamResponse:
        held = await own(request)
        _record(request, "csv", held)
        return _download(held.csv(), f"{held.base}.csv", "text/csv", "utf-8")

    async def pack(request: web.Request) -> web.StreamResponse:
        held = await own(request)
        if held.summary.voided:  # (only an admin sees one) a voided manifest was never handed over
            raise web.HTTPGone(text=f"manifest {held.summary.manifest_id} is voided: it is never packed")
        _record(request, "pack", held, sha256=held.summary.pdf_sha256)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{held.base}.zip"'})
        await response.prepare(request)
        await stream_pack(response, held, trust.raw(), lambda listed: fleet.run(
            lambda database: _held_certificates(database.db, listed)))
        await response.write_eof()
        return response

    async def verify_form(request: web.Request) -> web.StreamResponse:
        return render(request, "fleet_partner_verify.html", verdict=None, bundle=fleet.trust is not None,
                      limit_mib=MAX_UPLOAD >> 20)

    async def verify_upload(request: web.Request) -> web.StreamResponse:
        from certs.verify import DEFAULT_KINDS

        session = session_of(request)
        form = await request.post()
        upload = form.get("document")
        try:
            if not isinstance(upload, web.FileField):
                raise web.HTTPBadRequest(text="choose a file to verify (the form's 'document' field)")
            data = await asyncio.to_thread(upload.file.read, MAX_UPLOAD + 1)
        finally:  # every file part is spooled to a temporary file: closed now, not when collected
            for value in form.values():
                if isinstance(value, web.FileField):
                    value.file.close()
        name = safe_name(Path(upload.filename or "").name, "upload.pdf")
        digest = hashlib.sha256(data).hexdigest()
        if not data:
            console.record("web-verify-upload", session.name, {"sha256": digest, "bytes": 0, "file": name,
                                                               "verdict": "empty"})
            raise web.HTTPBadRequest(text=f"{name} is empty: nothing to verify")
        if len(data) > MAX_UPLOAD:
            console.record("web-verify-upload", session.name, {"sha256": digest, "bytes": len(data), "file": name,
                                                               "verdict": "too_large"})
            raise web.HTTPRequestEntityTooLarge(MAX_UPLOAD, len(data),
                                                text=f"{name} is larger than {MAX_UPLOAD >> 20} MiB")
        bundle = trust.bundle()
        report = await asyncio.to_thread(_verify, data, name, bundle, DEFAULT_KINDS)
        console.record("web-verify-upload", session.name, {
            "sha256": digest, "bytes": len(data), "file": name, "verdict": report.code, "valid": report.valid,
            "kind": report.kind.value if report.kind else None, "document_id": report.certificate_id})
        return render(request, "fleet_partner_verify.html", verdict=report, bundle=True, sha256=digest,
                      size=len(data), name=name, limit_mib=MAX_UPLOAD >> 20)

    console.add("GET", "/partner", listing, roles=PARTNER_ROLES, nav="Manifests")
    console.add("GET", "/partner/manifests/{station}/{manifest}", detail, roles=PARTNER_ROLES)
    console.add("GET", "/partner/manifests/{station}/{manifest}/pdf", pdf, roles=PARTNER_ROLES)
    console.add("GET", "/partner/manifests/{station}/{manifest}/csv", csv, roles=PARTNER_ROLES)
    console.add("GET", "/partner/manifests/{station}/{manifest}/pack", pack, roles=PARTNER_ROLES)
    console.add("GET", "/verify", verify_form, roles=VERIFY_ROLES, nav="Verify")
    console.add("POST", "/verify", verify_upload, roles=VERIFY_ROLES, max_body=UPLOAD_BODY)


class _Sink:
    """A write-only file for :class:`zipfile.ZipFile` (no seek, no tell: it writes data descriptors) whose bytes
    are taken away after each member, so the archive streams."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _member(name: str, moment: datetime, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(max(moment.year, 1980), moment.month, moment.day, moment.hour,
                                            moment.minute, moment.second))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def readme(held: HeldManifest, files: dict[Listed, str], missing: list[str], renamed: list[str],
           bundle: bytes | None) -> str:
    """README.txt of a certificate pack: what it holds and how to check it without the fleet."""
    summary = held.summary
    if summary.fleet:
        stations = sorted({station for station, _certificate in files})
        lines = [
            f"Certificate pack of fleet manifest {summary.manifest_id} for {summary.partner}",
            f"Signed by fleet {summary.station_id}, scheme {summary.scheme}, {summary.devices} device(s) from "
            f"station(s) {', '.join(stations)}, created {summary.recorded_at}.",
            "",
            "This folder is the fleet manifest as the fleet wrote it:",
            f"  {held.base}.pdf    the signed fleet manifest (PAdES, the fleet's key)",
        ]
    else:
        lines = [
            f"Certificate pack of batch manifest {summary.manifest_id}",
            f"Station {summary.station_id}, scheme {summary.scheme}, {summary.devices} device(s), "
            f"recorded {summary.recorded_at}.",
            "",
            "This folder is the manifest as the station wrote it:",
            f"  {held.base}.pdf    the signed manifest (PAdES, the station's key)",
        ]
    lines += [
        f"  {held.base}.json   the manifest's signed JSON (byte-identical to the copy inside the PDF)",
        f"  {held.base}.csv    its rows, for a spreadsheet",
        f"  certificates/      the {len(files)} certificate(s) of sanitisation it lists",
    ]
    if bundle is not None:
        lines.append("  trust-bundle.pem   the organisation's trust bundle (CA certificate, CRL) as the fleet holds it")
    lines += [
        "",
        "Check it offline (nothing is fetched from the network) with the partners' verifier, in this folder:",
        f"  wipe-agent verify {held.base}.pdf --trust BUNDLE",
        f"  (or, with the verifier alone: python -m certs verify {held.base}.pdf --trust BUNDLE)",
        "The certificates/ folder beside the PDF is checked too: every certificate the manifest lists must be",
        "present, valid and the one listed (id and record hash), and nothing else may be in the folder.",
        "A VALID verdict on every line, and exit status 0, is the only pass.",
        "",
    ]
    if bundle is not None:
        lines += [
            "Use the trust bundle the organisation gave you directly. The copy here came with the pack: compare",
            "its SHA-256 with the one the organisation states before you trust it:",
            f"  {hashlib.sha256(bundle).hexdigest()}  trust-bundle.pem",
            "",
        ]
    else:
        lines += ["No trust bundle is included: use the one the organisation gave you.", ""]
    if missing:
        lines += ["INCOMPLETE: the fleet holds no copy of these listed certificates, so the check above fails",
                  "until the organisation supplies them:", *(f"  {item}" for item in missing), ""]
    if renamed:
        lines += ["These certificate file names were not plain names and were renamed here (the check names them):",
                  *(f"  {item}" for item in renamed), ""]
    return "\r\n".join(lines)


async def stream_pack(response: web.StreamResponse, held: HeldManifest, bundle: bytes | None,
                      fetch: Any) -> None:
    """Write the pack of ``held`` to ``response`` member by member; ``fetch(listed)`` awaits {(station, id): pdf}
    of certificates. At most :data:`PACK_CHUNK` certificates are in memory at once."""
    from certs.documents import canonical_json

    try:
        moment = datetime.fromisoformat(str(held.document.get("created_at"))).astimezone(UTC)
    except ValueError:
        moment = datetime.now(UTC)
    top = held.base
    files: dict[Listed, str] = {}  # (station, certificate id) -> its member name
    used: set[str] = set()
    renamed: list[str] = []
    for listed, wanted in held.listed():
        name = safe_name(wanted, safe_name(f"{listed[1]}.pdf", "certificate.pdf"))
        base, number = name, 2
        while name.lower() in used:
            name, number = f"{number}-{base}", number + 1
        used.add(name.lower())
        if name != wanted:
            renamed.append(f"{wanted!r} -> certificates/{name}")
        files[listed] = name
    sink = _Sink()
    missing: list[str] = []
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        archive.writestr(_member(f"{top}/{held.base}.pdf", moment, False), held.pdf)
        archive.writestr(_member(f"{top}/{held.base}.json", moment, True), canonical_json(held.document))
        archive.writestr(_member(f"{top}/{held.base}.csv", moment, True), held.csv())
        await response.write(sink.take())
        ids = list(files)
        for start in range(0, len(ids), PACK_CHUNK):
            chunk = ids[start:start + PACK_CHUNK]
            held_pdfs: dict[Listed, bytes] = await fetch(chunk)
            for certificate in chunk:
                data = held_pdfs.pop(certificate, None)
                if data is None:
                    where = f" of {certificate[0]}" if held.summary.fleet else ""
                    missing.append(f"{certificate[1]}{where} ({files[certificate]})")
                    continue
                archive.writestr(_member(f"{top}/certificates/{files[certificate]}", moment, False), data)
                await response.write(sink.take())
        archive.writestr(_member(f"{top}/README.txt", moment, True),
                         readme(held, files, missing, renamed, bundle).encode())
        if bundle is not None:
            archive.writestr(_member(f"{top}/trust-bundle.pem", moment, True), bundle)
    await response.write(sink.take())
