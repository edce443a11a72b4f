"""The station's console: the bay wall, live, read from the daemon's Unix-socket API (the daemon keeps no network).

**What a tile says.** One tile per configured bay, built here (:func:`build_wall`) from the daemon's
``/v1/status`` and nothing else: the bay's ``state`` is the state of the drive in the bay *now*
(:mod:`agent.daemon.bays`: never an earlier drive's outcome), and "SAFE TO PULL" / "DO NOT PULL" is
the daemon's ``pull``/``safe_to_pull``, never derived here or in the browser. While the daemon cannot
be reached, every tile says its state is unknown and shows no pull advice at all (a wall that kept
showing the last "SAFE TO PULL" would be lying about a drive the daemon may be writing).

**Live updates.** One :class:`WallFeed` per process polls ``/v1/status`` every ``POLL_SECONDS`` (an
:class:`~agent.api.client.ApiClient` in a thread) while at least one browser listens, whatever the
number of browsers. ``GET /events`` is a server-sent event stream: at connect the whole wall, then
only the tiles whose content changed, each rendered here as an HTML fragment (the same template as
the page, autoescaped, per session: an operator's tile carries its actions and CSRF token); a comment
every ``HEARTBEAT_SECONDS`` keeps proxies from closing it. At most ``MAX_CLIENTS`` streams are open at
once, at most ``PER_CLIENT`` from one address, and a quarter of the places are kept for signed-in
sessions (more are refused 503): a kiosk viewer, who needs no sign-in, cannot take every live view.
``static/live.js`` swaps the fragments in; without JavaScript the page refreshes itself
(``<noscript>`` meta refresh). A daemon restart shows "daemon restarting… reconnecting" and the wall
recovers when it answers again; a web restart is EventSource's own reconnect.

**Who acts (the delegation decision).** The web console is one Unix user for many people, so the
daemon cannot tell them apart by ``SO_PEERCRED``. The console therefore names the signed-in web
account (name and title) in its start and cancel calls (``"console": {"account", "title"}``), and the
daemon honours that only when the caller's uid is the station's ``[web] console_user``
(:meth:`agent.daemon.station.Station.console_stamp`): the job is recorded as ``NAME (TITLE) via the web
console, uid U`` and its certificate names NAME with TITLE. Any other caller naming an account — a
member of ``wipe-operators`` included — is refused 403, so nobody can start a job in another person's
name; without ``[web] console_user`` no call can. Only the operator and admin roles see the actions;
the profile offered is the bay's configured one or the default for the drive's media, and a posted
profile outside that list is refused here before the daemon is asked.

**Audit.** :class:`DaemonAudit` is the console's :class:`~agent.web.server.AuditSink`: each sign-in,
sign-out and action is a ``web-*`` entry appended by the daemon to the station's own hash-chained log
(``POST /v1/console/audit``, same uid rule). An entry that cannot be written refuses the action.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agent.api.client import ApiClient, RemoteError
from agent.cli.bay_view import QUIET_WARNING_SECONDS, RECONNECTING, duration
from agent.cli.output import printable
from agent.config import StationConfig
from agent.errors import AgentError
from agent.web.accounts import Accounts, Role
from agent.web.render import SESSION, environment, render
from agent.web.server import ANYONE, EVERYONE, Console, session_of
from agent.web.sessions import ABSOLUTE, IDLE, Session, fingerprint

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15.0
MAX_CLIENTS = 32
PER_CLIENT = 4          # streams one client address may hold open (a wall display needs one)
STATUS_TIMEOUT = 2.0  # a status poll; a start waits for the worker's checks (the daemon answers within 7 s)
ACTION_TIMEOUT = 10.0
FRESH_SECONDS = 1.0  # the page uses the feed's snapshot when it is this recent, else asks the daemon itself
SERIAL_TAIL = 14
ACTORS = frozenset({Role.OPERATOR, Role.ADMIN})
log = logging.getLogger("wipe-agent.web")

# the state in words and a shape: colour is never the only signal
STATES: dict[str, tuple[str, str]] = {
    "empty": ("Empty", "○"), "present": ("Not sanitised", "●"), "waiting": ("Waiting: busy", "◔"),
    "queued": ("Queued", "◔"), "starting": ("Starting", "▶"), "running": ("Running", "▶"),
    "sanitised": ("Sanitised", "✔"), "failed": ("Failed", "✖"), "refused": ("Refused", "⚠"),
    "interrupted": ("Needs re-run", "↻"), "protected": ("Protected", "⊘"), "unknown": ("Unknown", "?"),
}
PULL = {"safe to pull": ("safe", "SAFE TO PULL", "↑"), "do not pull": ("danger", "DO NOT PULL", "■")}


class DaemonAudit:
    """The console's audit sink: ``web-*`` entries in the station's audit chain, written by the daemon."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        # on the event loop: a Unix-socket round trip of a millisecond; a daemon that is down fails at once
        self.client.post("/v1/console/audit", {"kind": kind, "subject": subject, "data": data})


