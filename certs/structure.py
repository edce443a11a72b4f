"""Byte-exact structure and revision analysis of a signed station PDF, decided by our own code.

pyHanko's "coverage == ENTIRE_FILE" is computed from lengths, assuming ``/Contents`` is a hex string
filling the gap between the two byte ranges; a literal string there makes an appended incremental
update count as covered (issue 10). :func:`check_structure` therefore reads the file itself: it walks
the revision chain, parses every signature dictionary's raw ``/ByteRange`` and ``/Contents`` tokens,
and compares every later revision object by object with the signed one. The objects are parsed by a
small parser of our own (it keeps what a general reader discards: literal or hex spelling, each
value's byte span, duplicate keys); pyHanko's difference analysis runs only as a second opinion.

This module checks structure, not cryptography: the caller (:mod:`certs.verify`) must still check
each :class:`SignedRange`'s CMS against the bytes its ``byte_range`` covers, and the signers' trust.

Failure codes (``StructureError.code``, stable, for ``--json``):

``damaged``
    the revision chain cannot be parsed (startxref, xref table, ``/Prev``, ``%%EOF``), an object
    is malformed, or bytes of a revision belong to no object of its xref table.
``byte_range``
    a ``/ByteRange`` is not ``[0 a b c]`` of non-negative integers, or ``b + c`` is not the end of a
    revision (the revision whose objects hold that signature dictionary), or the ranges overlap or
    leave the file; a signature dictionary nested inside another object.
``contents_encoding``
    the gap ``a..b`` is not exactly one ``<...>`` hexadecimal string of even length: a literal
    string, a string followed or preceded by other bytes, whitespace inside, odd digit count,
    non-hex characters.
``container_padding``
    the decoded bytes after the DER CMS are not all 0x00, or the DER is not one well-formed CMS
    ContentInfo of SignedData (a TSTInfo for a document timestamp, not for a signature).
``multiple_signer_infos``
    the CMS SignedData holds more than one SignerInfo (or none).
``unsigned_tail``
    bytes after the last revision that are not whitespace, or a revision that no signature or
    document timestamp covers, unless it changes only the DSS.
``not_certified``
    the station signature is not a certification signature (catalog ``/Perms /DocMDP`` must
    reference it and its ``/Reference`` must carry ``/TransformMethod /DocMDP``), its ``/SubFilter``
    is not ``ETSI.CAdES.detached`` or ``adbe.pkcs7.detached``, or there is no station signature.
``multiple_signatures``
    more than one ``/Sig`` signature (e.g. an approval signature added later), or a document
    timestamp in or before the signed revision.
``modified_after_signing``
    a revision after the signed one adds or changes anything other than what long-term validation
    needs (DSS, document timestamp field, its widget, the fields and annotations arrays growing by it);
    a document timestamp whose ``/SubFilter`` is not ``ETSI.RFC3161``.
``active_content``
    JavaScript, ``/OpenAction``, ``/AA``, Launch/URI/SubmitForm/ImportData/GoToR/Rendition actions,
    ``/OCProperties`` (layers), XFA, RichMedia, in any revision.
``unexpected_annotation``
    annotations other than signature widgets, or form fields other than signature fields, in any
    revision.

What is accepted, and why (decisions the rules above leave open):

* Only classic cross-reference tables are read. The station writes nothing else (reportlab, then
  pyHanko's incremental writer), so a cross-reference stream, an object stream or a hybrid
  ``/XRefStm`` is ``damaged``: fewer parser paths for an adversary to play with.
* Every byte of every revision must be an indirect object listed in that revision's table, the
  table, the trailer, ``startxref`` or whitespace and comments; an unlisted object, a stray
  ``%%EOF`` outside any object or an xref offset outside its own revision is ``damaged``. This is
  the cross-check of the ``/Prev`` chain against a plain ``%%EOF`` search.
* A revision after the signed one that no document timestamp ends must change nothing but the DSS
  (pyHanko writes the DSS of a document timestamp as a revision of its own, after it). Uncovered
  and changing anything else is ``unsigned_tail``; covered by a later timestamp and changing
  anything else is ``modified_after_signing``. An uncovered revision that changes nothing at all
  is ``unsigned_tail`` too; a covered one is allowed (pyHanko may rewrite a DSS unchanged).
* pyHanko rewrites the ``/Info`` dictionary and the XMP stream with every incremental update: a
  later revision may change ``/Info /ModDate`` and the XMP ``xmp:ModifyDate`` / ``xmp:MetadataDate``
  values, nothing else in them. The catalog may gain or replace ``/DSS`` and gain an ``/ESIC``
  developer extension; ``/AcroForm /Fields`` and a page's ``/Annots`` may grow by exactly the new
  document-timestamp field, an invisible signature widget whose value is a ``/DocTimeStamp``.
* The signature dictionaries must be uncompressed indirect objects; every definition of one, in
  any revision, must pass the byte checks (a restated dictionary therefore fails by itself).
"""

from __future__ import annotations

import enum
import functools
import io
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TypeAlias

STRUCTURE_CODES: tuple[str, ...] = (
    "damaged",
    "byte_range",
    "contents_encoding",
    "container_padding",
    "unsigned_tail",
    "not_certified",
    "multiple_signatures",
    "modified_after_signing",
    "active_content",
    "unexpected_annotation",
    "multiple_signer_infos",
)
"""Every code :class:`StructureError` may carry (documented in the module docstring)."""


class StructureError(Exception):
    """The file's structure is not that of an untouched (or only long-term-validated) station document."""

    def __init__(self, code: str, reason: str) -> None:
        if code not in STRUCTURE_CODES:
            raise ValueError(f"unknown structure code {code!r}")
        super().__init__(f"{code}: {reason}")
        self.code = code
        """Stable failure code, one of :data:`STRUCTURE_CODES`."""
        self.reason = reason
        """One human line naming what was found (object number, key, offset)."""


class SignatureKind(enum.Enum):
    """What a signature dictionary is: the station's signature or an RFC 3161 document timestamp."""

    SIGNATURE = "signature"
    DOCUMENT_TIMESTAMP = "document_timestamp"


@dataclass(frozen=True)
class SignedRange:
    """One signature or document timestamp, as found in the bytes."""

    field_name: str
    kind: SignatureKind
    byte_range: tuple[int, int, int, int]
    cms: bytes
    """The DER CMS ContentInfo exactly (zero padding stripped, length from the DER header)."""
    revision: int
    """0-based index of the revision whose end is ``byte_range[2] + byte_range[3]``."""


@dataclass(frozen=True)
class StructureReport:
    """What :func:`check_structure` found in a file that passed."""

    revision_ends: tuple[int, ...]
    """File offsets where each revision ends (after its ``%%EOF`` and one optional EOL)."""
    signature: SignedRange
    """The one station (certification) signature."""
    document_timestamps: tuple[SignedRange, ...]
    """Document timestamps, in file order."""
    later_revisions: tuple[str, ...]
    """One line per revision after the signed one: what it added (for reports)."""


# --------------------------------------------------------------------------------------------
# A small PDF object parser of our own: it keeps what a general reader throws away (literal or
# hexadecimal string, the exact byte span of each value, duplicate keys).

_WHITESPACE = b"\x00\t\n\x0c\r "
_DELIMITERS = b"()<>[]{}/%"
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_HEX_DIGITS = re.compile(rb"[0-9a-fA-F]*")


class Name(str):
    """A PDF name, with its leading slash (``/Type``), ``#xx`` escapes decoded."""


@dataclass(frozen=True)
class Ref:
    """An indirect reference ``N G R``."""

    number: int
    generation: int

    def __str__(self) -> str:
        return f"{self.number} {self.generation} R"


@dataclass(frozen=True)
class PdfString:
    """A string object: its decoded bytes, and whether it was written in hexadecimal."""

    value: bytes
    hexadecimal: bool

    def __eq__(self, other: object) -> bool:
        # Two strings are the same value whatever their spelling; the spelling matters only for
        # /Contents, which is checked on the raw bytes.
        return isinstance(other, PdfString) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True)
