"""The organisation's TSA: RFC 3161 tokens from a real ``wipe-agent tsa serve`` on loopback.

Second readers: ``openssl ts -verify`` (chain, imprint, nonce, signature) and pyHanko's validator.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from asn1crypto import algos, cms, core, tsp
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

from certs import pki
from certs.tsa import TSA_POLICY
from tests.integration.certs.tsa_kit import RunningTsa, post, running_tsa, tsa_command

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the TSA server is POSIX-only")


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl not installed")
    return path


@pytest.fixture(scope="module")
def organisation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with a TSA, in its own folder (this module restarts and breaks TSAs)."""
    root = tmp_path_factory.mktemp("tsa-org")
    pki.init_ca("Example Police", root / "ca")
    pki.issue_tsa(root / "ca", root / "tsa")
    return root


@pytest.fixture(scope="module")
def server(organisation: Path) -> Iterator[RunningTsa]:
    with running_tsa(organisation / "tsa") as running:
        yield running


def _query(directory: Path, data: bytes, *extra: str) -> tuple[Path, Path]:
    """Write ``data`` and an openssl-made TimeStampReq for it; return (data file, request file)."""
    data_file = directory / f"data-{len(list(directory.glob('data-*')))}.bin"
    data_file.write_bytes(data)
    request_file = data_file.with_suffix(".tsq")
    subprocess.run([_openssl(), "ts", "-query", "-data", str(data_file), *extra, "-out", str(request_file)],
                   check=True, capture_output=True, timeout=60)
    return data_file, request_file


def _verify_openssl(organisation: Path, data_file: Path, reply_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_openssl(), "ts", "-verify", "-data", str(data_file), "-in", str(reply_file),
         "-CAfile", str(organisation / "ca" / "ca.crt")],
        capture_output=True, text=True, timeout=60, check=False)


def test_token_verifies_with_openssl_and_echoes_the_nonce(
    organisation: Path, server: RunningTsa, tmp_path: Path
) -> None:
    data_file, request_file = _query(tmp_path, b"a certificate of sanitisation", "-sha256", "-cert")
    status, content_type, reply = post(server.url, request_file.read_bytes())
    assert (status, content_type) == (200, "application/timestamp-reply")
    reply_file = tmp_path / "reply.tsr"
    reply_file.write_bytes(reply)
    result = _verify_openssl(organisation, data_file, reply_file)
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr
    request = tsp.TimeStampReq.load(request_file.read_bytes())
    response = tsp.TimeStampResp.load(reply)
    info = response["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["nonce"].native == request["nonce"].native
    assert info["policy"].dotted == TSA_POLICY
    assert info["accuracy"]["seconds"].native == 1
    signer_info = response["time_stamp_token"]["content"]["signer_infos"][0]
    attributes = {attribute["type"].native for attribute in signer_info["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_certificate_v2"} <= attributes
    # A different document does not verify against this token.
    data_file.write_bytes(b"another document")
    assert "Verification: OK" not in _verify_openssl(organisation, data_file, reply_file).stdout


def test_pyhanko_validates_the_token_against_the_ca(organisation: Path, server: RunningTsa) -> None:
    from asn1crypto import x509 as asn1_x509

    digest = hashlib.sha256(b"manifest bytes").digest()
    token = asyncio.run(HTTPTimeStamper(server.url).async_timestamp(digest, "sha256"))
    ca = asn1_x509.Certificate.load(pki.x509.load_pem_x509_certificate(
        (organisation / "ca" / "ca.crt").read_bytes()).public_bytes(pki.serialization.Encoding.DER))
    context = ValidationContext(trust_roots=[ca], allow_fetching=False, revocation_mode="soft-fail")
    status = asyncio.run(validate_tst_signed_data(token["content"], context, lambda _: digest))
    assert status["intact"] and status["valid"] and status["trust_problem_indic"] is None, status
    assert status["signing_cert"].subject.native["organizational_unit_name"] == pki.TSA_OU
    other = pki.utc_now()  # a CA that did not issue the TSA: pyHanko must not trust the token
    pki.init_ca("Someone Else", organisation / "other-ca", clock=lambda: other)
    foreign = asn1_x509.Certificate.load(pki.x509.load_pem_x509_certificate(
        (organisation / "other-ca" / "ca.crt").read_bytes()).public_bytes(pki.serialization.Encoding.DER))
    untrusted = asyncio.run(validate_tst_signed_data(
        token["content"], ValidationContext(trust_roots=[foreign], allow_fetching=False, revocation_mode="soft-fail"),
        lambda _: digest))
    assert untrusted["intact"] and untrusted["trust_problem_indic"] is not None


def test_serials_increase_are_persisted_and_every_token_is_logged(organisation: Path, tmp_path: Path) -> None:
    directory = tmp_path / "tsa"
    shutil.copytree(organisation / "tsa", directory)
    for state in ("tokens.jsonl", "serial"):  # start from a fresh counter and log
        (directory / state).unlink(missing_ok=True)
    _, request_file = _query(tmp_path, b"x", "-sha256")
    serials = []
    for _ in range(2):  # two server lifetimes: the counter survives a restart
        with running_tsa(directory) as running:
            for _ in range(2):
                reply = tsp.TimeStampResp.load(post(running.url, request_file.read_bytes())[2])
                info = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
                serials.append(info["serial_number"].native)
    assert serials == [1, 2, 3, 4]
    lines = [json.loads(line) for line in (directory / "tokens.jsonl").read_text().splitlines()]
    assert [line["serial"] for line in lines] == serials
    request = tsp.TimeStampReq.load(request_file.read_bytes())
    assert {line["message_imprint"] for line in lines} == {request["message_imprint"]["hashed_message"].native.hex()}
    assert all(line["client"] == "127.0.0.1" and line["hash_algorithm"] == "sha256" for line in lines)
    assert (directory / "serial").read_text().strip() == str(serials[-1])


def test_bad_requests_get_plain_http_errors_not_tracebacks(server: RunningTsa) -> None:
    assert post(server.url, b"not der at all")[0] == 400
    assert post(server.url, b"\x30\x03\x02\x01\x01")[0] == 400  # a SEQUENCE, but not a TimeStampReq
    assert post(server.url, b"anything", content_type="text/plain")[0] == 415
    assert post(server.url, b"x" * 10000)[0] == 413
    status, _, body = post(server.url, b"", method="GET")
    assert status == 405 and b"Traceback" not in body


def test_unacceptable_requests_are_rejected_in_rfc_3161_form(server: RunningTsa, tmp_path: Path) -> None:
    _, sha1_request = _query(tmp_path, b"weak", "-sha1")
    assert _rejected(post(server.url, sha1_request.read_bytes())[2]) == {"bad_alg"}
    _, foreign_policy = _query(tmp_path, b"policy", "-sha256", "-tspolicy", "1.2.3.4")
    assert _rejected(post(server.url, foreign_policy.read_bytes())[2]) == {"unaccepted_policy"}
    short = tsp.TimeStampReq({"version": "v1", "message_imprint": tsp.MessageImprint({
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}), "hashed_message": b"\x01" * 5})})
    assert _rejected(post(server.url, short.dump())[2]) == {"bad_data_format"}
    # openssl reads our rejection too.
    reply_file = tmp_path / "rejected.tsr"
    reply_file.write_bytes(post(server.url, sha1_request.read_bytes())[2])
    text = subprocess.run([_openssl(), "ts", "-reply", "-in", str(reply_file), "-text"], capture_output=True,
                          text=True, timeout=60, check=False).stdout
    assert "Status: Rejected." in text and "unsupported algorithm" in text.lower(), text