@dataclass(frozen=True)
class Tile:
    """One bay as the wall shows it (everything already text: the template only places it)."""

    name: str
    state: str  # the daemon's BayState value, or "unknown" while the daemon cannot be reached
    label: str
    icon: str
    pull: str  # "safe", "danger", "none" (empty bay) or "unknown"
    pull_text: str
    pull_icon: str
    model: str | None
    serial: str | None  # its tail
    asset: str | None
    phase: str | None
    percent: float | None
    percent_text: str | None
    eta: str | None
    notes: tuple[str, ...]
    active: bool  # a job is queued or running: cancel is offered
    startable: bool  # a drive and no job: start is offered
    profiles: tuple[str, ...]

    @property
    def dim(self) -> bool:
        return self.state == "empty"

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True)
class Wall:
    """The whole wall at one moment."""

    tiles: tuple[Tile, ...]
    banner: str | None  # the daemon unreachable, or stopping
    notices: tuple[str, ...]  # unbayed drives and the daemon's own notes
    connected: bool
    station: str


def serial_tail(serial: str | None) -> str:
    """The end of a serial is what tells two drives of one model apart."""
    if not serial:
        return "-"
    return serial if len(serial) <= SERIAL_TAIL else "…" + serial[-(SERIAL_TAIL - 1):]


def allowed_profiles(config: StationConfig, bay: str, media: str | None) -> tuple[str, ...]:
    """What the console may offer (and accept) for ``bay``: its configured profile, else the media's default."""
    configured = next((item for item in config.bays if item.name == bay), None)
    if configured is None:
        return ()
    if configured.profile:
        return (configured.profile,)
    default = config.default_profiles.get(media or "")
    return (default,) if default else ()


def build_tile(bay: dict[str, Any], config: StationConfig | None, *, connected: bool = True) -> Tile:
    """The tile of one ``/v1/status`` bay (``connected`` False: the last answer, shown as unknown now)."""
    name = printable(bay.get("name", "?"))
    drive, job, outcome = bay.get("drive"), bay.get("job"), bay.get("outcome")
    state = str(bay.get("state") or ("empty" if drive is None else "present"))
    label, icon = STATES.get(state, (state.capitalize(), "●"))
    notes: list[str] = []
    if bay.get("needs_rerun") and state not in ("running", "starting", "queued"):
        label = "Needs re-run"
    reason = bay.get("reason")
    if reason and state not in ("running", "starting"):
        notes.append(printable(reason))
    if state == "sanitised" and outcome and not outcome.get("certificate"):
        notes.append(printable(outcome.get("warning") or "no certificate (this station has no signing key)"))
    if outcome and outcome.get("drive_route") == "destroy":
        notes.append("route: destroy")
    recorded = bay.get("drive_route") or {}
    if recorded.get("route") == "destroy" and not (outcome and outcome.get("drive_route") == "destroy"):
        notes.append(printable(f"serial on record for destruction ({recorded.get('reason')}): check the drive"))
    phase = percent = percent_text = eta = None
    if job:
        phase = printable(job.get("phase") or "")
        overall = job.get("overall_progress")
        if overall is not None:
            percent = round(float(overall) * 100, 1)
            percent_text = f"{percent:.1f} %"
        if job.get("eta_seconds") is not None:
            eta = duration(job["eta_seconds"])
        quiet = job.get("quiet_seconds")
        if quiet is not None and quiet >= QUIET_WARNING_SECONDS:
            notes.append(f"no word from the job for {quiet / 60:.0f} min")
    pull, pull_text, pull_icon = PULL.get(str(bay.get("pull")), ("none", "", ""))
    if pull == "safe" and bay.get("safe_to_pull") is not True:  # the two fields disagree: trust neither
        pull, pull_text, pull_icon = "unknown", "ASK BEFORE PULLING", "?"
    if not connected:
        label, icon = STATES["unknown"]
        state, pull, pull_text, pull_icon = "unknown", "unknown", "WAIT: UNKNOWN", "?"
        notes = ["the station daemon is not answering: this tile is not live"]
        phase = percent = percent_text = eta = None
    model = serial = None
    if drive:
        model, serial = printable(drive.get("model") or "drive"), printable(serial_tail(drive.get("serial")))
    asset = bay.get("asset_tag")
    profiles = allowed_profiles(config, str(bay.get("name")), drive.get("media") if drive else None) if config else ()
    return Tile(name=name, state=state, label=label, icon=icon, pull=pull, pull_text=pull_text, pull_icon=pull_icon,
                model=model, serial=serial, asset=printable(asset) if asset else None, phase=phase or None,
                percent=percent, percent_text=percent_text, eta=eta, notes=tuple(notes),
                active=connected and job is not None,
                startable=connected and drive is not None and job is None and bool(profiles), profiles=profiles)


