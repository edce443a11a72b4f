"""Shared helpers for firmware-method tests: a file-backed stand-in for BlockDevice, targets, contexts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.discovery.identity import DriveIdentity
from agent.methods import registry
from agent.methods.base import Method, MethodContext, MethodOutcome, Target
from agent.methods.capabilities import probe_capabilities
from agent.transport.block import Geometry
from agent.transport.commands import Command, Completion, Transport

INTERFACE = {"nvme": "nvme", "sata": "ata", "scsi": "scsi", "usb": "ata"}


class FileDevice:
    """The part of BlockDevice the methods use, over the emulator's backing file (no root, no O_DIRECT)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.fd = os.open(path, os.O_RDWR)
        size = os.fstat(self.fd).st_size
        self.geometry = Geometry(size, 512, 512, False)
        self.alignment = 512
        self.direct = False

    @property
    def size(self) -> int:
        return self.geometry.size_bytes

    def write_at(self, buffer: memoryview, offset: int) -> None:
        os.pwrite(self.fd, buffer, offset)

    def read_into(self, buffer: memoryview, offset: int) -> None:
        os.preadv(self.fd, [buffer], offset)

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class CountingTransport:
    """Wraps a transport and keeps every command sent (to prove what was — and was not — sent)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[Command] = []

    def execute(self, command: Command) -> Completion:
        self.sent.append(command)
        return self.inner.execute(command)

    def close(self) -> None:
        self.inner.close()

    def opcodes(self) -> list[int]:
        out = []
        for command in self.sent:
            out.append(getattr(command, "command", None) or getattr(command, "opcode", 0))
        return out


def identity(path: Path, *, transport: str = "nvme", media: str = "ssd", size: int | None = None) -> DriveIdentity:
    return DriveIdentity(
        path=str(path), name=path.name, by_id=None, model="Emulated Firmware Drive", serial="EMU-0001",
        firmware="EMU1.0", vendor=None, size_bytes=size if size is not None else path.stat().st_size,
        logical_sector=512, physical_sector=512, rotational=media == "hdd", transport=transport, media=media,
        removable=False, read_only=False, id_path=None,
    )


def target(drive: Transport, path: Path, *, transport: str = "nvme", media: str = "ssd") -> Target:
    capabilities = probe_capabilities(drive, INTERFACE[transport], usb=transport == "usb")
    return Target(identity(path, transport=transport, media=media), capabilities, drive)


@dataclass
class Recorder:
    """Collects journal events and progress reports."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    progress: list[tuple[str, int, int]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for name, _data in self.events]

    def data(self, name: str) -> dict[str, Any]:
        return [data for event, data in self.events if event == name][-1]


def context(tgt: Target, device: FileDevice, recorder: Recorder) -> MethodContext:
    return MethodContext(
        target=tgt,
        device=device,  # type: ignore[arg-type]
        progress=lambda phase, done, total: recorder.progress.append((phase, done, total)),
        cancelled=lambda: False,
        journal=lambda event, data: recorder.events.append((event, data)),
        sleep=lambda _seconds: None,
    )


def build(name: str, **options: str) -> Method:
    return registry.build(name, options)


def run(name: str, tgt: Target, device: FileDevice, recorder: Recorder, **options: str) -> MethodOutcome:
    method = build(name, **options)
    method.check(tgt)
    return method.run(context(tgt, device, recorder))


def expectation_holds(outcome: MethodOutcome, path: Path, chunk: int = 1 << 20) -> bool:
    """The whole backing file matches the outcome's expectation (a full read-back, independent of verify)."""
    assert outcome.expectation is not None
    data = path.read_bytes()
    for offset in range(0, len(data), chunk):
        piece = bytearray(data[offset : offset + chunk])
        if not outcome.expectation.matches(offset, memoryview(piece)):
            return False
    return True
