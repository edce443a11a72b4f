"""Adversarial suite for certs.structure: crafted files, each refused with its exact code.

Every attack starts from a genuine signed certificate (signed once for the module) and changes it
the way issue 10 describes: in place within the signed bytes' layout, by an appended incremental
update written with pyHanko, or by a revision written by hand. Where an attack must also fool the
"covered by a timestamp" rule, a genuine document timestamp is added on top. poppler's pdfsig reads
a handful of them as an independent second reader.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from certs.issue import sign_pdf
from certs.render import render_pdf
from certs.structure import StructureError, check_structure
from tests.unit.certs.certs_test_kit import PkiWorld, record_for, run_tool
from tests.unit.certs.structure_kit import (
    Ltv,
    add_document_timestamp,
    make_blta,
    make_ltv,
    object_body,
    pyhanko_update,
    raw_update,
    replace_at,
    set_byte_range,
    signature_gap,
    signed_revision_only,
    write,
)


@dataclass(frozen=True)
class Target:
    """A genuine signed certificate and the object numbers an attacker aims at (read with pyHanko)."""

    signed: bytes
    ltv: Ltv
    world: PkiWorld
    root: int
    info: int
    page: int
    content: int
    names: int
    embedded_names: int
    record_stream: int
    form: int
    widget: int
    signature: int
    metadata: int


@pytest.fixture(scope="module")
def target(world: PkiWorld) -> Target:
    """Sign once for the whole module; every attack copies these bytes."""
    ltv = make_ltv(world)
    record = record_for(world.station)
    # The signed revision alone (the station now writes B-LTA; the attacks add revisions themselves).
    signed = signed_revision_only(sign_pdf(render_pdf(record), record, world.station, timestamper=ltv.stamper))
    reader = PdfFileReader(io.BytesIO(signed))
    root = reader.trailer.raw_get("/Root")
    catalog = reader.root
    page = catalog["/Pages"]["/Kids"].raw_get(0)
    names = catalog.raw_get("/Names")
    embedded = catalog["/Names"]["/EmbeddedFiles"].raw_get("/Names")
    specification = catalog["/Names"]["/EmbeddedFiles"]["/Names"][1]
    form = catalog.raw_get("/AcroForm")
    widget = catalog["/AcroForm"]["/Fields"].raw_get(0)
    return Target(
        signed=signed, ltv=ltv, world=world, root=root.idnum, info=reader.trailer.raw_get("/Info").idnum,
        page=page.idnum, content=page.get_object().raw_get("/Contents").idnum, names=names.idnum,
        embedded_names=embedded.idnum, record_stream=specification["/EF"].raw_get("/F").idnum, form=form.idnum,
        widget=widget.idnum, signature=widget.get_object().raw_get("/V").idnum,
        metadata=catalog.raw_get("/Metadata").idnum,
    )


def refused(data: bytes, code: str, *, mentions: str = "") -> StructureError:
    """Assert check_structure refuses ``data`` with exactly ``code`` (and a reason containing ``mentions``)."""
    with pytest.raises(StructureError) as raised:
        check_structure(data)
    assert raised.value.code == code, f"expected {code}, got {raised.value.code}: {raised.value.reason}"
    assert mentions in raised.value.reason, raised.value.reason
    return raised.value


def byte_range(data: bytes) -> tuple[int, int, int, int]:
    found = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", data)
    assert found is not None
    first, a, b, c = (int(x) for x in found.groups())
    return first, a, b, c


def with_catalog_entry(target: Target, data: bytes, entry: bytes, extra: dict[int, bytes] | None = None) -> bytes:
    """A hand-written revision restating the catalog with ``entry`` added (and ``extra`` objects)."""
    body = object_body(data, target.root)
    assert body.endswith(b">>")
    return raw_update(data, {target.root: body[:-2] + entry + b"\n>>", **(extra or {})})


def with_page_entry(target: Target, data: bytes, replace: tuple[bytes, bytes] | None = None,
                    entry: bytes = b"", extra: dict[int, bytes] | None = None) -> bytes:
    """A hand-written revision restating the first page (one substitution and/or an added entry)."""
    body = object_body(data, target.page)
    if replace is not None:
        assert replace[0] in body
        body = body.replace(*replace)
    return raw_update(data, {target.page: body[:-2] + entry + b"\n>>", **(extra or {})})


def new_content(text: bytes = b"BT /F1 12 Tf 72 720 Td (Level: Clear) Tj ET") -> bytes:
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text)


# ---------------------------------------------------------------- /Contents and container


def _literal_forgery(target: Target, update: dict[int, bytes]) -> bytes:
    """Issue 10's forgery: the same CMS as a same-length literal string, then an appended update sized so
    that pyHanko's length arithmetic (which assumes hex) counts the update as covered."""
    a, b = signature_gap(target.signed)
    cms = check_structure(target.signed).signature.cms
    escaped = cms.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)").replace(b"\r", b"\\r")
    literal = b"(" + escaped + b"\x00" * (b - a - 2 - len(escaped)) + b")"
    decoded_length = len(cms) + (b - a - 2 - len(escaped))
    in_place = replace_at(target.signed, a, literal)
    _, _, _, c = byte_range(target.signed)
    wanted = a + c + 2 * decoded_length + 2  # the file length pyHanko takes for "entire file"
    filler = 0
    for _ in range(4):  # the xref offset's digit count can move with the filler's length
        forged = raw_update(in_place, update, extra=b"%" + b"x" * filler + b"\n")
        filler += wanted - len(forged)
    assert len(forged) == wanted
    return forged