def build_wall(status: dict[str, Any] | None, config: StationConfig | None, *, connected: bool,
               problem: str | None = None) -> Wall:
    """The wall for the latest ``/v1/status`` (None: never reached) and whether it is live."""
    bays = (status or {}).get("bays", [])
    if not bays and config is not None:  # never reached: the configured bays, each unknown
        bays = [{"name": bay.name, "drive": None, "state": "empty"} for bay in config.bays]
        connected = False if status is None else connected
    tiles = tuple(build_tile(bay, config, connected=connected) for bay in bays)
    banner = None
    if not connected:
        banner = f"{RECONNECTING} ({problem})" if status is not None else (
            f"the station daemon is not reachable ({problem}): retrying")
    elif status and status.get("stopping"):
        banner = "the station is shutting down: no new jobs start"
    notices: list[str] = []
    for drive in (status or {}).get("unbayed_drives", []) if connected else []:
        device = printable(drive.get("device") or "?")
        if drive.get("note"):
            notices.append(f"{device}: {printable(drive['note'])}")
        else:
            notices.append(f"{device}: outside every bay, never touched")
    station = printable((status or {}).get("station_id") or (config.station_id if config else "?"))
    return Wall(tiles, banner, tuple(notices), connected, station)


def grid_for(count: int) -> tuple[int, int]:
    """(columns, rows) that show ``count`` tiles on one landscape screen (more than 24 scroll)."""
    for limit, columns in ((1, 1), (2, 2), (4, 2), (6, 3), (8, 4), (12, 4), (16, 4), (20, 5), (24, 6)):
        if count <= limit:
            return columns, max(1, -(-count // columns))
    return 6, -(-count // 6)


class WallFeed:
    """One poll of the daemon for every browser; wakes the streams when what a tile shows has changed."""

    def __init__(self, fetch: Callable[[], dict[str, Any]], config: StationConfig | None, *,
                 interval: float = POLL_SECONDS, max_clients: int = MAX_CLIENTS, per_client: int = PER_CLIENT) -> None:
        self.fetch, self.config, self.interval, self.max_clients = fetch, config, interval, max_clients
        self.per_client = per_client
        self.reserved = max_clients // 4
        """Places only signed-in sessions may take: anonymous kiosk viewers cannot fill the wall's every stream."""
        self.anonymous = 0
        self._by_client: dict[str, int] = {}
        self.status: dict[str, Any] | None = None
        self.connected = False
        self.problem: str | None = "not asked yet"
        self.polled_at = 0.0
        self.wall = build_wall(None, config, connected=False, problem=self.problem)
        self.version = 0
        self.polls = 0
        self.clients = 0
        self._digest = self._wall_digest(self.wall)
        self._changed = asyncio.Event()
        self._demand = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _wall_digest(wall: Wall) -> str:
        return hashlib.sha256(repr(wall).encode()).hexdigest()

    async def poll(self) -> None:
        """Ask the daemon once; a new version when the wall's content changed."""
        try:
            status = await asyncio.to_thread(self.fetch)
        except AgentError as error:
            self.connected, self.problem = False, error.message
        else:
            self.status, self.connected, self.problem = status, True, None
        self.polls += 1
        self.polled_at = time.monotonic()
        wall = build_wall(self.status, self.config, connected=self.connected, problem=self.problem)
        digest = self._wall_digest(wall)
        if digest != self._digest:
            self.wall, self._digest = wall, digest
            self.version += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def fresh(self) -> Wall:
        """The wall, asking the daemon first unless the feed polled it a moment ago."""
        if time.monotonic() - self.polled_at > FRESH_SECONDS:
            await self.poll()
        return self.wall

    async def wait(self, version: int, timeout: float) -> bool:
        """Until the version differs from ``version`` (True) or ``timeout`` passes (False)."""
        if self.version != version:
            return True
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def join(self, client: str = "", *, signed_in: bool = True) -> bool:
        """A stream opens; False when ``max_clients`` are open already, when ``client`` holds ``per_client``, or
        for a viewer who is not signed in when only the places kept for signed-in sessions are left."""
        if (self.clients >= self.max_clients or self._by_client.get(client, 0) >= self.per_client
                or (not signed_in and self.anonymous >= self.max_clients - self.reserved)):
            return False
        self.clients += 1
        self.anonymous += 0 if signed_in else 1
        self._by_client[client] = self._by_client.get(client, 0) + 1
        self._demand.set()
        return True

    def leave(self, client: str = "", *, signed_in: bool = True) -> None:
        self.clients = max(0, self.clients - 1)
        if not signed_in:
            self.anonymous = max(0, self.anonymous - 1)
        held = self._by_client.get(client, 0) - 1
        if held > 0:
            self._by_client[client] = held
        else:
            self._by_client.pop(client, None)
        if not self.clients:
            self._demand.clear()

    async def run(self) -> None:
        """Poll while anyone listens."""
        while True:
            await self._demand.wait()
            started = time.monotonic()
            try:
                await self.poll()
            except Exception:  # a bug in one poll never ends the feed
                log.exception("bay wall poll failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="bay-wall-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _alive(console: Console, session: Session) -> bool:
    """Whether ``session`` is still signed in, without restarting its idle clock (an open wall is not activity),
    and its account still as it was (an open stream makes no request that would notice a removal or a change)."""
    now = console.sessions.clock()
    if now - session.seen > IDLE or now - session.created > ABSOLUTE:
        return False
    console._reload_accounts()  # one stat, as every request does
    account = None if console.accounts_problem else console.accounts.get(session.name)
    if account is None or fingerprint(account) != session.fingerprint:
        return False  # the session's next request signs it out (and records why)
    held = getattr(console.sessions, "_sessions", None)  # dropped at sign-out or by a changed account
    return held is None or held.get(session.id) is session


def _render_tile(tile: Tile, session: Session | None) -> str:
    actor = session is not None and session.role in ACTORS
    return environment().get_template("station_tile.html").render(
        tile=tile, actor=actor, csrf=session.csrf if session is not None else "")


def _render_notices(wall: Wall) -> str:
    return environment().get_template("station_notices.html").render(wall=wall)


def _event(data: dict[str, Any], event_id: int) -> bytes:
    return f"event: wall\nid: {event_id}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def station_console(config: StationConfig, *, accounts: Accounts, kiosk: bool, secure: bool,
                    client: ApiClient | None = None, interval: float = POLL_SECONDS,
                    max_clients: int = MAX_CLIENTS, heartbeat: float = HEARTBEAT_SECONDS,
                    per_client: int = PER_CLIENT) -> Console:
    """The station's console: the bay wall (``/``), its live stream (``/events``), start and cancel."""
    status_client = client or ApiClient(config.api_socket, timeout=STATUS_TIMEOUT)
    action_client = ApiClient(status_client.socket_path, timeout=ACTION_TIMEOUT)
    console = Console(kind="station", title=f"station {config.station_id}", accounts=accounts,
                      audit=DaemonAudit(ApiClient(status_client.socket_path, timeout=STATUS_TIMEOUT)),
                      secure=secure, home="/")
    feed = WallFeed(lambda: status_client.get("/v1/status"), config, interval=interval, max_clients=max_clients,
                    per_client=per_client)
    console.wall_feed = feed  # type: ignore[attr-defined]  # for tests and the bench
    messages: dict[str, str] = {}  # session id → the outcome of its last action (shown once)
    viewers = ANYONE if kiosk else EVERYONE
    bay_names = {bay.name for bay in config.bays}

    async def wall_page(request: web.Request) -> web.StreamResponse:
        wall = await feed.fresh()
        session: Session | None = request.get(SESSION)
        columns, rows = grid_for(len(wall.tiles))
        message = messages.pop(session.id, None) if session is not None else None
        return render(request, "station_wall.html", wall=wall, columns=columns, rows=rows, message=message,
                      tiles=[(tile, _render_tile(tile, session)) for tile in wall.tiles],
                      notices=_render_notices(wall))

    async def events(request: web.Request) -> web.StreamResponse:
        session: Session | None = request.get(SESSION)
        client_address = request.remote or "unknown"
        if not feed.join(client_address, signed_in=session is not None):
            raise web.HTTPServiceUnavailable(text="too many live views are open (from this address, or without "
                                                  "sign-in): try later")
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
            "Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"})
        sent: dict[str, str] = {}
        sent_notices: str | None = None
        sent_banner: Any = ()
        names: tuple[str, ...] = ()
        try:
            await response.prepare(request)
            await response.write(b"retry: 1000\n\n")
            if feed.polled_at == 0.0 or time.monotonic() - feed.polled_at > FRESH_SECONDS:
                await feed.poll()
            while True:
                version, wall = feed.version, feed.wall
                if session is not None and not _alive(console, session):
                    break  # signed out or expired: the stream ends with the session (and never keeps it alive)
                current = tuple(tile.name for tile in wall.tiles)
                changed: dict[str, str] = {}
                for tile in wall.tiles:
                    digest = tile.digest()
                    if sent.get(tile.name) != digest:
                        changed[tile.name] = _render_tile(tile, session)
                        sent[tile.name] = digest
                notices = _render_notices(wall)
                data: dict[str, Any] = {"version": version, "connected": wall.connected, "tiles": changed}
                if names and current != names:
                    data["reload"] = True  # the daemon's bays changed: the page is laid out anew
                names = current
                if notices != sent_notices:
                    data["notices"], sent_notices = notices, notices
                if wall.banner != sent_banner:
                    data["banner"], sent_banner = wall.banner, wall.banner
                if changed or len(data) > 3:
                    await response.write(_event(data, version))
                if not await feed.wait(version, heartbeat):
                    await response.write(b": heartbeat\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feed.leave(client_address, signed_in=session is not None)
        return response

    def _reply(request: web.Request, session: Session, ok: bool, message: str) -> web.StreamResponse:
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"ok": ok, "message": message}, status=200 if ok else 409)
        if len(messages) > 1000:  # bounded: outcomes nobody came back to read
            messages.clear()
        messages[session.id] = message
        raise web.HTTPSeeOther("/")

    def _bay(request: web.Request) -> str:
        bay = request.match_info["bay"]
        if bay not in bay_names:
            raise web.HTTPNotFound(text="no such bay at this station")
        return bay

    async def start(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        bay = _bay(request)
        form = await request.post()
        profile = str(form.get("profile", ""))
        status = await asyncio.to_thread(status_client.get, "/v1/status")
        entry: dict[str, Any] = next((item for item in status.get("bays", []) if item.get("name") == bay), {})
        drive = entry.get("drive") or {}
        allowed = allowed_profiles(config, bay, drive.get("media"))
        if profile not in allowed:
            return _reply(request, session, False,
                          f"{bay}: profile {printable(profile[:64])!r} is not offered here ({', '.join(allowed)})")
        client_address = request.remote or "unknown"
        console.record("web-bay-start", bay, {"account": session.name, "role": session.role.value,
                                               "profile": profile, "client": client_address})
        try:
            answer = await asyncio.to_thread(action_client.post, f"/v1/bays/{bay}/start", {
                "profile": profile, "console": {"account": session.name, "title": session.title}})
        except RemoteError as error:
            console.record("web-bay-start-refused", bay, {"account": session.name, "code": error.code,
                                                          "message": error.message})
            return _reply(request, session, False, error.message)
        return _reply(request, session, True, f"{bay}: started ({answer.get('profile')}, "
                                              f"S/N {serial_tail(answer.get('serial'))})")

    async def cancel(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        bay = _bay(request)
        console.record("web-bay-cancel", bay, {"account": session.name, "role": session.role.value,
                                                "client": request.remote or "unknown"})
        try:
            await asyncio.to_thread(action_client.post, f"/v1/bays/{bay}/cancel", {
                "console": {"account": session.name, "title": session.title}})
        except RemoteError as error:
            return _reply(request, session, False, error.message)
        return _reply(request, session, True, f"{bay}: cancelling")

    console.add("GET", "/", wall_page, roles=viewers, nav="Bays")
    console.add("GET", "/events", events, roles=viewers)
    console.add("POST", "/bays/{bay}/start", start, roles=ACTORS)
    console.add("POST", "/bays/{bay}/cancel", cancel, roles=ACTORS)

    async def startup(app: web.Application) -> None:
        feed.start()

    async def cleanup(app: web.Application) -> None:
        await feed.stop()

    console.on_startup.append(startup)
    console.on_cleanup.append(cleanup)
    return console
