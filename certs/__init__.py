"""Certificates of sanitisation: a library of its own, importable on any OS, with nothing from ``agent``.

Modules:

* :mod:`certs.record` — the typed record (NIST SP 800-88 App. G fields plus evidence); its
  canonical JSON and SHA-256 are its identity.
* :mod:`certs.render` — the A4 PDF (reportlab, embedded DejaVu fonts, QR code, demo watermark).
* :mod:`certs.issue` — render, embed the record, sign (PAdES, pyHanko), write atomically.
* :mod:`certs.pki` — organisation CA, station certificates, revocation (CRL), trust bundle.
* :mod:`certs.verify` — the partners' verifier: one file or a folder against a trust bundle.
* :mod:`certs.structure` — byte-exact signature structure and revision analysis (our parser decides).
* :mod:`certs.errors` — the ``CertificateError`` tree.
* :mod:`certs.samples` — example records for demonstrations, tests and the benchmark.
"""
