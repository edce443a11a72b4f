"""The partners' fleet (tests/integration/web/fleet_partner_kit.py) for the partner and auditor views in the browser;
the browser harness itself is tests/browser/conftest.py."""

from tests.integration.web.fleet_partner_kit import partner_dsn, partner_world  # noqa: F401  (fixtures)
