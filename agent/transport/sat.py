"""SCSI/ATA Translation (SAT-4) pieces that do no I/O: building ATA PASS-THROUGH (16) CDBs and
turning a SCSI status + sense buffer into a Completion or a CommandError.

Shared by the real SG_IO transport and the emulated ATA/SCSI drives, so both are decoded by the
same code.
"""

from __future__ import annotations

from agent.drive.opcodes import (
    SCSI_ATA_PASS_THROUGH_16,
    SCSI_CONTROL_MODE_PAGE,
    SCSI_MODE_SELECT_10,
    SCSI_MODE_SENSE_10,
    SCSI_STATUS_CHECK_CONDITION,
    SCSI_STATUS_GOOD,
)
from agent.errors import CommandError, DriveRemoved
from agent.transport.commands import (
    AtaCommand,
    AtaProtocol,
    CommandFailed,
    CommandTimeout,
    Completion,
    DataDirection,
    PassThroughBlocked,
    ScsiCommand,
    Transport,
    command_label,
)
from agent.transport.sense import (
    ASC_INVALID_COMMAND_OPERATION_CODE,
    ASC_INVALID_FIELD_IN_CDB,
    SenseKey,
    decode_sense,
)

__all__ = [
    "build_ata_pass_through_16",
    "enable_descriptor_sense",
    "interpret_ata_result",
    "interpret_scsi_result",
]

# Linux SCSI midlayer host_status codes (include/scsi/scsi_status.h, host byte)
DID_OK = 0x00
DID_NO_CONNECT = 0x01
DID_BUS_BUSY = 0x02
DID_TIME_OUT = 0x03
DID_BAD_TARGET = 0x04
DID_ABORT = 0x05
DID_ERROR = 0x07
DID_RESET = 0x08

_DATA_IN = frozenset({AtaProtocol.PIO_IN, AtaProtocol.UDMA_IN})
_DATA_OUT = frozenset({AtaProtocol.PIO_OUT, AtaProtocol.UDMA_OUT})


def build_ata_pass_through_16(command: AtaCommand) -> bytes:
    """The 16-byte ATA PASS-THROUGH (16) CDB for ``command`` (SAT-4 ATA PASS-THROUGH (16) CDB layout).

    CK_COND is always set so the SAT layer returns the ATA output registers in sense data. Data
    transfers are described in 512-byte blocks taken from the COUNT field (T_LENGTH=10b,
    BYT_BLOK=1, T_TYPE=0), which is how libata and SAT bridges size PIO/DMA transfers.
    """
    extend = command.is_extended
    byte1 = (int(command.protocol) & 0x0F) << 1 | (1 if extend else 0)
    byte2 = 0x20  # CK_COND
    direction = command.direction
    if direction is not DataDirection.NONE:
        byte2 |= 0x04 | 0x02  # BYT_BLOK=1, T_LENGTH=10b (length in COUNT)
        if direction is DataDirection.FROM_DEVICE:
            byte2 |= 0x08  # T_DIR=1: from the ATA device
    features, count, lba = command.features, command.count, command.lba
    return bytes(
        [
            SCSI_ATA_PASS_THROUGH_16,
            byte1,
            byte2,
            (features >> 8) & 0xFF if extend else 0,
            features & 0xFF,
            (count >> 8) & 0xFF if extend else 0,
            count & 0xFF,
            (lba >> 24) & 0xFF if extend else 0,
            lba & 0xFF,
            (lba >> 32) & 0xFF if extend else 0,
            (lba >> 8) & 0xFF,
            (lba >> 40) & 0xFF if extend else 0,
            (lba >> 16) & 0xFF,
            # 28-bit commands carry LBA bits 27:24 in DEVICE bits 3:0 (ACS-4 note)
            (command.device & 0xF0) | (0 if extend else (lba >> 24) & 0x0F),
            command.command,
            0x00,  # CONTROL
        ]
    )