class Stream:
    """A stream object: its dictionary and its raw (still encoded) data."""

    dictionary: dict[Name, Value]
    raw: bytes = field(repr=False)


Value: TypeAlias = "bool | int | Decimal | Name | PdfString | Ref | list[Value] | dict[Name, Value] | Stream | None"
"""Any PDF object as this parser returns it."""


class _Malformed(Exception):
    """Raised by the lexer; turned into ``damaged`` with the offset."""


MAX_VALUES = 250_000
"""The most objects, values and xref entries one :func:`check_structure` parses (a certificate has about 900,
a page of a manifest a few dozen). This pure-Python parser takes microseconds per value: 20 MiB of ``1 1 1 …``
used to hold a verifier (the web upload box, an ingest worker) for over a minute before "not signed"."""

_BUDGET = threading.local()
"""What is left of :data:`MAX_VALUES` for the check running in this thread (unset: no check, no limit)."""


def _spend(count: int = 1) -> None:
    left = getattr(_BUDGET, "left", None)
    if left is None:
        return
    if left < count:
        raise _Malformed(f"more than {MAX_VALUES} objects and values: not a document this verifier reads")
    _BUDGET.left = left - count


class _Lexer:
    """Reads PDF tokens and objects from ``data`` starting at ``position``."""

    def __init__(self, data: bytes, position: int, bad_hex: list[int] | None = None) -> None:
        self.data = data
        self.position = position
        self.bad_hex = bad_hex
        """Where malformed hex strings were found; None: raise at the first one."""

    def skip_space(self) -> None:
        data, position = self.data, self.position
        while position < len(data):
            byte = data[position]
            if byte in _WHITESPACE:
                position += 1
            elif byte == 0x25:  # a comment runs to the end of the line
                while position < len(data) and data[position] not in b"\r\n":
                    position += 1
            else:
                break
        self.position = position

    def skip_whitespace(self) -> None:
        while self.position < len(self.data) and self.data[self.position] in _WHITESPACE:
            self.position += 1

    def keyword(self) -> bytes:
        self.skip_space()
        start = self.position
        while self.position < len(self.data) and self.data[self.position] not in _WHITESPACE + _DELIMITERS:
            self.position += 1
        return self.data[start:self.position]

    def expect(self, word: bytes) -> None:
        found = self.keyword()
        if found != word:
            raise _Malformed(f"expected {word.decode()!r} at offset {self.position - len(found)}, "
                             f"found {found[:20]!r}")

    def value(self, depth: int = 0) -> Value:
        _spend()
        if depth > 64:
            raise _Malformed(f"objects nested too deeply at offset {self.position}")
        self.skip_space()
        data, start = self.data, self.position
        if start >= len(data):
            raise _Malformed("unexpected end of file")
        byte = data[start]
        if byte == 0x2F:  # /
            return self._name()
        if data.startswith(b"<<", start):
            return self._dictionary(depth)
        if byte == 0x3C:  # <
            return self._hex_string()
        if byte == 0x28:  # (
            return self._literal_string()
        if byte == 0x5B:  # [
            self.position += 1
            items: list[Value] = []
            while True:
                self.skip_space()
                if self.position >= len(data):
                    raise _Malformed(f"unterminated array at offset {start}")
                if data[self.position] == 0x5D:
                    self.position += 1
                    return items
                items.append(self.value(depth + 1))
        word = self.keyword()
        if word == b"true":
            return True
        if word == b"false":
            return False
        if word == b"null":
            return None
        if _NUMBER.fullmatch(word):
            if re.fullmatch(rb"\d+", word):
                # "N G R" is a reference: look ahead without consuming when it is not
                mark = self.position
                generation = self.keyword()
                if re.fullmatch(rb"\d+", generation) and self.keyword() == b"R":
                    return Ref(int(word), int(generation))
                self.position = mark
                return int(word)
            try:
                return Decimal(word.decode())
            except InvalidOperation:
                raise _Malformed(f"bad number {word!r} at offset {start}") from None
        raise _Malformed(f"unexpected token {word[:20]!r} at offset {start}")

    def _name(self) -> Name:
        start = self.position
        self.position += 1
        while self.position < len(self.data) and self.data[self.position] not in _WHITESPACE + _DELIMITERS:
            self.position += 1
        raw = self.data[start + 1:self.position]
        try:
            decoded = re.sub(rb"#([0-9a-fA-F]{2})", lambda match: bytes([int(match.group(1), 16)]), raw)
        except ValueError:
            raise _Malformed(f"bad name at offset {start}") from None
        return Name("/" + decoded.decode("latin-1"))

    def _hex_string(self) -> PdfString:
        start = self.position
        end = self.data.find(b">", start)
        if end < 0:
            raise _Malformed(f"unterminated hexadecimal string at offset {start}")
        digits = self.data[start + 1:end].translate(None, _WHITESPACE)
        if not _HEX_DIGITS.fullmatch(digits):
            if self.bad_hex is None:
                raise _Malformed(f"bad hexadecimal string at offset {start}")
            # kept for later: a signature's /Contents gets its own, more precise verdict first
            self.bad_hex.append(start)
            self.position = end + 1
            return PdfString(self.data[start + 1:end], hexadecimal=True)
        if len(digits) % 2:
            digits += b"0"
        self.position = end + 1
        return PdfString(bytes.fromhex(digits.decode()), hexadecimal=True)

    def _literal_string(self) -> PdfString:
        data, start = self.data, self.position
        position, depth, out = start + 1, 1, bytearray()
        escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f",
                   ord("("): b"(", ord(")"): b")", ord("\\"): b"\\"}
        while position < len(data):
            byte = data[position]
            if byte == 0x5C:  # backslash
                position += 1
                if position >= len(data):
                    break
                escaped = data[position]
                if escaped in escapes:
                    out += escapes[escaped]
                    position += 1
                elif 0x30 <= escaped <= 0x37:
                    octal = re.match(rb"[0-7]{1,3}", data[position:position + 3])
                    assert octal is not None
                    out.append(int(octal.group(), 8) & 0xFF)
                    position += len(octal.group())
                elif escaped in b"\r\n":  # a line continuation
                    position += 2 if data[position:position + 2] == b"\r\n" else 1
                else:
                    out.append(escaped)
                    position += 1
                continue
            if byte == 0x28:
                depth += 1
            elif byte == 0x29:
                depth -= 1
                if depth == 0:
                    self.position = position + 1
                    return PdfString(bytes(out), hexadecimal=False)
            out.append(byte)
            position += 1
        raise _Malformed(f"unterminated literal string at offset {start}")

    def _dictionary(self, depth: int) -> dict[Name, Value]:
        start = self.position
        self.position += 2
        result: dict[Name, Value] = {}
        while True:
            self.skip_space()
            if self.data.startswith(b">>", self.position):
                self.position += 2
                return result
            if self.position >= len(self.data) or self.data[self.position] != 0x2F:
                raise _Malformed(f"dictionary key expected at offset {self.position} (dictionary at {start})")
            key = self._name()
            if key in result:
                raise _Malformed(f"key {key} twice in the dictionary at offset {start}")
            result[key] = self.value(depth + 1)

    def dictionary_spans(self) -> dict[Name, tuple[int, int]]:
        """The top-level keys of the dictionary here, each with the byte span of its value."""
        self.skip_space()
        start = self.position
        if not self.data.startswith(b"<<", start):
            raise _Malformed(f"dictionary expected at offset {start}")
        self.position += 2
        spans: dict[Name, tuple[int, int]] = {}
        while True:
            self.skip_space()
            if self.data.startswith(b">>", self.position):
                self.position += 2
                return spans
            if self.position >= len(self.data) or self.data[self.position] != 0x2F:
                raise _Malformed(f"dictionary key expected at offset {self.position}")
            key = self._name()
            self.skip_space()
            value_start = self.position
            self.value(1)
            spans[key] = (value_start, self.position)


