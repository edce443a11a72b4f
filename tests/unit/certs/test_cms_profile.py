"""The strict CMS profile (issue 10, round 2: C1, C2, C3, C5): the CMS sits in the unsigned gap.

Anyone holding a genuine document can rewrite its CMS in place (same length, the zero padding
absorbs growth) without touching a signed byte. Each case here does exactly that to a genuine
station document, or to the signature timestamp token inside it, and asserts the exact code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps import DummyTimeStamper

from certs.verify import FAILURE_CODES, DocumentKind, VerificationReport, load_trust_bundle, verify_with_bundle
from tests.unit.certs import verify_kit as kit
from tests.unit.certs.certs_test_kit import PkiWorld, record_for

_TOKEN = "1.2.840.113549.1.9.16.2.14"
_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*0\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def verify(path: Path, bundle: Path) -> VerificationReport:
    report = verify_with_bundle(path, load_trust_bundle(bundle), expect=DocumentKind.CERTIFICATE)
    assert report.code in ("valid", *FAILURE_CODES), report
    return report


def _gap(data: bytes) -> tuple[int, int]:
    match = _BYTE_RANGE.search(data)
    assert match, "a signed PDF has a /ByteRange"
    first_length, second_start, _ = (int(item) for item in match.groups())
    return first_length + 1, second_start - 1  # inside the angle brackets


def cms_of(data: bytes) -> cms.ContentInfo:
    """The station signature's CMS (first /ByteRange), exactly as written."""
    start, end = _gap(data)
    raw = bytes.fromhex(data[start:end].decode())
    length = len(cms.ContentInfo.load(raw, strict=False).dump())
    return cms.ContentInfo.load(raw[:length])


def with_cms(data: bytes, der: bytes) -> bytes:
    """``data`` with its station CMS replaced in place by ``der`` (zero padded, same file length)."""
    start, end = _gap(data)
    digits = der.hex().encode()
    assert len(digits) <= end - start, "the replacement fits the reserved gap"
    return data[:start] + digits + b"0" * (end - start - len(digits)) + data[end:]


def _signer_info(info: cms.ContentInfo) -> cms.SignerInfo:
    return info["content"]["signer_infos"][0]


def _token(info: cms.ContentInfo) -> cms.ContentInfo:
    attribute = next(item for item in _signer_info(info)["unsigned_attrs"] if item["type"].dotted == _TOKEN)
    return attribute["values"][0]


def _unsigned_payload(info: cms.ContentInfo) -> None:
    _signer_info(info)["unsigned_attrs"] = cms.CMSAttributes([cms.CMSAttribute({
        "type": "1.2.3.4.5.6.7", "values": [core.OctetString(b"HIDDEN: serial NEVER-WIPED-999 sanitised Purge")],
    })])


def _extra_certificate(info: cms.ContentInfo) -> None:
    certificates = list(info["content"]["certificates"])
    info["content"]["certificates"] = [*certificates, certificates[0]]


def _digest_algorithms(*names: str) -> Callable[[cms.ContentInfo], None]:
    def edit(info: cms.ContentInfo) -> None:
        info["content"]["digest_algorithms"] = [algos.DigestAlgorithm({"algorithm": name}) for name in names]
    return edit


def _signer_digest_sha1(info: cms.ContentInfo) -> None:
    _signer_info(info)["digest_algorithm"] = algos.DigestAlgorithm({"algorithm": "sha1"})


def _signature_algorithm_sha1(info: cms.ContentInfo) -> None:
    _signer_info(info)["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": "sha1_ecdsa"})


def _two_signer_infos(info: cms.ContentInfo) -> None:
    first = _signer_info(info)
    info["content"]["signer_infos"] = [first, cms.SignerInfo.load(first.dump())]


def _no_signed_attributes(info: cms.ContentInfo) -> None:
    del _signer_info(info)["signed_attrs"]


def _without_attribute(oid: str) -> Callable[[cms.ContentInfo], None]:
    def edit(info: cms.ContentInfo) -> None:
        signer_info = _signer_info(info)
        signer_info["signed_attrs"] = cms.CMSAttributes(
            [item for item in signer_info["signed_attrs"] if item["type"].dotted != oid])
    return edit


def _encapsulated_content(info: cms.ContentInfo) -> None:
    info["content"]["encap_content_info"]["content"] = core.OctetString(b"a certificate for another serial")


def _crls_inside(info: cms.ContentInfo) -> None:
    info["content"]["crls"] = [cms.RevocationInfoChoice(name="other", value=cms.OtherRevocationInfoFormat({
        "other_rev_info_format": "1.2.3.4", "other_rev_info": core.OctetString(b"x")}))]