class _Response(core.Sequence):  # type: ignore[misc]
    """TimeStampResp with the token optional (asn1crypto's class requires it, wrongly)."""

    _fields: ClassVar[list[tuple[object, ...]]] = [
        ("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _rejected(reply: bytes) -> set[str]:
    response = _Response.load(reply)
    assert response["status"]["status"].native == "rejection"
    assert response["time_stamp_token"].native is None
    return set(response["status"]["fail_info"].native)


def _start_refused(directory: Path) -> str:
    result = subprocess.run(tsa_command(directory), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_serve_refuses_a_readable_key(organisation: Path, tmp_path: Path) -> None:
    directory = tmp_path / "tsa"
    shutil.copytree(organisation / "tsa", directory)
    (directory / "tsa.key").chmod(0o644)
    assert "readable by other users" in _start_refused(directory)


def test_serve_refuses_a_certificate_without_the_timestamping_eku(organisation: Path, tmp_path: Path) -> None:
    pki.issue_station(organisation / "ca", "station-01", tmp_path / "state")
    directory = tmp_path / "tsa"
    directory.mkdir()
    shutil.copy(tmp_path / "state" / "pki" / "station.key", directory / "tsa.key")
    shutil.copy(tmp_path / "state" / "pki" / "station.crt", directory / "tsa.crt")
    (directory / "tsa.key").chmod(0o600)
    assert "timeStamping only, critical" in _start_refused(directory)


def test_serve_refuses_a_key_of_another_certificate(organisation: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.issue_tsa(organisation / "ca", other)
    directory = tmp_path / "tsa"
    shutil.copytree(organisation / "tsa", directory)
    shutil.copy(other / "tsa.key", directory / "tsa.key")
    assert "does not belong" in _start_refused(directory)


def test_serve_bad_listen_and_missing_directory_exit_2(tmp_path: Path) -> None:
    assert "HOST:PORT" in _start_refused_with(["--tsa", str(tmp_path), "--listen", "nonsense"])
    assert "no such TSA directory" in _start_refused_with(["--tsa", str(tmp_path / "missing")])


def _start_refused_with(arguments: list[str]) -> str:
    command = tsa_command(Path("unused"))[:5] + arguments
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    return result.stderr


def test_connections_beyond_the_cap_are_closed_not_queued(organisation: Path, tmp_path: Path) -> None:
    import socket
    import time
    from urllib.parse import urlsplit

    from agent.tsa.server import MAX_CONNECTIONS

    directory = tmp_path / "tsa"
    shutil.copytree(organisation / "tsa", directory)
    _, request_file = _query(tmp_path, b"flood", "-sha256")
    with running_tsa(directory) as running:
        address = urlsplit(running.url)
        host, port = address.hostname or "127.0.0.1", address.port or 0
        idle = [socket.create_connection((host, port), timeout=30) for _ in range(MAX_CONNECTIONS)]
        try:
            # Make sure every idle connection has been accepted (and holds a slot): a request on a
            # fresh connection only gets its turn after them, and is then closed unanswered.
            extra = socket.create_connection((host, port), timeout=30)
            body = request_file.read_bytes()
            extra.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
                          + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            try:
                answer = extra.recv(100)
            except ConnectionResetError:
                answer = b""
            extra.close()
            assert answer == b""
        finally:
            for connection in idle:
                connection.close()
        # Slots come back as the idle handlers see their connections close.
        status = 0
        for _ in range(100):
            try:
                status = post(running.url, request_file.read_bytes())[0]
                break
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        assert status == 200
