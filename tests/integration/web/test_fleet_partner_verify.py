"""The upload box: a document is judged by the partners' verifier against the console's trust bundle (a real
certificate from the fleet kit is valid; one flipped byte, a revoked signer, a non-PDF are INVALID with the
verifier's reason), an empty or oversized file is a one-line refusal, every upload is recorded."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

from aiohttp import FormData

from agent.web.fleet_partner import MAX_UPLOAD
from tests.integration.web.fleet_partner_kit import (
    ListAudit,
    PartnerWorld,
    flipped,
    partner_console,
    run_client,
    sign_in,
)


def _form(csrf: str | None, data: bytes | None, name: str = "certificate.pdf") -> FormData:
    form = FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    if data is not None:
        form.add_field("document", io.BytesIO(data), filename=name, content_type="application/pdf")
    return form


def _upload(dsn: str, world: PartnerWorld, audit: ListAudit, uploads: list[tuple[bytes | None, str]], *,
            account: str = "schools-partner", csrf: bool = True, trust: Path | None = None
            ) -> list[tuple[int, str]]:
    app, _console = partner_console(dsn, world, audit, trust=trust)

    async def scenario(client: Any) -> list[tuple[int, str]]:
        token = await sign_in(client, account)
        answers = []
        for data, name in uploads:
            response = await client.post("/verify", data=_form(token if csrf else None, data, name),
                                         headers={"Accept": "text/html"})
            answers.append((response.status, await response.text()))
        return answers

    return run_client(app, scenario)


def _verdict(page: str) -> str:
    found = re.search(r'data-verdict="(\w+)"', page)
    return found.group(1) if found else "none"


def test_a_genuine_certificate_is_valid_and_a_flipped_byte_is_not(partner_dsn: str,
                                                                  partner_world: PartnerWorld) -> None:
    genuine = partner_world.certificates["C-SCH-0001"].read_bytes()
    audit = ListAudit()
    (ok_status, ok), (bad_status, bad) = _upload(partner_dsn, partner_world, audit,
                                                 [(genuine, "C-SCH-0001.pdf"), (flipped(genuine), "tampered.pdf")])
    assert ok_status == 200 and _verdict(ok) == "valid" and "VALID: C-SCH-0001.pdf" in ok
    assert "C-SCH-0001" in ok and hashlib.sha256(genuine).hexdigest() in ok
    assert bad_status == 200 and _verdict(bad) == "invalid" and "INVALID: tampered.pdf" in bad
    reason = re.search(r'<p class="reason">\[(\w+)\] ([^<]*)</p>', bad)
    assert reason is not None and reason.group(1) == "modified", bad  # the byte is inside the signed range
    uploads = [data for kind, _subject, data in audit.entries if kind == "web-verify-upload"]
    assert [(item["sha256"], item["valid"]) for item in uploads] == [
        (hashlib.sha256(genuine).hexdigest(), True), (hashlib.sha256(flipped(genuine)).hexdigest(), False)]
    assert uploads[0]["document_id"] == "C-SCH-0001" and uploads[0]["kind"] == "certificate"


def test_the_verdict_is_the_one_wipe_agent_verify_gives(partner_dsn: str, partner_world: PartnerWorld,
                                                        tmp_path: Path) -> None:
    from certs.cli import run_verify

    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(flipped(partner_world.certificates["C-SCH-0002"].read_bytes()))
    lines: list[str] = []
    assert run_verify([str(tampered)], str(partner_world.world.bundle), echo=lines.append) == 1
    [(_, page)] = _upload(partner_dsn, partner_world, ListAudit(), [(tampered.read_bytes(), "tampered.pdf")])
    found = re.search(r'<p class="reason">(\[\w+\] [^<]*)</p>', page)
    assert found is not None
    import html

    assert lines[0] == f"INVALID  {tampered}: {html.unescape(found.group(1))}"


def test_a_revoked_signer_and_a_manifest_alone(partner_dsn: str, partner_world: PartnerWorld) -> None:
    revoked, manifest = _upload(partner_dsn, partner_world, ListAudit(), [
        (partner_world.revoked_certificate.read_bytes(), "revoked.pdf"),
        (partner_world.manifests["MF-GLA-0001"].read_bytes(), "manifest.pdf")])
    assert _verdict(revoked[1]) == "invalid" and "[revoked]" in revoked[1]
    assert _verdict(manifest[1]) == "valid" and "its certificates were NOT checked" in manifest[1]


def test_bad_uploads_are_one_line_refusals_never_a_traceback(partner_dsn: str,
                                                            partner_world: PartnerWorld) -> None:
    audit = ListAudit()
    answers = _upload(partner_dsn, partner_world, audit, [
        (b"this is not a PDF at all", "notes.txt"),
        (b"", "empty.pdf"),
        (b"%PDF-1.7\n" + b"0" * (MAX_UPLOAD - 9 + 1), "big.pdf"),
        (b"%PDF-1.7\n" + b"0" * (MAX_UPLOAD + (1 << 20)), "huge.pdf"),
        (None, ""),
        (b"%PDF-1.7\n%%EOF\n", "../../<script>x</script>.pdf"),
    ])
    (text_status, text), (empty_status, empty), (big_status, big), (huge_status, huge), (none_status, none), \
        (odd_status, odd) = answers
    assert text_status == 200 and _verdict(text) == "invalid" and "[not_pdf]" in text
    assert (empty_status, big_status, huge_status, none_status) == (400, 413, 413, 400)
    assert 'role="alert">empty.pdf is empty: nothing to verify</p>' in empty
    assert "big.pdf is larger than 20 MiB" in big
    # refused before the body is read: aiohttp's words, or the console's own once it checks Content-Length
    assert re.search(r'role="alert">[^<\n]*(Maximum request body size|larger than \d+ bytes)[^<\n]*</p>', huge)
    assert "choose a file to verify" in none
    assert odd_status == 200 and _verdict(odd) == "invalid" and "<script>x" not in odd
    for page in (text, empty, big, huge, none, odd):
        assert "Traceback" not in page and 'File "' not in page
    verdicts = [data["verdict"] for kind, _subject, data in audit.entries if kind == "web-verify-upload"]
    assert verdicts == ["not_pdf", "empty", "too_large", verdicts[3]] and len(verdicts) == 4


def test_an_upload_needs_the_csrf_token_and_a_role_that_verifies(partner_dsn: str,
                                                                 partner_world: PartnerWorld) -> None:
    genuine = partner_world.certificates["C-SCH-0001"].read_bytes()
    audit = ListAudit()
    [(status, _)] = _upload(partner_dsn, partner_world, audit, [(genuine, "c.pdf")], csrf=False)
    assert status == 403 and not [entry for entry in audit.entries if entry[0] == "web-verify-upload"]
    for account in ("auditor", "compliance", "admin"):
        [(status, page)] = _upload(partner_dsn, partner_world, ListAudit(), [(genuine, "c.pdf")], account=account)
        assert status == 200 and _verdict(page) == "valid", account

    app, _console = partner_console(partner_dsn, partner_world, ListAudit())

    async def operator(client: Any) -> tuple[int, int]:
        await sign_in(client, "operator")
        page = await client.get("/verify")
        upload = await client.post("/verify", data=_form("x", genuine))
        return page.status, upload.status

    assert run_client(app, operator) == (403, 403)

    async def anonymous(client: Any) -> int:
        return int((await client.post("/verify", data=_form("x", b"%PDF-" + b"0" * (1 << 20)),
                                      headers={"Accept": "application/json"})).status)

    app, _console = partner_console(partner_dsn, partner_world, ListAudit())
    assert run_client(app, anonymous) == 401


def test_without_a_trust_bundle_nothing_is_verified(partner_dsn: str, partner_world: PartnerWorld,
                                                    tmp_path: Path) -> None:
    [(status, page)] = _upload(partner_dsn, partner_world, ListAudit(),
                               [(partner_world.certificates["C-SCH-0001"].read_bytes(), "c.pdf")],
                               trust=tmp_path / "no-such-bundle.pem")
    assert status == 503 and "trust bundle cannot be read" in page and "Traceback" not in page
