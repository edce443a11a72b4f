"""The audit chain's format and its offline verifier: what a partner or auditor runs on an export.

No station imports (the partners' venv, ``requirements-verify.txt``, runs it): the station's
:mod:`agent.audit.log` writes entries and checkpoints with the functions here, and
``wipe-agent audit verify --file`` / ``python -m certs audit-verify`` check an export with them.

An entry's ``hash`` is SHA-256 over the previous entry's hash followed by the canonical JSON of
``{seq, at, kind, subject, data}`` (the first entry follows 64 zeros). A **checkpoint** is the
station's signature (ECDSA-SHA256 with its station key, raw, with the station certificate beside
it) over the canonical JSON of ``{format, station_id, seq, head, count, at}``: it proves that the
station, at ``at``, had exactly ``count`` entries ending in ``head``. Whoever rewrites an entry and
re-hashes everything after it cannot re-sign the checkpoints that follow without the station key,
so the rewrite shows as a head mismatch; entries after the last checkpoint are unanchored and
refused (an export signs its head first). Checkpoint signatures are checked by
:func:`certs.verify.check_station_signature`: the same station-profile, validity and revocation
checks as a signed certificate's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from certs.documents import canonical_json
from certs.files import NotReadable, read_regular_file
from certs.pki import TrustBundle
from certs.record import text_problem

GENESIS = "0" * 64
EXPORT_FORMAT = "wipe-agent-audit-export/1"
CHECKPOINT_FORMAT = "wipe-agent-audit-checkpoint/1"
MAX_EXPORT_BYTES = 512 * 1024 * 1024
_HEX64 = frozenset("0123456789abcdef")


class AuditFileError(Exception):
    """An export that cannot be read as one (not JSON, wrong format, a field of the wrong type): exit 2."""


def entry_hash(prev_hash: str, seq: int, at: str, kind: str, subject: str, data: Any) -> str:
    """The chained hash of one entry."""
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "subject": subject, "data": data})
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def checkpoint_payload(station_id: str, seq: int, head: str, count: int, at: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return canonical_json({"format": CHECKPOINT_FORMAT, "station_id": station_id, "seq": seq, "head": head,
                           "count": count, "at": at})


def _ranges(numbers: list[int]) -> str:
    return f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint as stored and exported."""

    number: int
    station_id: str
    seq: int
    head: str
    count: int
    at: str
    signature: str
    """Base64 of the DER ECDSA signature over :func:`checkpoint_payload`."""
    certificate: str
    """The signing station certificate: base64 of its DER (one line, so a signed manifest can carry it)."""

    def to_json(self) -> dict[str, Any]:
        """JSON form (export and manifest)."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, value: Any, where: str) -> Checkpoint:
        """Parse one exported checkpoint; a malformed one is an :class:`AuditFileError` naming ``where``."""
        if type(value) is not dict:
            raise AuditFileError(f"{where} is not an object")
        try:
            item = cls(**{name: value[name] for name in cls.__dataclass_fields__})
        except KeyError as missing:
            raise AuditFileError(f"{where} has no {missing.args[0]!r}") from None
        for name, kind in (("number", int), ("seq", int), ("count", int), ("station_id", str), ("head", str),
                           ("at", str), ("signature", str), ("certificate", str)):
            _require(getattr(item, name), kind, f"{where}: {name}")
        return item

    def payload(self) -> bytes:
        """What the signature covers."""
        return checkpoint_payload(self.station_id, self.seq, self.head, self.count, self.at)


@dataclass(frozen=True)
class ChainReport:
    """The result of checking an export (or the station's own chain with its checkpoints)."""

    valid: bool
    entries: int
    first_seq: int | None
    last_seq: int | None
    head: str
    checkpoints: int
    anchored_to: int | None
    """The highest seq a valid checkpoint covers (None: nothing is signed)."""
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    station_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"valid": self.valid, "entries": self.entries, "first_seq": self.first_seq, "last_seq": self.last_seq,
                "head": self.head, "checkpoints": self.checkpoints, "anchored_to": self.anchored_to,
                "station_id": self.station_id, "problems": list(self.problems), "warnings": list(self.warnings)}


@dataclass
class _Walk:
    problems: list[str] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)


