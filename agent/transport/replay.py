"""Record and replay transport exchanges (fwupd's device emulation is the model).

A recording is JSON lines, one exchange per line::

    {"kind": "ata", "opcode": 236, "key": "<sha256>", "command": {...}, "outcome": {...}}

``key`` hashes the command kind, opcode, every taskfile/CDB/dword field and the output buffer
(timeouts excluded: they do not change what the device answers). Replay serves, for each key,
the recorded outcomes in order, so a sequence of identical polls replays the progress it saw.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from agent.errors import AgentError, CommandError, DriveRemoved
from agent.transport.commands import (
    AtaCommand,
    Command,
    CommandFailed,
    CommandTimeout,
    Completion,
    NvmeIoCommand,
    NvmeStatus,
    PassThroughBlocked,
    ScsiCommand,
    Transport,
    command_label,
    command_opcode,
)
from agent.transport.sense import AtaRegisters, decode_sense

__all__ = ["RecordingTransport", "ReplayMiss", "ReplayTransport", "command_key", "load_exchanges"]


class ReplayMiss(CommandError):
    """The replayed command was never recorded (or all its recorded answers were used)."""


def _kind(command: Command) -> str:
    if isinstance(command, AtaCommand):
        return "ata"
    if isinstance(command, ScsiCommand):
        return "scsi"
    return "nvme_io" if isinstance(command, NvmeIoCommand) else "nvme_admin"


def _command_fields(command: Command) -> dict[str, Any]:
    if isinstance(command, AtaCommand):
        return {
            "command": command.command,
            "protocol": int(command.protocol),
            "features": command.features,
            "count": command.count,
            "lba": command.lba,
            "device": command.device,
            "extend": command.is_extended,
            "data_in_length": command.data_in_length,
            "data_out": command.data_out.hex(),
        }
    if isinstance(command, ScsiCommand):
        return {
            "cdb": command.cdb.hex(),
            "data_in_length": command.data_in_length,
            "data_out": command.data_out.hex(),
        }
    return {
        "opcode": command.opcode,
        "nsid": command.nsid,
        "cdw": [command.cdw10, command.cdw11, command.cdw12, command.cdw13, command.cdw14, command.cdw15],
        "data_in_length": command.data_in_length,
        "data_out": command.data_out.hex(),
    }


def command_key(command: Command) -> str:
    """Stable key of a command: kind + opcode + all input fields and buffers."""
    canonical = json.dumps(
        {"kind": _kind(command), "opcode": command_opcode(command), **_command_fields(command)},
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _completion_to_json(completion: Completion) -> dict[str, Any]:
    ata = completion.ata
    return {
        "ok": completion.ok,
        "data": completion.data.hex(),
        "ata": None
        if ata is None
        else [ata.error, ata.status, ata.count, ata.lba, ata.device, ata.extend, ata.partial],
        "scsi_status": completion.scsi_status,
        "sense": completion.sense.raw.hex() if completion.sense is not None else None,
        "nvme_status": completion.nvme_status.raw if completion.nvme_status is not None else None,
        "result": completion.result,
    }


def _completion_from_json(raw: dict[str, Any], ata_pass_through: bool) -> Completion:
    ata = raw.get("ata")
    sense = raw.get("sense")
    nvme = raw.get("nvme_status")
    return Completion(
        ok=bool(raw["ok"]),
        data=bytes.fromhex(raw.get("data", "")),
        ata=None
        if ata is None
        else AtaRegisters(
            error=ata[0],
            status=ata[1],
            count=ata[2],
            lba=ata[3],
            device=ata[4],
            extend=ata[5],
            partial=bool(ata[6]) if len(ata) > 6 else False,
        ),
        scsi_status=raw.get("scsi_status"),
        sense=decode_sense(bytes.fromhex(sense), ata_pass_through=ata_pass_through) if sense else None,
        nvme_status=NvmeStatus(nvme) if nvme is not None else None,
        result=raw.get("result"),
    )


_ERROR_CLASSES: dict[str, type[CommandError]] = {
    "CommandError": CommandError,
    "CommandTimeout": CommandTimeout,
    "PassThroughBlocked": PassThroughBlocked,
}


def _error_to_json(error: AgentError) -> dict[str, Any]:
    outcome: dict[str, Any] = {"type": "error", "class": type(error).__name__, "message": error.message}
    if isinstance(error, CommandError):
        outcome.update(
            opcode=error.opcode,
            status=error.status,
            sense=error.sense.hex() if error.sense is not None else None,
        )
    if isinstance(error, CommandFailed):
        outcome["completion"] = _completion_to_json(error.completion)
    return outcome


def _error_from_json(raw: dict[str, Any], ata_pass_through: bool) -> AgentError:
    name = raw["class"]
    message = raw["message"]
    if name == "DriveRemoved":
        return DriveRemoved(message)
    if name == "CommandFailed":
        completion = _completion_from_json(raw["completion"], ata_pass_through)
        return CommandFailed(message, completion, opcode=raw["opcode"], status=raw.get("status"))
    sense = bytes.fromhex(raw["sense"]) if raw.get("sense") else None
    error_class = _ERROR_CLASSES.get(name, CommandError)
    if error_class is PassThroughBlocked:
        error = PassThroughBlocked(opcode=raw.get("opcode"), status=raw.get("status"), sense=sense)
        error.message = message
        error.args = (message,)
        return error
    return error_class(message, opcode=raw.get("opcode"), status=raw.get("status"), sense=sense)


def load_exchanges(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines recording."""
    exchanges = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            exchanges.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
    return exchanges


class ReplayTransport:
    """Answers commands from a recording; an unrecorded command raises :class:`ReplayMiss`."""

    def __init__(self, exchanges: list[dict[str, Any]] | str | Path) -> None:
        records = exchanges if isinstance(exchanges, list) else load_exchanges(exchanges)
        self._queues: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for record in records:
            self._queues[record["key"]].append(record)

    @property
    def remaining(self) -> int:
        """How many recorded exchanges have not been replayed yet."""
        return sum(len(queue) for queue in self._queues.values())

    def execute(self, command: Command) -> Completion:
        """Return (or raise) what the device answered when this command was recorded."""
        queue = self._queues.get(command_key(command))
        if not queue:
            raise ReplayMiss(
                f"replay: no recorded answer left for {command_label(command)}",
                opcode=command_opcode(command),
            )
        outcome = queue.popleft()["outcome"]
        ata = isinstance(command, AtaCommand)
        if outcome["type"] == "error":
            raise _error_from_json(outcome, ata)
        return _completion_from_json(outcome["completion"], ata)

    def close(self) -> None:
        """Nothing to release."""


class RecordingTransport:
    """Wraps a transport and appends every exchange (completion or error) to a JSON-lines file."""

    def __init__(self, inner: Transport, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)

    def execute(self, command: Command) -> Completion:
        """Run the command on the wrapped transport and record what happened."""
        try:
            completion = self.inner.execute(command)
        except AgentError as error:
            self._append(command, _error_to_json(error))
            raise
        self._append(command, {"type": "completion", "completion": _completion_to_json(completion)})
        return completion

    def _append(self, command: Command, outcome: dict[str, Any]) -> None:
        record = {
            "kind": _kind(command),
            "opcode": command_opcode(command),
            "key": command_key(command),
            "command": _command_fields(command),
            "outcome": outcome,
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()
