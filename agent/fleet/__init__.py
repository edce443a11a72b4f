"""The fleet registry: one programme across wipe stations, on PostgreSQL (issue 14).

Stations keep their own registry as the source of truth; the fleet holds the force's asset register and
what stations forward to it. This package needs ``psycopg`` (the ``fleet`` extra); nothing on a station
imports it.
"""
