"""The real daemon fixture for the bay wall's browser tests (the shared browser harness is web-core's)."""

from tests.integration.daemon.conftest import station  # noqa: F401  (a fixture: imported to be found here)
