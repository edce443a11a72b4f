"""RFC 3161 timestamp tokens, issued by the organisation's own timestamping authority (TSA).

This module is the pure token code: parse a ``TimeStampReq``, decide to grant or reject it, and
build the ``TimeStampResp``. It does no I/O; the HTTP server, the persisted serial counter and the
token log live in :mod:`agent.tsa.server`. Partners never need it (they only read tokens).

A granted token is a CMS ``SignedData`` (RFC 5652) whose content is the DER ``TSTInfo`` and whose
one ``SignerInfo`` carries the signed attributes content-type (id-ct-TSTInfo), message-digest,
signing-time and signingCertificateV2 (RFC 5816, SHA-256 of the TSA certificate), signed with the
TSA key (ECDSA P-256 / SHA-256). The request's nonce is echoed; the policy is :data:`TSA_POLICY`;
the accuracy is :data:`ACCURACY_SECONDS`. Requests are rejected (a ``TimeStampResp`` with status
*rejection* and a failure bit, as RFC 3161 section 2.4.2 asks) for an unsupported hash algorithm, a
digest of the wrong length, a policy other than ours, or any request extension.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import ClassVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.errors import CertificateError
from certs.oids import WIPE_AGENT_ARC

TSA_POLICY = f"{WIPE_AGENT_ARC}.3.1"
"""The TSA policy OID every token names: "the organisation's wipe-agent TSA, clock from the host"."""
ACCURACY_SECONDS = 1
"""Stated accuracy of genTime (the host clock is NTP-disciplined; see the README)."""
MAX_REQUEST_BYTES = 8192
"""A TimeStampReq is a few hundred bytes; anything larger is refused before parsing."""

_DIGEST_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64}
"""Message-imprint algorithms we accept, with their digest lengths (no SHA-1, no MD5)."""


class TsaError(CertificateError):
    """The TSA's key or certificate is unusable (wrong profile, unreadable, mismatched)."""

    code = "tsa_unusable"


class FailureReason(Enum):
    """Why a request is rejected (RFC 3161 PKIFailureInfo bit names)."""

    BAD_ALGORITHM = "bad_alg"
    BAD_REQUEST = "bad_request"
    BAD_DATA_FORMAT = "bad_data_format"
    UNACCEPTED_POLICY = "unaccepted_policy"
    UNACCEPTED_EXTENSION = "unaccepted_extensions"


class MalformedRequest(Exception):
    """The request bytes are not a DER TimeStampReq at all (the server answers HTTP 400)."""


@dataclass(frozen=True)
class TimestampRequest:
    """The parts of a parsed TimeStampReq the TSA acts on."""

    hash_algorithm: str
    digest: bytes
    nonce: int | None
    certificate_requested: bool
    policy: str | None
    has_extensions: bool


@dataclass(frozen=True)
class IssuedToken:
    """What the TSA granted: the DER response and what the token log records."""

    response: bytes
    serial: int
    gen_time: datetime
    hash_algorithm: str
    digest: bytes
    nonce: int | None


@dataclass(frozen=True)
class Rejection:
    """A rejected request: the DER response (status rejection) and the reason."""

    response: bytes
    reason: FailureReason
    message: str


@dataclass(frozen=True)
class TimestampAuthority:
    """The TSA's key, certificate and the chain to the CA (embedded when the client asks)."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        check_tsa_certificate(self.certificate)
        own = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        certified = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if own != certified:
            raise TsaError("the TSA key does not belong to the TSA certificate")


def check_tsa_certificate(certificate: x509.Certificate) -> None:
    """Raise :class:`TsaError` unless the certificate's EKU is exactly timeStamping, critical
    (RFC 3161 section 2.3), with digitalSignature in its key usage and CA=false."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TsaError("the TSA certificate has no extended key usage (it needs timeStamping)") from None
    if list(usage.value) != [ExtendedKeyUsageOID.TIME_STAMPING] or not usage.critical:
        raise TsaError("the TSA certificate's extended key usage must be timeStamping only, critical")
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise TsaError("the TSA certificate lacks key usage or basic constraints") from None
    if not key_usage.digital_signature or constraints.ca:
        raise TsaError("the TSA certificate must allow digitalSignature and must not be a CA")