def _pem_to_der(pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_literal_contents_in_place_plus_appended_update(target: Target, tmp_path: Path) -> None:
    """pyHanko's summary flag says "entire file" for this forgery; check_structure reads the bytes."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    forged = _literal_forgery(target, {target.content: new_content()})
    signature = PdfFileReader(io.BytesIO(forged)).embedded_signatures[0]
    ca = (target.world.ca_dir / "ca.crt").read_bytes()
    context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(
        _pem_to_der(ca))], allow_fetching=False)
    status = validate_pdf_signature(signature, signer_validation_context=context)
    assert status.intact and status.valid and status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    refused(forged, "contents_encoding", mentions="is not a hexadecimal string")
    output = run_tool("pdfsig", write(tmp_path, "literal.pdf", forged)).stdout
    assert "Not total document signed" in output


def test_restated_signature_dictionary_with_padded_literal_contents(target: Target) -> None:
    body = object_body(target.signed, target.signature)
    restated = re.sub(rb"/Contents\s*<[0-9A-Fa-f]*>", b"/Contents (" + b"\\000" * 20000 + b")", body)
    assert restated != body
    refused(raw_update(target.signed, {target.signature: restated}), "byte_range",
            mentions="outside the revision that defines")


def test_contents_with_an_odd_number_of_hex_digits(target: Target) -> None:
    a, b = signature_gap(target.signed)
    first, _, _, c = byte_range(target.signed)
    # one digit fewer, the byte range shifted so that the gap is exactly the shorter string
    shortened = replace_at(target.signed, b - 3, b"0>\n")
    tampered = set_byte_range(shortened, b"[%d %d %d %d]" % (first, a, b - 1, c + 1))
    refused(tampered, "contents_encoding", mentions="odd number of hex digits")


def test_contents_with_non_hex_characters(target: Target) -> None:
    _, b = signature_gap(target.signed)
    refused(replace_at(target.signed, b - 20, b"zz"), "contents_encoding", mentions="non-hexadecimal byte b'z'")


def test_contents_with_a_newline_inside_the_brackets(target: Target) -> None:
    _, b = signature_gap(target.signed)
    refused(replace_at(target.signed, b - 40, b"\n0"), "contents_encoding", mentions="non-hexadecimal byte b'\\n'")


def test_contents_shifted_by_whitespace_outside_the_brackets(target: Target) -> None:
    a, b = signature_gap(target.signed)
    gap = target.signed[a:b]
    shifted = b"  <" + gap[1:-3] + b">"
    assert len(shifted) == len(gap)
    refused(replace_at(target.signed, a, shifted), "contents_encoding", mentions="is not exactly the /Contents")


def test_nonzero_byte_in_the_padding_after_the_der(target: Target) -> None:
    _, b = signature_gap(target.signed)
    refused(replace_at(target.signed, b - 3, b"01"), "container_padding", mentions="not zero")


def test_contents_that_is_der_but_not_signed_data(target: Target) -> None:
    a, b = signature_gap(target.signed)
    gap = target.signed[a:b]
    oid = b"06092A864886F70D010702"  # signedData
    assert gap.upper().find(oid) > 0
    position = a + gap.upper().find(oid) + len(oid) - 1
    refused(replace_at(target.signed, position, b"1"), "container_padding", mentions="not one CMS SignedData")


# ---------------------------------------------------------------- /ByteRange


@pytest.mark.parametrize(("name", "make", "code", "mentions"), [
    ("not starting at 0", lambda f, a, b, c: b"[1 %d %d %d]" % (a, b, c), "byte_range", "does not start at 0"),
    ("off by one before", lambda f, a, b, c: b"[0 %d %d %d]" % (a - 1, b, c), "contents_encoding", "not exactly"),
    ("off by one after", lambda f, a, b, c: b"[0 %d %d %d]" % (a, b + 1, c - 1), "contents_encoding",
     "not exactly"),
    ("ending before the end", lambda f, a, b, c: b"[0 %d %d %d]" % (a, b, c - 1), "byte_range",
     "not the end of a revision"),
    ("beyond the end", lambda f, a, b, c: b"[0 %d %d %d]" % (a, b, c + 1000), "byte_range", "leaves the file"),
    ("overlapping", lambda f, a, b, c: b"[0 %d %d %d]" % (b, a, c), "byte_range", "overlaps"),
    ("six numbers", lambda f, a, b, c: b"[0 %d %d %d 0 0]" % (a, b, c), "byte_range", "four"),
    ("four ranges", lambda f, a, b, c: b"[0 %d %d %d 0 1 0 1]" % (a, b, c), "byte_range", "four"),
    ("negative", lambda f, a, b, c: b"[0 %d %d -%d]" % (a, b, c), "byte_range", "non-negative"),
    ("a real number", lambda f, a, b, c: b"[0 %d.0 %d %d]" % (a, b, c), "byte_range", "integers"),
])
def test_byte_range_rewritten_in_place(target: Target, name: str,
                                       make: Callable[[int, int, int, int], bytes], code: str, mentions: str) -> None:
    tampered = set_byte_range(target.signed, make(*byte_range(target.signed)))
    assert tampered != target.signed and len(tampered) == len(target.signed), name
    refused(tampered, code, mentions=mentions)


# ---------------------------------------------------------------- bytes and revisions after signing


def test_trailing_garbage_after_the_final_eof(target: Target) -> None:
    refused(target.signed + b"\n% forged\n1 0 obj (x) endobj\n", "unsigned_tail", mentions="after the last %%EOF")


def test_appended_unsigned_update_changing_the_record(target: Target, tmp_path: Path) -> None:
    forged = b'{"level":"purge","note":"this drive was never wiped"}'
    tampered = raw_update(target.signed, {target.record_stream: b"<< /Type /EmbeddedFile /Length %d >>\nstream\n%s"
                                          b"\nendstream" % (len(forged), forged)})
    refused(tampered, "unsigned_tail", mentions=f"redefines object {target.record_stream}")
    output = run_tool("pdfsig", write(tmp_path, "appended.pdf", tampered)).stdout
    assert "Not total document signed" in output


def test_the_same_update_followed_by_a_genuine_document_timestamp(target: Target) -> None:
    forged = b'{"level":"purge"}'
    tampered = raw_update(target.signed, {target.record_stream: b"<< /Type /EmbeddedFile /Length %d >>\nstream\n%s"
                                          b"\nendstream" % (len(forged), forged)})
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing",
            mentions=f"redefines object {target.record_stream}")


def test_shadow_hide_signature_widget_flag_changed_later(target: Target) -> None:
    body = object_body(target.signed, target.widget)
    hidden = re.sub(rb"/F \d+", b"/F 2", body)
    assert hidden != body
    tampered = add_document_timestamp(raw_update(target.signed, {target.widget: hidden}), target.ltv)
    refused(tampered, "modified_after_signing", mentions=f"redefines object {target.widget}")


def test_shadow_replace_page_content_stream_redefined(target: Target) -> None:
    tampered = add_document_timestamp(raw_update(target.signed, {target.content: new_content()}), target.ltv)
    refused(tampered, "modified_after_signing", mentions=f"redefines object {target.content} (stream): (data)")


def test_shadow_hide_and_replace_page_pointed_at_new_content(target: Target) -> None:
    tampered = with_page_entry(target, target.signed,
                               replace=(b"/Contents %d 0 R" % target.content, b"/Contents 600 0 R"),
                               extra={600: new_content()})
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing", mentions="/Contents changed")


def test_hide_and_replace_by_hand_without_a_timestamp_is_an_unsigned_tail(target: Target) -> None:
    refused(raw_update(target.signed, {target.content: new_content()}), "unsigned_tail",
            mentions=f"redefines object {target.content}")


def test_freed_signed_object(target: Target) -> None:
    tampered = add_document_timestamp(raw_update(target.signed, {}, freed=(target.content,)), target.ltv)
    refused(tampered, "modified_after_signing", mentions=f"object {target.content} is freed")


def test_info_dictionary_changed_later(target: Target) -> None:
    def edit(writer: IncrementalPdfFileWriter) -> None:
        info = writer._info.get_object()  # type: ignore[union-attr]
        info["/Title"] = generic.TextStringObject("Certificate of sanitisation: Clear")
        writer.update_container(info)

    tampered = add_document_timestamp(pyhanko_update(target.signed, edit), target.ltv)
    refused(tampered, "modified_after_signing", mentions=f"redefines object {target.info} (dictionary): /Title")


def test_xmp_metadata_rewritten_later(target: Target) -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:title="Level: Clear"/></rdf:RDF>'
           b'</x:xmpmeta>')
    tampered = raw_update(target.signed, {target.metadata: b"<< /Type /Metadata /Subtype /XML /Length %d >>\n"
                                          b"stream\n%s\nendstream" % (len(xmp), xmp)})
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing",
            mentions=f"redefines object {target.metadata}")


def test_xmp_metadata_added_later_to_a_page(target: Target) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    tampered = with_page_entry(target, target.signed, entry=b"/Metadata 617 0 R", extra={
        617: b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream" % (len(xmp), xmp)})
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing", mentions="/Metadata changed")


def test_extra_embedded_file_added_later(target: Target) -> None:
    body = object_body(target.signed, target.embedded_names)
    assert body.endswith(b"]")
    tampered = raw_update(target.signed, {
        target.embedded_names: body[:-1] + b" (forged-record.json) 601 0 R ]",
        601: b"<< /Type /Filespec /F (forged-record.json) /EF << /F 602 0 R >> >>",
        602: b"<< /Type /EmbeddedFile /Length 2 >>\nstream\n{}\nendstream",
    })
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing",
            mentions=f"redefines object {target.embedded_names}")


def test_unlisted_object_between_objects_of_a_revision(target: Target) -> None:
    tampered = raw_update(target.signed, {}, extra=b"19 0 obj\n<< /Length 0 >>\nstream\n\nendstream\nendobj\n")
    refused(tampered, "damaged", mentions="belong to no object")


def test_stray_eof_inside_a_revision(target: Target) -> None:
    tampered = raw_update(target.signed, {target.content: new_content()}, extra=b"%%EOF\n")
    refused(tampered, "damaged", mentions="ends no revision")


def test_prev_chain_that_skips_the_signed_revision(target: Target) -> None:
    tampered = raw_update(target.signed, {target.content: new_content()})
    first_xref = int(re.findall(rb"startxref\s+(\d+)", target.signed)[0])
    signed_xref = int(re.findall(rb"startxref\s+(\d+)", target.signed)[-1])
    tampered = tampered.replace(b"/Prev %d >>" % signed_xref, b"/Prev %d >>" % first_xref)
    refused(tampered, "damaged")


# ---------------------------------------------------------------- signatures


class _IgnoringSigner(signers.PdfSigner):
    """An attacker's signer: pyHanko refuses to sign after a "no changes" certification; this one does not."""

    def _enforce_certification_constraints(self, reader: PdfFileReader) -> None:
        pass


def _approval_signed(target: Target, data: bytes, field_name: str) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    metadata = signers.PdfSignatureMetadata(field_name=field_name, md_algorithm="sha256",
                                            subfilter=fields.SigSeedSubFilter.PADES)
    output = _IgnoringSigner(metadata, signer=target.world.station.pyhanko_signer()).sign_pdf(writer)
    result: bytes = output.getvalue()
    return result


def test_approval_signature_instead_of_certification(target: Target, tmp_path: Path) -> None:
    record = record_for(target.world.station)
    approval = _approval_signed(target, render_pdf(record), "WipeAgentSignature")
    refused(approval, "not_certified", mentions="approval signature")
    output = run_tool("pdfsig", write(tmp_path, "approval.pdf", approval)).stdout
    assert "Signature is Valid" in output  # pdfsig accepts it: the certification rule is ours


def test_second_approval_signature_added_later(target: Target, tmp_path: Path) -> None:
    twice = _approval_signed(target, target.signed, "SecondSignature")
    refused(twice, "multiple_signatures", mentions="2 signatures")
    output = run_tool("pdfsig", write(tmp_path, "twice.pdf", twice)).stdout
    assert "Signature #2" in output


def test_second_signature_after_a_b_lta_extension(target: Target) -> None:
    refused(_approval_signed(target, make_blta(target.signed, target.ltv), "Later"), "multiple_signatures")


# ---------------------------------------------------------------- active content and annotations


def test_javascript_in_the_names_tree(target: Target) -> None:
    body = object_body(target.signed, target.names)
    tampered = raw_update(target.signed, {
        target.names: body[:-2] + b"/JavaScript << /Names [(init) 603 0 R] >> >>",
        603: b"<< /S /JavaScript /JS (app.alert\\('valid'\\)) >>",
    })
    refused(tampered, "active_content", mentions="/JavaScript")


def test_open_action(target: Target) -> None:
    tampered = with_catalog_entry(target, target.signed, b"/OpenAction << /S /URI /URI (https://example.org/) >>")
    refused(tampered, "active_content", mentions="/OpenAction")


def test_page_additional_actions(target: Target) -> None:
    tampered = with_page_entry(target, target.signed, entry=b"/AA << /O 604 0 R >>",
                               extra={604: b"<< /S /Launch /F (calc.exe) >>"})
    refused(tampered, "active_content", mentions="/AA")


def test_optional_content_layer(target: Target) -> None:
    tampered = with_catalog_entry(target, target.signed, b"/OCProperties << /OCGs [605 0 R] /D << /OFF [605 0 R] >> >>",
                                  {605: b"<< /Type /OCG /Name (Purge) >>"})
    refused(tampered, "active_content", mentions="/OCProperties")


def test_layer_object_alone_is_active_content(target: Target) -> None:
    refused(raw_update(target.signed, {606: b"<< /Type /OCG /Name (hidden) >>"}), "active_content",
            mentions="optional content group")


def test_extra_text_annotation(target: Target) -> None:
    tampered = with_page_entry(target, target.signed,
                               replace=(b"/Annots [ %d 0 R ]" % target.widget, b"/Annots [ %d 0 R 607 0 R ]"
                                        % target.widget),
                               extra={607: b"<< /Type /Annot /Subtype /Text /Rect [10 10 30 30] "
                                           b"/Contents (Level: Clear) >>"})
    refused(tampered, "unexpected_annotation", mentions="/Text annotation")


def test_extra_form_field(target: Target) -> None:
    body = object_body(target.signed, target.form)
    tampered = raw_update(target.signed, {
        target.form: body.replace(b"/Fields [ %d 0 R ]" % target.widget, b"/Fields [ %d 0 R 608 0 R ]"
                                  % target.widget),
        608: b"<< /FT /Tx /T (level) /V (Clear) >>",
    })
    refused(tampered, "unexpected_annotation", mentions="/Tx form field")


def test_visible_widget_with_an_appearance_added_as_a_timestamp_field(target: Target) -> None:
    body = object_body(target.signed, target.form)
    tampered = raw_update(target.signed, {
        target.form: body.replace(b"/Fields [ %d 0 R ]" % target.widget, b"/Fields [ %d 0 R 609 0 R ]"
                                  % target.widget),
        609: b"<< /FT /Sig /T (Stamp) /Type /Annot /Subtype /Widget /Rect [0 0 300 300] /AP << /N 610 0 R >> >>",
        610: b"<< /Type /XObject /Subtype /Form /BBox [0 0 300 300] /Length 0 >>\nstream\n\nendstream",
    })
    refused(tampered, "unexpected_annotation", mentions="visible signature widget")


# ---------------------------------------------------------------- attacks on the analysis itself


def test_signed_object_redefined_with_a_new_generation(target: Target) -> None:
    """Same content, generation 1: every '19 0 R' now resolves to null in a strict reader."""
    body = object_body(target.signed, target.content)
    tampered = raw_update(target.signed, {target.content: body})
    offset = tampered.rindex(b"\n%d 0 obj\n" % target.content) + 1
    signed, update = tampered[:len(target.signed)], tampered[len(target.signed):]
    update = update.replace(b"\n%d 0 obj\n" % target.content, b"\n%d 1 obj\n" % target.content)
    tampered = signed + update.replace(b"%010d 00000 n" % offset, b"%010d 00001 n" % offset)
    refused(tampered, "unsigned_tail", mentions="generation 1")  # pyHanko will not even timestamp this file


def test_signed_object_smuggled_in_as_dss_material(target: Target) -> None:
    """A new DSS lists the page content stream, which is then 'rewritten as a certificate': the page empties."""
    certificate = target.ltv.certificates[0].dump()
    tampered = with_catalog_entry(target, target.signed, b"/DSS 611 0 R", {
        611: b"<< /Certs [ %d 0 R ] >>" % target.content,
        target.content: b"<< /Length %d >>\nstream\n" % len(certificate) + certificate + b"\nendstream",
    })
    refused(tampered, "unsigned_tail", mentions=f"redefines object {target.content}")
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing",
            mentions=f"redefines object {target.content}")


