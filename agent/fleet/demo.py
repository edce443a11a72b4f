"""``wipe-agent demo --fleet``: two demo stations into a local fleet on PostgreSQL, and the programme summary.

Each station runs the whole station demo (four throw-away loop drives wiped, verified, certified; three
demo laptops decided: two to the demo schools scheme in a signed manifest, one destroyed) under one demo
organisation CA. Then a throw-away PostgreSQL cluster is started, the demo asset register imported, a fleet
service started on loopback with its TLS server certificate, and each station forwards its outbox to it
over mutual TLS with its own TLS client certificate — the same code paths as a real fleet. The fleet
verifies every record (it accepts the DEMONSTRATION certificates only because it is a demo fleet) and the
demo prints the programme: six laptops, four allocated to a manifest, two destroyed. Nothing real is
touched; the database and the CA's keys are removed at the end, the stations' results are kept unless
``--discard``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from agent.cli.output import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, print_json, printable
from agent.fleet.localdb import PostgresServer

STATIONS = (("demo-station-a", "DEMO-A-LAPTOP-"), ("demo-station-b", "DEMO-B-LAPTOP-"))
EXPECTED = {"allocated": 4, "destroyed": 2}


def _refuse(message: str, as_json: bool) -> int:
    if as_json:
        print_json({"error": {"code": "bad_config", "message": message}})
    else:
        click.echo(f"wipe-agent: error: {message}", err=True)
    return EXIT_REFUSED


def _register(path: Path) -> Path:
    due = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    lines = ["asset_tag,make,model,serial,type,department,due_date"]
    for _, prefix in STATIONS:
        for letter in "ABC":
            host = f"{prefix}{letter}"
            lines.append(f"{host},Demo,Virtual laptop (demonstration),{host}-SN,laptop,Demonstration,{due}")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def run_fleet_demo(*, as_json: bool, size_mib: int, discard: bool) -> int:
    """Run the fleet demo; returns the exit code."""
    import os

    from agent.cli.demo import demo_size_problem, make_demo_pki, run_demo
    from agent.fleet.localdb import unavailable_reason

    problem = demo_size_problem(size_mib)
    if problem is None and os.geteuid() != 0:
        problem = "the demo needs root: it creates loop devices (try: sudo wipe-agent demo --fleet)"
    if problem is None:
        reason = unavailable_reason()
        if reason is not None:
            problem = (f"demo --fleet needs a local PostgreSQL: {reason}; 'sudo bash scripts/demo.sh --fleet' "
                       "installs it")
    if problem is not None:
        return _refuse(problem, as_json)
    say = (lambda text: None) if as_json else click.echo
    work = Path(tempfile.mkdtemp(prefix="wipe-agent-fleet-demo-work-"))
    results = Path(tempfile.mkdtemp(prefix="wipe-agent-fleet-demo-"))
    database: PostgresServer | None = None
    outcome: dict[str, Any] = {"stations": {}}
    ok = True
    try:
        pki = make_demo_pki(work, results / "trust-bundle.pem")
        for station, prefix in STATIONS:
            say(f"\n=== demo station {station} (assets {prefix}A, B, C) ===")
            captured = io.StringIO()
            with contextlib.redirect_stdout(captured) if as_json else contextlib.nullcontext():
                code = run_demo(as_json=as_json, size_mib=size_mib, state_dir=str(results / station), discard=False,
                                station_id=station, pki=pki, prefix=prefix)
            outcome["stations"][station] = json.loads(captured.getvalue()) if as_json else {"exit": code}
            ok = ok and code == EXIT_OK
        if not ok:
            say("\nDEMO FAILED at a station; the fleet part is skipped.")
            return EXIT_FAILED
        database = PostgresServer()  # owned here: stopped in the finally below whatever the fleet part raises
        database.start()
        outcome["fleet"] = _fleet(database, work, results, pki.ca_dir, pki.bundle, say)
        ok = outcome["fleet"]["ok"]
    finally:
        if database is not None:
            database.stop()
        shutil.rmtree(work, ignore_errors=True)
        if discard:
            shutil.rmtree(results, ignore_errors=True)
    outcome["ok"] = ok
    outcome["results_dir"] = None if discard else str(results)
    if as_json:
        print_json(outcome)
    else:
        say(f"\n{'The fleet holds every record of both stations, verified.' if ok else 'FLEET DEMO FAILED.'}")
        if not discard:
            say(f"Results kept in {results}: each station's registry and DEMONSTRATION documents, trust-bundle.pem")
    return EXIT_OK if ok else EXIT_FAILED


def _fleet(server: PostgresServer, work: Path, results: Path, ca_dir: Path, bundle: Path,
           say: Any) -> dict[str, Any]:
    from agent.fleet.assets import import_register
    from agent.fleet.client import FleetClient
    from agent.fleet.compliance import exceptions
    from agent.fleet.database import FleetDatabase
    from agent.fleet.outbox import Outbox
    from agent.fleet.programme import summary
    from agent.fleet.sampling import draw
    from agent.fleet.service import make_server
    from agent.store.registry import Registry
    from certs import pki
    from certs.verify import load_trust_bundle

    say("\n=== the fleet ===")
    dsn = server.create_database("wipe_fleet")
    say(f"A throw-away PostgreSQL server (socket {server.socket_dir}), database wipe_fleet")
    pki.issue_tls_server(ca_dir, work / "fleet-tls", ["127.0.0.1"])
    with FleetDatabase(dsn) as fleet:
        imported = import_register(fleet, _register(work / "register.csv"))
    say(f"Asset register imported: {imported.rows} demo laptops")
    service = make_server(dsn, work / "fleet-tls", load_trust_bundle(bundle), "127.0.0.1", 0, accept_demo=True)
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{service.server_address[1]}"
    say(f"Fleet service on {url} (mutual TLS; a demo fleet: it accepts DEMONSTRATION certificates)")
    pushed: dict[str, Any] = {}
    try:
        for station, _ in STATIONS:
            state = results / station
            pki.issue_tls_client(ca_dir, station, state)
            registry = Registry(state).open()
            try:
                result = Outbox(registry, station).push(FleetClient(url, state / "pki"))
            finally:
                registry.close()
            pushed[station] = result.to_json()
            say(f"  {station}: {result.sent} records forwarded, {result.accepted} accepted, {result.refused} refused")
    finally:
        service.shutdown()
        service.server_close()
    with FleetDatabase(dsn) as fleet:
        with fleet.transaction() as db:
            sample = draw(db, 50, "demo")
        programme = summary(fleet.db)
        found = exceptions(fleet.db)
        documents: dict[str, dict[str, int]] = {}
        for station, kind, count in fleet.db.execute(
                "SELECT station_id, kind, count(*) FROM fleet_documents GROUP BY 1, 2 ORDER BY 1, 2").fetchall():
            documents.setdefault(str(station), {})[str(kind)] = int(count)
        fleet.db.commit()
    say(f"Programme: {programme['total']} assets, {programme['done']} done ({programme['percent_done']}%): "
        + ", ".join(f"{state} {count}" for state, count in sorted(programme["states"].items())))
    for station, count in sorted(programme["jobs_by_station"].items()):
        say(f"  {printable(station)}: {count} jobs")
    say(f"Fleet-wide sample (50 %, seed 'demo'): {sample['drawn']} of {sample['population']} sanitised drives still "
        "on site (the others left in manifests or were destroyed)")
    say(f"Exceptions: {found['held']['count']} held, {found['interrupted']['count']} interrupted, "
        f"{found['certificate_missing']['count']} certificates missing")
    refused = sum(item["refused"] for item in pushed.values())
    # every laptop left: four in the manifests, two destroyed, so no drive is left on site to sample
    ok = (refused == 0 and programme["states"] == EXPECTED and found["certificate_missing"]["count"] == 0
          and sample["population"] == 0)
    for station, kinds in documents.items():
        listed = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
        say(f"  documents verified and kept for {station}: {listed}")
    return {"ok": ok, "pushed": pushed, "programme": programme, "documents": documents,
            "sample": {key: sample[key] for key in ("drawn", "population", "seed")},
            "exceptions": {key: found[key]["count"] for key in ("held", "interrupted", "certificate_missing",
                                                                "overdue")}}
