"""Object identifiers wipe-agent puts into certificates and checks when it verifies.

The arc is a UUID-derived OID (ITU-T X.667, ``2.25.<uuid>``): unique without registration, and
owned by this project alone, so no other issuer's certificate can carry these values by accident.

* :data:`STATION_SIGNING_EKU` — extended key usage that only ``pki issue-station`` puts in: the
  certificate may sign certificates of sanitisation, failure reports, destruction reports and
  batch manifests. A verifier accepts a document signer only when it carries this EKU.
* :data:`VALIDATOR_SIGNING_EKU` — extended key usage that only ``pki issue-person --role validator``
  puts in: the person may sign validation statements, and nothing else. It is distinct from the
  station EKU so that a validator cannot sign a certificate and a station cannot pose as an officer.
* :data:`FLEET_SIGNING_EKU` — extended key usage that only ``pki issue-fleet`` puts in: the fleet
  service may sign fleet manifests (assets of every station allocated to a partner), and nothing else;
  a station may not sign a fleet manifest, nor the fleet a certificate or a station's document.
* :data:`STATION_CERTIFICATE_POLICY` — certificate policy of station certificates (the same
  statement, as a policy, for readers that show policies rather than EKUs).
"""

from __future__ import annotations

from cryptography.x509.oid import ObjectIdentifier

WIPE_AGENT_ARC = "2.25.9174401842180280801407741351261408017"
"""The project's private arc (a UUID-based OID)."""

STATION_SIGNING_EKU = ObjectIdentifier(f"{WIPE_AGENT_ARC}.1.1")
"""id-kp-wipeAgentStationSigning: may sign wipe-agent documents."""

VALIDATOR_SIGNING_EKU = ObjectIdentifier(f"{WIPE_AGENT_ARC}.1.2")
"""id-kp-wipeAgentValidatorSigning: a validation officer; may sign validation statements only."""

FLEET_SIGNING_EKU = ObjectIdentifier(f"{WIPE_AGENT_ARC}.1.3")
"""id-kp-wipeAgentFleetSigning: the fleet service; may sign fleet manifests only."""

STATION_CERTIFICATE_POLICY = ObjectIdentifier(f"{WIPE_AGENT_ARC}.2.1")
"""Certificate policy: a wipe-agent station certificate issued by the organisation CA."""
