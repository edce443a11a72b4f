"""Test kit for certs.structure: genuine B-B and B-LTA documents, and tools to tamper with them.

The B-LTA shape is made with pyHanko directly (signature timestamp from a DummyTimeStamper, then a
DSS revision, then a document timestamp), as the ``ltv`` branch will make it with the project's code.
Tampering is done two ways: through pyHanko's incremental writer (what an attacker with a PDF
library does) and by writing raw revisions by hand (what pyHanko would refuse to write).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.timestamps import DummyTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator.registry import SimpleCertificateStore

from certs import pki
from certs.structure import StructureError, StructureReport, check_structure
from tests.unit.certs.certs_test_kit import EssV2TimeStamper, PkiWorld

DER = serialization.Encoding.DER


@dataclass(frozen=True)
class Ltv:
    """What B-LTA needs: a TSA the world's CA certifies, and the material a DSS holds."""

    stamper: DummyTimeStamper
    certificates: tuple[asn1_x509.Certificate, ...]
    crls: tuple[asn1_crl.CertificateList, ...]


def make_ltv(world: PkiWorld) -> Ltv:
    """A time-stamping certificate issued by the world's CA (RSA: pyHanko's test TSA is RSA-only)."""
    ca_key = serialization.load_pem_private_key((world.ca_dir / "ca.key").read_bytes(), password=None)
    ca_certificate = x509.load_pem_x509_certificate((world.ca_dir / "ca.crt").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = pki.utc_now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Structure test TSA")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    ca = asn1_x509.Certificate.load(ca_certificate.public_bytes(DER))
    tsa = asn1_x509.Certificate.load(certificate.public_bytes(DER))
    stamper = EssV2TimeStamper(
        tsa_cert=tsa,
        tsa_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        certs_to_embed=SimpleCertificateStore.from_certs([ca]),
    )
    station = asn1_x509.Certificate.load(world.station.certificate.public_bytes(DER))
    crl = x509.load_pem_x509_crl((world.ca_dir / "crl.pem").read_bytes())
    return Ltv(stamper, (station, ca, tsa), (asn1_crl.CertificateList.load(crl.public_bytes(DER)),))


def add_dss(data: bytes, ltv: Ltv, *, certificates: int | None = None) -> bytes:
    """Append a DSS revision (certificates and CRL), as pyHanko's ``add_dss`` writes it."""
    output = io.BytesIO(data)
    DocumentSecurityStore.add_dss(output, sig_contents=None, certs=list(ltv.certificates[:certificates]),
                                  crls=list(ltv.crls), force_write=True)
    return output.getvalue()


def add_document_timestamp(data: bytes, ltv: Ltv) -> bytes:
    """Append a genuine RFC 3161 document timestamp revision."""
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    result: bytes = signers.PdfTimeStamper(ltv.stamper).timestamp_pdf(writer, "sha256").getvalue()
    return result


def make_blta(signed: bytes, ltv: Ltv) -> bytes:
    """B-B → DSS revision → document timestamp: the B-LTA shape."""
    return add_document_timestamp(add_dss(signed, ltv, certificates=2), ltv)


def pyhanko_update(data: bytes, edit: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    """Append one incremental update made with pyHanko's writer after ``edit`` changed it."""
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    edit(writer)
    output = io.BytesIO()
    writer.write(output)
    written = output.getvalue()
    assert written.startswith(data), "an incremental update must keep the signed bytes"
    return written


def last_trailer(data: bytes) -> tuple[int, bytes]:
    """(offset of the last xref table, the raw trailer dictionary text) of ``data``."""
    startxref = int(re.findall(rb"startxref\s+(\d+)\s+%%EOF", data)[-1])
    trailer = data[data.index(b"trailer", startxref) + len(b"trailer"):data.rindex(b"startxref")]
    return startxref, trailer.strip()


def raw_update(data: bytes, objects: dict[int, bytes], *, freed: tuple[int, ...] = (),
               extra: bytes = b"") -> bytes:
    """Append a hand-written revision: ``objects`` (number → body between 'obj' and 'endobj'),
    ``freed`` object numbers, and ``extra`` bytes placed (unlisted) before the xref table."""
    previous, trailer = last_trailer(data)
    size = int(re.search(rb"/Size\s+(\d+)", trailer).group(1))  # type: ignore[union-attr]
    root = re.search(rb"/Root\s+\d+\s+\d+\s+R", trailer).group(0)  # type: ignore[union-attr]
    info = re.search(rb"/Info\s+\d+\s+\d+\s+R", trailer)
    identifiers = re.search(rb"/ID\s*\[[^\]]*\]", trailer)
    body = bytearray(b"\n")
    offsets: dict[int, int] = {}
    for number, content in sorted(objects.items()):
        offsets[number] = len(data) + len(body)
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    body += extra
    xref_offset = len(data) + len(body)
    entries = {number: b"%010d 00000 n \n" % offset for number, offset in offsets.items()}
    entries.update({number: b"0000000000 00001 f \n" for number in freed})
    entries[0] = b"0000000000 65535 f \n"
    table = bytearray(b"xref\n")
    for number in sorted(entries):
        table += b"%d 1\n" % number + entries[number]
    new_size = max([size, *[number + 1 for number in entries]])
    table += b"trailer\n<< /Size %d %s %s %s /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        new_size, root, info.group(0) if info else b"", identifiers.group(0) if identifiers else b"", previous,
        xref_offset)
    return data + bytes(body) + bytes(table)


def object_body(data: bytes, number: int) -> bytes:
    """The latest raw body of object ``number`` (between 'N 0 obj' and 'endobj'), found by text search."""
    matches = list(re.finditer(rb"(?<![0-9])%d 0 obj(.*?)endobj" % number, data, re.S))
    return matches[-1].group(1).strip()


def signature_gap(data: bytes, number: int | None = None) -> tuple[int, int]:
    """(a, b) of the first (or object ``number``'s) /ByteRange: the hex /Contents spans data[a:b]."""
    values = [int(x) for x in re.findall(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", data)[0]]
    return values[1], values[2]


def replace_at(data: bytes, offset: int, new: bytes) -> bytes:
    """``data`` with ``len(new)`` bytes at ``offset`` overwritten (the file keeps its length)."""
    return data[:offset] + new + data[offset + len(new):]


def set_byte_range(data: bytes, text: bytes) -> bytes:
    """Rewrite the first /ByteRange array in place with ``text`` (padded with spaces to the same length)."""
    match = re.search(rb"/ByteRange\s*(\[[^\]]*\]\s*)", data)
    assert match is not None
    width = len(match.group(1))
    assert len(text) <= width, "the new /ByteRange does not fit in place"
    return replace_at(data, match.start(1), text.ljust(width))


def code_of(data: bytes) -> str:
    """The structure code ``check_structure`` raises for ``data`` ("ok" when it passes)."""
    try:
        check_structure(data)
    except StructureError as error:
        return error.code
    return "ok"


def passes(data: bytes) -> StructureReport:
    """check_structure's report, failing the test with the code and reason if it raises."""
    try:
        return check_structure(data)
    except StructureError as error:  # pragma: no cover - shown only when a genuine file is refused
        raise AssertionError(f"genuine file refused: {error.code}: {error.reason}") from None


def write(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` (for pdfsig) and return the path."""
    path = directory / name
    path.write_bytes(data)
    return path


def writer_root(writer: IncrementalPdfFileWriter) -> Any:
    """The catalog of ``writer``, typed loosely for the tests' edits."""
    return writer.root


def signed_revision_only(data: bytes) -> bytes:
    """The station signature's own revision: the file up to the end of its byte range."""
    byte_range = check_structure(data).signature.byte_range
    return data[:byte_range[2] + byte_range[3]]