def parse_request(data: bytes) -> TimestampRequest:
    """Parse a DER TimeStampReq; raise :class:`MalformedRequest` when it is not one."""
    if len(data) > MAX_REQUEST_BYTES:
        raise MalformedRequest(f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        request = tsp.TimeStampReq.load(data, strict=True)
        version = request["version"].native
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        digest = imprint["hashed_message"].native
        nonce = request["nonce"].native
        certificate_requested = bool(request["cert_req"].native)
        policy = request["req_policy"].dotted if request["req_policy"].native is not None else None
        has_extensions = request["extensions"].native is not None
        # Re-encoding must give the same bytes: DER only, so one request has one meaning.
        if request.dump(force=True) != data:
            raise MalformedRequest("request is not DER")
    except MalformedRequest:
        raise
    except (ValueError, TypeError, KeyError) as error:
        raise MalformedRequest(f"not a TimeStampReq: {error}") from None
    if version != "v1":
        raise MalformedRequest(f"unsupported TimeStampReq version {version}")
    if not isinstance(digest, bytes):
        raise MalformedRequest("message imprint has no digest")
    return TimestampRequest(str(algorithm), digest, nonce, certificate_requested, policy, has_extensions)


class _StatusOnlyResponse(core.Sequence):  # type: ignore[misc]
    """TimeStampResp without a token: asn1crypto's own class wrongly requires timeStampToken."""

    _fields: ClassVar[list[tuple[str, type]]] = [("status", tsp.PKIStatusInfo)]


def _rejection(reason: FailureReason, message: str) -> Rejection:
    response = _StatusOnlyResponse({
        "status": tsp.PKIStatusInfo({
            "status": "rejection",
            "status_string": [message],
            "fail_info": tsp.PKIFailureInfo({reason.value}),
        }),
    })
    return Rejection(response.dump(), reason, message)


def reject_malformed(message: str) -> bytes:
    """A DER TimeStampResp rejecting a request that could not be parsed (badDataFormat)."""
    return _rejection(FailureReason.BAD_DATA_FORMAT, message).response


def issue_token(
    authority: TimestampAuthority, request: TimestampRequest, *, serial: int, now: datetime
) -> IssuedToken | Rejection:
    """Grant ``request`` with token number ``serial`` at time ``now``, or reject it.

    ``serial`` must be unique for this TSA (the caller persists the counter); ``now`` must be
    timezone-aware UTC and inside the TSA certificate's validity.
    """
    expected = _DIGEST_LENGTHS.get(request.hash_algorithm)
    if expected is None:
        return _rejection(FailureReason.BAD_ALGORITHM, f"hash algorithm {request.hash_algorithm} not accepted")
    if len(request.digest) != expected:
        return _rejection(FailureReason.BAD_DATA_FORMAT, f"{request.hash_algorithm} digest must be {expected} bytes")
    if request.policy is not None and request.policy != TSA_POLICY:
        return _rejection(FailureReason.UNACCEPTED_POLICY, f"policy {request.policy} not offered")
    if request.has_extensions:
        return _rejection(FailureReason.UNACCEPTED_EXTENSION, "request extensions are not accepted")
    if serial <= 0:
        raise ValueError("a token serial is a positive integer")
    certificate = authority.certificate
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise TsaError(f"the TSA certificate is not valid at {now:%Y-%m-%dT%H:%M:%SZ}")
    # Whole seconds: the stated accuracy is one second, and openssl prints genTime exactly.
    gen_time = now.replace(microsecond=0)
    der = serialization.Encoding.DER
    tsa_certificate = asn1_x509.Certificate.load(certificate.public_bytes(der))
    tst_info = tsp.TSTInfo({
        "version": "v1",
        "policy": TSA_POLICY,
        "message_imprint": tsp.MessageImprint({
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": request.hash_algorithm}),
            "hashed_message": request.digest,
        }),
        "serial_number": serial,
        "gen_time": core.GeneralizedTime(gen_time),
        "accuracy": tsp.Accuracy({"seconds": ACCURACY_SECONDS}),
        "ordering": False,
        "nonce": request.nonce,
        "tsa": asn1_x509.GeneralName(name="directory_name", value=tsa_certificate.subject),
    })
    content = tst_info.dump()
    signed_attributes = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": gen_time})]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
        cms.CMSAttribute({
            "type": "signing_certificate_v2",
            "values": [tsp.SigningCertificateV2({
                "certs": [tsp.ESSCertIDv2({
                    # SHA-256 is the DEFAULT hashAlgorithm, so DER omits it.
                    "cert_hash": hashlib.sha256(certificate.public_bytes(der)).digest(),
                    "issuer_serial": tsp.IssuerSerial({
                        "issuer": [asn1_x509.GeneralName(name="directory_name", value=tsa_certificate.issuer)],
                        "serial_number": tsa_certificate.serial_number,
                    }),
                })],
            })],
        }),
    ])
    # The signature is over the DER SET OF the attributes (RFC 5652 section 5.4).
    signature = authority.private_key.sign(signed_attributes.dump(), ec.ECDSA(hashes.SHA256()))
    certificates = [tsa_certificate]
    certificates += [asn1_x509.Certificate.load(item.public_bytes(der)) for item in authority.chain]
    signed_data = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": cms.EncapsulatedContentInfo({
            "content_type": "tst_info",
            "content": core.ParsableOctetString(content),
        }),
        "certificates": (
            [cms.CertificateChoices(name="certificate", value=item) for item in certificates]
            if request.certificate_requested else None
        ),
        "signer_infos": [cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber({
                "issuer": tsa_certificate.issuer,
                "serial_number": tsa_certificate.serial_number,
            })),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": signed_attributes,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        })],
    })
    response = tsp.TimeStampResp({
        "status": tsp.PKIStatusInfo({"status": "granted"}),
        "time_stamp_token": cms.ContentInfo({"content_type": "signed_data", "content": signed_data}),
    })
    return IssuedToken(response.dump(), serial, gen_time, request.hash_algorithm, request.digest, request.nonce)

