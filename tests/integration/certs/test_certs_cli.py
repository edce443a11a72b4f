"""The pki and verify commands end to end: exit codes, one-line errors, --json shapes."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.certificate_commands import pki, verify
from certs.issue import issue_certificate
from certs.pki import load_station_signer
from tests.unit.certs.certs_test_kit import PkiWorld, record_for


def _run(command: object, *arguments: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(command, list(arguments), env=env)  # type: ignore[arg-type]


def _one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_full_cycle_init_issue_sign_bundle_verify_revoke(tmp_path: Path) -> None:
    ca, state, bundle = tmp_path / "ca", tmp_path / "state", tmp_path / "bundle.pem"
    result = _run(pki, "init-ca", "--org", "Example Police", "--out", str(ca))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600

    result = _run(pki, "issue-station", "--ca", str(ca), "--station-id", "station-01", "--json",
                  env={"WIPE_AGENT_STATE_DIR": str(state)})
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert issued["station_id"] == "station-01" and int(issued["serial"], 16) > 0
    assert Path(issued["certificate"]) == state / "pki" / "station.crt"
    assert stat.S_IMODE((state / "pki" / "station.key").stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in result.output

    assert _run(pki, "bundle", "--ca", str(ca), "--out", str(bundle)).exit_code == 0
    signer = load_station_signer(state)
    certificate = issue_certificate(record_for(signer), signer, tmp_path / "certificate.pdf")

    result = _run(verify, str(certificate), "--trust", str(bundle))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"VALID    {certificate}: DEMONSTRATION, not real media: Samsung")

    result = _run(pki, "revoke", "--ca", str(ca), "--serial", issued["serial"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["revoked"] == [issued["serial"]]
    assert _run(pki, "bundle", "--ca", str(ca), "--out", str(bundle)).exit_code == 0
    result = _run(verify, str(certificate), "--trust", str(bundle))
    assert result.exit_code == 1
    assert "INVALID" in result.stdout and "was revoked on" in result.stdout


def test_verify_batch_folder_json(world: PkiWorld, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    world.issue(record_for(world.station), name="good.pdf", directory=folder)
    world.issue(record_for(world.revoked), world.revoked, name="revoked.pdf", directory=folder)
    world.issue(record_for(world.station, failed=True), name="failed.pdf", directory=folder)
    result = _run(verify, str(folder), "--trust", str(world.bundle), "--json")
    assert result.exit_code == 1
    output = json.loads(result.stdout)
    assert output["valid"] is False
    assert [(item["path"], item["code"]) for item in output["results"]] == [
        (str(folder / "failed.pdf"), "wrong_kind"), (str(folder / "good.pdf"), "valid"),
        (str(folder / "revoked.pdf"), "revoked")]
    assert output["expect"] == "any"  # without --expect: any kind but a failure report, named in the verdict
    text = _run(verify, str(folder), "--trust", str(world.bundle)).stdout.splitlines()
    assert text[0].startswith(f"INVALID  {folder / 'failed.pdf'}: [wrong_kind] a valid failure report: the drive "
                              "was NOT sanitised (--expect failure-report accepts it)")
    assert text[-1] == "1 of 3 valid"
    result = _run(verify, str(folder / "failed.pdf"), "--trust", str(world.bundle), "--expect", "failure-report")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"VALID    {folder / 'failed.pdf'} [failure report]: ")
    result = _run(verify, str(folder / "good.pdf"), str(folder / "good.pdf"), "--trust", str(world.bundle))
    assert result.exit_code == 0
    assert result.stdout.strip().splitlines()[-1] == "2 of 2 valid"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--trust", "BUNDLE"], "give at least one certificate FILE"),
        (["CERT"], "--trust is required"),
        (["CERT", "--trust", "MISSING"], "trust bundle not found"),
        (["NOPE.pdf", "--trust", "BUNDLE"], "no such file or folder: NOPE.pdf"),
        (["CERT", "--trust", "CERT"], "trust bundle must hold exactly one CA certificate"),
        (["CERT", "--trust", "BUNDLE", "--certificates", "x"], "--certificates: no such folder: x"),
        (["CERT", "--trust", "BUNDLE", "--expect", "letter"], "--expect"),
    ],
)
def test_verify_bad_input_exits_2_with_one_line(
    world: PkiWorld, tmp_path: Path, arguments: list[str], message: str
) -> None:
    certificate = world.issue(record_for(world.station), directory=tmp_path)
    names = {"CERT": str(certificate), "BUNDLE": str(world.bundle), "MISSING": str(tmp_path / "missing.pem")}
    argv = [names.get(argument, argument) for argument in arguments]
    result = _run(verify, *argv)
    assert result.exit_code == 2
    assert message in _one_line_error(result)
    result = _run(verify, *argv, "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert message in error["message"] and error["code"] in {"bad_input", "bad_trust_bundle"}


def test_pki_errors_are_one_line_and_json(world: PkiWorld, tmp_path: Path) -> None:
    result = _run(pki, "init-ca", "--org", "Again", "--out", str(world.ca_dir))
    assert result.exit_code == 1
    assert "already holds a CA" in _one_line_error(result)
    result = _run(pki, "revoke", "--ca", str(world.ca_dir), "--serial", "ABC123", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": {
        "code": "pki_error", "message": "serial ABC123 was not issued by this CA"}}
    result = _run(pki, "revoke", "--ca", str(world.ca_dir))
    assert result.exit_code == 2
    assert "exactly one of --serial or --station-id" in _one_line_error(result)
    result = _run(pki, "issue-station", "--ca", str(tmp_path), "--station-id", "s1",
                  "--state-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "is not a CA directory" in _one_line_error(result)
    result = _run(pki, "bundle", "--ca", str(world.ca_dir))
    assert result.exit_code == 2
    assert "--out is required" in _one_line_error(result)


def test_revoke_by_station_id(tmp_path: Path, world: PkiWorld) -> None:
    ca = tmp_path / "ca"
    shutil.copytree(world.ca_dir, ca)
    result = _run(pki, "revoke", "--ca", str(ca), "--station-id", "station-01")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("revoked ")


def test_damaged_file_gives_one_clean_line(world: PkiWorld, tmp_path: Path) -> None:
    certificate = world.issue(record_for(world.station), directory=tmp_path)
    data = certificate.read_bytes()
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(data[:14] + b" " + data[14:])  # makes pyHanko log repair notes
    # A real process: under pytest, its logging plugin would capture the log lines before stderr.
    result = subprocess.run(
        [sys.executable, "-c", "from agent.cli.certificate_commands import verify; verify()",
         str(damaged), "--trust", str(world.bundle)],
        capture_output=True, text=True, timeout=120, check=False, cwd=Path(__file__).resolve().parents[3],
    )
    assert result.returncode == 1
    assert result.stderr == ""
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith(f"INVALID  {damaged}: [")


def test_lifetimes_issue_tsa_and_install_crl_on_the_command_line(tmp_path: Path) -> None:
    from datetime import timedelta

    from cryptography import x509

    from certs import pki as pki_library

    ca, state, tsa, bundle = tmp_path / "ca", tmp_path / "state", tmp_path / "tsa", tmp_path / "bundle.pem"
    assert _run(pki, "init-ca", "--org", "Example Police", "--out", str(ca), "--valid-days", "4000",
                "--crl-days", "30").exit_code == 0
    ca_certificate = x509.load_pem_x509_certificate((ca / "ca.crt").read_bytes())
    lifetime = ca_certificate.not_valid_after_utc - ca_certificate.not_valid_before_utc
    assert abs(lifetime - timedelta(days=4000, minutes=5)) < timedelta(seconds=2)
    result = _run(pki, "issue-station", "--ca", str(ca), "--station-id", "station-01", "--state-dir", str(state),
                  "--valid-days", "100", "--json")
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    station_days = (pki_library.datetime.fromisoformat(issued["not_after"])
                    - pki_library.datetime.fromisoformat(issued["not_before"]))
    assert abs(station_days - timedelta(days=100, minutes=5)) < timedelta(seconds=2)

    result = _run(pki, "issue-tsa", "--ca", str(ca), "--out", str(tsa), "--json")
    assert result.exit_code == 0, result.output
    tsa_issued = json.loads(result.stdout)
    assert stat.S_IMODE(Path(tsa_issued["key"]).stat().st_mode) == 0o600
    # The default TSA lifetime (12 years) is capped at the CA's 4000 days.
    assert tsa_issued["not_after"] == ca_certificate.not_valid_after_utc.isoformat()
    assert "PRIVATE KEY" not in result.output
    again = _run(pki, "issue-tsa", "--ca", str(ca), "--out", str(tsa))
    assert again.exit_code == 1 and "already holds a TSA key" in _one_line_error(again)

    assert _run(pki, "revoke", "--ca", str(ca), "--serial", issued["serial"]).exit_code == 0
    assert _run(pki, "bundle", "--ca", str(ca), "--out", str(bundle), "--crl-days", "7").exit_code == 0
    assert "# TSA certificate" in bundle.read_text()
    result = _run(pki, "install-crl", "--from", str(bundle), "--state-dir", str(state), "--json")
    assert result.exit_code == 0, result.output
    installed = pki_library.load_station_crl(state)
    assert installed is not None
    assert installed.get_revoked_certificate_by_serial_number(int(issued["serial"], 16)) is not None

    bad = _run(pki, "init-ca", "--org", "X", "--out", str(tmp_path / "x"), "--valid-days", "0")
    assert bad.exit_code == 2 and "must be 1 to 36525 days" in _one_line_error(bad)
    assert not (tmp_path / "x").exists()
    missing = _run(pki, "install-crl", "--from", str(tmp_path / "nope.pem"), "--state-dir", str(state))
    assert missing.exit_code == 2 and "no such file" in _one_line_error(missing)