# --------------------------------------------------------------------------------------------
# Revisions: the startxref → xref table → /Prev chain, cross-checked against the bytes.

_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?:\r\n| \r| \n)")
_STARTXREF = re.compile(rb"startxref[\x00\t\x0c ]*(?:\r\n|\r|\n)[\x00\t\x0c ]*(\d+)[\x00\t\x0c ]*(?:\r\n|\r|\n)"
                        rb"%%EOF(?:\r\n|\r|\n)?")


@dataclass
class _Revision:
    """One revision: its byte span, its xref table and trailer, and the objects it (re)defines."""

    index: int
    start: int
    end: int
    xref_offset: int
    trailer: dict[Name, Value]
    defined: dict[int, tuple[int, int]]
    """Object number → (file offset, generation) for each in-use entry of this table."""
    freed: set[int]
    objects: dict[int, Value] = field(default_factory=dict)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    bad_hex: list[int] = field(default_factory=list)


def _damaged(reason: str) -> StructureError:
    return StructureError("damaged", reason)


def _read_revision_tail(data: bytes, xref_offset: int) -> tuple[dict[int, tuple[int, int]], set[int],
                                                                  dict[Name, Value], int, int]:
    """Parse the xref table at ``xref_offset`` and its trailer; return entries, frees, trailer, startxref, end."""
    lexer = _Lexer(data, xref_offset)
    if not data.startswith(b"xref", xref_offset):
        raise _damaged(f"startxref points at offset {xref_offset}, where there is no 'xref' table "
                       "(cross-reference streams are not used by station documents)")
    lexer.position += 4
    defined: dict[int, tuple[int, int]] = {}
    freed: set[int] = set()
    while True:
        lexer.skip_whitespace()
        if data.startswith(b"trailer", lexer.position):
            break
        header = re.compile(rb"(\d+) (\d+)[\x00\t\x0c ]*(?:\r\n|\r|\n)").match(data, lexer.position)
        if header is None:
            raise _damaged(f"bad xref subsection header at offset {lexer.position}")
        first, count = int(header.group(1)), int(header.group(2))
        try:
            _spend(count)
        except _Malformed as error:
            raise _damaged(f"the xref table at offset {xref_offset}: {error}") from None
        position = header.end()
        for number in range(first, first + count):
            entry = _XREF_ENTRY.match(data, position)
            if entry is None:
                raise _damaged(f"bad xref entry for object {number} at offset {position}")
            position = entry.end()
            if number in defined or number in freed:
                raise _damaged(f"object {number} listed twice in the xref table at offset {xref_offset}")
            if entry.group(3) == b"n":
                defined[number] = (int(entry.group(1)), int(entry.group(2)))
            else:
                freed.add(number)
        lexer.position = position
    lexer.position += len(b"trailer")
    try:
        trailer = lexer.value()
    except _Malformed as error:
        raise _damaged(f"bad trailer after the xref table at offset {xref_offset}: {error}") from None
    if not isinstance(trailer, dict):
        raise _damaged(f"the trailer after the xref table at offset {xref_offset} is not a dictionary")
    lexer.skip_whitespace()  # not comments: a "%%EOF" comment here would fool a plain text search
    tail = _STARTXREF.match(data, lexer.position)
    if tail is None:
        raise _damaged(f"no 'startxref N %%EOF' after the trailer at offset {lexer.position}")
    return defined, freed, trailer, int(tail.group(1)), tail.end()


def _revisions(data: bytes) -> list[_Revision]:
    """Walk the chain from the last ``startxref`` back; check it accounts for the whole file."""
    last = None
    for match in reversed(list(re.finditer(rb"startxref", data))):
        last = _STARTXREF.match(data, match.start())
        if last is not None:
            break
    if last is None:
        raise _damaged("no 'startxref N %%EOF' at the end of the file")
    file_end = last.end()
    trailing = data[file_end:]
    if trailing.strip(_WHITESPACE):
        raise StructureError("unsigned_tail", f"{len(trailing)} bytes after the last %%EOF (offset {file_end}) "
                                              "are not part of any revision")
    chain: list[tuple[int, dict[int, tuple[int, int]], set[int], dict[Name, Value], int]] = []
    offset: Value = int(last.group(1))
    seen: set[int] = set()
    while offset is not None:
        if not isinstance(offset, int) or offset in seen or not 0 <= offset < len(data):
            raise _damaged(f"bad or looping /Prev offset {offset!r}")
        seen.add(offset)
        defined, freed, trailer, startxref, end = _read_revision_tail(data, offset)
        if startxref != offset:
            raise _damaged(f"the xref table at offset {offset} is followed by 'startxref {startxref}'")
        if not chain and end != file_end:
            raise _damaged(f"the last startxref points at the xref table at offset {offset}, whose revision ends "
                           f"at {end}, not at the last %%EOF ({file_end})")
        for key in (Name("/XRefStm"), Name("/Encrypt")):
            if key in trailer:
                raise _damaged(f"the trailer at offset {offset} has {key}, which station documents never use")
        chain.append((offset, defined, freed, trailer, end))
        offset = trailer.get(Name("/Prev"))
    chain.reverse()
    # Each revision begins where the one before ends; with the gap check in _load_objects this
    # accounts for every byte, so a revision left out of the /Prev chain cannot hide.
    revisions: list[_Revision] = []
    start = 0
    for index, (xref_offset, defined, freed, trailer, end) in enumerate(chain):
        if xref_offset < start:
            raise _damaged(f"revision {index}'s xref table at offset {xref_offset} lies inside an earlier revision")
        revisions.append(_Revision(index, start, end, xref_offset, trailer, defined, freed))
        start = end
    return revisions


def _load_objects(data: bytes, revision: _Revision, resolve_length: Callable[[Ref], Value]) -> None:
    """Parse every object this revision defines; check all of its bytes are accounted for."""
    for number, (offset, generation) in sorted(revision.defined.items(), key=lambda item: item[1][0]):
        if number == 0:
            raise _damaged(f"object 0 is in use in revision {revision.index}")
        if not revision.start <= offset < revision.xref_offset:
            raise _damaged(f"revision {revision.index} places object {number} at offset {offset}, outside its "
                           f"own bytes {revision.start}..{revision.xref_offset}")
        lexer = _Lexer(data, offset, revision.bad_hex)
        try:
            header = (lexer.keyword(), lexer.keyword(), lexer.keyword())
            if header != (str(number).encode(), str(generation).encode(), b"obj"):
                raise _Malformed(f"expected '{number} {generation} obj' at offset {offset}, found "
                                 f"{b' '.join(header)[:40]!r}")
            value = lexer.value()
            mark = lexer.position
            word = lexer.keyword()
            if word == b"stream":
                if not isinstance(value, dict):
                    raise _Malformed(f"stream keyword after a non-dictionary in object {number}")
                position = lexer.position
                if data.startswith(b"\r\n", position):
                    position += 2
                elif data.startswith(b"\n", position):
                    position += 1
                else:
                    raise _Malformed(f"'stream' not followed by an end of line in object {number}")
                length = value.get(Name("/Length"))
                if isinstance(length, Ref):
                    length = resolve_length(length)
                if not isinstance(length, int) or length < 0 or position + length > len(data):
                    raise _Malformed(f"bad /Length {length!r} in stream object {number}")
                raw = data[position:position + length]
                lexer.position = position + length
                lexer.skip_space()
                if not data.startswith(b"endstream", lexer.position):
                    raise _Malformed(f"object {number}: no 'endstream' where its /Length says the data ends")
                lexer.position += len(b"endstream")
                value = Stream(value, raw)
                word = lexer.keyword()
            else:
                lexer.position = mark
                word = lexer.keyword()
            if word != b"endobj":
                raise _Malformed(f"object {number} at offset {offset} does not end with 'endobj'")
        except _Malformed as error:
            raise _damaged(f"revision {revision.index}: {error}") from None
        if _name(_dict(value).get(Name("/Type"))) in ("/ObjStm", "/XRef"):
            raise _damaged(f"revision {revision.index}: object {number} is an object or cross-reference stream, "
                           "which station documents never use")
        revision.objects[number] = value
        revision.spans[number] = (offset, lexer.position)
    _check_gaps(data, revision)


