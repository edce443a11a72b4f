"""The fleet's read API for the force's asset-management system (bearer tokens, scope ``read``).

::

    GET /v1/api/assets/KEY                     an asset by tag or serial: state, scheme, its drives' jobs
    GET /v1/api/assets/KEY/documents           the certificates and reports the fleet holds for it
    GET /v1/api/documents/STATION/DOCUMENT_ID  one document's PDF (application/pdf)
    GET /v1/api/manifests                      manifests the stations recorded, with their assets
    GET /v1/api/summary                        the programme summary
    GET /v1/api/report?from=YYYY-MM-DD&to=YYYY-MM-DD   the report's data (JSON)

Tokens are made with ``wipe-agent fleet token create NAME``: 32 random bytes shown once; the fleet
keeps only their SHA-256, compared in constant time. A station's TLS client certificate opens the
ingest routes and nothing here; a token opens these and never the ingest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from agent.fleet.assets import asset_by_key
from agent.fleet.errors import FleetInputError
from agent.fleet.programme import summary
from agent.fleet.report import build

TOKEN_PREFIX = "wfa_"
SCOPES = ("read",)


class ApiRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_token(db: Any, name: str, scopes: tuple[str, ...] = ("read",)) -> str:
    """Create token ``name``; returns the secret (only its hash is stored)."""
    if not name.strip() or len(name) > 64 or not name.isprintable():
        raise FleetInputError("a token name is 1 to 64 printable characters")
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise FleetInputError(f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = db.execute("INSERT INTO fleet_tokens (name, sha256, scopes) VALUES (%s, %s, %s) "
                     "ON CONFLICT (name) DO NOTHING RETURNING name",
                     (name, hashlib.sha256(secret.encode()).hexdigest(), ",".join(scopes))).fetchone()
    if row is None:
        raise FleetInputError(f"a token named {name!r} exists; revoke it first or choose another name")
    return secret


def revoke_token(db: Any, name: str) -> None:
    row = db.execute("UPDATE fleet_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL "
                     "RETURNING name", (name,)).fetchone()
    if row is None:
        raise FleetInputError(f"no active token named {name!r}")


def list_tokens(db: Any) -> list[dict[str, Any]]:
    return [{"name": row[0], "scopes": row[1].split(","), "created_at": row[2].isoformat(),
             "revoked_at": row[3].isoformat() if row[3] else None,
             "last_used": row[4].isoformat() if row[4] else None}
            for row in db.execute("SELECT name, scopes, created_at, revoked_at, last_used FROM fleet_tokens "
                                  "ORDER BY name").fetchall()]


def authorise(db: Any, header: str | None, scope: str = "read") -> str:
    """The name of the token in ``Authorization: Bearer …``; :class:`ApiRefused` (401/403) otherwise."""
    if not header or not header.startswith("Bearer "):
        raise ApiRefused(401, "unauthorised", "an API token is required (Authorization: Bearer TOKEN)")
    presented = hashlib.sha256(header[len("Bearer "):].strip().encode()).hexdigest()
    found = None
    for name, digest, scopes, revoked in db.execute(
            "SELECT name, sha256, scopes, revoked_at FROM fleet_tokens").fetchall():
        if hmac.compare_digest(str(digest), presented):
            found = (str(name), str(scopes).split(","), revoked)
    if found is None or found[2] is not None:
        db.rollback()
        raise ApiRefused(401, "unauthorised", "unknown or revoked API token")
    if scope not in found[1]:
        db.rollback()
        raise ApiRefused(403, "forbidden", f"the token has no {scope!r} scope")
    db.execute("UPDATE fleet_tokens SET last_used = now() WHERE name = %s", (found[0],))
    db.commit()
    return found[0]


def answer(db: Any, target: str) -> tuple[int, str, Any]:
    """(status, content type, payload) for one GET of the read API (the caller authorised it)."""
    parts = urlsplit(target)
    segments = [unquote(segment) for segment in parts.path.split("/")[3:] if segment]
    try:
        if segments[:1] == ["assets"] and len(segments) in (2, 3):
            asset = find_asset_or_404(db, segments[1])
            if len(segments) == 2:
                jobs = [{"station_id": r[0], "job_id": r[1], "state": r[2], "method": r[3], "model": r[4],
                         "serial": r[5], "finished_at": r[6].isoformat() if r[6] else None, "certificate_id": r[7]}
                        for r in db.execute("SELECT station_id, job_id, state, method, model, serial, finished_at, "
                                            "certificate_id FROM fleet_jobs WHERE upper(asset_tag) = upper(%s) "
                                            "ORDER BY created_at", (asset["asset_tag"],)).fetchall()]
                return 200, "application/json", {**asset, "jobs": jobs}
            if segments[2] == "documents":
                documents = [{"station_id": r[0], "document_id": r[1], "kind": r[2], "sha256": r[3],
                              "signed_at": r[4].isoformat() if r[4] else None,
                              "href": f"/v1/api/documents/{r[0]}/{r[1]}"}
                             for r in db.execute(
                                 "SELECT d.station_id, d.document_id, d.kind, d.sha256, d.signed_at FROM "
                                 "fleet_documents d JOIN fleet_jobs j ON j.station_id = d.station_id AND "
                                 "j.certificate_id = d.document_id WHERE upper(j.asset_tag) = upper(%s) "
                                 "ORDER BY d.signed_at", (asset["asset_tag"],)).fetchall()]
                return 200, "application/json", {"asset_tag": asset["asset_tag"], "documents": documents}
        if segments[:1] == ["documents"] and len(segments) == 3:
            row = db.execute("SELECT pdf FROM fleet_documents WHERE station_id = %s AND document_id = %s",
                             (segments[1], segments[2])).fetchone()
            if row is None:
                raise ApiRefused(404, "not_found", "no such document")
            return 200, "application/pdf", bytes(row[0])
        if segments == ["manifests"]:
            rows = db.execute("SELECT station_id, ref, bool_or(voided), array_agg(asset_tag ORDER BY asset_tag), "
                              "min(at) FROM fleet_asset_facts WHERE kind = 'manifest' GROUP BY 1, 2 "
                              "ORDER BY 5, 1, 2").fetchall()
            return 200, "application/json", {"manifests": [
                {"station_id": r[0], "manifest_id": r[1], "voided": bool(r[2]), "assets": list(r[3]), "at": r[4]}
                for r in rows]}
        if segments == ["summary"]:
            return 200, "application/json", summary(db)
        if segments == ["report"]:
            query = parse_qs(parts.query)
            try:
                start = date.fromisoformat(query.get("from", [""])[0])
                end = date.fromisoformat(query.get("to", [""])[0])
            except ValueError:
                raise ApiRefused(400, "bad_request", "report needs from=YYYY-MM-DD and to=YYYY-MM-DD") from None
            return 200, "application/json", build(db, start, end)
        raise ApiRefused(404, "not_found", f"no such resource: {parts.path}")
    finally:
        db.commit()


def find_asset_or_404(db: Any, key: str) -> dict[str, Any]:
    asset = asset_by_key(db, key)
    if asset is None:
        raise ApiRefused(404, "not_found", "no asset with that tag or serial")
    row = db.execute("SELECT scheme, last_station FROM fleet_assets WHERE asset_tag = %s",
                     (asset.asset_tag,)).fetchone()
    return {**asset.to_json(), "scheme": row[0] if row else None, "last_station": row[1] if row else None}
