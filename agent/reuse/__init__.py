"""Reuse eligibility: host devices, schemes as data, health gates, sign-offs, destruction records, manifests.

The flow at the station (each step recorded in the registry's SQLite file and in the hash-chained
audit log, :mod:`agent.audit.log`)::

    intake / host add   a host device (asset tag, make, model, serial) and the drives it held
    wipe (jobs)         each drive sanitised, verified and certified (agent.jobs.certify)
    health              SMART reading per drive (smartctl -j), or "not applicable" for virtual media
    attest              people check what software cannot (BIOS password, MDM, labels)
    validate            an accountable person accepts or rejects certificates in a signed statement (NIST Rev. 2)
    eligibility         per scheme: eligible, or every reason not; route reuse:<scheme> | destroy | hold
    destroy-record      signed destruction report for a device that cannot be reused
    manifest create     signed batch manifest + JSON + certificates for the partner

Modules: :mod:`~agent.reuse.schemes` (TOML rules), :mod:`~agent.reuse.health` (smartctl parser and
gate), :mod:`~agent.reuse.store` (tables), :mod:`~agent.reuse.eligibility` (the decision),
:mod:`~agent.reuse.service` (operations), :mod:`~agent.reuse.demo` (the demo's reuse part).
Imports from :mod:`agent.store`, :mod:`agent.jobs`, :mod:`agent.audit` and :mod:`certs`; nothing
below imports from here.
"""