def check_entries(entries: list[dict[str, Any]], *, first_seq: int = 1,
                  first_prev: str | None = GENESIS) -> tuple[list[str], dict[int, str]]:
    """Walk entries in file order; name every one that does not fit. Returns (problems, seq → stored hash).

    ``first_prev``: the hash the first entry must follow (genesis for an export from seq 1; None
    when the export starts later and the previous entry is not in the file).
    """
    walk = _Walk()
    expected, prev = first_seq, first_prev
    for index, entry in enumerate(entries):
        seq = entry["seq"]
        if seq in walk.hashes:
            walk.problems.append(f"entry {seq} appears twice (entry inserted or duplicated)")
        elif seq > expected:
            walk.problems.append(f"entries {_ranges(list(range(expected, seq)))} missing: seq jumps "
                                 f"{expected - 1} → {seq}" if index else
                                 f"entries {_ranges(list(range(expected, seq)))} missing: the export starts at "
                                 f"seq {seq}, not {expected}")
        elif seq < expected:
            walk.problems.append(f"entry {seq} out of order: it comes after entry {expected - 1} "
                                 "(entries reordered or inserted)")
        try:
            digest = entry_hash(entry["prev_hash"], seq, entry["at"], entry["kind"], entry["subject"], entry["data"])
        except (ValueError, TypeError, RecursionError):  # data the station can never have hashed
            digest = None
        if digest != entry["hash"]:
            walk.problems.append(f"entry {seq}: hash does not match its content (entry modified)")
        if prev is not None and entry["prev_hash"] != prev:
            follows = f"entry {entries[index - 1]['seq']}" if index else "the start of the chain"
            walk.problems.append(f"entry {seq}: previous-hash link broken: it does not follow {follows} "
                                 "(entry deleted, inserted or reordered)")
        walk.hashes.setdefault(seq, entry["hash"])
        prev, expected = entry["hash"], max(expected, seq + 1)
    return walk.problems, walk.hashes


def check_checkpoints(checkpoints: list[Checkpoint], hashes: dict[int, str], last_seq: int | None,
                      bundle: TrustBundle | None, station_id: str | None,
                      pinned: frozenset[str] | None = None) -> tuple[list[str], int | None]:
    """Each checkpoint's signature (station profile, validity, revocation: via :mod:`certs.verify`) and head.

    ``bundle`` None checks the signature value against the checkpoint's own certificate, which must
    be one of ``pinned`` (base64 DER: the station's installed certificate) — a certificate is only
    evidence when something outside the row says whose it is. ``bundle`` and ``pinned`` both None
    trusts the row's certificate (reported by the caller as unchecked). Returns (problems, the
    highest seq a valid checkpoint anchors).
    """
    from certs.verify import check_station_signature  # the verifier's import graph is large; needed only here

    problems: list[str] = []
    anchored: int | None = None
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        label = f"checkpoint {checkpoint.number} (seq {checkpoint.seq})"
        if previous is not None and (checkpoint.seq < previous.seq or checkpoint.at < previous.at):
            problems.append(f"{label} is out of order: after checkpoint {previous.number} (seq {previous.seq}, "
                            f"{previous.at})")
        previous = checkpoint
        problem = _signature_problem(checkpoint, bundle, station_id, check_station_signature)
        if problem is None and bundle is None and pinned is not None and checkpoint.certificate not in pinned:
            problem = ("signed by a certificate that is not this station's installed station certificate "
                       "(untrusted; give --trust BUNDLE if the station certificate was renewed)")
        if problem:
            problems.append(f"{label}: {problem}")
            continue
        if checkpoint.count != checkpoint.seq:
            problems.append(f"{label}: signed count {checkpoint.count} does not match its seq")
            continue
        if last_seq is not None and checkpoint.seq > last_seq:
            problems.append(f"the export ends at seq {last_seq} but {label.split(' (')[0]} covers seq "
                            f"{checkpoint.seq}: truncated")
            continue
        stored = hashes.get(checkpoint.seq)
        if stored is None:
            problems.append(f"{label}: entry {checkpoint.seq} is not in the export")
        elif stored != checkpoint.head:
            problems.append(f"{label}: the signed head hash does not match entry {checkpoint.seq} "
                            "(the chain was rewritten after it was signed)")
        else:
            anchored = checkpoint.seq if anchored is None else max(anchored, checkpoint.seq)
    return problems, anchored