def _host_failure(label: str, device: str, host_status: int, opcode: int, timeout_s: float) -> Exception | None:
    if host_status == DID_OK:
        return None
    if host_status == DID_TIME_OUT:
        return CommandTimeout(f"{device}: {label} timed out after {timeout_s:g} s", opcode=opcode)
    if host_status in (DID_NO_CONNECT, DID_BAD_TARGET):
        return DriveRemoved(f"{device}: drive not reachable during {label} (host status {host_status:#x})")
    return CommandError(f"{device}: {label} failed in the host adapter (host status {host_status:#x})", opcode=opcode)


def interpret_ata_result(
    command: AtaCommand,
    scsi_status: int,
    sense_buffer: bytes,
    data: bytes,
    *,
    host_status: int = DID_OK,
    device: str = "device",
) -> Completion:
    """Decode what a SAT layer answered to ATA PASS-THROUGH; raise when the ATA command failed.

    Raises PassThroughBlocked when the translator rejected the CDB itself (ILLEGAL REQUEST with no
    ATA registers — typical of USB bridges), or when a non-data command came back without any ATA
    registers despite CK_COND (nothing proves the command reached the drive).
    """
    label = command_label(command)
    opcode = command.command
    failure = _host_failure(label, device, host_status, opcode, command.timeout_s)
    if failure is not None:
        raise failure
    sense = decode_sense(sense_buffer, ata_pass_through=True)
    raw = sense.raw if sense is not None else None
    if (
        sense is not None
        and sense.ata is None
        and sense.sense_key == SenseKey.ILLEGAL_REQUEST
        and (sense.asc_ascq in (ASC_INVALID_COMMAND_OPERATION_CODE, ASC_INVALID_FIELD_IN_CDB))
    ):
        # SAT-4: a SATL that does not implement the CDB answers INVALID COMMAND OPERATION CODE
        raise PassThroughBlocked(
            f"{device}: {label} rejected ({sense.describe()})", opcode=opcode, status=scsi_status, sense=raw
        )
    registers = sense.ata if sense is not None else None
    if registers is None:
        if scsi_status == SCSI_STATUS_GOOD and command.direction is DataDirection.FROM_DEVICE:
            return Completion(
                ok=True,
                data=data,
                scsi_status=scsi_status,
                sense=sense,
                info={"ata_registers": "not returned"},
            )
        if scsi_status == SCSI_STATUS_GOOD:
            raise PassThroughBlocked(
                f"{device}: {label} returned no ATA registers despite CK_COND",
                opcode=opcode,
                status=scsi_status,
                sense=raw,
            )
        completion = Completion(ok=False, scsi_status=scsi_status, sense=sense)
        detail = sense.describe() if sense is not None else f"SCSI status {scsi_status:#04x}"
        raise CommandFailed(f"{device}: {label} failed: {detail}", completion, opcode=opcode, status=scsi_status)
    completion = Completion(
        ok=not registers.failed,
        data=data if not registers.failed else b"",
        ata=registers,
        scsi_status=scsi_status,
        sense=sense,
    )
    if registers.failed:
        what = "aborted" if registers.aborted else "failed"
        raise CommandFailed(
            f"{device}: {label} {what} (status {registers.status:02X}h error {registers.error:02X}h)",
            completion,
            opcode=opcode,
            status=registers.status,
        )
    return completion


