"""The error tree of the certs package (a twin of ``agent.errors.CertificateError``, not an import of it).

::

    CertificateError              code "certificate_error"
     ├── RecordError              code "bad_record"        the record is malformed (type, key, value)
     ├── PkiError                 code "pki_error"         CA directory or station PKI problem
     │    └── NoSignerConfigured  code "no_signer"         the station has no key/certificate yet
     ├── FontsMissing             code "fonts_missing"     DejaVu TTF fonts not found for rendering
     ├── SigningError             code "signing_failed"    pyHanko could not sign or write the PDF
     │    └── ExtendRefused       code "extend_refused"    (certs.ltv) the document cannot be extended
     ├── TrustBundleError         code "bad_trust_bundle"  the partner's bundle is unusable
     └── TsaError                 code "tsa_unusable"      (certs.tsa) the TSA's key or certificate is unusable

Every error carries a short stable ``code`` for ``--json`` output; :data:`CODES` registers each one
with the one class that declares it (a second class declaring a taken code is a ``TypeError`` at
import), as ``agent.errors.CODES`` does for the agent, without importing it. A certificate that fails
verification is *not* an exception: :func:`certs.verify.verify_file` returns a report saying why.
"""

from __future__ import annotations

from typing import Any

CODES: dict[str, type[CertificateError]] = {}
"""Every certs error code → the one class that declares it."""


class CertificateError(Exception):
    """Base of every error the certs package raises on purpose."""

    code = "certificate_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            held = CODES.get(cls.code)
            if held is not None and (held.__module__, held.__qualname__) != (cls.__module__, cls.__qualname__):
                raise TypeError(f"error code {cls.code!r} of {cls.__module__}.{cls.__qualname__} is already "
                                f"{held.__module__}.{held.__qualname__}'s")
            CODES[cls.code] = cls

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        """The stable error object used by ``--json`` output."""
        return {"code": self.code, "message": self.message}


class RecordError(CertificateError):
    """A sanitisation record is malformed: unknown or missing key, wrong type, impossible value."""

    code = "bad_record"


class PkiError(CertificateError):
    """A CA directory, station key or certificate is missing, malformed or inconsistent."""

    code = "pki_error"


class NoSignerConfigured(PkiError):
    """The station has no signing key and certificate installed (run ``pki issue-station``)."""

    code = "no_signer"


class FontsMissing(CertificateError):
    """The DejaVu TrueType fonts needed to embed fonts in the PDF are not installed."""

    code = "fonts_missing"


class SigningError(CertificateError):
    """Rendering succeeded but the PDF could not be signed or written."""

    code = "signing_failed"


class TrustBundleError(CertificateError):
    """The trust bundle (CA certificate + CRL) is missing, malformed, inconsistent or out of date."""

    code = "bad_trust_bundle"


CODES[CertificateError.code] = CertificateError