def test_dss_revision_that_also_adds_an_unreferenced_object(target: Target) -> None:
    tampered = with_catalog_entry(target, target.signed, b"/DSS 612 0 R", {
        612: b"<< /Certs [ ] >>", 613: b"<< /Note (not validation data) >>"})
    refused(tampered, "unsigned_tail", mentions="adds object 613")


def test_object_stream_is_refused(target: Target) -> None:
    tampered = raw_update(target.signed, {614: b"<< /Type /ObjStm /N 1 /First 5 /Length 12 >>\nstream\n"
                                               b"19 0 (hello)\nendstream"})
    refused(tampered, "damaged", mentions="object or cross-reference stream")


def test_eof_hidden_in_the_middle_of_a_comment(target: Target) -> None:
    refused(raw_update(target.signed, {}, extra=b"% nothing to see %%EOF\n"), "damaged", mentions="%%EOF")


def test_javascript_behind_an_escaped_name(target: Target) -> None:
    """'/J#53' is '/JS': names are compared decoded."""
    tampered = with_catalog_entry(target, target.signed, b"/Names2 << /J#53 (app.alert\\(1\\)) >>")
    refused(tampered, "active_content", mentions="/JS")


def test_random_corruptions_get_a_verdict_never_a_traceback(target: Target) -> None:
    """Seeded byte flips and truncations all over the file: check_structure passes or raises StructureError."""
    import random

    generator = random.Random(10)
    data = target.signed
    codes: set[str] = set()
    for round_number in range(120):
        mutated = bytearray(data)
        if round_number % 3 == 0:
            mutated = mutated[: generator.randrange(len(data))]
        else:
            for _ in range(generator.randint(1, 4)):
                mutated[generator.randrange(len(data))] = generator.randrange(256)
        try:
            check_structure(bytes(mutated))
            codes.add("ok")
        except StructureError as error:
            codes.add(error.code)
    assert "damaged" in codes and len(codes) >= 2, codes