def _check_gaps(data: bytes, revision: _Revision) -> None:
    """Between the objects of a revision there may be only whitespace and comments, and no %%EOF."""
    position = revision.start
    for number, (start, end) in sorted(revision.spans.items(), key=lambda item: item[1]):
        if start < position:
            raise _damaged(f"object {number} at offset {start} overlaps the previous object")
        _check_filler(data, position, start, revision.index)
        position = end
    _check_filler(data, position, revision.xref_offset, revision.index)


def _check_filler(data: bytes, start: int, end: int, index: int) -> None:
    position = start
    while position < end:
        byte = data[position]
        if byte in _WHITESPACE:
            position += 1
            continue
        if byte != 0x25:
            raise _damaged(f"revision {index}: bytes at offset {position} belong to no object in its xref table")
        comment_start = position
        while position < end and data[position] not in b"\r\n":
            position += 1
        if b"%%EOF" in data[comment_start:position]:
            raise _damaged(f"revision {index}: a %%EOF at offset {data.index(b'%%EOF', comment_start)} ends no "
                           "revision of the /Prev chain")



class _Document:
    """Every revision with its objects, and the state of the object table at the end of each."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.revisions = _revisions(data)
        self.tables: list[dict[int, tuple[int, int]]] = []
        """Per revision: object number → (revision that defines the current version, generation)."""
        table: dict[int, tuple[int, int]] = {}
        for revision in self.revisions:
            table = dict(table)
            for number in revision.freed:
                table.pop(number, None)
            for number, (_, generation) in revision.defined.items():
                table[number] = (revision.index, generation)
            self.tables.append(table)
            _load_objects(data, revision, functools.partial(self._length, revision.index))

    def _length(self, index: int, ref: Ref) -> Value:
        location = self.tables[index].get(ref.number)
        if location is None or location[1] != ref.generation:
            raise _Malformed(f"stream /Length refers to missing object {ref}")
        offset = self.revisions[location[0]].defined[ref.number][0]
        lexer = _Lexer(self.data, offset)
        lexer.keyword(), lexer.keyword()
        lexer.expect(b"obj")
        return lexer.value()

    def get(self, index: int, ref: Value) -> Value:
        """The value of ``ref`` as of the end of revision ``index`` (a direct value is returned as is)."""
        if not isinstance(ref, Ref):
            return ref
        location = self.tables[index].get(ref.number)
        if location is None or location[1] != ref.generation:
            return None  # ISO 32000: a reference to a missing object is null
        return self.revisions[location[0]].objects[ref.number]

    def catalog(self, index: int) -> dict[Name, Value]:
        root = self.get(index, self.revisions[index].trailer.get(Name("/Root")))
        if not isinstance(root, dict):
            raise _damaged(f"revision {index}: the trailer's /Root is not a dictionary")
        return root

    def versions(self) -> Iterator[tuple[int, int, Value]]:
        """(revision, object number, value) of every object version in the file."""
        for revision in self.revisions:
            for number, value in revision.objects.items():
                yield revision.index, number, value


def _dict(value: Value) -> dict[Name, Value]:
    if isinstance(value, Stream):
        return value.dictionary
    return value if isinstance(value, dict) else {}


def _name(value: Value) -> str:
    return str(value) if isinstance(value, Name) else ""


# --------------------------------------------------------------------------------------------
# Signature dictionaries: /ByteRange and /Contents read from the raw bytes.

_SIGNATURE_SUBFILTERS = ("/ETSI.CAdES.detached", "/adbe.pkcs7.detached")
_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_TIMESTAMP_SUBFILTER = "/ETSI.RFC3161"


def _check_signature_bytes(document: _Document, revision: _Revision, number: int) -> tuple[tuple[int, int, int, int],
                                                                                          bytes]:
    """Check one definition of a signature dictionary at the byte level; return its range and its CMS."""
    data = document.data
    offset = revision.defined[number][0]
    lexer = _Lexer(data, offset, [])
    lexer.keyword(), lexer.keyword(), lexer.keyword()
    spans = lexer.dictionary_spans()
    where = f"signature dictionary {number} (revision {revision.index}, offset {offset})"
    if Name("/ByteRange") not in spans:
        raise StructureError("byte_range", f"{where} has no /ByteRange")
    start, end = spans[Name("/ByteRange")]
    raw_range = data[start:end]
    numbers = re.fullmatch(rb"\[[\x00\t\n\x0c\r ]*(\d+)[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+(\d+)"
                           rb"[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]*\]", raw_range)
    if numbers is None:
        raise StructureError("byte_range", f"{where}: /ByteRange {raw_range[:60]!r} is not [0 a b c] of four "
                                           "non-negative integers")
    first, a, b, c = (int(group) for group in numbers.groups())
    byte_range = (first, a, b, c)
    if first != 0:
        raise StructureError("byte_range", f"{where}: /ByteRange {list(byte_range)} does not start at 0")
    if not 0 < a < b <= b + c <= len(data):
        raise StructureError("byte_range", f"{where}: /ByteRange {list(byte_range)} overlaps or leaves the "
                                           f"file of {len(data)} bytes")
    ends = [item.end for item in document.revisions]
    if b + c not in ends:
        raise StructureError("byte_range", f"{where}: /ByteRange {list(byte_range)} ends at {b + c}, which is not "
                                           f"the end of a revision ({', '.join(map(str, ends))})")
    if not revision.start <= a < b <= revision.end:
        raise StructureError("byte_range", f"{where}: the unsigned gap {a}..{b} lies outside the revision that "
                                           "defines the dictionary")
    if Name("/Contents") not in spans:
        raise StructureError("contents_encoding", f"{where} has no /Contents")
    contents_start, contents_end = spans[Name("/Contents")]
    if (contents_start, contents_end) != (a, b):
        raise StructureError("contents_encoding", f"{where}: the unsigned gap {a}..{b} is not exactly the /Contents "
                                                  f"value (found at {contents_start}..{contents_end})")
    gap = data[a:b]
    if not (gap.startswith(b"<") and gap.endswith(b">")) or len(gap) < 4:
        raise StructureError("contents_encoding", f"{where}: /Contents at offset {a} is not a hexadecimal string "
                                                  f"(starts {gap[:1]!r})")
    digits = gap[1:-1]
    bad = None if _HEX_DIGITS.fullmatch(digits) else next(
        index for index, byte in enumerate(digits) if byte not in _HEX)
    if bad is not None:
        raise StructureError("contents_encoding", f"{where}: /Contents has the non-hexadecimal byte "
                                                  f"{digits[bad:bad + 1]!r} at offset {a + 1 + bad}")
    if len(digits) % 2:
        raise StructureError("contents_encoding", f"{where}: /Contents has an odd number of hex digits "
                                                  f"({len(digits)})")
    return byte_range, _split_container(bytes.fromhex(digits.decode()), where)


def _split_container(decoded: bytes, where: str) -> bytes:
    """The DER CMS at the start of ``decoded``; everything after it must be zero padding."""
    length = _der_length(decoded)
    if length is None:
        raise StructureError("container_padding", f"{where}: /Contents does not start with a DER SEQUENCE")
    padding = decoded[length:]
    nonzero = None if not padding.strip(b"\x00") else next(index for index, byte in enumerate(padding) if byte)
    if nonzero is not None:
        raise StructureError("container_padding", f"{where}: byte {nonzero} of the padding after the "
                                                  f"{length}-byte CMS is 0x{padding[nonzero]:02x}, not zero")
    cms = decoded[:length]
    try:
        from asn1crypto import cms as asn1_cms

        info = asn1_cms.ContentInfo.load(cms, strict=True)
        if info["content_type"].dotted != _SIGNED_DATA:
            raise ValueError(f"content type {info['content_type'].dotted}")
        signed = info["content"]
        signer_infos = len(signed["signer_infos"])
        signed["encap_content_info"]["content_type"].native  # noqa: B018 - forces the parse
    except Exception as error:  # asn1crypto raises assorted types on malformed DER
        raise StructureError("container_padding", f"{where}: /Contents is not one CMS SignedData "
                                                  f"({type(error).__name__}: {str(error)[:80]})") from None
    if signer_infos != 1:
        raise StructureError("multiple_signer_infos", f"{where}: the CMS holds {signer_infos} signer infos; "
                                                      "expected one")
    return cms


def _der_length(data: bytes) -> int | None:
    """Total length of the DER SEQUENCE at the start of ``data`` (tag, length, content), or None."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        total = 2 + count + int.from_bytes(data[2:2 + count], "big")
    return total if total <= len(data) else None


