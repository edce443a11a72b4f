"""The composition root: one :class:`Application`, built from the station configuration.

Everything a job needs from outside the job stack is a member here, built once: the store, the
guard, how a drive is identified, how its command transport is opened, the station's signer, the
clock, and the certificate settings. The CLI (``run``, ``wipe``, ``demo``), the daemon
(:class:`agent.daemon.station.Station`) and its job workers are handed an Application instead of
building their own; tests build one with fakes at the named seams (``identify``, ``transports``,
``launcher``, ``clock``, ``sleep``, ``guard``) and never patch a module.

Transport specifications (``transport=``):

- ``real`` — SG_IO / NVMe ioctl for SATA, NVMe, SCSI and USB drives, none for virtual media;
- ``record:FILE`` — as ``real``, every exchange appended to FILE (JSON lines, agent.transport.replay);
- ``replay:FILE`` — every drive answered from the recording in FILE, nothing sent to a device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import StationConfig
from agent.discovery.guard import Guard
from agent.discovery.identity import DriveIdentity
from agent.errors import ConfigError
from agent.jobs.settings import CertificateSettings, settings_from_config
from agent.store.registry import Clock, Registry, utc_now
from agent.transport.commands import Transport

if TYPE_CHECKING:
    from agent.contracts import WorkerRequest
    from agent.daemon.launcher import Launcher
    from agent.jobs.runner import JobRunner
    from certs.pki import StationSigner

Identify = Callable[[str], DriveIdentity]
TransportFactory = Callable[[DriveIdentity], Transport | None]
TRANSPORT_SPECS = ("real", "record:FILE", "replay:FILE")


def real_transports(identity: DriveIdentity) -> Transport | None:
    """SG_IO / NVMe ioctl transport for real drives; None for virtual media or when it cannot be opened."""
    from agent.jobs.runner import default_transports

    return default_transports(identity)


def transport_factory(spec: str, real: TransportFactory = real_transports) -> TransportFactory:
    """The transport factory a specification names (see the module docstring); a bad one is a ConfigError."""
    kind, _, argument = spec.partition(":")
    if kind == "real" and not argument:
        return real
    if kind in ("record", "replay") and argument:
        path = Path(argument)
        if kind == "replay":
            from agent.transport.replay import ReplayTransport, load_exchanges

            try:
                exchanges = load_exchanges(path)
            except OSError as exc:
                raise ConfigError(f"transport {spec}: cannot read the recording: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise ConfigError(f"transport {spec}: {exc}") from None
            if any(not isinstance(record, dict) or "key" not in record or "outcome" not in record
                   for record in exchanges):
                raise ConfigError(f"transport {spec}: not a transport recording (every line needs key and outcome)")
            return lambda identity: ReplayTransport(list(exchanges))
        if not path.parent.is_dir():
            raise ConfigError(f"transport {spec}: no directory {path.parent} for the recording")

        def recording(identity: DriveIdentity) -> Transport | None:
            from agent.transport.replay import RecordingTransport

            inner = real(identity)
            return None if inner is None else RecordingTransport(inner, path)

        return recording
    raise ConfigError(f"transport {spec!r}: expected one of {', '.join(TRANSPORT_SPECS)}")


def _udev_identify(path: str) -> DriveIdentity:
    from agent.discovery import udev

    return udev.identify(path)


@dataclass
class Application:
    """The station's parts, wired once (see the module docstring for the seams)."""

    config: StationConfig
    certificate: CertificateSettings
    transport: str = "real"
    """The specification ``transports`` was built from (passed on to the daemon's job workers)."""
    identify: Identify = _udev_identify
    transports: TransportFactory = real_transports
    clock: Clock = utc_now
    sleep: Callable[[float], None] = time.sleep
    launcher: Launcher | None = None
    """How the daemon starts job workers; None: the fork server, else one interpreter per job."""
    guard: Guard | None = None
    """The guard jobs are checked by; None: a plain :class:`Guard` per job (the daemon's own, for
    bays, waits less for udev probes: ``Station``)."""
    signer_loader: Callable[[Path], StationSigner | None] | None = None
    """Loads the station's signer from its state directory; None: ``agent.jobs.certify.station_signer``."""
    _signer: tuple[StationSigner | None] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(
        cls,
        config: StationConfig,
        *,
        transport: str = "real",
        identify: Identify | None = None,
        transports: TransportFactory | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        launcher: Launcher | None = None,
        guard: Guard | None = None,
        signer_loader: Callable[[Path], StationSigner | None] | None = None,
        certificate: CertificateSettings | None = None,
        demo: bool = False,
    ) -> Application:
        """The application of a station configuration; each keyword is a seam (None: the real part).

        ``transports`` replaces the real transports under the ``transport`` specification (a
        recording then records what the given factory answers)."""
        factory = transport_factory(transport, transports or real_transports)
        return cls(
            config=config,
            certificate=certificate if certificate is not None else settings_from_config(config, demo=demo),
            transport=transport,
            identify=identify or _udev_identify,
            transports=factory,
            clock=clock or utc_now,
            sleep=sleep or time.sleep,
            launcher=launcher,
            guard=guard,
            signer_loader=signer_loader,
        )

    @classmethod
    def for_worker(
        cls,
        request: WorkerRequest,
        *,
        identify: Identify | None = None,
        transports: TransportFactory | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        signer_loader: Callable[[Path], StationSigner | None] | None = None,
    ) -> Application:
        """A job worker's application: the daemon's request says where the store is and what the
        certificates print (the worker never reads the configuration file itself)."""
        config = StationConfig(station_id=request.station_id or "", state_dir=Path(request.state_dir))
        certificate = CertificateSettings.from_json(request.certificate_settings or {})
        return cls.from_config(config, certificate=certificate, transport=request.transport, identify=identify,
                               transports=transports, clock=clock, sleep=sleep, signer_loader=signer_loader)

    @property
    def state_dir(self) -> Path:
        """The station's state directory (registry, keys, certificates)."""
        return self.config.state_dir

    def open_store(self) -> Registry:
        """The station's registry, opened (the caller closes it), acting for the configured station.

        A configured station's store is its own (SQLite under its state directory): opening it claims it
        as that station's home (:meth:`Registry.claim_home`, a read when it already is), so what opens it
        naming no station (the command line without a configuration) acts for the same station."""
        store = Registry(self.config.state_dir, clock=self.clock, station_id=self.config.station_id or None).open()
        if self.config.station_id:
            try:
                store.claim_home()
            except BaseException:
                store.close()
                raise
        return store

    def job_guard(self) -> Guard:
        """The guard a job is checked and opened by."""
        return self.guard if self.guard is not None else Guard()

    def signer(self) -> StationSigner | None:
        """The station's signer (loaded once), or None when no key is installed; a broken key raises."""
        if self._signer is None:
            loader = self.signer_loader
            if loader is None:
                from agent.jobs.certify import station_signer

                loader = station_signer
            self._signer = (loader(self.config.state_dir),)
        return self._signer[0]

    def runner(self, registry: Registry, guard: Guard | None = None) -> JobRunner:
        """A job runner over ``registry`` with this application's identify, transports and sleep."""
        from agent.jobs.runner import JobRunner

        return JobRunner(registry, guard or self.job_guard(), self.identify, self.transports, sleep=self.sleep)
