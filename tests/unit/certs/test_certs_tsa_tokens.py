"""certs.tsa without the server: request parsing, grant/reject decisions, the token's own fields."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import pki
from certs.tsa import (
    MAX_REQUEST_BYTES,
    TSA_POLICY,
    FailureReason,
    IssuedToken,
    MalformedRequest,
    Rejection,
    TimestampAuthority,
    TsaError,
    issue_token,
    parse_request,
)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TimestampAuthority:
    root = tmp_path_factory.mktemp("tsa-unit")
    pki.init_ca("Example Police", root / "ca")
    issued = pki.issue_tsa(root / "ca", root / "tsa")
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return TimestampAuthority(x509.load_pem_x509_certificate(issued.certificate_path.read_bytes()),
                              (x509.load_pem_x509_certificate((root / "ca" / "ca.crt").read_bytes()),), key)


def _request(digest: bytes = b"\x11" * 32, algorithm: str = "sha256", **fields: object) -> bytes:
    return tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": tsp.MessageImprint({"hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
                                               "hashed_message": digest}),
        **fields,
    }).dump()


def test_a_granted_token_states_what_was_asked(authority: TimestampAuthority) -> None:
    now = pki.utc_now()
    request = parse_request(_request(nonce=123456789, cert_req=True))
    token = issue_token(authority, request, serial=42, now=now)
    assert isinstance(token, IssuedToken)
    response = tsp.TimeStampResp.load(token.response)
    assert response["status"]["status"].native == "granted"
    signed_data = response["time_stamp_token"]["content"]
    info = signed_data["encap_content_info"]["content"].parsed
    assert info["serial_number"].native == 42 and info["nonce"].native == 123456789
    assert info["policy"].dotted == TSA_POLICY
    assert info["message_imprint"]["hashed_message"].native == b"\x11" * 32
    assert abs(info["gen_time"].native - now) < timedelta(seconds=1)
    signer_info = signed_data["signer_infos"][0]
    attributes = {item["type"].native: item["values"][0] for item in signer_info["signed_attrs"]}
    assert attributes["content_type"].native == "tst_info"
    content = signed_data["encap_content_info"]["content"].contents
    assert attributes["message_digest"].native == hashlib.sha256(content).digest()
    certificate_hash = attributes["signing_certificate_v2"]["certs"][0]["cert_hash"].native
    assert certificate_hash == hashlib.sha256(authority.certificate.public_bytes(serialization.Encoding.DER)).digest()
    # The signature verifies over the DER SET of signed attributes, with the TSA's key.
    public = authority.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    # In the SignerInfo the attributes are tagged [0] IMPLICIT; the signature covers them as a SET.
    signed_set = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    public.verify(signer_info["signature"].native, signed_set, ec.ECDSA(hashes.SHA256()))
    assert len(signed_data["certificates"]) == 2  # TSA + CA, because cert_req was set


def test_certificates_only_when_asked(authority: TimestampAuthority) -> None:
    token = issue_token(authority, parse_request(_request()), serial=1, now=pki.utc_now())
    assert isinstance(token, IssuedToken)
    signed_data = tsp.TimeStampResp.load(token.response)["time_stamp_token"]["content"]
    assert signed_data["certificates"].native is None
    assert signed_data["version"].native == "v3"
    assert isinstance(signed_data, cms.SignedData)


@pytest.mark.parametrize(("request_bytes", "reason"), [
    (_request(b"\x11" * 20, "sha1"), FailureReason.BAD_ALGORITHM),
    (_request(b"\x11" * 16, "md5"), FailureReason.BAD_ALGORITHM),
    (_request(b"\x11" * 31), FailureReason.BAD_DATA_FORMAT),
    (_request(b"\x11" * 32, "sha384"), FailureReason.BAD_DATA_FORMAT),
    (_request(req_policy="1.2.3.4"), FailureReason.UNACCEPTED_POLICY),
    (_request(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]),
     FailureReason.UNACCEPTED_EXTENSION),
])
def test_unacceptable_requests_are_rejected(authority: TimestampAuthority, request_bytes: bytes,
                                            reason: FailureReason) -> None:
    outcome = issue_token(authority, parse_request(request_bytes), serial=1, now=pki.utc_now())
    assert isinstance(outcome, Rejection) and outcome.reason is reason


def test_our_own_policy_and_longer_digests_are_granted(authority: TimestampAuthority) -> None:
    for request_bytes in (_request(req_policy=TSA_POLICY), _request(b"\x22" * 64, "sha512")):
        assert isinstance(issue_token(authority, parse_request(request_bytes), serial=1, now=pki.utc_now()),
                          IssuedToken)


@pytest.mark.parametrize("data", [
    b"", b"\x30\x00", b"junk" * 4, b"\x30" + b"\x80" + _request()[2:] + b"\x00\x00",  # BER indefinite length
    _request() + b"\x00",  # trailing byte
    b"\x30" * (MAX_REQUEST_BYTES + 1),
    tsp.TimeStampReq({"version": 2, "message_imprint": tsp.MessageImprint({
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}), "hashed_message": b"\x11" * 32})}).dump(),
])
def test_malformed_requests_raise_malformed(data: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(data)


def test_a_token_is_never_issued_outside_the_certificate_validity(authority: TimestampAuthority) -> None:
    later = authority.certificate.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(TsaError, match="not valid at"):
        issue_token(authority, parse_request(_request()), serial=1, now=later)
    with pytest.raises(ValueError, match="positive"):
        issue_token(authority, parse_request(_request()), serial=0, now=pki.utc_now())


def test_the_authority_checks_its_certificate_profile(authority: TimestampAuthority, tmp_path: Path) -> None:
    pki.init_ca("Example Police", tmp_path / "ca")
    pki.issue_station(tmp_path / "ca", "station-01", tmp_path / "state")
    station = pki.load_station_signer(tmp_path / "state")
    with pytest.raises(TsaError, match="timeStamping only, critical"):
        TimestampAuthority(station.certificate, (), station.private_key)
    with pytest.raises(TsaError, match="does not belong"):
        TimestampAuthority(authority.certificate, (), station.private_key)