# --------------------------------------------------------------------------------------------
# Values compared as decoded data, key by key.

_STREAM_ENCODING_KEYS = (Name("/Length"), Name("/Filter"), Name("/DecodeParms"))
_DECODED_LIMIT = 64 * 1024 * 1024


def _decoded(stream: Stream) -> tuple[bytes, Value]:
    """(data, filter still applied): Flate is decoded, any other filter is compared as written."""
    filters = stream.dictionary.get(Name("/Filter"))
    chain = filters if isinstance(filters, list) else [filters] if filters is not None else []
    if chain == [Name("/FlateDecode")] and Name("/DecodeParms") not in stream.dictionary:
        decompressor = zlib.decompressobj()
        try:
            data = decompressor.decompress(stream.raw, _DECODED_LIMIT)
        except zlib.error as error:
            raise _damaged(f"a Flate stream does not decode ({error})") from None
        if decompressor.unconsumed_tail:
            raise _damaged("a Flate stream decodes to more than 64 MiB")
        return data, None
    if not chain:
        return stream.raw, None
    return stream.raw, [filters, stream.dictionary.get(Name("/DecodeParms"))]


def _same(old: Value, new: Value) -> bool:
    if isinstance(old, Stream) or isinstance(new, Stream):
        if not (isinstance(old, Stream) and isinstance(new, Stream)):
            return False
        keys = set(old.dictionary) | set(new.dictionary)
        return all(_same(old.dictionary.get(key), new.dictionary.get(key))
                   for key in keys if key not in _STREAM_ENCODING_KEYS) and _decoded(old) == _decoded(new)
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[key], new[key]) for key in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    if isinstance(old, int | Decimal) and isinstance(new, int | Decimal):
        return Decimal(old) == Decimal(new)
    return type(old) is type(new) and old == new


def _changed_keys(old: Value, new: Value) -> set[Name]:
    """Top-level keys whose values differ (a stream's data counts as the key "(data)")."""
    old_dict, new_dict = _dict(old), _dict(new)
    keys = {key for key in set(old_dict) | set(new_dict)
            if key not in _STREAM_ENCODING_KEYS or not isinstance(new, Stream)}
    changed = {key for key in keys if key not in old_dict or key not in new_dict
               or not _same(old_dict[key], new_dict[key])}
    if isinstance(old, Stream) and isinstance(new, Stream) and _decoded(old) != _decoded(new):
        changed.add(Name("(data)"))
    if isinstance(old, Stream) != isinstance(new, Stream) or isinstance(old, dict) != isinstance(new, dict):
        changed.add(Name("(type)"))
    if not isinstance(old, dict | Stream) and not isinstance(new, dict | Stream) and not _same(old, new):
        changed.add(Name("(value)"))  # an array, number or string object
    return changed


# --------------------------------------------------------------------------------------------
# Active content and annotations, looked for in every version of every object.

_ACTIVE_KEYS = {"/JS": "JavaScript", "/JavaScript": "a JavaScript name tree", "/OpenAction": "an open action",
                "/AA": "additional actions (/AA)", "/OCProperties": "optional content (layers)",
                "/OC": "optional content membership", "/XFA": "an XFA form", "/RichMediaContent": "rich media",
                "/RichMediaSettings": "rich media", "/Launch": "a launch action", "/URI": "a URI",
                "/Collection": "a portable collection", "/AF": "associated files"}
_ACTIVE_ACTIONS = {"/JavaScript", "/Launch", "/URI", "/SubmitForm", "/ImportData", "/GoToR", "/GoToE",
                   "/Rendition", "/Movie", "/Sound", "/Hide", "/SetOCGState", "/ResetForm", "/Trans",
                   "/GoTo3DView", "/RichMediaExecute", "/Named", "/Thread"}
_ACTIVE_TYPES = {"/OCG": "an optional content group (layer)", "/OCMD": "an optional content membership",
                 "/Action": "an action", "/RichMedia": "rich media", "/3D": "3D content"}
_ANNOTATION_SUBTYPES = {"/Text", "/Link", "/FreeText", "/Line", "/Square", "/Circle", "/Polygon", "/PolyLine",
                        "/Highlight", "/Underline", "/Squiggly", "/StrikeOut", "/Stamp", "/Caret", "/Ink", "/Popup",
                        "/FileAttachment", "/Sound", "/Movie", "/Widget", "/Screen", "/PrinterMark", "/TrapNet",
                        "/Watermark", "/3D", "/Redact", "/Projection", "/RichMedia"}


def _scan(document: _Document) -> None:
    """Raise on active content, then on annotations or form fields that are not signature fields."""
    annotation_problem: str | None = None
    for index, number, value in document.versions():
        for where, item in _walk(value, f"object {number} (revision {index})"):
            for key in item:
                if key in _ACTIVE_KEYS:
                    raise StructureError("active_content", f"{where} has {key}: {_ACTIVE_KEYS[key]}")
            kind = _name(item.get(Name("/Type")))
            subtype = _name(item.get(Name("/Subtype")))
            action = _name(item.get(Name("/S")))
            if kind in _ACTIVE_TYPES or subtype in ("/RichMedia", "/3D", "/Movie", "/Sound", "/Screen"):
                raise StructureError("active_content", f"{where} is {_ACTIVE_TYPES.get(kind) or subtype}")
            if action in _ACTIVE_ACTIONS:
                raise StructureError("active_content", f"{where} is a {action} action")
            if annotation_problem is None:
                annotation_problem = _annotation_problem(where, item, kind, subtype)
    if annotation_problem is not None:
        raise StructureError("unexpected_annotation", annotation_problem)
    for revision in document.revisions:
        catalog = document.catalog(revision.index)
        form = _dict(document.get(revision.index, catalog.get(Name("/AcroForm"))))
        fields = document.get(revision.index, form.get(Name("/Fields")))
        for entry in fields if isinstance(fields, list) else []:
            field_value = _dict(document.get(revision.index, entry))
            if _name(field_value.get(Name("/FT"))) != "/Sig" or Name("/Kids") in field_value:
                raise StructureError("unexpected_annotation", f"revision {revision.index}: form field {entry} is not "
                                                              "a signature field")
        _check_page_annotations(document, revision.index, catalog)


def _annotation_problem(where: str, item: dict[Name, Value], kind: str, subtype: str) -> str | None:
    if Name("/FT") in item and _name(item.get(Name("/FT"))) != "/Sig":
        return f"{where} is a {_name(item.get(Name('/FT')))} form field, not a signature field"
    if kind == "/Annot" or subtype in _ANNOTATION_SUBTYPES:
        if subtype != "/Widget" or _name(item.get(Name("/FT"))) != "/Sig":
            return f"{where} is a {subtype or kind} annotation, not a signature widget"
        rect = item.get(Name("/Rect"))
        if Name("/AP") in item and not _zero_area(rect):
            return f"{where} is a visible signature widget with an appearance"
    return None


def _zero_area(rect: Value) -> bool:
    if not isinstance(rect, list) or len(rect) != 4 or not all(isinstance(x, int | Decimal) for x in rect):
        return False
    x1, y1, x2, y2 = (Decimal(x) for x in rect if isinstance(x, int | Decimal))
    return x1 == x2 or y1 == y2


