"""Reuse eligibility: host devices, schemes as data, health gates, sign-offs, destruction records, manifests.

Imports from :mod:`agent.store`, :mod:`agent.jobs`, :mod:`agent.audit` and :mod:`certs`; nothing
below imports from here.
"""
