"""Fixtures for the certs integration tests: the same PKI world as the unit tests."""

from tests.unit.certs.conftest import world

__all__ = ["world"]