def _check_page_annotations(document: _Document, index: int, catalog: dict[Name, Value]) -> None:
    for number, page in _pages(document, index, catalog):
        annotations = document.get(index, _dict(page).get(Name("/Annots")))
        for entry in annotations if isinstance(annotations, list) else [annotations] if annotations else []:
            annotation = _dict(document.get(index, entry))
            if _name(annotation.get(Name("/Subtype"))) != "/Widget" or _name(annotation.get(Name("/FT"))) != "/Sig":
                raise StructureError("unexpected_annotation", f"revision {index}: page object {number} lists "
                                                              f"{entry} in /Annots, which is not a signature widget")


def _pages(document: _Document, index: int, catalog: dict[Name, Value]) -> list[tuple[int, Value]]:
    found: list[tuple[int, Value]] = []
    pending: list[Value] = [catalog.get(Name("/Pages"))]
    seen: set[int] = set()
    while pending:
        ref = pending.pop()
        if not isinstance(ref, Ref) or ref.number in seen or len(seen) > 100_000:
            continue
        seen.add(ref.number)
        node = _dict(document.get(index, ref))
        if _name(node.get(Name("/Type"))) == "/Page":
            found.append((ref.number, node))
        kids = document.get(index, node.get(Name("/Kids")))
        pending += kids if isinstance(kids, list) else []
    return found


def _walk(value: Value, where: str, depth: int = 0) -> Iterator[tuple[str, dict[Name, Value]]]:
    """Every dictionary inside ``value`` (a stream's dictionary included), with a path for messages."""
    if depth > 64:
        # the parser refuses deeper nesting, so this cannot hide anything; refuse rather than skip
        raise _damaged(f"{where}: objects nested too deeply")
    if isinstance(value, Stream):
        value = value.dictionary
    if isinstance(value, dict):
        yield where, value
        for key, item in value.items():
            yield from _walk(item, f"{where} {key}", depth + 1)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _walk(item, f"{where}[{position}]", depth + 1)


# --------------------------------------------------------------------------------------------
# Later revisions: object by object against the revision before.

_DSS_KEYS = {"/Type", "/Certs", "/CRLs", "/OCSPs", "/VRI"}
_VRI_KEYS = {"/Type", "/Cert", "/CRL", "/OCSP", "/TU", "/TS"}
_TIMESTAMP_FIELD_KEYS = {"/FT", "/T", "/TU", "/Type", "/Subtype", "/F", "/Rect", "/P", "/V"}
_TIMESTAMP_VALUE_KEYS = {"/Type", "/Filter", "/SubFilter", "/Contents", "/ByteRange"}
_XMP_DATES = re.compile(rb'(xmp:(?:ModifyDate|MetadataDate)(?:="[^"]*"|>[^<]*<))')


@dataclass
class _Review:
    """What one later revision changed: problems found, and a line for the report."""

    problems: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def _dss_objects(document: _Document, index: int, dss_ref: Value, review: _Review) -> set[int]:
    """Object numbers making up the DSS as of revision ``index``; shape problems go into ``review``."""
    numbers: set[int] = set()
    counts = {"/Certs": 0, "/CRLs": 0, "/OCSPs": 0}

    def take(ref: Value) -> Value:
        if isinstance(ref, Ref):
            numbers.add(ref.number)
        return document.get(index, ref)

    dss = take(dss_ref)
    if not isinstance(dss, dict):
        review.problems.append(f"the catalog's /DSS {dss_ref} is not a dictionary")
        return numbers
    for key, value in dss.items():
        if key not in _DSS_KEYS:
            review.problems.append(f"the DSS has the key {key}")
        elif key == "/Type":
            if value != Name("/DSS"):
                review.problems.append(f"the DSS has /Type {value!r}")
        elif key == "/VRI":
            vri = take(value)
            for entry in _dict(vri).values():
                record = take(entry)
                for vri_key, item in _dict(record).items():
                    if vri_key not in _VRI_KEYS:
                        review.problems.append(f"a DSS /VRI entry has the key {vri_key}")
                    elif vri_key in ("/Cert", "/CRL", "/OCSP"):
                        listed = take(item)
                        for stream_ref in listed if isinstance(listed, list) else []:
                            _check_dss_stream(stream_ref, take(stream_ref), review)
                    elif vri_key == "/TS":  # a timestamp token: one DER stream like the others
                        _check_dss_stream(item, take(item), review)
                    elif vri_key == "/Type" and item != Name("/VRI"):
                        review.problems.append(f"a DSS /VRI entry has /Type {item!r}")
                if not isinstance(record, dict):
                    review.problems.append("a DSS /VRI entry is not a dictionary")
        else:
            items = take(value)
            if not isinstance(items, list):
                review.problems.append(f"the DSS {key} is not an array")
                continue
            for stream_ref in items:
                counts[key] += 1
                _check_dss_stream(stream_ref, take(stream_ref), review)
    review.added.append(f"DSS ({counts['/Certs']} certificates, {counts['/CRLs']} CRLs, {counts['/OCSPs']} OCSP "
                        "responses)")
    return numbers


def _check_dss_stream(ref: Value, value: Value, review: _Review) -> None:
    """A DSS entry is a stream holding exactly one DER structure (certificate, CRL or OCSP response)."""
    if not isinstance(ref, Ref) or not isinstance(value, Stream):
        review.problems.append(f"DSS entry {ref} is not a stream object")
        return
    extra = set(value.dictionary) - {"/Length", "/Filter", "/DecodeParms", "/Type"}
    if extra:
        review.problems.append(f"DSS stream {ref} has the key(s) {', '.join(sorted(extra))}")
    data, filters = _decoded(value)
    if filters is not None or _der_length(data) != len(data):
        review.problems.append(f"DSS stream {ref} does not hold one DER structure")