def test_certification_reference_without_the_docmdp_transform(target: Target) -> None:
    """In place, same length: the signature's /Reference no longer says /TransformMethod /DocMDP."""
    position = target.signed.index(b"/TransformMethod /DocMDP") + len(b"/TransformMethod ")
    refused(replace_at(target.signed, position, b"/UR3   "), "not_certified", mentions="/TransformMethod /DocMDP")


def test_catalog_docmdp_pointing_at_another_object(target: Target) -> None:
    anchor = b"/DocMDP %d 0 R" % target.signature
    position = target.signed.index(anchor)
    replacement = b"/DocMDP %d 0 R" % target.widget
    assert len(replacement) == len(anchor)
    refused(replace_at(target.signed, position, replacement), "not_certified", mentions="not the station signature")


def test_document_timestamp_byte_range_ending_before_its_revision(target: Target) -> None:
    blta = make_blta(target.signed, target.ltv)
    matches = list(re.finditer(rb"/ByteRange\s*(\[\s*0\s+(\d+)\s+(\d+)\s+(\d+)\s*\]\s*)", blta))
    last = matches[-1]
    a, b, c = (int(x) for x in last.groups()[1:])
    text = b"[0 %d %d %d]" % (a, b, c - 10)
    tampered = replace_at(blta, last.start(1), text.ljust(len(last.group(1))))
    refused(tampered, "byte_range", mentions="not the end of a revision")