STATION_EDITS: dict[str, tuple[Callable[[cms.ContentInfo], None], str]] = {
    "unsigned attribute carrying a payload (C1)": (_unsigned_payload, "cms_profile"),
    "a second copy of the station certificate (C3)": (_extra_certificate, "cms_profile"),
    "digestAlgorithms announces SHA-1 (C2)": (_digest_algorithms("sha1"), "weak_algorithm"),
    "digestAlgorithms holds an extra algorithm": (_digest_algorithms("sha256", "sha384"), "cms_profile"),
    "digestAlgorithms names another algorithm": (_digest_algorithms("sha384"), "cms_profile"),
    "digestAlgorithms is empty": (_digest_algorithms(), "cms_profile"),
    "SignerInfo digestAlgorithm SHA-1": (_signer_digest_sha1, "weak_algorithm"),
    "signature algorithm ecdsa-with-SHA1": (_signature_algorithm_sha1, "weak_algorithm"),
    "two SignerInfos (C5)": (_two_signer_infos, "multiple_signer_infos"),
    "no signed attributes": (_no_signed_attributes, "cms_profile"),
    "no contentType attribute": (_without_attribute("1.2.840.113549.1.9.3"), "cms_profile"),
    "no messageDigest attribute": (_without_attribute("1.2.840.113549.1.9.4"), "cms_profile"),
    "no signingCertificateV2 attribute": (_without_attribute("1.2.840.113549.1.9.16.2.47"), "cms_profile"),
    "eContent present (not detached)": (_encapsulated_content, "cms_profile"),
    "revocation data inside the CMS": (_crls_inside, "cms_profile"),
}


@pytest.fixture(scope="module")
def genuine(world: PkiWorld, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = world.issue(record_for(world.station, demo=False), directory=tmp_path_factory.mktemp("cms-profile"))
    assert verify(path, world.bundle).valid, "the station's genuine document is the control"
    return path.read_bytes()


@pytest.mark.parametrize("case", list(STATION_EDITS))
def test_station_cms_rewritten_in_place(world: PkiWorld, genuine: bytes, tmp_path: Path, case: str) -> None:
    edit, code = STATION_EDITS[case]
    info = cms_of(genuine)
    edit(info)
    path = tmp_path / "forged.pdf"
    path.write_bytes(with_cms(genuine, info.dump(force=True)))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, code), report.reason


def test_a_non_der_length_in_the_cms_is_refused(world: PkiWorld, genuine: bytes, tmp_path: Path) -> None:
    """The same CMS with its outer SEQUENCE length in a longer, non-minimal form: valid BER, not DER."""
    der = cms_of(genuine).dump()
    assert der[1] == 0x82, "the genuine CMS has a two-byte length"
    path = tmp_path / "ber.pdf"
    path.write_bytes(with_cms(genuine, der[:1] + b"\x84\x00\x00" + der[2:]))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "cms_profile"), report.reason


# --- the signature timestamp token inside the station's CMS --------------------------------------------


@pytest.fixture(scope="module")
def tsa(world: PkiWorld) -> kit.KitTsa:
    return kit.make_tsa(world.ca_dir)


@pytest.fixture(scope="module")
def stamped(world: PkiWorld, tsa: kit.KitTsa, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The signed revision with a signature timestamp from the organisation's (test) TSA."""
    data = kit.sign_raw(record_for(world.station, demo=False), world.station, tsa.stamper())
    path = tmp_path_factory.mktemp("cms-token") / "stamped.pdf"
    path.write_bytes(data)
    report = verify(path, world.bundle)
    assert report.valid and report.timestamped, report.reason
    return data


def _token_unsigned_attribute(token: cms.ContentInfo) -> None:
    token["content"]["signer_infos"][0]["unsigned_attrs"] = cms.CMSAttributes([cms.CMSAttribute({
        "type": "1.2.3.4.5.6.8", "values": [core.OctetString(b"payload in the token")]})])


def _token_foreign_certificate(world: PkiWorld) -> Callable[[cms.ContentInfo], None]:
    def edit(token: cms.ContentInfo) -> None:
        foreign = asn1_x509.Certificate.load(
            world.other_ca_station.certificate.public_bytes(serialization.Encoding.DER))
        token["content"]["certificates"] = [*token["content"]["certificates"], foreign]
    return edit


def _rewrite_token(data: bytes, edit: Callable[[cms.ContentInfo], None]) -> bytes:
    info = cms_of(data)
    token = _token(info)
    edit(token)
    attribute = next(item for item in _signer_info(info)["unsigned_attrs"] if item["type"].dotted == _TOKEN)
    attribute["values"] = [cms.ContentInfo.load(token.dump(force=True))]
    return with_cms(data, info.dump(force=True))


def test_token_with_an_unsigned_attribute(world: PkiWorld, stamped: bytes, tmp_path: Path) -> None:
    path = tmp_path / "token-unsigned.pdf"
    path.write_bytes(_rewrite_token(stamped, _token_unsigned_attribute))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "cms_profile"), report.reason
    assert "timestamp token carries unsigned attributes" in report.reason


def test_token_carrying_a_foreign_certificate(world: PkiWorld, stamped: bytes, tmp_path: Path) -> None:
    path = tmp_path / "token-foreign.pdf"
    path.write_bytes(_rewrite_token(stamped, _token_foreign_certificate(world)))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "cms_profile"), report.reason
    assert "other than the signer's and its CA's" in report.reason


def test_token_binding_its_certificate_with_sha1_ess(world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path) -> None:
    """pyHanko's own test TSA writes ESS signingCertificate (SHA-1, RFC 2634): refused as weak."""
    from asn1crypto import keys as asn1_keys

    stamper = DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(tsa.certificate.public_bytes(serialization.Encoding.DER)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(kit._RSA_KEY.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    path = tmp_path / "ess-sha1.pdf"
    path.write_bytes(kit.sign_raw(record_for(world.station, demo=False), world.station, stamper))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "weak_algorithm"), report.reason
