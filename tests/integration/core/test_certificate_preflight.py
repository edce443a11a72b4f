"""Pre-flight of the certificate: a value that can never be certified stops `wipe` before the drive is
touched (M15, H6), instead of the drive being sanitised and then the certificate refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli.job_commands import preflight_certificate
from agent.errors import ConfigError
from agent.jobs.certify import CertificateSettings
from agent.operators import OperatorStamp
from tests.conftest import LoopDevice, run_cli
from tests.integration.core.test_certificate_identity import ORGANISATION, _station

PROFILE = "nist-clear-overwrite"
STAMP = OperatorStamp(name="PC Jones", title="Wipe station operator", uid=0, via="the command line")


class _Signer:
    station_id = "station-07"


@pytest.mark.root
@pytest.mark.parametrize(("asset", "named"), [
    ("\u202eEVIL", "U+202E"),                # bidi override: the page would read reversed
    ("NS-\u5317-0042", "U+5317"),            # no glyph in the certificate font
    ("NS-" + "4" * 5000, "longer than 200"),  # reportlab cannot lay the row out on a page
])
def test_uncertifiable_asset_is_refused_before_the_drive_is_touched(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path, asset: str, named: str) -> None:
    config, _bundle = _station(tmp_path, state_dir, ORGANISATION)
    device = loop_factory(4 << 20)
    before = hashlib.sha256(device.backing.read_bytes()).hexdigest()
    result = run_cli("--config", str(config), "wipe", device.path, "--profile", PROFILE, "--yes", "--asset", asset)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0 and "--asset: " in line and named in line and "nothing was touched" in line, line
    assert hashlib.sha256(device.backing.read_bytes()).hexdigest() == before  # not one byte written
    jobs = run_cli("--config", str(config), "jobs", "--json")
    assert jobs.returncode == 0 and json.loads(jobs.stdout) == {"jobs": []}, jobs.stdout  # and no job recorded for it


def test_preflight_passes_the_station_s_own_wording() -> None:
    settings = CertificateSettings(organisation="Northshire Constabulary", location="Unit 4, 1 Bridge St",
                                   phone="+44 1632 960123", destination="Held for the GLA schools scheme")
    preflight_certificate(settings, _Signer(), "NS-LAP-0042", STAMP)  # type: ignore[arg-type]
    preflight_certificate(settings, None, "anything", STAMP)  # no key: no certificate, nothing to check


@pytest.mark.parametrize(("organisation", "destination"), [
    ("\u05de\u05e9\u05d8\u05e8\u05ea \u05e6\u05e4\u05d5\u05df", "Reuse"),  # Hebrew: reads back reversed
    ("Northshire", "\U0001f693 convoy"),                                  # emoji: no glyph
])
def test_preflight_renders_and_reads_back_what_the_configuration_check_might_miss(
        organisation: str, destination: str) -> None:
    """Whatever reaches the settings (not only through station.toml) is render-checked as a certificate."""
    settings = CertificateSettings(organisation=organisation, location="Unit 4", phone="+44 1632 960123",
                                   destination=destination)
    with pytest.raises(ConfigError) as raised:
        preflight_certificate(settings, _Signer(), "NS-LAP-0042", STAMP)  # type: ignore[arg-type]
    message = raised.value.message
    assert message.startswith("pre-flight: this job's certificate could not be issued (the page text does not show")
    assert "nothing was touched" in message and "\n" not in message