def test_page_changed_in_the_same_revision_as_a_genuine_document_timestamp(target: Target) -> None:
    """pyHanko writes the forged content and the timestamp as one revision: still modified after signing."""
    writer = IncrementalPdfFileWriter(io.BytesIO(target.signed))
    content = writer.get_object(generic.Reference(target.content, 0, writer))
    content._data = b"BT /F1 12 Tf 72 720 Td (Level: Clear) Tj ET"
    content._encoded_data = None
    writer.update_container(content)
    tampered = signers.PdfTimeStamper(target.ltv.stamper).timestamp_pdf(writer, "sha256").getvalue()
    refused(tampered, "modified_after_signing", mentions=f"redefines object {target.content}")


def test_new_page_added_later(target: Target) -> None:
    reader = PdfFileReader(io.BytesIO(target.signed))
    pages = reader.root.raw_get("/Pages").idnum
    body = object_body(target.signed, pages)
    kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body)
    count = re.search(rb"/Count\s+(\d+)", body)
    assert kids is not None and count is not None
    restated = body.replace(kids.group(0), b"/Kids [" + kids.group(1) + b" 615 0 R]").replace(
        count.group(0), b"/Count %d" % (int(count.group(1)) + 1))
    tampered = raw_update(target.signed, {
        pages: restated, 615: b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents 616 0 R >>" % pages,
        616: new_content()})
    refused(add_document_timestamp(tampered, target.ltv), "modified_after_signing", mentions=f"object {pages}")


