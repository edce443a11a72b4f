"""Spec constants are defined once, in agent/drive/opcodes.py.

The check is deliberately about *the same constant again*, not about every number: a module-level
integer constant elsewhere is a redefinition when it has the value of an opcodes constant and its
name is that constant's name or a tail of it (``FAILURE_MODE`` for ``ATA_SANITIZE_FAILURE_MODE``,
``SA_OVERWRITE`` for ``SCSI_SANITIZE_OVERWRITE`` is caught through ``OVERWRITE``), or when its
comment cites a spec (ACS/ATA8/SAT/SBC/SPC/SAM/NVMe) for a value opcodes holds.
Buffer lengths, timeouts and ioctl numbers are not spec opcodes and pass.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agent.drive import opcodes

ROOT = Path(__file__).resolve().parents[3]
OPCODES = ROOT / "agent" / "drive" / "opcodes.py"
_PREFIXES = ("ATA_", "SCSI_", "NVME_", "SA_", "SC_", "SCT1_")
_CITATION = re.compile(r"#.*\b(ACS-\d|ATA8|SAT-\d|SBC-\d|SPC-\d|SAM-\d|NVMe)")


def _int_constants(source: str) -> list[tuple[str, int, int]]:
    """(name, value, line) of every module-level ``UPPER_NAME = <int>`` (annotated or not)."""
    found = []
    for node in ast.parse(source).body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if (isinstance(target, ast.Name) and re.fullmatch(r"_?[A-Z][A-Z0-9_]*", target.id)
                and isinstance(value, ast.Constant) and type(value.value) is int):
            found.append((target.id, value.value, node.lineno))
    return found


SPEC = {name: value for name, value, _line in _int_constants(OPCODES.read_text(encoding="utf-8"))}


def _stem(name: str) -> str:
    name = name.lstrip("_")
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _same_name(local: str, spec: str) -> bool:
    local = local.lstrip("_")
    return local == spec or spec.endswith("_" + local) or _stem(local) == _stem(spec) or (
        spec.endswith("_" + _stem(local)) and len(_stem(local)) > 4)


def redefinitions(source: str) -> list[str]:
    """The spec constants ``source`` defines again, as ``line: NAME = value (opcodes: SPEC_NAME)``."""
    lines = source.splitlines()
    values: dict[int, list[str]] = {}
    for spec_name, spec_value in SPEC.items():
        values.setdefault(spec_value, []).append(spec_name)
    found = []
    for name, value, line in _int_constants(source):
        candidates = values.get(value, [])
        by_name = [spec for spec in candidates if _same_name(name, spec)]
        cited = bool(candidates) and bool(_CITATION.search(lines[line - 1]))
        if by_name or cited:
            found.append(f"{line}: {name} = {value:#x} (opcodes: {', '.join(by_name or candidates)})")
    return found


def _modules() -> list[Path]:
    paths = sorted((ROOT / "agent").rglob("*.py")) + sorted((ROOT / "wipe_agent_testing").rglob("*.py"))
    return [path for path in paths if path != OPCODES]


def test_opcodes_holds_the_constants_the_methods_send() -> None:
    assert len(SPEC) > 100
    assert SPEC["ATA_SANITIZE_DEVICE"] == 0xB4 and opcodes.ATA_SANITIZE_DEVICE == 0xB4
    assert SPEC["NVME_SANITIZE"] == 0x84 and SPEC["SCSI_SANITIZE"] == 0x48
    assert SPEC["NVME_LOG_SANITIZE_STATUS"] == 0x81 and SPEC["SCSI_ATA_PASS_THROUGH_16"] == 0x85


def test_every_constant_in_opcodes_cites_where_it_comes_from() -> None:
    """Each constant is on a line with a comment or under a comment header naming its source."""
    lines = OPCODES.read_text(encoding="utf-8").splitlines()
    for name, _value, line in _int_constants(OPCODES.read_text(encoding="utf-8")):
        above = [text for text in lines[: line - 1] if text.startswith("#")]
        assert "#" in lines[line - 1] or above, name


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_defines_a_spec_constant_again(path: Path) -> None:
    assert redefinitions(path.read_text(encoding="utf-8")) == []


def test_the_check_catches_redefinitions() -> None:
    source = "\n".join([
        "ATA_SANITIZE_DEVICE = 0xB4",  # the same name
        "FAILURE_MODE = 0x0010  # COUNT bit 4",  # a tail of ATA_SANITIZE_FAILURE_MODE
        "SA_OVERWRITE = 0x01",  # SCSI_SANITIZE_OVERWRITE under another prefix
        "_LOG_SANITIZE_STATUS = 0x81",  # private, still the same constant
        "SANITIZE_OPCODE_X = 0x48  # SBC-4 SANITIZE",  # another name, but a cited spec value
    ])
    assert [entry.split(":")[0] for entry in redefinitions(source)] == ["1", "2", "3", "4", "5"]


def test_the_check_lets_ordinary_numbers_pass() -> None:
    source = "\n".join([
        "DEFAULT_CHUNK = 2 << 20",
        "CANARY_COUNT = 64",
        "SENSE_BUFFER_LENGTH = 64",
        "POLL_SECONDS = 5",
        "SG_IO = 0x2285  # include/scsi/sg.h",
        "DID_ERROR = 0x07",
        "IDENTIFY_LENGTH = 512",
        "ROTATION_NON_ROTATING = 0x0001",
    ])
    assert redefinitions(source) == []
