"""The station facts every certificate prints: one :class:`CertificateSettings`, from the configuration.

Kept apart from :mod:`agent.jobs.certify` so that the daemon and :mod:`agent.app` can build the
settings without importing the certificate stack (reportlab, pyHanko): only a job worker signs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_CONFIG_PATH, DEFAULT_OPERATOR_TITLE, Organisation, StationConfig

_DEFAULT_ORGANISATION = Organisation(name="-")
"""Only for the default wording of the optional [organisation] keys (its name is never used)."""


@dataclass(frozen=True)
class CertificateSettings:
    """Station facts printed on every certificate, built from the station configuration by
    :func:`settings_from_config` (the one place that does it: CLI, daemon worker and demo).

    ``organisation`` empty means none is configured: :func:`certify` then issues no certificate
    and records why on the job. There is no built-in organisation name on purpose: a certificate
    signed under one organisation's CA must never name a placeholder one.
    """

    organisation: str = ""
    location: str = ""
    phone: str = ""
    operator_title: str = DEFAULT_OPERATOR_TITLE
    classification_before: str = _DEFAULT_ORGANISATION.classification_before
    classification_after: str = _DEFAULT_ORGANISATION.classification_after
    destination: str = _DEFAULT_ORGANISATION.destination
    destinations: Mapping[str, str] = field(default_factory=dict)
    """Destination wording by route or reuse scheme name ([organisation.destinations])."""
    data_backed_up: str = "unknown"
    tsa_url: str | None = None
    tsa_timeout: float = 10.0
    demo: bool = False
    source: str = str(DEFAULT_CONFIG_PATH)
    """The configuration file the settings came from (named when no organisation is configured)."""
    directory: str | None = None
    """Where signed documents are written; None: ``certificates`` in the station's state directory."""

    def destination_for(self, route: str | None) -> str:
        """The destination wording for a job's route or scheme, else the default wording."""
        return self.destinations.get(route or "", self.destination)

    def directory_for(self, state_dir: Path) -> Path:
        """The folder this station's certificates and failure reports go to."""
        return Path(self.directory) if self.directory else state_dir / "certificates"

    def to_json(self) -> dict[str, Any]:
        """JSON form (the daemon's request to its job worker)."""
        return {**dataclasses.asdict(self), "destinations": dict(self.destinations)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CertificateSettings:
        """Inverse of :meth:`to_json` (the worker's side of the request)."""
        return cls(**{item.name: data[item.name] for item in dataclasses.fields(cls) if item.name in data})


def settings_from_config(config: StationConfig | None, *, demo: bool = False) -> CertificateSettings:
    """The certificate settings of a station configuration (None: no configuration file was found)."""
    if config is None:
        return CertificateSettings(demo=demo)
    organisation = config.organisation
    tsa = {"tsa_url": config.tsa_url, "tsa_timeout": config.tsa_timeout, "demo": demo, "source": config.source,
           "operator_title": config.certificate_operator_title,
           "directory": None if config.certificate_dir is None else str(config.certificate_dir)}
    if organisation is None:
        return CertificateSettings(**tsa)  # type: ignore[arg-type]
    return CertificateSettings(
        organisation=organisation.name, location=organisation.location, phone=organisation.phone,
        classification_before=organisation.classification_before,
        classification_after=organisation.classification_after, destination=organisation.destination,
        destinations=dict(organisation.destinations), data_backed_up=organisation.data_backed_up,
        **tsa,  # type: ignore[arg-type]
    )


def no_organisation(settings: CertificateSettings) -> str:
    """The one-line reason a job gets no certificate when the station names no organisation."""
    return f"no organisation configured in {settings.source} [organisation]; no certificate issued"