def test_record_hash_in_the_catalog_changed_later(target: Target) -> None:
    body = object_body(target.signed, target.root)
    forged = re.sub(rb"/RecordSHA256 \([0-9a-f]{64}\)", b"/RecordSHA256 (" + b"0" * 64 + b")", body)
    assert forged != body
    refused(add_document_timestamp(raw_update(target.signed, {target.root: forged}), target.ltv),
            "modified_after_signing", mentions="/WipeAgentCertificate changed")


def test_empty_update_appended_after_signing(target: Target, tmp_path: Path) -> None:
    """An update that changes nothing still leaves bytes nobody signed (and pdfsig says so)."""
    tampered = raw_update(target.signed, {})
    refused(tampered, "unsigned_tail", mentions="adds no validation data")
    assert "Not total document signed" in run_tool("pdfsig", write(tmp_path, "empty.pdf", tampered)).stdout


def test_identical_restatement_between_signature_and_timestamp_is_allowed(target: Target) -> None:
    """pyHanko may rewrite an object unchanged (it rewrites /Info and XMP every time): no change, no refusal."""
    restated = raw_update(target.signed, {target.page: object_body(target.signed, target.page)})
    report = check_structure(add_document_timestamp(restated, target.ltv))
    assert report.later_revisions[0] == "revision 2: no change"


