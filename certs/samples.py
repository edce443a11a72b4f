"""Example records: for demonstration certificates, documentation, tests and the benchmark.

They describe plausible but invented media and are marked ``demo=True`` by default, so anything
rendered from them carries the demonstration watermark.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from certs.record import (
    Canary,
    Evidence,
    Health,
    HiddenArea,
    Host,
    Media,
    MethodStep,
    Person,
    SanitisationRecord,
    Timings,
    Tool,
    Verification,
)


def sample_record(*, failed: bool = False, demo: bool = True, **overrides: Any) -> SanitisationRecord:
    """A complete example record (a purged NVMe SSD, or a failed ATA HDD when ``failed``).

    ``overrides`` replace top-level fields, e.g. ``certificate_id="X-1"``.
    """
    operator = Person(name="Alex Morgan", title="Wipe station operator", organisation="Example Police IT",
                      location="Evidence store, Building 2", phone="+44 20 7946 0000")
    timings = Timings(started_at="2026-11-25T09:00:00+00:00", finished_at="2026-11-25T09:04:10+00:00",
                      duration_seconds=250.0, bytes_processed=51_200_000_000,
                      throughput_bytes_per_second=204_800_000.0)
    common: dict[str, Any] = {
        "certificate_id": "0b7e9f1c-3a52-4d6e-9a0b-5c1d2e3f4a5b",
        "job_id": "job-20261125-0001",
        "station_id": "station-01",
        "issued_at": "2026-11-25T09:04:12+00:00",
        "demo": demo,
        "tool": Tool(name="wipe-agent", version="0.1.0"),
        "operator": operator,
        "validator": Person(name="Sam Patel", title="Information Security Officer",
                            organisation="Example Police IT"),
        "classification_before": "OFFICIAL-SENSITIVE",
        "data_backed_up": "no",
        "backup_location": None,
        "notes": "",
    }
    if not failed:
        record = SanitisationRecord(
            **common,
            outcome="sanitised", failure_reason=None, route="reuse",
            destination="GLA reuse scheme, Hillside Primary School",
            profile="purge-ssd",
            media=Media(vendor="Samsung", model="MZVL2512HCJQ", serial="S64KNX0R123456", media_type="ssd",
                        interface="nvme", capacity_bytes=512_110_190_592, firmware="GXA7801Q",
                        asset_tag="MPS-LT-004211", host_device="MPS-LT-004211-HOST"),
            classification_after="UNCLASSIFIED",
            level="Purge",
            method_chain=(
                MethodStep(method="nvme.sanitize.crypto", technique="crypto erase", level="Purge",
                           outcome="applied",
                           reason="Sanitize crypto erase supported (SANICAP.CES=1): strongest purge",
                           details="SANACT 100b; SSTAT reports success"),
                MethodStep(method="overwrite.zero", technique="overwrite", level=None, outcome="skipped",
                           reason="not needed: an earlier step purged the media"),
            ),
            verification=Verification(mode="sampling", result="passed", seed="9f2c41d07ab3e655",
                                      subsections=1000, samples=2002, coverage=0.1002,
                                      bytes_read=51_313_000_000,
                                      details="first and last LBA included; no canary pattern found"),
            evidence=Evidence(
                capabilities={"sanitize.crypto": "yes", "sanitize.block": "yes", "format.ses": "2",
                              "nvme.ndi": "0", "nvme.nodmmas": "1"},
                hidden_area=HiddenArea(max_lba_before=1_000_215_215, max_lba_after=1_000_215_215,
                                       native_max_lba=1_000_215_215),
                canary=Canary(result="passed", blocks_written=64, blocks_found_after=0),
                timings=timings,
                observations={"deallocation": "media reads pattern other than zero after sanitize"},
            ),
            host=Host(asset_tag="MPS-LT-004211-HOST", make="Dell", model="Latitude 5440", serial="7GH2XK3"),
            health=Health(status="ok", read_at="2026-11-25T08:55:00+00:00", source="smartctl 7.3 -j -a /dev/nvme0",
                          smart_passed=True, critical_warning=0, percentage_used=3, media_errors=0),
        )
    else:
        record = SanitisationRecord(
            **common,
            outcome="failed", failure_reason="ATA security locked with an unknown password",
            route="destroy", destination="Secure destruction (shredding) contractor",
            profile="purge-hdd",
            media=Media(vendor="Seagate", model="ST1000LM035", serial="WKP3ABCD", media_type="hdd",
                        interface="ata", capacity_bytes=1_000_204_886_016, asset_tag="MPS-LT-003118"),
            classification_after="OFFICIAL-SENSITIVE",
            level=None,
            method_chain=(
                MethodStep(method="ata.sanitize.overwrite", technique="overwrite", level=None,
                           outcome="failed", reason="device is security-locked; sanitize refused (ABRT)"),
            ),
            verification=Verification(mode="none", result="not_run"),
            evidence=Evidence(
                capabilities={"ata.security.locked": "yes", "ata.sanitize.overwrite": "yes"},
                hidden_area=HiddenArea(max_lba_before=None, max_lba_after=None),
                canary=None,
                timings=timings,
            ),
        )
    return dataclasses.replace(record, **overrides) if overrides else record
