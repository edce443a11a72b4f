"""The organisation's RFC 3161 timestamping authority (HTTP server around :mod:`certs.tsa`)."""