def _review_revision(document: _Document, index: int, timestamps_here: set[int]) -> _Review:
    """Compare revision ``index`` with ``index - 1``; only long-term validation material may change."""
    review = _Review()
    revision = document.revisions[index]
    previous = index - 1
    old_table = document.tables[previous]
    old_trailer, new_trailer = document.revisions[previous].trailer, revision.trailer
    for key in ("/Root", "/Info"):
        if not _same(old_trailer.get(Name(key)), new_trailer.get(Name(key))):
            review.problems.append(f"the trailer's {key} changed from {old_trailer.get(Name(key))} to "
                                   f"{new_trailer.get(Name(key))}")
    old_ids, new_ids = old_trailer.get(Name("/ID")), new_trailer.get(Name("/ID"))
    if isinstance(old_ids, list) and (not isinstance(new_ids, list) or not _same(old_ids[:1], new_ids[:1])):
        review.problems.append("the trailer's permanent /ID changed")
    for number in sorted(revision.freed):
        if number in old_table:
            review.problems.append(f"object {number} is freed (xref 'f' entry)")
    if review.problems:
        return review
    old_catalog, new_catalog = document.catalog(previous), document.catalog(index)
    root = new_trailer.get(Name("/Root"))
    root_number = root.number if isinstance(root, Ref) else -1
    info = new_trailer.get(Name("/Info"))
    info_number = info.number if isinstance(info, Ref) else -1
    metadata = old_catalog.get(Name("/Metadata"))
    metadata_number = metadata.number if isinstance(metadata, Ref) else -1
    form_ref = old_catalog.get(Name("/AcroForm"))
    form_number = form_ref.number if isinstance(form_ref, Ref) else -1

    allowed: set[int] = set()
    dss_numbers: set[int] = set()
    old_dss_numbers: set[int] = set()
    if Name("/DSS") in old_catalog:
        old_dss_numbers = _dss_objects(document, previous, old_catalog[Name("/DSS")], _Review())
    if Name("/DSS") in new_catalog:
        dss_review = _Review()
        dss_numbers = _dss_objects(document, index, new_catalog[Name("/DSS")], dss_review)
        allowed |= dss_numbers
        if not _same(old_catalog.get(Name("/DSS")), new_catalog.get(Name("/DSS"))) or any(
                number in revision.defined for number in dss_numbers | old_dss_numbers):
            review.problems += dss_review.problems
            review.added += dss_review.added
    # new document-timestamp fields: /AcroForm /Fields grows by them, and only by them
    old_fields = document.get(previous, _dict(document.get(previous, form_ref)).get(Name("/Fields")))
    new_fields = document.get(index, _dict(document.get(index, new_catalog.get(Name("/AcroForm")))).get(
        Name("/Fields")))
    old_list = old_fields if isinstance(old_fields, list) else []
    new_list = new_fields if isinstance(new_fields, list) else []
    if len(new_list) < len(old_list) or not _same(new_list[:len(old_list)], old_list):
        review.problems.append("the /AcroForm /Fields array lost or reordered a field")
        return review
    new_widgets: set[int] = set()
    for entry in new_list[len(old_list):]:
        problem = _timestamp_field_problem(document, index, entry, timestamps_here)
        if problem:
            review.problems.append(problem)
            continue
        assert isinstance(entry, Ref)
        value = _dict(document.get(index, entry))[Name("/V")]
        assert isinstance(value, Ref)
        allowed |= {entry.number, value.number}
        new_widgets.add(entry.number)
        name = _dict(document.get(index, entry)).get(Name("/T"))
        review.added.append("document timestamp " + (name.value.decode("latin-1") if isinstance(name, PdfString)
                                                     else str(entry)))
    if timestamps_here and not new_widgets:
        review.problems.append("the document timestamp ending here has no new signature field")

    for number in sorted(revision.defined):
        new = revision.objects[number]
        if number not in old_table:
            if number not in allowed:
                review.problems.append(f"adds object {number} ({_describe(new)}), which long-term validation "
                                       "does not need")
            continue
        old = document.get(previous, Ref(number, old_table[number][1]))
        if revision.defined[number][1] != old_table[number][1]:
            # a new generation turns every "N G R" to the old one into null: a hidden deletion
            review.problems.append(f"redefines object {number} with generation {revision.defined[number][1]} "
                                   f"(was {old_table[number][1]})")
            continue
        if _same(old, new):
            continue
        changed = _changed_keys(old, new)
        if number == root_number:
            rest = changed - {Name("/DSS"), Name("/Extensions")}
            if Name("/Extensions") in changed and not _only_esic_added(old, new):
                rest.add(Name("/Extensions"))
        elif number == info_number:
            rest = changed - {Name("/ModDate")}
        elif number == metadata_number:
            rest = changed if not _same_xmp(old, new) else changed - {Name("(data)")}
        elif number == form_number:
            rest = changed - {Name("/Fields")}
        elif _name(_dict(old).get(Name("/Type"))) == "/Page":
            rest = changed - {Name("/Annots")}
            if not rest and not _annots_grow_by(document, index, old, new, new_widgets):
                rest = {Name("/Annots")}
        elif number in old_dss_numbers:
            # only what already was DSS material may be rewritten as DSS material: a signed object
            # listed in a new DSS stays a signed object
            rest = set() if number in dss_numbers else changed
        else:
            rest = changed
        if rest:
            review.problems.append(f"redefines object {number} ({_describe(old)}): "
                                   f"{', '.join(sorted(rest))} changed")
    if not review.added:
        review.added.append("no change")
    return review


def _timestamp_field_problem(document: _Document, index: int, entry: Value, timestamps_here: set[int]) -> str:
    """Why a field added after signing is not this revision's invisible document-timestamp field ("" if it is)."""
    table = document.tables[index - 1]
    if not isinstance(entry, Ref) or entry.number in table:
        return f"/AcroForm /Fields gained {entry}, which is not a new field object"
    field_value = _dict(document.get(index, entry))
    extra = set(field_value) - _TIMESTAMP_FIELD_KEYS
    value = field_value.get(Name("/V"))
    if (extra or _name(field_value.get(Name("/FT"))) != "/Sig" or not isinstance(value, Ref)
            or value.number in table or value.number not in timestamps_here
            or not _zero_area(field_value.get(Name("/Rect")))):
        return (f"the field {entry} added after signing is not an invisible document-timestamp field of this "
                f"revision{' (keys ' + ', '.join(sorted(extra)) + ')' if extra else ''}")
    signature = _dict(document.get(index, value))
    if set(signature) - _TIMESTAMP_VALUE_KEYS:
        return (f"the document timestamp {value} has the key(s) "
                f"{', '.join(sorted(set(signature) - _TIMESTAMP_VALUE_KEYS))}")
    return ""


def _annots_grow_by(document: _Document, index: int, old: Value, new: Value, widgets: set[int]) -> bool:
    old_annots = document.get(index - 1, _dict(old).get(Name("/Annots")))
    new_annots = document.get(index, _dict(new).get(Name("/Annots")))
    old_list = old_annots if isinstance(old_annots, list) else []
    new_list = new_annots if isinstance(new_annots, list) else []
    added = new_list[len(old_list):]
    return (len(new_list) >= len(old_list) and _same(new_list[:len(old_list)], old_list)
            and all(isinstance(item, Ref) and item.number in widgets for item in added))


def _only_esic_added(old: Value, new: Value) -> bool:
    old_extensions = _dict(_dict(old).get(Name("/Extensions")))
    new_extensions = _dict(_dict(new).get(Name("/Extensions")))
    esic = _dict(new_extensions.get(Name("/ESIC")))
    return (set(new_extensions) - set(old_extensions) == {Name("/ESIC")}
            and all(_same(old_extensions[key], new_extensions[key]) for key in old_extensions)
            and set(esic) <= {"/Type", "/BaseVersion", "/ExtensionLevel"})


def _same_xmp(old: Value, new: Value) -> bool:
    if not (isinstance(old, Stream) and isinstance(new, Stream)):
        return False
    return _XMP_DATES.sub(b"xmp:date", _decoded(old)[0]) == _XMP_DATES.sub(b"xmp:date", _decoded(new)[0])


def _describe(value: Value) -> str:
    dictionary = _dict(value)
    kind = _name(dictionary.get(Name("/Type"))) or _name(dictionary.get(Name("/Subtype")))
    shape = "stream" if isinstance(value, Stream) else "dictionary" if isinstance(value, dict) else \
        type(value).__name__
    return f"{kind} {shape}".strip()


# --------------------------------------------------------------------------------------------
# The whole check.


