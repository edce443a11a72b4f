"""Verifying the documents of a batch in parallel, before the batch's transaction.

Verifying a signed PDF (PAdES signature, certificate path, CRL, RFC 3161 timestamp) is pure Python
work of tens of milliseconds, held by the GIL; on a fleet host it is most of what ingest costs. A
:class:`DocumentVerifier` runs :func:`certs.verify.verify_data` — the partners' verifier, unchanged —
in worker processes (``forkserver``: never a fork of the threaded service), one document per task,
and answers by the SHA-256 of the bytes, so what the transaction applies is exactly what was checked.
Nothing about trust moves: the workers get the same trust bundle (as DER, re-read in each worker) and
the same verification time, and the ingest applies the report exactly as it would its own. A batch
with fewer than two documents, one verifier worker, or a broken pool verifies in this process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

if TYPE_CHECKING:
    from certs.verify import VerificationReport


_BUNDLE: Any = None  # the worker's own trust bundle


def _bundle_parts(bundle: Any) -> tuple[bytes, bytes, tuple[bytes, ...]] | None:
    if bundle is None:
        return None
    return (bundle.ca_certificate.public_bytes(Encoding.DER), bundle.crl.public_bytes(Encoding.DER),
            tuple(tsa.public_bytes(Encoding.DER) for tsa in bundle.tsa_certificates))


def _start_worker(parts: tuple[bytes, bytes, tuple[bytes, ...]] | None) -> None:
    global _BUNDLE
    if parts is None:
        _BUNDLE = None
        return
    from certs.pki import TrustBundle

    ca, crl, tsas = parts
    # the bundle was parsed and checked (CRL signature, TSA profile) by the service; these are its own objects
    _BUNDLE = TrustBundle(x509.load_der_x509_certificate(ca), x509.load_der_x509_crl(crl),
                          tuple(x509.load_der_x509_certificate(item) for item in tsas))


def _verify(key: str, data: bytes, bundle: Any, now: datetime | None) -> VerificationReport | str:
    from certs.verify import verify_data

    try:
        return verify_data(Path(key), data, bundle, now=now)
    except Exception as error:  # the bytes are hostile until verified: a verifier failure refuses this one
        return f"{type(error).__name__}: {error}"


def _verify_in_worker(key: str, data: bytes, now: datetime | None) -> VerificationReport | str:
    return _verify(key, data, _BUNDLE, now)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DocumentVerifier:
    """``verify_many`` documents of one batch; ``workers`` processes (default: the CPUs, at most 8)."""

    def __init__(self, bundle: Any, workers: int | None = None) -> None:
        self.bundle = bundle
        self.workers = max(1, min(8, workers if workers is not None else (os.cpu_count() or 1)))
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"),
                                             initializer=_start_worker, initargs=(_bundle_parts(self.bundle),))
        return self._pool

    def verify_one(self, key: str, data: bytes, now: datetime | None) -> VerificationReport | str:
        return _verify(key, data, self.bundle, now)

    def verify_many(self, documents: list[tuple[str, bytes]], now: datetime | None) -> dict[str, Any]:
        """{sha256 of the bytes: report or the verifier's failure} for every distinct document."""
        distinct = {digest(data): (key, data) for key, data in documents}
        if len(distinct) < 2 or self.workers < 2:
            return {sha: self.verify_one(key, data, now) for sha, (key, data) in distinct.items()}
        try:
            futures: dict[str, Future[Any]] = {sha: self._executor().submit(_verify_in_worker, key, data, now)
                                               for sha, (key, data) in distinct.items()}
            return {sha: future.result() for sha, future in futures.items()}
        except BrokenProcessPool:  # a worker died (out of memory, killed): this batch is verified here
            self.close()
            return {sha: self.verify_one(key, data, now) for sha, (key, data) in distinct.items()}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