def test_station_signature_in_another_format(target: Target) -> None:
    position = target.signed.index(b"/SubFilter /ETSI.CAdES.detached") + len(b"/SubFilter ")
    refused(replace_at(target.signed, position, b"/adbe.x509.rsa_sha1 "), "not_certified",
            mentions="/SubFilter /adbe.x509.rsa_sha1")


def test_document_timestamp_in_another_format(target: Target) -> None:
    blta = make_blta(target.signed, target.ltv)
    position = blta.rindex(b"/SubFilter /ETSI.RFC3161") + len(b"/SubFilter ")
    refused(replace_at(blta, position, b"/ETSI.CAdES.d"), "modified_after_signing", mentions="not /ETSI.RFC3161")


def test_station_signature_holding_a_timestamp_token_instead(target: Target) -> None:
    """The station's /Contents replaced by a genuine RFC 3161 token (TSTInfo inside): not a signature."""
    token = check_structure(make_blta(target.signed, target.ltv)).document_timestamps[0].cms
    a, b = signature_gap(target.signed)
    assert 2 * len(token) <= b - a - 2
    tampered = replace_at(target.signed, a + 1, token.hex().upper().encode().ljust(b - a - 2, b"0"))
    refused(tampered, "container_padding", mentions="encapsulates 1.2.840.113549.1.9.16.1.4")