def check_structure(data: bytes) -> StructureReport:
    """Check ``data`` (a whole PDF file) byte by byte; return what was found or raise StructureError.

    The checks run in this order, and the first failure is raised: revision chain (``damaged``,
    trailing bytes ``unsigned_tail``); every signature dictionary's bytes (``byte_range``,
    ``contents_encoding``, ``container_padding``); one station signature (``multiple_signatures``);
    active content and annotations in any revision; certification (``not_certified``); every later
    revision (``unsigned_tail``, ``modified_after_signing``); pyHanko's difference analysis as a
    second opinion (``modified_after_signing``).
    """
    _BUDGET.left = MAX_VALUES
    try:
        return _check(data)
    except StructureError:
        raise
    except _Malformed as error:
        raise _damaged(str(error)) from None
    except (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        # hostile bytes must get a verdict, never a traceback
        raise _damaged(f"cannot analyse the file ({type(error).__name__}: {str(error)[:120]})") from None
    finally:
        _BUDGET.left = None


def _check(data: bytes) -> StructureReport:
    if not data.startswith(b"%PDF-"):
        raise _damaged("the file does not start with %PDF-")
    document = _Document(data)
    signatures: dict[int, list[tuple[int, SignatureKind, tuple[int, int, int, int], bytes]]] = {}
    for index, number, value in document.versions():
        for where, item in _walk(value, f"object {number} (revision {index})"):
            if item is not value and (Name("/ByteRange") in item
                                      or _name(item.get(Name("/Type"))) in ("/Sig", "/DocTimeStamp")):
                raise StructureError("byte_range", f"{where} is a signature dictionary inside another object")
        dictionary = value if isinstance(value, dict) else None
        if dictionary is None:
            if Name("/ByteRange") in _dict(value):
                raise StructureError("byte_range", f"object {number} (revision {index}) is a stream with /ByteRange")
            continue
        kind_name = _name(dictionary.get(Name("/Type")))
        if kind_name not in ("/Sig", "/DocTimeStamp") and Name("/ByteRange") not in dictionary:
            continue
        kind = SignatureKind.DOCUMENT_TIMESTAMP if kind_name == "/DocTimeStamp" else SignatureKind.SIGNATURE
        byte_range, cms = _check_signature_bytes(document, document.revisions[index], number)
        if byte_range[2] + byte_range[3] != document.revisions[index].end:
            raise StructureError("byte_range", f"signature dictionary {number} is in revision {index} but its "
                                               f"/ByteRange ends at {byte_range[2] + byte_range[3]}, not at that "
                                               f"revision's end {document.revisions[index].end}")
        subfilter = _name(dictionary.get(Name("/SubFilter")))
        allowed = (_TIMESTAMP_SUBFILTER,) if kind is SignatureKind.DOCUMENT_TIMESTAMP else _SIGNATURE_SUBFILTERS
        if subfilter not in allowed:
            # a station signature in another format is no PAdES certification; a timestamp in another
            # format is nothing long-term validation needs
            code = "not_certified" if kind is SignatureKind.SIGNATURE else "modified_after_signing"
            raise StructureError(code, f"signature dictionary {number} has /SubFilter {subfilter or 'none'}, "
                                       f"not {' or '.join(allowed)}")
        _check_cms_kind(cms, kind, number)
        signatures.setdefault(number, []).append((index, kind, byte_range, cms))

    for revision in document.revisions:
        if revision.bad_hex:
            raise _damaged(f"revision {revision.index}: bad hexadecimal string at offset {revision.bad_hex[0]}")
    station = [number for number, found in signatures.items()
               if any(kind is SignatureKind.SIGNATURE for _, kind, _, _ in found)]
    if len(station) > 1:
        raise StructureError("multiple_signatures", f"{len(station)} signatures (objects "
                                                    f"{', '.join(map(str, sorted(station)))}); expected one")
    if not station:
        raise StructureError("not_certified", "the file carries no station signature")
    station_number = station[0]
    # every definition of a signature object is checked above; the report uses its first one
    station_revision, _, station_range, station_cms = signatures[station_number][0]
    timestamps = sorted(((found[0][0], number, found[0][2], found[0][3]) for number, found in signatures.items()
                         if number != station_number), key=lambda item: item[2][1])
    for revision_index, number, _, _ in timestamps:
        if revision_index <= station_revision:
            raise StructureError("multiple_signatures", f"document timestamp {number} is in revision "
                                                        f"{revision_index}, not after the station signature")

    _scan(document)
    _check_certified(document, station_revision, station_number)
    station_field = _field_name(document, station_number)
    if not station_field:
        raise StructureError("not_certified", f"the station signature (object {station_number}) is the value of no "
                                              "signature field of the final revision")

    timestamp_ends = {revision_index: number for revision_index, number, _, _ in timestamps}
    last_covered = max(timestamp_ends, default=station_revision)
    later: list[str] = []
    for index in range(station_revision + 1, len(document.revisions)):
        here = {timestamp_ends[index]} if index in timestamp_ends else set()
        review = _review_revision(document, index, here)
        if review.problems:
            if index > last_covered:
                raise StructureError("unsigned_tail", f"revision {index} (offsets {document.revisions[index].start}.."
                                                      f"{document.revisions[index].end}) is signed by nobody and "
                                                      f"changes more than the DSS: {review.problems[0]}")
            raise StructureError("modified_after_signing", f"revision {index}: {review.problems[0]}")
        if index > last_covered and review.added == ["no change"]:
            # harmless in itself, but bytes nobody signed that long-term validation does not need
            raise StructureError("unsigned_tail", f"revision {index} (offsets {document.revisions[index].start}.."
                                                  f"{document.revisions[index].end}) is signed by nobody and adds "
                                                  "no validation data")
        later.append(f"revision {index}: {'; '.join(review.added)}")
    if later:
        _second_opinion(data, station_revision)

    return StructureReport(
        revision_ends=tuple(revision.end for revision in document.revisions),
        signature=SignedRange(station_field, SignatureKind.SIGNATURE, station_range,
                              station_cms, station_revision),
        document_timestamps=tuple(
            SignedRange(_field_name(document, number), SignatureKind.DOCUMENT_TIMESTAMP, byte_range, cms, index)
            for index, number, byte_range, cms in timestamps),
        later_revisions=tuple(later),
    )


def _check_cms_kind(cms: bytes, kind: SignatureKind, number: int) -> None:
    """A document timestamp holds a TSTInfo; a signature holds anything but."""
    from asn1crypto import cms as asn1_cms

    # dotted, not .native: asn1crypto names the TSTInfo type only once asn1crypto.tsp was imported
    content_type = asn1_cms.ContentInfo.load(cms)["content"]["encap_content_info"]["content_type"].dotted
    if (content_type == _TST_INFO) != (kind is SignatureKind.DOCUMENT_TIMESTAMP):
        raise StructureError("container_padding", f"signature dictionary {number} is a {kind.value} but its CMS "
                                                  f"encapsulates {content_type}")


def _check_certified(document: _Document, index: int, number: int) -> None:
    """The station signature must be the catalog's /Perms /DocMDP with a /DocMDP transform."""
    catalog = document.catalog(index)
    permissions = _dict(document.get(index, catalog.get(Name("/Perms"))))
    docmdp = permissions.get(Name("/DocMDP"))
    if not isinstance(docmdp, Ref) or docmdp.number != number:
        raise StructureError("not_certified", f"the catalog's /Perms /DocMDP is {docmdp}, not the station signature "
                                              f"(object {number}): an approval signature, not a certification")
    references = document.get(index, _dict(document.get(index, Ref(number, docmdp.generation))).get(
        Name("/Reference")))
    methods = [_name(_dict(document.get(index, item)).get(Name("/TransformMethod")))
               for item in (references if isinstance(references, list) else [])]
    if "/DocMDP" not in methods:
        raise StructureError("not_certified", f"signature {number} has no /Reference with /TransformMethod /DocMDP")


def _field_name(document: _Document, number: int) -> str:
    last = len(document.revisions) - 1
    for index, candidate, value in document.versions():
        item = _dict(value)
        target = item.get(Name("/V"))
        if isinstance(target, Ref) and target.number == number and _name(item.get(Name("/FT"))) == "/Sig":
            name = item.get(Name("/T"))
            if isinstance(name, PdfString) and document.tables[last].get(candidate, (-1, -1))[0] == index:
                return _text(name.value)
    return ""


def _text(value: bytes) -> str:
    if value.startswith(b"\xfe\xff"):
        return value[2:].decode("utf-16-be", errors="replace")
    return value.decode("latin-1")


def _second_opinion(data: bytes, signed_revision: int) -> None:
    """pyHanko's difference analysis may only turn our "ok" into a failure, never the other way round."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, SuspiciousModification

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        result = DEFAULT_DIFF_POLICY.review_file(reader, signed_revision)
    except Exception as error:  # pyHanko raises assorted types on input it dislikes
        raise StructureError("modified_after_signing", f"pyHanko's difference analysis fails: "
                                                       f"{type(error).__name__}: {str(error)[:120]}") from None
    if isinstance(result, SuspiciousModification):
        raise StructureError("modified_after_signing", f"pyHanko's difference analysis: {str(result)[:160]}")
    if result.modification_level > ModificationLevel.LTA_UPDATES:
        raise StructureError("modified_after_signing", f"pyHanko's difference analysis rates the later revisions "
                                                       f"{result.modification_level.name}")
