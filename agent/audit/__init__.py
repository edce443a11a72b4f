"""Tamper-evident, hash-chained audit log of reuse decisions (see :mod:`agent.audit.log`)."""