def test_station_signature_that_no_field_holds(target: Target) -> None:
    """In place, same length: the signature field's /V points at another object; the signature floats free."""
    anchor = b"/V %d 0 R" % target.signature
    position = target.signed.index(anchor, target.signed.index(b"%d 0 obj" % target.widget))
    replacement = b"/V %d 0 R" % target.widget
    assert len(replacement) == len(anchor)
    refused(replace_at(target.signed, position, replacement), "not_certified", mentions="no signature field")


def test_a_file_of_more_values_than_any_document_has_is_refused_before_it_is_read_through(target: Target) -> None:
    """20 MiB of "1 1 1 ..." held the verifier (the web upload box, an ingest worker) for over a minute; the parser
    stops at MAX_VALUES, in an object as in the xref table, and a genuine document stays far below it."""
    from certs.structure import MAX_VALUES

    values = raw_update(target.signed, {target.record_stream + 100: b"[" + b"1 " * (MAX_VALUES + 1) + b"]"})
    refused(values, "damaged", mentions=f"more than {MAX_VALUES} objects and values")
    count = MAX_VALUES + 1
    body = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    table = b"xref\n0 %d\n0000000000 65535 f \n" % (count + 1) + b"0000000009 00000 n \n" * count
    objects = body + table + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count + 1, len(body))
    refused(objects, "damaged", mentions=f"more than {MAX_VALUES} objects and values")
    check_structure(target.signed)  # and the budget is the check's own: the next file starts afresh
