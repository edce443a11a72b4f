"""The daemon fixture (a real ``wipe-agent run`` on loop bays) for the bay wall's tests."""

from tests.integration.daemon.conftest import station  # noqa: F401  (a fixture: imported to be found here)