def _signature_problem(checkpoint: Checkpoint, bundle: TrustBundle | None, station_id: str | None,
                       check: Any) -> str | None:
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(checkpoint.certificate, validate=True))
        signature = base64.b64decode(checkpoint.signature, validate=True)
        moment = datetime.fromisoformat(checkpoint.at)
    except (ValueError, UnicodeError, binascii.Error) as error:
        return f"unreadable signature, certificate or time ({error})"
    if moment.tzinfo is None:
        return "its time states no time zone"
    if station_id is not None and checkpoint.station_id != station_id:
        return f"signed for station {checkpoint.station_id!r}, the export is of station {station_id!r}"
    if bundle is None:
        # the station checking its own registry: its own certificate's key, nothing to trust it by
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return "the certificate's key is not an EC key"
        try:
            key.verify(signature, checkpoint.payload(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "the signature value does not verify with the signer's key (bad_signature)"
        return None
    problem = check(certificate, checkpoint.payload(), signature, moment, bundle, station_id=checkpoint.station_id)
    # after the full check: only a certificate of the bundle's CA reaches the CRL look-up
    return f"{problem.reason} ({problem.code})" if problem else _compromise_problem(certificate, bundle)


def _compromise_problem(certificate: x509.Certificate, bundle: TrustBundle) -> str | None:
    """A checkpoint carries no timestamp: its time is what the signed JSON says, which the holder of a stolen key
    writes. So a key revoked for key compromise signs no acceptable checkpoint, whatever time it states (an
    invalidity date would only stop a thief who does not back-date)."""
    entry = bundle.crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    if entry is None:
        return None
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    if reason != x509.ReasonFlags.key_compromise:
        return None
    return ("untimestamped checkpoint of a compromised key: the station certificate was revoked for key "
            "compromise and the checkpoint's stated time cannot be trusted (revoked)")


def verify_checkpoint(value: Any, bundle: TrustBundle, station_id: str | None = None) -> str | None:
    """Check one checkpoint on its own (the ``audit_checkpoint`` a manifest carries): its form and its station
    signature against ``bundle``. None when it is sound; else the reason. What it anchors (the head) is
    checked against an export of the station's chain."""
    try:
        checkpoint = Checkpoint.from_json(value, "the checkpoint")
    except AuditFileError as error:
        return str(error)
    from certs.verify import check_station_signature

    return _signature_problem(checkpoint, bundle, station_id, check_station_signature)


# --- the export file ------------------------------------------------------------------------------


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _require(value: Any, kind: type, where: str) -> Any:
    if type(value) is not kind:
        raise AuditFileError(f"{where} is not {_JSON_NAMES[kind]}")
    return value


def _entry(value: Any, where: str) -> dict[str, Any]:
    _require(value, dict, where)
    for name, kind in (("seq", int), ("at", str), ("kind", str), ("subject", str), ("prev_hash", str),
                       ("hash", str)):
        if name not in value:
            raise AuditFileError(f"{where} has no {name!r}")
        _require(value[name], kind, f"{where}: {name}")
    if "data" not in value:
        raise AuditFileError(f"{where} has no 'data'")
    return dict(value)


def _no_constant(name: str) -> Any:
    """``parse_constant``: JSON has no NaN or Infinity, and the chain's canonical form cannot hash them."""
    raise ValueError(f"{name} is not a JSON number")


def parse_export(data: bytes) -> dict[str, Any]:
    """Parse an export's bytes into its parts, or raise :class:`AuditFileError` with one line."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise AuditFileError("not an audit export: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise AuditFileError(f"not an audit export: not JSON ({str(error)[:120]})") from None
    _require(document, dict, "the export")
    if document.get("format") != EXPORT_FORMAT:
        raise AuditFileError(f"not an audit export: format {str(document.get('format'))[:60]!r}, "
                             f"expected {EXPORT_FORMAT!r}")
    station_id = _require(document.get("station_id"), str, "station_id")
    problem = text_problem(station_id)
    if problem:
        raise AuditFileError(f"station_id: {problem}")
    selection = _require(document.get("range"), dict, "range")
    entries = [_entry(item, f"entries[{index}]")
               for index, item in enumerate(_require(document.get("entries"), list, "entries"))]
    checkpoints = [Checkpoint.from_json(item, f"checkpoints[{index}]")
                   for index, item in enumerate(_require(document.get("checkpoints"), list, "checkpoints"))]
    for name in ("from_seq", "to_seq"):
        _require(selection.get(name), int, f"range.{name}")
    first_prev = selection.get("first_prev_hash")
    if first_prev is not None and (type(first_prev) is not str or len(first_prev) != 64
                                   or not set(first_prev) <= _HEX64):
        raise AuditFileError("range.first_prev_hash is not a SHA-256 hex digest")
    return {"station_id": station_id, "range": selection, "entries": entries, "checkpoints": checkpoints,
            "certificates": document.get("certificates")}


def _range_problems(entries: list[dict[str, Any]], from_seq: int, to_seq: int) -> list[str]:
    """The declared range against the entries: nothing outside it, nothing missing at its end."""
    problems: list[str] = []
    if to_seq < from_seq:
        problems.append(f"the export states the range seq {from_seq}-{to_seq}, which is empty")
    outside = sorted({entry["seq"] for entry in entries if not from_seq <= entry["seq"] <= to_seq})
    if outside:
        problems.append(f"entries {_ranges(outside)} lie outside the stated range seq {from_seq}-{to_seq} "
                        "(range altered)")
    seqs = [entry["seq"] for entry in entries]
    if seqs and max(seqs) < to_seq:
        problems.append(f"the export ends at seq {max(seqs)} but states it holds entries up to {to_seq}: truncated")
    if not entries:
        problems.append("the export holds no entries: an empty export proves nothing")
    return problems


def numbering_problems(checkpoints: list[Checkpoint]) -> list[str]:
    """The station numbers its checkpoints 1, 2, 3 …: a gap is a checkpoint removed from the export."""
    problems = []
    for before, after in itertools.pairwise(checkpoints):
        if after.number > before.number + 1:
            problems.append(f"checkpoint(s) {_ranges(list(range(before.number + 1, after.number)))} missing between "
                            f"checkpoints {before.number} and {after.number} (removed from the export)")
    return problems


def _text_warnings(entries: list[dict[str, Any]]) -> list[str]:
    """Entry text another tool may print raw: a control or format character is named (the entry is what the
    station recorded, so this is a warning; the chain still decides validity)."""
    warnings = []
    for entry in entries:
        for name, value in (("kind", entry["kind"]), ("subject", entry["subject"]),
                            *((f"data {path}", text) for path, text in _strings(entry["data"], ""))):
            problem = text_problem(value)
            if problem:
                warnings.append(f"entry {entry['seq']} {name}: {problem} (printed escaped)")
                break
    return warnings


def _strings(value: Any, path: str, depth: int = 0) -> list[tuple[str, str]]:
    if depth > 64:
        return []
    if isinstance(value, str):
        return [(path or "value", value)]
    if isinstance(value, dict):
        return [item for key, inner in value.items()
                for item in _strings(key, f"{path}.{key!r}", depth + 1) + _strings(inner, f"{path}.{key}", depth + 1)]
    if isinstance(value, list):
        return [item for index, inner in enumerate(value) for item in _strings(inner, f"{path}[{index}]", depth + 1)]
    return []


def anchor_problems(anchor: Any, hashes: dict[int, str], bundle: TrustBundle | None, station_id: str) -> list[str]:
    """An anchor the partner already holds (a manifest's ``audit_checkpoint``) against the export: its signature,
    and the export must hold the anchored entry with the anchored head — a cut or re-signed export does not."""
    if bundle is None:
        return ["an anchor is checked against a trust bundle: none given"]
    problem = verify_checkpoint(anchor, bundle, station_id)
    if problem:
        return [f"the anchor checkpoint is not accepted: {problem}"]
    seq, head = anchor["seq"], anchor["head"]
    if seq not in hashes:
        where = "beyond the export's end: truncated" if not hashes or seq > max(hashes) else "not in the export"
        return [f"the anchor (checkpoint {anchor['number']}, seq {seq}) is {where}"]
    if hashes[seq] != head:
        return [f"entry {seq} does not match the anchor's signed head (the chain was rewritten)"]
    return []


def verify_export(document: dict[str, Any], bundle: TrustBundle | None, *,
                  station_id: str | None = None, anchor: Any = None) -> ChainReport:
    """Check a parsed export: every entry, the chain links, the declared range and every checkpoint.

    Every entry must be covered by a valid checkpoint: the last exported entry is anchored by a station
    signature (``audit export`` signs one of the exported head when the station key is there), so
    entries after the last checkpoint, or an export without one, are refused as *unanchored* — a
    chain re-hashed by someone without the key leaves exactly that. ``station_id``: the station the
    caller expects (``--station``); another station's export is then refused by name.
    """
    entries: list[dict[str, Any]] = document["entries"]
    selection = document["range"]
    from_seq, to_seq = selection["from_seq"], selection["to_seq"]
    first_prev = selection.get("first_prev_hash") or (GENESIS if from_seq == 1 else None)
    problems, hashes = check_entries(entries, first_seq=from_seq, first_prev=first_prev)
    last_seq = entries[-1]["seq"] if entries else None
    if station_id is not None and document["station_id"] != station_id:
        problems.append(f"the export is of station {document['station_id']!r}, not of station {station_id!r}")
    problems.extend(_range_problems(entries, from_seq, to_seq))
    checkpoints: list[Checkpoint] = document["checkpoints"]
    problems.extend(numbering_problems(checkpoints))
    checkpoint_problems, anchored = check_checkpoints(checkpoints, hashes, max(hashes) if hashes else None, bundle,
                                                      document["station_id"])
    problems.extend(checkpoint_problems)
    if anchor is not None:
        problems.extend(anchor_problems(anchor, hashes, bundle, document["station_id"]))
    if entries and (anchored is None or anchored < max(hashes)):
        unsigned_from = min(hashes) if anchored is None else anchored + 1
        problems.append(f"entries {_ranges(sorted({unsigned_from, max(hashes)}))} are not covered by any valid station "
                        "checkpoint: unanchored, refused (anyone can re-hash entries no checkpoint signs)")
    return ChainReport(not problems, len(entries), entries[0]["seq"] if entries else None, last_seq,
                       entries[-1]["hash"] if entries else "", len(checkpoints), anchored,
                       tuple(problems), tuple(_text_warnings(entries)), document["station_id"])


def verify_export_file(path: Path, bundle: TrustBundle, *, station_id: str | None = None,
                       anchor: Any = None) -> ChainReport:
    """Read and check an export file; an unreadable or malformed one raises :class:`AuditFileError`."""
    try:
        data = read_regular_file(path, MAX_EXPORT_BYTES)
    except NotReadable as error:
        raise AuditFileError(str(error)) from None
    return verify_export(parse_export(data), bundle, station_id=station_id, anchor=anchor)


def render(report: ChainReport, what: str) -> list[str]:
    """The human lines of a report (``what``: "audit export", "audit log")."""
    span = f"seq {report.first_seq}-{report.last_seq}" if report.entries else "no entries"
    signed = (f"signed up to seq {report.anchored_to}" if report.anchored_to is not None
              else "no checkpoint signs any of them")
    if report.valid:
        station = f" of station {report.station_id}" if report.station_id else ""
        lines = [f"{what} intact: {report.entries} entries ({span}){station}, {report.checkpoints} checkpoint(s), "
                 f"{signed}; head {report.head}"]
    else:
        lines = [f"{what.upper()} BROKEN ({len(report.problems)} problem(s), {report.entries} entries, {span}):"]
        lines += [f"  {problem}" for problem in report.problems]
    return lines + [f"  warning: {warning}" for warning in report.warnings]


def manifest_anchor(path: Path, bundle: TrustBundle) -> Any:
    """The ``audit_checkpoint`` of a valid signed manifest (``--anchor MANIFEST.pdf``); AuditFileError otherwise."""
    from certs.verify import DocumentKind, verify_with_bundle

    report = verify_with_bundle(path, bundle, expect=DocumentKind.MANIFEST)
    if not report.valid or report.document is None:
        raise AuditFileError(f"--anchor {path}: not a valid manifest ({report.code}: {report.reason})")
    anchor = report.document.get("audit_checkpoint")
    if anchor is None:
        raise AuditFileError(f"--anchor {path}: the manifest carries no audit checkpoint")
    return anchor


def run_audit_verify(file: str, trust: str | None, *, as_json: bool, echo: Any = print,
                     station_id: str | None = None, anchor: str | None = None) -> int:
    """``audit verify --file F --trust BUNDLE [--station ID] [--anchor MANIFEST.pdf]``: 0 intact, 1 broken, 2
    bad input (one line, raised as :class:`AuditFileError` or :class:`certs.errors.TrustBundleError`)."""
    from certs.verify import load_trust_bundle

    if not trust:
        raise AuditFileError("--trust BUNDLE is required to check an export (the issuer's trust bundle)")
    bundle = load_trust_bundle(Path(trust))
    held = manifest_anchor(Path(anchor), bundle) if anchor else None
    report = verify_export_file(Path(file), bundle, station_id=station_id, anchor=held)
    if as_json:
        echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in render(report, "audit export"):
            echo(line)
    return 0 if report.valid else 1
