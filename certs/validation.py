"""The validation statement: a validation officer's signed accept/reject of a set of certificates.

NIST SP 800-88 Rev. 2 asks that sanitisation be *validated* by someone other than the operator.
The statement is the signed evidence of that: which certificates (id and record SHA-256, so a
certificate re-issued with other content is not covered), the decision, who decided in which role,
when, why, and who signed (:data:`SignerKind`): the officer with a personal certificate carrying
:data:`certs.oids.VALIDATOR_SIGNING_EKU`, or the station on the officer's recorded instruction.

Like :class:`certs.record.SanitisationRecord` the statement is a strict frozen dataclass: values are
checked on construction, and :meth:`ValidationStatement.from_json` refuses unknown, missing or
duplicate keys and wrong types. It is embedded and signed as a station document
(:mod:`certs.documents`, kind ``validation``) and rendered by :mod:`certs.validation_render`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Literal

from certs.documents import canonical_json
from certs.errors import RecordError
from certs.record import (
    _convert,
    _fail,
    _no_constants,
    _no_duplicates,
    _require_identifier,
    _require_text,
    _require_timestamp,
    _Strict,
)

STATEMENT_SCHEMA_VERSION = 1
DOCUMENT_KIND = "validation"
"""The :mod:`certs.documents` kind of a validation statement."""

Decision = Literal["accept", "reject"]
SignerKind = Literal["officer", "station-on-instruction"]
SIGNER_KINDS: tuple[str, ...] = ("officer", "station-on-instruction")

_SHA256 = re.compile(r"[0-9a-f]{64}")

SIGNER_WORDING = {
    "officer": "the validation officer, with their own certificate from the organisation CA",
    "station-on-instruction": "the station, on the validation officer's recorded instruction",
}
"""What the statement's page says about who signed it (checked by the verifier against the JSON)."""
DECISION_WORDING = {"accept": "ACCEPTED", "reject": "REJECTED"}

MAX_NAME = 64
"""Longest ``by`` and ``role``: a person's certificate name is at most 64 characters (``pki issue-person``)."""
MAX_REASON = 500
"""Longest ``reason``: what the page prints in its field and the verifier reads back."""


def person_key(name: str) -> str:
    """How two spellings of a person's name are compared (separation of duties, officer precedence).

    Compatibility-normalised (NFKC: full-width and ligature forms fold), case-folded and with runs of
    white space collapsed: "PC  Test", "pc test" and its full-width spelling are one person. Titles are not
    stripped, so the comparison is by the exact name a person signs in or is certified under.
    """
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


@dataclass(frozen=True, kw_only=True)
class ValidatedCertificate(_Strict):
    """One certificate the decision covers, pinned by the SHA-256 of its signed record."""

    certificate_id: str
    record_sha256: str
    job_id: str
    drive: str
    """Drive model and serial as the certificate states them (for the reader; identity is the hash)."""

    def _check_rules(self) -> None:
        _require_identifier("certificate_id", self.certificate_id)
        _require_identifier("job_id", self.job_id)
        if not _SHA256.fullmatch(self.record_sha256):
            _fail("record_sha256", "must be 64 lower-case hex digits")


@dataclass(frozen=True, kw_only=True)
class ValidationStatement(_Strict):
    """A signed validation decision over one or more certificates of one station."""

    schema_version: int
    kind: Literal["validation"]
    document_id: str
    station_id: str
    created_at: str
    decision: Decision
    by: str
    role: str
    reason: str
    signer_kind: SignerKind
    demo: bool
    certificates: tuple[ValidatedCertificate, ...]
    summary: str

    def _check_rules(self) -> None:
        if self.schema_version != STATEMENT_SCHEMA_VERSION:
            _fail("schema_version", f"unsupported version {self.schema_version} (this is {STATEMENT_SCHEMA_VERSION})")
        _require_identifier("document_id", self.document_id)
        _require_identifier("station_id", self.station_id)
        _require_timestamp("created_at", self.created_at)
        _require_text("by", self.by)
        _require_text("role", self.role)
        for path, value, limit in (("by", self.by, MAX_NAME), ("role", self.role, MAX_NAME),
                                   ("reason", self.reason, MAX_REASON)):
            if len(value) > limit:
                _fail(path, f"is {len(value)} characters long; at most {limit}")
        if self.decision == "reject":
            _require_text("reason", self.reason)
        # the signed summary is what other tools print: it may not say anything but the decision itself
        if self.summary != summary_of(self.decision, len(self.certificates), self.by, self.role):
            _fail("summary", "does not state the statement's own decision, count, person and role")
        if not self.certificates:
            _fail("certificates", "must list at least one certificate")
        ids = [item.certificate_id for item in self.certificates]
        if len(set(ids)) != len(ids):
            _fail("certificates", "lists a certificate twice")

    def to_dict(self) -> dict[str, Any]:
        """The statement as plain JSON-able objects."""
        return asdict(self)

    def to_canonical_json(self) -> bytes:
        """Canonical JSON (the same form as every station document): the statement's identity."""
        return canonical_json(self.to_dict())

    def sha256(self) -> str:
        """SHA-256 of :meth:`to_canonical_json`, lower-case hex."""
        return hashlib.sha256(self.to_canonical_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes) -> ValidationStatement:
        """Parse strictly (RecordError names the offending key)."""
        try:
            parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except UnicodeDecodeError:
            raise RecordError("statement: not UTF-8") from None
        except json.JSONDecodeError as error:
            raise RecordError(f"statement: not valid JSON ({error.msg} at line {error.lineno})") from None
        result = _convert(cls, parsed, "statement")
        assert isinstance(result, cls)
        return result


def summary_of(decision: str, count: int, by: str, role: str) -> str:
    """The one-line summary a statement carries (and ``verify`` prints)."""
    noun = "certificate" if count == 1 else "certificates"
    return f"{DECISION_WORDING.get(decision, decision)} {count} {noun}, by {by} ({role})"


def issue_statement(statement: ValidationStatement, signer: Any, out_path: Any, *, fonts_dir: Any = None,
                    timestamper: Any = None, tsa_url: str | None = None) -> Any:
    """Render, embed, sign (PAdES, long-term like every station document) and write ``out_path`` atomically.

    ``signer`` is a :class:`certs.pki.StationSigner`: the station's own, or an officer's from
    :func:`certs.pki.load_person_signer`. Returns the :class:`certs.ltv.SignedDocument`.
    """
    from certs.documents import sign_document_long_term
    from certs.issue import write_atomic
    from certs.validation_render import render_statement

    payload = statement.to_canonical_json()
    signed = sign_document_long_term(
        render_statement(statement, fonts_dir), kind=DOCUMENT_KIND, document_id=statement.document_id,
        payload=payload, sha256=hashlib.sha256(payload).hexdigest(), issued_at=statement.created_at, signer=signer,
        reason=f"Validation statement ({statement.decision}, signed by {statement.signer_kind})",
        timestamper=timestamper, tsa_url=tsa_url)
    write_atomic(out_path, signed.data)
    return signed