def interpret_scsi_result(
    command: ScsiCommand,
    scsi_status: int,
    sense_buffer: bytes,
    data: bytes,
    *,
    host_status: int = DID_OK,
    device: str = "device",
) -> Completion:
    """Decode a SCSI command's status and sense (SAM-5 status codes); raise when it failed.

    CHECK CONDITION with RECOVERED ERROR (or NO SENSE) still counts as success, with the sense kept.
    """
    label = command_label(command)
    failure = _host_failure(label, device, host_status, command.opcode, command.timeout_s)
    if failure is not None:
        raise failure
    sense = decode_sense(sense_buffer) if scsi_status == SCSI_STATUS_CHECK_CONDITION else None
    if scsi_status == SCSI_STATUS_GOOD or (
        sense is not None and sense.sense_key in (SenseKey.RECOVERED_ERROR, SenseKey.NO_SENSE)
    ):
        return Completion(ok=True, data=data, scsi_status=scsi_status, sense=sense)
    completion = Completion(ok=False, scsi_status=scsi_status, sense=sense)
    detail = sense.describe() if sense is not None else f"SCSI status {scsi_status:#04x}"
    raise CommandFailed(f"{device}: {label} failed: {detail}", completion, opcode=command.opcode, status=scsi_status)


def parse_ata_pass_through_16(cdb: bytes) -> tuple[AtaProtocol, int, int, int, int, int, bool]:
    """Read an ATA PASS-THROUGH (16) CDB back into ``(protocol, command, features, count, lba,
    device, extend)`` (SAT-4 ATA PASS-THROUGH (16)); used by the emulator and by tests of the builder."""
    if len(cdb) != 16 or cdb[0] != SCSI_ATA_PASS_THROUGH_16:
        raise ValueError("not an ATA PASS-THROUGH (16) CDB")
    extend = bool(cdb[1] & 0x01)
    protocol = AtaProtocol((cdb[1] >> 1) & 0x0F)
    features = cdb[4] | (cdb[3] << 8 if extend else 0)
    count = cdb[6] | (cdb[5] << 8 if extend else 0)
    lba = cdb[8] | cdb[10] << 8 | cdb[12] << 16
    if extend:
        lba |= cdb[7] << 24 | cdb[9] << 32 | cdb[11] << 40
    else:
        lba |= (cdb[13] & 0x0F) << 24
    return protocol, cdb[14], features, count, lba, cdb[13], extend


_MODE_HEADER_10 = 8


def enable_descriptor_sense(transport: Transport) -> bool:
    """Set D_SENSE in the Control mode page so ATA PASS-THROUGH results come back in descriptor
    format, which carries all 48 LBA bits and all 16 COUNT bits (fixed format keeps only
    LBA 23:0 and COUNT 7:0 — not enough for SANITIZE STATUS EXT). Returns True when it changed
    the setting, False when it was already set. Raises CommandError when the device refuses.
    """
    allocation = 64
    # SPC-5 MODE SENSE (10): DBD=1, PC=00b current values, page 0Ah
    sense_cdb = bytes([SCSI_MODE_SENSE_10, 0x08, SCSI_CONTROL_MODE_PAGE, 0, 0, 0, 0])
    sense_cdb += allocation.to_bytes(2, "big") + b"\0"
    data = transport.execute(ScsiCommand(sense_cdb, data_in_length=allocation)).data
    descriptors = int.from_bytes(data[6:8], "big") if len(data) >= 8 else 0
    start = _MODE_HEADER_10 + descriptors
    if len(data) < start + 4 or data[start] & 0x3F != SCSI_CONTROL_MODE_PAGE:
        raise CommandError("MODE SENSE returned no Control mode page", opcode=SCSI_MODE_SENSE_10)
    page = bytearray(data[start : start + 2 + data[start + 1]])
    if page[2] & 0x04:
        return False
    page[0] &= 0x3F  # PS is reserved in MODE SELECT parameter data
    page[2] |= 0x04  # D_SENSE
    parameters = bytes(_MODE_HEADER_10) + bytes(page)
    # SPC-5 MODE SELECT (10): PF=1, parameter list = header (no block descriptors) + page
    select_cdb = bytes([SCSI_MODE_SELECT_10, 0x10, 0, 0, 0, 0, 0]) + len(parameters).to_bytes(2, "big") + b"\0"
    transport.execute(ScsiCommand(select_cdb, data_out=parameters))
    return True
