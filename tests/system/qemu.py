"""Boot a real Linux 6.1 kernel in QEMU (TCG) with emulated drives and run commands inside it.

The guest sees the host's own root file system read-only over virtio-9p, overlaid with tmpfs, so
the repository and its virtual environment run inside the guest at the same paths as on the host.
Results come back through a second, writable 9p share (mounted at ``/results`` in the guest).

Typical use::

    from tests.system.qemu import Guest, Nvme, Sata, ScsiHd, prepare_guest

    drives = [Nvme(size="64M", serial="NVME0001"), Sata(size="32M", serial="SATA0001")]
    with Guest(drives, scsi_debug="dev_size_mb=16 opts=2") as guest:
        result = guest.run_pytest("tests/system/guest/test_guest_drives.py")
        assert result.exit_code == 0, result.output
        code, output = guest.run(["lsblk", "-b"])
        guest.shutdown()                                  # images stay until the with-block ends
        data = guest.image(drives[0]).read_bytes()

Inside the guest: ``WIPE_AGENT_IN_GUEST=1``, ``WIPE_AGENT_GUEST_MANIFEST`` (JSON: drives with
serial, kind, size, and the scsi_debug options), ``WIPE_AGENT_RESULTS=/results``; full ``modprobe``
works (the kernel's module tree is bind-mounted); ``systemd-udevd`` runs and has settled.

Preparing the kernel/initramfs (``prepare_guest``) runs ``build_guest.sh``; see README.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

HERE = Path(__file__).resolve().parent
#: The repository this harness belongs to (the clone under test, wherever it lives).
REPOSITORY = HERE.parent.parent
BUILD_SCRIPT = HERE / "build_guest.sh"
GUEST_MAIN = HERE / "guest_main.sh"
#: Boot script and units of a systemd-mode guest (``Guest(init="systemd")``), copied at each boot.
GUEST_SYSTEMD = HERE / "guest_systemd"
#: The host's systemd, PID 1 of a systemd-mode guest.
SYSTEMD = Path("/lib/systemd/systemd")
#: Where the results share is mounted inside the guest.
GUEST_RESULTS = "/results"

#: Serial-console markers: guest ready; a command's end; the guest's last words before power-off.
READY_MARKER = "WIPE-AGENT-GUEST-READY"
EXIT_MARKER = re.compile(r"WIPE-AGENT-GUEST-EXIT n=(\d+) rc=(\d+)")
DONE_MARKER = re.compile(r"WIPE-AGENT-GUEST-DONE rc=(\d+)")
#: Top-level host directories the guest mounts afresh, so host files there are invisible in it.
_HIDDEN_IN_GUEST = frozenset({"dev", "proc", "sys", "run"})


class GuestError(RuntimeError):
    """The guest failed: did not boot, died, or a command timed out. Carries the console tail."""

    def __init__(self, message: str, console: str = "") -> None:
        tail = "\n".join(console.splitlines()[-60:])
        super().__init__(f"{message}\n--- guest console (tail) ---\n{tail}" if tail else message)
        self.console = console


class GuestUnavailable(RuntimeError):
    """QEMU, the kernel or the initramfs could not be prepared on this machine."""


# --- kernel + initramfs ------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestImage:
    """What ``build_guest.sh`` prepared: kernel, initramfs and the full module tree (host paths)."""

    kernel: Path
    initrd: Path
    kernel_release: str
    modules: Path
    cache: Path


_prepared: GuestImage | GuestUnavailable | None = None


def prepare_guest(timeout: float = 600.0, install: bool = True) -> GuestImage:
    """Fetch the kernel and build the initramfs if needed (cached on disk), installing missing
    Debian packages unless ``install`` is false; the outcome, success or failure, is remembered for
    the rest of the process.

    Raises GuestUnavailable with the script's log when anything is missing and cannot be made.
    """
    global _prepared
    if _prepared is None:
        try:
            _prepared = _prepare_guest(timeout, install)
        except GuestUnavailable as exc:
            _prepared = exc
    if isinstance(_prepared, GuestUnavailable):
        raise GuestUnavailable(str(_prepared))
    return _prepared


def _prepare_guest(timeout: float, install: bool) -> GuestImage:
    if not BUILD_SCRIPT.exists():
        raise GuestUnavailable(f"{BUILD_SCRIPT} is missing")
    try:
        completed = subprocess.run(
            ["bash", str(BUILD_SCRIPT), *([] if install else ["--no-install"])],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GuestUnavailable(f"build_guest.sh did not run: {exc}") from exc
    if completed.returncode != 0:
        raise GuestUnavailable(f"build_guest.sh exited {completed.returncode}:\n{completed.stderr.strip()[-3000:]}")
    values = dict(line.split("=", 1) for line in completed.stdout.splitlines() if re.match(r"^[A-Z]+=", line))
    try:
        image = GuestImage(
            kernel=Path(values["KERNEL"]),
            initrd=Path(values["INITRD"]),
            kernel_release=values["KVER"],
            modules=Path(values["MODULES"]),
            cache=Path(values["CACHE"]),
        )
    except KeyError as exc:
        raise GuestUnavailable(f"build_guest.sh printed no {exc}: {completed.stdout!r}") from exc
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None:
        raise GuestUnavailable("qemu-system-x86_64 / qemu-img not on PATH")
    return image


# --- drives ------------------------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(size: str | int) -> int:
    """Bytes in a qemu-img style size: ``4096``, ``"64M"``, ``"1G"`` (binary units)."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+)\s*([BKMGT]?)\s*", size.upper())
    if match is None:
        raise ValueError(f"bad size {size!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


@dataclass(frozen=True, kw_only=True)
class Drive:
    """An emulated drive. ``name`` becomes the QEMU device id (``drive-NAME`` for the backend).

    ``image`` uses an existing image file instead of creating a fresh sparse one; ``properties``
    are extra ``-device`` properties (e.g. ``{"logical_block_size": "4096"}``), ``backend`` extra
    ``-drive`` options (e.g. ``{"throttling.bps-total": str(16 << 20)}``: a drive slow enough that a
    job on it is still running when the test acts, on any host).
    """

    kind: ClassVar[Literal["nvme", "sata", "scsi"]]
    size: str | int = "64M"
    serial: str
    image_format: Literal["raw", "qcow2"] = "raw"
    name: str | None = None
    image: Path | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    backend: Mapping[str, str] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Size in bytes."""
        return parse_size(self.size)

    def device_properties(self, drive_id: str) -> dict[str, str]:
        """``-device`` properties (driver first) for this drive attached to backend ``drive_id``."""
        raise NotImplementedError

    def manifest(self) -> dict[str, Any]:
        """What the guest learns about this drive (``WIPE_AGENT_GUEST_MANIFEST``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "serial": self.serial,
            "size_bytes": self.size_bytes,
            "properties": dict(self.properties),
        }


@dataclass(frozen=True, kw_only=True)
class Nvme(Drive):
    """An NVMe controller (``-device nvme``) on the PCI root bus.

    Namespace 1 is ``size``/``image``. ``extra_namespaces`` (sizes) adds namespaces 2, 3, ... as
    ``nvme-ns`` devices, each with its own image, named ``NAME-nsN`` in ``Guest.image``.
    """

    kind: ClassVar[Literal["nvme", "sata", "scsi"]] = "nvme"
    extra_namespaces: tuple[str | int, ...] = ()

    def device_properties(self, drive_id: str) -> dict[str, str]:
        if self.extra_namespaces:  # namespaces come as nvme-ns devices on this controller's bus
            return {"driver": "nvme", "serial": self.serial, **self.properties}
        return {"driver": "nvme", "serial": self.serial, "drive": drive_id, **self.properties}

    def namespace_sizes(self) -> list[int]:
        """Sizes in bytes of namespaces 1, 2, ..."""
        return [self.size_bytes, *(parse_size(size) for size in self.extra_namespaces)]

    def manifest(self) -> dict[str, Any]:
        return {**super().manifest(), "namespaces": self.namespace_sizes()}


@dataclass(frozen=True, kw_only=True)
class Sata(Drive):
    """A SATA disk (``ide-hd``) on the guest's AHCI controller; one port per disk (max 6)."""

    kind: ClassVar[Literal["nvme", "sata", "scsi"]] = "sata"
    model: str | None = None

    def device_properties(self, drive_id: str) -> dict[str, str]:
        properties = {"driver": "ide-hd", "serial": self.serial, "drive": drive_id}
        if self.model is not None:
            properties["model"] = self.model
        return {**properties, **self.properties}

    def manifest(self) -> dict[str, Any]:
        return {**super().manifest(), "model": self.model}


@dataclass(frozen=True, kw_only=True)
class ScsiHd(Drive):
    """A SCSI disk (``scsi-hd``) on the guest's virtio-scsi controller."""

    kind: ClassVar[Literal["nvme", "sata", "scsi"]] = "scsi"
    vendor: str | None = None
    product: str | None = None

    def device_properties(self, drive_id: str) -> dict[str, str]:
        properties = {"driver": "scsi-hd", "bus": "virtio-scsi0.0", "serial": self.serial, "drive": drive_id}
        if self.vendor is not None:
            properties["vendor"] = self.vendor
        if self.product is not None:
            properties["product"] = self.product
        return {**properties, **self.properties}

    def manifest(self) -> dict[str, Any]:
        return {**super().manifest(), "vendor": self.vendor, "product": self.product}


def _option_string(properties: Mapping[str, str]) -> str:
    """``key=value,...`` for a QEMU command line (commas in values doubled, as QEMU wants)."""
    return ",".join(f"{key}={str(value).replace(',', ',,')}" for key, value in properties.items())


# --- QMP ---------------------------------------------------------------------------------------


class Qmp:
    """A minimal QMP client over a unix socket: commands, events, HMP pass-through."""

    def __init__(self, path: Path, timeout: float = 10.0, alive: Callable[[], bool] = lambda: True) -> None:
        """Connect (retrying until QEMU has created the socket, while ``alive()``) and negotiate
        capabilities."""
        deadline = time.monotonic() + timeout
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self._socket.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if time.monotonic() > deadline or not alive():
                    self._socket.close()
                    raise ConnectionError(f"no QMP socket at {path}: {exc}") from exc
                time.sleep(0.05)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        try:
            greeting = self._read(timeout)
            if "QMP" not in greeting:
                raise ConnectionError(f"unexpected QMP greeting {greeting!r}")
            self.execute("qmp_capabilities")
        except BaseException:
            self.close()
            raise

    def _read(self, timeout: float) -> dict[str, Any]:
        """The next message; TimeoutError after ``timeout`` seconds without a complete line."""
        # Own line buffer: a socket file object is unusable after one timed-out read.
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no QMP message")
            self._socket.settimeout(remaining)
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("QMP connection closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run a QMP command and return its ``return`` value; raise GuestError on ``error``."""
        self._next_id += 1
        request: dict[str, Any] = {"execute": command, "id": self._next_id}
        if arguments:
            request["arguments"] = arguments
        self._socket.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self._read(30.0)
            if "event" in message:
                self._events.append(message)
                continue
            if message.get("id") != self._next_id:
                continue
            if "error" in message:
                raise GuestError(f"QMP {command} failed: {message['error']}")
            return message.get("return")

    def hmp(self, command_line: str) -> str:
        """Run a human-monitor command (e.g. ``drive_add``); its text output, which QEMU uses for
        errors too, is returned."""
        output = self.execute("human-monitor-command", **{"command-line": command_line})
        return str(output)

    def wait_event(
        self,
        name: str,
        timeout: float = 30.0,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first event ``name`` (optionally passing ``match``), including already-queued ones."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if event["event"] == name and (match is None or match(event)):
                    return self._events.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no QMP event {name} within {timeout} s")
            try:
                message = self._read(remaining)
            except TimeoutError:
                continue
            if "event" in message:
                self._events.append(message)

    def close(self) -> None:
        """Close the connection (QEMU keeps running)."""
        with contextlib.suppress(OSError):
            self._socket.close()


# --- the guest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """One command run in the guest."""

    exit_code: int
    output: str
    seconds: float

    def __iter__(self) -> Iterator[Any]:
        # Lets callers write ``code, output = guest.run(...)``.
        return iter((self.exit_code, self.output))


@dataclass(frozen=True)
class PytestResult(CommandResult):
    """A pytest session run in the guest; ``junit_xml`` is the host path of its report."""

    junit_xml: Path = field(default=Path())


class GuestProcess:
    """A command started in the guest by ``Guest.spawn``."""

    def __init__(self, guest: Guest, number: int, command: str) -> None:
        self.guest = guest
        self.number = number
        self.command = command
        self._started = time.monotonic()

    @property
    def finished(self) -> bool:
        """Whether the command has exited."""
        return (self.guest.control / f"cmd.{self.number}.rc").exists()

    def output(self) -> str:
        """Its combined stdout/stderr so far."""
        try:
            return (self.guest.control / f"cmd.{self.number}.out").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait(self, timeout: float = 200.0) -> CommandResult:
        """Wait for it to exit. On timeout the guest is killed and GuestError raised."""
        rc_file = self.guest.control / f"cmd.{self.number}.rc"
        try:
            self.guest.wait_until(rc_file.exists, timeout, f"command {self.command!r}")
        except GuestError as exc:
            output = self.output()
            self.guest.kill()
            raise GuestError(f"{exc}\n--- command output so far ---\n{output[-4000:]}") from exc
        return CommandResult(int(rc_file.read_text().strip()), self.output(), time.monotonic() - self._started)


def _default_python() -> Path:
    """The interpreter of this test run (unresolved: a venv's python must stay a venv's python)."""
    override = os.environ.get("WIPE_AGENT_GUEST_PYTHON")
    return Path(override) if override else Path(os.path.abspath(sys.executable))


class Guest:
    """A QEMU/TCG virtual machine running the project's code against emulated drives.

    Starting it (``with Guest(...) as guest`` or ``start()``) creates the images, boots, and waits
    until udev has settled; ``run`` executes a command in the guest and waits, ``spawn`` starts
    one and returns at once (commands run concurrently); ``hotplug``/``unplug`` change drives
    through QMP; ``shutdown`` powers it off; ``close`` (end of the with-block) kills it if still
    running and removes the work directory unless ``keep`` (or ``WIPE_AGENT_GUEST_KEEP=1``).

    The whole VM lives at most ``timeout`` seconds (enforced by ``timeout --signal=KILL`` around
    QEMU, so even a killed test run cannot leave it behind for longer).
    """

    def __init__(
        self,
        drives: Sequence[Drive] = (),
        *,
        scsi_debug: str | None = None,
        repository: Path | str = REPOSITORY,
        python: Path | str | None = None,
        memory: str = "1G",
        cpus: int = 2,
        cpu: str = "max",
        timeout: float = 600.0,
        boot_timeout: float = 90.0,
        udev: bool = True,
        environment: Mapping[str, str] | None = None,
        image: GuestImage | None = None,
        workdir: Path | str | None = None,
        keep: bool | None = None,
        kernel_arguments: str = "",
        init: Literal["busybox", "systemd"] = "busybox",
    ) -> None:
        """Configure (nothing starts yet).

        scsi_debug: options for the guest's scsi_debug module, loaded before udev starts
            (``""`` loads it with defaults; ``None`` does not load it).
        repository, python: host paths used inside the guest (the host root is shared as is).
        environment: extra variables for every command run in the guest.
        image: prepared kernel/initramfs; default ``prepare_guest()``.
        timeout: hard limit on the VM's whole life (``timeout --signal=KILL``), seconds.
        boot_timeout: how long ``start`` waits for the guest to be ready.
        cpu: QEMU ``-cpu`` model (TCG); ``max`` gives the guest's Python every instruction set.
        kernel_arguments: appended to ``console=ttyS0 panic=-1 quiet``.
        init: ``"busybox"`` (PID 1 is the initramfs' shell, which runs the command loop) or
            ``"systemd"`` (PID 1 is the host's systemd with a minimal target: journald, udevd and
            the command loop as a service; see ``guest_systemd/boot.sh``).
        """
        counters: dict[str, int] = {}
        named: list[Drive] = []
        for drive in drives:
            index = counters.get(drive.kind, 0)
            counters[drive.kind] = index + 1
            named.append(drive if drive.name else replace(drive, name=f"{drive.kind}{index}"))
        if len({drive.name for drive in named}) != len(named):
            raise ValueError("drive names must be unique")
        if counters.get("sata", 0) > 6:
            raise ValueError("the AHCI controller has 6 ports")
        self.drives: list[Drive] = named
        self.scsi_debug = scsi_debug
        self.repository = Path(repository).absolute()
        self.python = Path(python).absolute() if python is not None else _default_python()
        for path in (self.repository, self.python):
            if path.parts[1:2] and path.parts[1] in _HIDDEN_IN_GUEST:
                raise ValueError(f"{path} is hidden in the guest (fresh /{path.parts[1]} there)")
        self.memory = memory
        self.cpus = cpus
        self.cpu = cpu
        self.timeout = timeout
        self.boot_timeout = boot_timeout
        self.udev = udev
        self.environment = dict(environment or {})
        self._image = image
        self._workdir_parent = Path(workdir) if workdir is not None else None
        self.keep = keep if keep is not None else os.environ.get("WIPE_AGENT_GUEST_KEEP") == "1"
        self.kernel_arguments = kernel_arguments
        if init not in ("busybox", "systemd"):
            raise ValueError(f"unknown init {init!r}")
        self.init = init
        self.workdir: Path | None = None
        self.boot_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._qmp: Qmp | None = None
        self._commands = 0
        self._hotplugged = 0
        self._started = 0.0
        self._images: dict[str, Path] = {}

    # -- paths

    @property
    def share(self) -> Path:
        """Host directory seen as ``/results`` in the guest."""
        return self._require_workdir() / "share"

    @property
    def control(self) -> Path:
        """Host directory of the command protocol (``/results/.control`` in the guest)."""
        return self.share / ".control"

    @property
    def console_log(self) -> Path:
        """Host path of the serial console log."""
        return self._require_workdir() / "console.log"

    def console(self) -> str:
        """The serial console so far (kernel messages + markers + anything written to it)."""
        try:
            return self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def image(self, drive: Drive | str) -> Path:
        """Host path of a drive's backing image (a Drive as passed in, or its name; ``NAME-nsN``
        for an extra NVMe namespace)."""
        name = drive if isinstance(drive, str) else self._named(drive).name
        assert name is not None
        return self._images[name]

    def read_image(self, drive: Drive | str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of a drive's backing image as the guest sees them (qcow2 is converted to raw).

        Raw images can be read while the guest runs (after it flushed); qcow2 only after
        ``shutdown``, when QEMU has written its metadata.
        """
        path = self.image(drive)
        if isinstance(drive, Drive):
            image_format = drive.image_format
        else:  # a drive's name, or NAME-nsN for an extra NVMe namespace
            owner = re.sub(r"-ns\d+$", "", drive)
            image_format = next(d.image_format for d in self.drives if d.name == owner)
        if image_format == "qcow2":
            if self.running:
                raise GuestError("read a qcow2 image only after shutdown()")
            raw = path.with_suffix(".raw-copy")
            subprocess.run(
                ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(path), str(raw)],
                check=True,
                capture_output=True,
            )
            path = raw
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read() if length is None else handle.read(length)

    def _named(self, drive: Drive) -> Drive:
        if drive.name is not None:
            return drive
        for candidate in self.drives:
            if replace(candidate, name=None) == drive:
                return candidate
        raise KeyError(f"{drive} is not a drive of this guest")

    def _require_workdir(self) -> Path:
        if self.workdir is None:
            raise GuestError("guest not started")
        return self.workdir

    # -- lifecycle

    def __enter__(self) -> Guest:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether QEMU is still running."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Create images, boot, wait until the guest is ready (udev settled)."""
        if self.workdir is not None:
            raise GuestError("a Guest starts once")
        image = self._image or prepare_guest()
        if self.init == "systemd" and not os.access(SYSTEMD, os.X_OK):
            raise GuestUnavailable(f"{SYSTEMD} missing: install Debian's systemd package (scripts/setup.sh --test)")
        parent = self._workdir_parent or Path(os.environ.get("WIPE_AGENT_GUEST_TMPDIR") or tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="wipe-agent-guest-", dir=parent))
        (self.workdir / "images").mkdir()
        self.control.mkdir(parents=True)
        for drive in self.drives:
            self._images[drive.name or ""] = self._create_image(drive)
            if isinstance(drive, Nvme):
                for nsid, size in enumerate(drive.namespace_sizes()[1:], start=2):
                    key = f"{drive.name}-ns{nsid}"
                    self._images[key] = self._create_image_file(key, drive.image_format, size)
        self._write_control_files(image)
        command = self._command_line(image)
        (self.workdir / "qemu.cmdline").write_text(shlex.join(command) + "\n")
        self._started = time.monotonic()
        qemu_log = open(self.workdir / "qemu.log", "wb")
        with qemu_log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=qemu_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed as a unit in close()
            )
        try:
            self._qmp = Qmp(self.workdir / "qmp.sock", timeout=30.0, alive=lambda: self.running)
        except (ConnectionError, TimeoutError) as exc:
            raise GuestError(f"QEMU did not start: {exc} (status {self._exit_status()})", self.console()) from exc
        self.wait_until(lambda: (self.control / "ready").exists(), self.boot_timeout, "boot")
        self.boot_seconds = time.monotonic() - self._started

    def _create_image(self, drive: Drive) -> Path:
        assert self.workdir is not None and drive.name is not None
        if drive.image is not None:
            return Path(drive.image).absolute()
        return self._create_image_file(drive.name, drive.image_format, drive.size_bytes)

    def _create_image_file(self, name: str, image_format: str, size: int) -> Path:
        assert self.workdir is not None
        path = self.workdir / "images" / f"{name}.{image_format}"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", image_format, str(path), str(size)],
            check=True,
            capture_output=True,
        )
        return path

    def _write_control_files(self, image: GuestImage) -> None:
        boot = [f"MODULES_DIR={shlex.quote(str(image.modules))}"]
        if self.scsi_debug is not None:
            boot.append(f"SCSI_DEBUG={shlex.quote(self.scsi_debug)}")
        if self.init == "systemd":
            boot.append("GUEST_INIT=systemd")
            shutil.copytree(GUEST_SYSTEMD, self.control / "systemd")
        (self.control / "boot.conf").write_text("\n".join(boot) + "\n")
        shutil.copyfile(GUEST_MAIN, self.control / "main.sh")
        manifest = {
            "drives": [drive.manifest() for drive in self.drives],
            "scsi_debug": self.scsi_debug,
            "kernel_release": image.kernel_release,
            "init": self.init,
            "repository": str(self.repository),
        }
        (self.control / "guest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        environment = {
            "WIPE_AGENT_GUEST_UDEV": "1" if self.udev else "0",
            "WIPE_AGENT_GUEST_INIT": self.init,
            "WIPE_AGENT_GUEST_MANIFEST": f"{GUEST_RESULTS}/.control/guest.json",
            "WIPE_AGENT_RESULTS": GUEST_RESULTS,
            "PYTHONUNBUFFERED": "1",
            **self.environment,
        }
        (self.control / "guest.env").write_text(
            "".join(f"export {key}={shlex.quote(value)}\n" for key, value in environment.items())
        )

    def _command_line(self, image: GuestImage) -> list[str]:
        assert self.workdir is not None
        append = f"console=ttyS0 panic=-1 quiet {self.kernel_arguments}".strip()
        command = [
            # --foreground: on expiry KILL only QEMU and reap it (without it, timeout also kills
            # itself, leaving QEMU's zombie to PID 1).
            "timeout", "--foreground", "--signal=KILL", str(int(self.timeout)),
            "qemu-system-x86_64",
            "-machine", "pc", "-accel", "tcg", "-cpu", self.cpu,
            "-smp", str(self.cpus), "-m", self.memory,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{self.workdir / 'console.log'}",
            "-monitor", "none",
            "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append,
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={self.share},mount_tag=results,security_model=none",
            "-device", "virtio-scsi-pci,id=virtio-scsi0",
        ]  # fmt: skip
        sata_port = 0
        if any(drive.kind == "sata" for drive in self.drives):
            command += ["-device", "ahci,id=ahci0"]
        for drive in self.drives:
            drive_id = f"drive-{drive.name}"
            command += ["-drive", _option_string(self._backend(drive, drive_id))]
            properties = {**drive.device_properties(drive_id), "id": drive.name or ""}
            if drive.kind == "sata":
                properties["bus"] = f"ahci0.{sata_port}"
                sata_port += 1
            command += ["-device", _option_string(properties)]
            if isinstance(drive, Nvme) and drive.extra_namespaces:
                for nsid in range(1, len(drive.namespace_sizes()) + 1):
                    namespace_drive = drive_id if nsid == 1 else f"drive-{drive.name}-ns{nsid}"
                    if nsid > 1:
                        backend = {**self._backend(drive, namespace_drive)}
                        backend["file"] = str(self._images[f"{drive.name}-ns{nsid}"])
                        command += ["-drive", _option_string(backend)]
                    namespace = {"driver": "nvme-ns", "drive": namespace_drive, "bus": drive.name or "",
                                 "nsid": str(nsid)}  # fmt: skip
                    command += ["-device", _option_string(namespace)]
        return command

    def _backend(self, drive: Drive, drive_id: str) -> dict[str, str]:
        image = self._images[drive.name or ""]
        return {"if": "none", "id": drive_id, "file": str(image), "format": drive.image_format, **drive.backend}

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until true; GuestError (with the console) if QEMU dies or time is up."""
        deadline = time.monotonic() + timeout
        while not condition():
            if not self.running:
                raise GuestError(f"QEMU exited during {what} (status {self._exit_status()})", self.console())
            if time.monotonic() > deadline:
                raise GuestError(f"guest {what} took more than {timeout:.0f} s", self.console())
            time.sleep(0.05)

    def _exit_status(self) -> str:
        status = None if self._process is None else self._process.poll()
        qemu_log = ""
        if self.workdir is not None and (self.workdir / "qemu.log").exists():
            qemu_log = (self.workdir / "qemu.log").read_text(errors="replace").strip()
        return f"{status}{': ' + qemu_log[-2000:] if qemu_log else ''}"

    def shutdown(self, timeout: float = 30.0) -> int | None:
        """Power the guest off cleanly (images stay until ``close``); the DONE marker's rc or None."""
        if self._process is None:
            return None
        if self.running:
            (self.control / "shutdown").touch()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_qmp()
        match = DONE_MARKER.search(self.console())
        return int(match.group(1)) if match else None

    def kill(self) -> None:
        """Stop QEMU at once (SIGTERM through ``timeout``, SIGKILL to its process group if that
        fails within 10 s) and reap it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            # SIGTERM to `timeout`, which passes it on to QEMU and reaps it. Killing the group
            # outright would orphan QEMU: its zombie would then wait for PID 1, which in
            # containers often never reaps.
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)

    def _close_qmp(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None

    def close(self) -> None:
        """Kill QEMU if it still runs (no grace: call ``shutdown`` first for that); remove files."""
        self._close_qmp()
        self.kill()
        if self.workdir is not None and self.workdir.exists():
            if self.keep:
                sys.stderr.write(f"wipe-agent guest files kept in {self.workdir}\n")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    # -- commands

    def spawn(
        self,
        command: Sequence[str] | str,
        *,
        cwd: Path | str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> GuestProcess:
        """Start a command in the guest (argv list, or a shell string) without waiting for it.

        Commands run concurrently in the guest; cwd defaults to the repository.
        """
        if not self.running:
            raise GuestError("guest is not running", self.console() if self.workdir else "")
        number = self._commands
        self._commands += 1
        shell = command if isinstance(command, str) else shlex.join(command)
        lines = [
            "set -e",
            f"cd {shlex.quote(str(cwd if cwd is not None else self.repository))}",
            *(f"export {key}={shlex.quote(value)}" for key, value in (environment or {}).items()),
            "set +e",
            shell,
        ]
        temporary = self.control / f".cmd.{number}.sh.tmp"
        temporary.write_text("\n".join(lines) + "\n")
        temporary.rename(self.control / f"cmd.{number}.sh")  # atomic: the guest never sees half
        return GuestProcess(self, number, shell)

    def run(
        self,
        command: Sequence[str] | str,
        *,
        cwd: Path | str | None = None,
        environment: Mapping[str, str] | None = None,
        timeout: float = 200.0,
    ) -> CommandResult:
        """Run a command in the guest and wait for it; ``code, output = guest.run(...)`` works.

        A timeout leaves the guest in an unknown state: it is killed and GuestError raised.
        """
        return self.spawn(command, cwd=cwd, environment=environment).wait(timeout)

    def wait_for_file(self, name: str, timeout: float = 60.0, process: GuestProcess | None = None) -> Path:
        """Wait until the guest has created ``/results/NAME`` (a synchronisation point, e.g. "my
        udev monitor is listening"); returns its host path.

        With ``process`` (the spawned command expected to create it), fail at once, with its
        output, if that command exits without having created the file.
        """
        path = self.share / name

        def created() -> bool:
            if path.exists():
                return True
            if process is not None and process.finished and not path.exists():
                result = process.wait(timeout=1)
                raise GuestError(
                    f"{process.command!r} exited {result.exit_code} without creating /results/{name}:\n"
                    f"{result.output[-4000:]}"
                )
            return False

        self.wait_until(created, timeout, f"/results/{name}")
        return path

    def pytest_command(self) -> list[str]:
        """``python -m pytest`` as the guest should run it (for ``spawn``; ``run_pytest`` uses it).

        Without the cache provider (nothing to keep) and without hypothesis' plugin, whose import
        alone costs ~20 s under TCG; a guest test that needs hypothesis imports it itself.
        """
        return [str(self.python), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]

    def run_pytest(
        self,
        *arguments: str,
        name: str | None = None,
        timeout: float = 200.0,
        environment: Mapping[str, str] | None = None,
    ) -> PytestResult:
        """Run pytest (``pytest_command``) with ARGUMENTS in the guest, from the repository, with a
        JUnit report.

        The report is written to ``/results/NAME.xml`` in the guest, i.e. ``share / NAME.xml`` on
        the host (``result.junit_xml``); NAME defaults to ``pytest-N``.
        """
        report = f"{name or f'pytest-{self._commands}'}.xml"
        result = self.run(
            [*self.pytest_command(), f"--junitxml={GUEST_RESULTS}/{report}", *arguments],
            environment=environment,
            timeout=timeout,
        )
        return PytestResult(result.exit_code, result.output, result.seconds, junit_xml=self.share / report)

    # -- hot-plug

    @property
    def qmp(self) -> Qmp:
        """The QMP connection of the running guest."""
        if self._qmp is None:
            raise GuestError("guest is not running")
        return self._qmp

    def hotplug(self, drive: Drive) -> Drive:
        """Create an image and plug ``drive`` into the running guest (NVMe or SCSI; IDE/AHCI
        cannot be hot-plugged in QEMU). Returns the drive with its assigned name."""
        if isinstance(drive, Sata):
            raise ValueError("QEMU cannot hot-plug ide-hd (SATA) devices")
        if isinstance(drive, Nvme) and drive.extra_namespaces:
            raise ValueError("hot-plug supports single-namespace NVMe drives only")
        self._hotplugged += 1
        named = drive if drive.name else replace(drive, name=f"hot{drive.kind}{self._hotplugged}")
        if any(existing.name == named.name for existing in self.drives):
            raise ValueError(f"drive name {named.name} in use")
        self._images[named.name or ""] = self._create_image(named)
        drive_id = f"drive-{named.name}"
        answer = self.qmp.hmp(f"drive_add 0 {_option_string(self._backend(named, drive_id))}")
        if answer.strip() != "OK":
            raise GuestError(f"drive_add failed: {answer.strip()}")
        arguments = {**named.device_properties(drive_id), "id": named.name}
        self.qmp.execute("device_add", **arguments)
        self.drives.append(named)
        return named

    def unplug(self, drive: Drive | str, timeout: float = 60.0) -> None:
        """Remove a drive from the running guest and wait for QEMU's DEVICE_DELETED (which needs
        the guest's cooperation for PCI devices: ACPI eject)."""
        name = drive if isinstance(drive, str) else self._named(drive).name
        self.qmp.execute("device_del", id=name)
        self.qmp.wait_event("DEVICE_DELETED", timeout, lambda event: event["data"].get("device") == name)
        self.drives = [existing for existing in self.drives if existing.name != name]
