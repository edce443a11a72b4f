"""The job commands of ``wipe-agent``: drives, wipe, jobs, job, verify-media, profiles, demo.

They lived in main.py; they are here so that main.py (the root group and its table of commands) imports
none of the job stack: each command's module loads only when that command runs or shows its help."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from agent.app import Application
from agent.audit.station import record_configuration
from agent.cli import station_commands
from agent.cli.completion import complete_device, complete_profile
from agent.cli.context import certificate_settings, resolve_device, state_dir, station_config
from agent.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    OneOf,
    fail,
    handle_errors,
    human_size,
    json_option,
    print_json,
    printable,
    write_csv,
)
from agent.config import StationConfig
from agent.discovery import udev
from agent.discovery.guard import Authorisation, Guard
from agent.discovery.medium import capture as capture_medium
from agent.errors import AgentError, ConfigError, DriveNotFound, ProfileError
from agent.jobs.certify import CertificateSettings
from agent.jobs.runner import JobRequest
from agent.jobs.service import JobService, firmware_job
from agent.operators import OperatorStamp, command_line_stamp, invoking_uid, unnamed_text
from agent.policy.profiles import available_profiles, load_profile, load_profile_file
from agent.store.registry import ACTIVE_STATES, FINAL_STATES, JobRow, Registry
from agent.transport.block import BlockDevice
from agent.verify.expectation import expectation_from_spec
from agent.verify.readback import verify
from agent.verify.secondary import MAX_LISTED_EXTENTS, describe_extent, verify_job
from agent.vocabulary import VERIFY_MODES
from certs.errors import RecordError
from certs.pki import StationSigner


def application(ctx: click.Context) -> Application:
    """The CLI's application: the station configuration (if any), with the state directory the
    command line chose (``--state-dir`` wins over the configuration's)."""
    configuration = station_config(ctx)
    directory = state_dir(ctx)
    if configuration is None:
        configuration = StationConfig(station_id="", state_dir=directory)
    elif configuration.state_dir != directory:
        configuration = dataclasses.replace(configuration, state_dir=directory)
    return Application.from_config(configuration, certificate=certificate_settings(ctx))


def _registry(ctx: click.Context, app: Application | None = None) -> Registry:
    """The registry, with dead overwrite jobs marked interrupted. An orphaned *firmware* job is left
    alone: its sanitize may still be running in the drive, and only something that talks to that
    drive (the daemon's recovery, or the next ``wipe`` of it) may resume it or call it interrupted."""
    registry = app.open_store() if app is not None else Registry(state_dir(ctx)).open()
    registry.reconcile(keep=lambda job_id: firmware_job(registry, job_id))
    return registry


# drives ---------------------------------------------------------------------------------------
@click.command()
@json_option
@handle_errors
def drives(as_json: bool) -> None:
    """List whole-disk drives, with whether the guard protects each and why."""
    guard = Guard()
    rows: list[dict[str, Any]] = []
    for identity in udev.enumerate_drives():
        assessment = guard.assess(identity.path)
        rows.append({**identity.to_json(), "protected": assessment.protected, "reasons": list(assessment.reasons)})
    if as_json:
        print_json({"drives": rows})
        return
    if not rows:
        click.echo("no drives found")
        return
    header = f"{'DEVICE':<14} {'TRANSPORT':<9} {'MEDIA':<8} {'SIZE':>10}  {'MODEL':<24} {'SERIAL':<22} PROTECTED"
    click.echo(header)
    for row in rows:
        protected = "yes: " + "; ".join(row["reasons"]) if row["protected"] else "no"
        model, serial = printable(row["model"]), printable(row["serial"])  # a bridge's firmware picks these
        click.echo(
            f"{printable(row['path']):<14} {row['transport']:<9} {row['media']:<8} "
            f"{human_size(row['size_bytes']):>10}  "
            f"{model[:24]:<24} {serial[:22]:<22} {printable(protected)}"
        )


# wipe -----------------------------------------------------------------------------------------
class _Cancel:
    """SIGINT/SIGTERM set a flag the job polls; a second signal is left to the default handler."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Cancel:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.event.set()
        signal.signal(number, self._previous.get(number, signal.SIG_DFL))

    def __exit__(self, *args: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def _verified_by(registry: Registry, explicit: str | None) -> str:
    """Who ran a secondary verification: the name given (compliance staff need not be signed-in operators),
    else the person signed in for the invoking uid, else a plain statement of the uid — never a login name."""
    uid = invoking_uid()
    if explicit and explicit.strip():
        return f"{explicit.strip()} (uid {uid})"
    return command_line_stamp(registry, None).display()


def _job_exit_code(job: JobRow) -> int:
    if job.state == "sanitised":
        return EXIT_OK
    if job.state == "refused":
        return EXIT_REFUSED
    return EXIT_FAILED


def render_job(job: JobRow) -> None:
    """Human summary of one job."""
    data = job.to_json()
    click.echo(f"job {job.id}: {job.state.upper()}")
    click.echo(f"  device    {printable(job.device_path)}  {printable(job.drive.model)}  "
               f"serial {printable(job.drive.serial)}  "
               f"{human_size(job.drive.size_bytes)}")
    click.echo(f"  profile   {job.profile}   method {job.method or '-'}   level {job.level or '-'}")
    if job.seconds:
        rate = (job.throughput or 0) / 1e6
        click.echo(f"  wrote     {human_size(job.bytes_written)} in {job.seconds:.2f} s ({rate:.0f} MB/s)")
    verification = data["verification"]
    if verification:
        # .get: a record is shown as far as it goes, whatever an older version (or damage) left in it
        verdict = "PASSED" if verification.get("passed") is True else "FAILED"
        extra = f" seed {printable(verification['seed'])}" if verification.get("seed") else ""
        checked, coverage = verification.get("bytes_checked"), verification.get("coverage")
        click.echo(f"  verify    {printable(verification.get('mode', '?'))} {verdict}: "
                   f"{human_size(checked) if isinstance(checked, int | float) else '?'} checked, coverage "
                   f"{f'{coverage * 100:.1f}%' if isinstance(coverage, int | float) else '?'}{extra}")
    for secondary in job.secondary_verifications:
        mismatched = (secondary.get("mismatches") or {}).get("mismatched_bytes")
        click.echo(f"  re-verified {printable(str(secondary.get('at', '?')))}: {printable(str(secondary.get('mode')))} "
                   f"{'PASSED' if secondary.get('passed') is True else 'FAILED'}"
                   + (f", {mismatched} bytes mismatched" if mismatched else "")
                   + f" (verification {secondary.get('verification_id')})")
    for decision in job.decisions:
        # the decision is what was chosen, not what happened: ✓ only on a sanitised job (attack B3)
        method = printable(str(decision.get("method", "?")))
        why = printable(str(decision.get("reason", "")))
        if not decision.get("taken"):
            click.echo(f"  not chosen  {method}: {why}")
        elif job.state == "sanitised":
            click.echo(f"  chosen: ✓ {method}: {why}")
        elif job.state not in FINAL_STATES:
            click.echo(f"  chosen: {method} (in progress): {why}")
        else:
            click.echo(f"  chosen: ✗ {method}: {why} — not completed: job {job.state}, "
                       f"{human_size(job.bytes_written)} of {human_size(job.drive.size_bytes)} written")
    if job.reason:
        click.echo(f"  reason    {printable(job.reason)}")
    if job.route:
        click.echo(f"  route     {job.route}")
    if job.certificate_path:
        click.echo(f"  certificate {job.certificate_path}")


@click.command()
@click.argument("device", shell_complete=complete_device)
@click.option("--profile", "profile_name", required=True, shell_complete=complete_profile,
              help="Wipe profile name (see 'profiles list').")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--operator", default=None, help="Check that this person is the one signed in for you "
              "('operator sign-in'); the job names whoever is, or says nobody was.")
@click.option("--asset", "asset_tag", default=None, help="Asset tag of the media or its host device.")
@json_option
@click.pass_context
@handle_errors
def wipe(ctx: click.Context, device: str, profile_name: str, yes: bool, operator: str | None,
         asset_tag: str | None, as_json: bool) -> None:
    """Sanitise DEVICE in the foreground with a profile, then verify it."""
    device = resolve_device(device)  # the kernel's name, before anything is recorded or asked
    check_certificate_text("--asset", asset_tag)
    profile = load_profile(profile_name)
    # the station configuration is read before anything is touched: a bad file is a refusal
    app = application(ctx)
    settings = app.certificate
    # no drive is touched (nor even assessed) without a registry that can record what happens to it
    registry = _registry(ctx, app)
    configuration = station_config(ctx)
    if configuration is not None:  # a station.toml other than the last one recorded goes into the audit chain
        record_configuration(registry, configuration)
    # a drive in a bay of the running station daemon is the daemon's: `start BAY`, never a wipe behind its back
    station_commands.refuse_if_in_station_bay(device, (ctx.find_root().obj or {}).get("config"))
    # who the job is attributed to, before the prompt: a wrong --operator is refused before anything is asked
    stamp = command_line_stamp(registry, operator)
    identity = app.identify(device)
    # bound before the prompt: the runner refuses another medium put at this node while we ask
    confirmed = capture_medium(device)
    # a protected device goes straight to the runner, which records the refusal: no prompt for it
    if not yes and not Guard().assess(device).protected:
        if not sys.stdin.isatty():
            fail(ConfigError("refusing to wipe without confirmation: no terminal; pass --yes"), as_json)
        click.echo(f"About to DESTROY ALL DATA on {printable(identity.path)}:")
        click.echo(f"  model {printable(identity.model)}  serial {printable(identity.serial)}  "
                   f"size {human_size(identity.size_bytes)} "
                   f"({identity.size_bytes} bytes)  {identity.transport}/{identity.media}")
        click.echo(f"  profile {profile.name}: {profile.summary}")
        if not click.confirm("Proceed?", default=False):
            fail(ConfigError("cancelled by the operator"), as_json)
    service = JobService(app, registry)
    resumed = service.recover(identity.path)
    if resumed is not None:
        app.signer()  # a broken key is an error here, as before the job was resumed
        certified = service.certify(resumed)
        resumed, not_issued = certified.job, certified.error
        # the station lost power mid-sanitize: that job is finished first, and it is the answer
        click.echo(f"finished the sanitize job {resumed.id} that was still running in the drive", err=True)
        registry.close()
        _report_job(resumed, not_issued, as_json)
    authorisation = Authorisation(device, stamp.display(), expected_serial=identity.serial)
    request = JobRequest(device, profile, authorisation, asset_tag=asset_tag, medium=confirmed, operator=stamp)
    progress_bar = None
    if not as_json and sys.stderr.isatty():
        from agent.cli.progress import JobProgressBar

        progress_bar = JobProgressBar()
    # the signer is loaded before anything is touched: a broken key is a refusal, not a surprise after
    signer = app.signer()
    try:
        preflight_certificate(settings, signer, asset_tag, stamp)
    except ConfigError:
        registry.close()
        raise
    with _Cancel() as cancel:
        try:
            if progress_bar is not None:
                with progress_bar:
                    job = service.run(request, progress_bar.update, cancel.event.is_set)
            else:
                job = service.run(request, None, cancel.event.is_set)
            certified = service.certify(job)
            job, not_issued = certified.job, certified.error
        finally:
            registry.close()
    _report_job(job, not_issued, as_json)


def check_certificate_text(option: str, value: str | None) -> None:
    """A value given for a certificate (--asset, intake's make/model/serial) that can never be signed
    or printed is refused at input, with exit 2, before any drive is touched (not after the wipe)."""
    if value is None:
        return
    from agent.config import certificate_text_problem

    problem = certificate_text_problem(value)
    if problem:
        raise ConfigError(f"{option}: {problem} (it is printed on the certificate); nothing was touched")


def preflight_certificate(settings: CertificateSettings, signer: StationSigner | None, asset_tag: str | None,
                          stamp: OperatorStamp) -> None:
    """The certificate this job will get, rendered before the wipe from everything already known (the
    station's [organisation] wording, the asset tag, the operator) and read back as the station reads
    an issued one: what cannot be certified stops the job here, not after its data is destroyed."""
    if signer is None or not settings.organisation:
        return  # no certificate will be issued (and the job says why when it ends)
    from reportlab.platypus.doctemplate import LayoutError

    from certs.record import Person
    from certs.render import render_pdf
    from certs.samples import sample_record
    from certs.verify import page_text_problem

    sample = sample_record(demo=settings.demo)
    operator = Person(name=stamp.display(), title=stamp.title if stamp.named else "",
                      organisation=settings.organisation, location=settings.location, phone=settings.phone)
    try:
        record = dataclasses.replace(
            sample, station_id=signer.station_id, operator=operator,
            media=dataclasses.replace(sample.media, asset_tag=asset_tag),
            classification_before=settings.classification_before,
            classification_after=settings.classification_after, data_backed_up=settings.data_backed_up,  # type: ignore[arg-type]
            destination=settings.destination_for(sample.route))
        problem = page_text_problem(render_pdf(record), record)
    except RecordError as exc:
        problem = str(exc)
    except LayoutError as exc:  # a value too long to lay out would fail the real certificate the same way
        problem = f"the page cannot be laid out: {' '.join(str(exc).split())[:160]}"
    if problem:
        raise ConfigError(f"pre-flight: this job's certificate could not be issued ({problem}); "
                          f"correct {settings.source or 'the station configuration'} or the job's values; "
                          "nothing was touched")


def _report_job(job: JobRow, not_issued: AgentError | None, as_json: bool) -> None:
    """Print the job (and why it got no certificate) and exit with its code; non-zero without a certificate."""
    code = _job_exit_code(job)
    if as_json:
        data = job.to_json()
        if job.state == "refused":
            data["error"] = {"code": job.error_code, "message": job.reason}
        if not_issued is not None:
            data["certificate_error"] = not_issued.to_json()
        print_json(data)
    else:
        render_job(job)
        if not_issued is not None:
            click.echo(f"wipe-agent: error: {printable(not_issued.message)}", err=True)
    if not_issued is not None and code == EXIT_OK:
        code = not_issued.exit_code  # as when the refusal was the command's only output
    sys.exit(code)


# jobs -----------------------------------------------------------------------------------------
_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
_CSV_COLUMNS = ["job_id", "state", "created_at", "finished_at", "device", "model", "serial", "size_bytes",
                "asset_tag", "operator", "profile", "method", "level", "verification", "secondary_verification",
                "certificate"]


def _verdict(verification: dict[str, Any] | None, missing: str = "-") -> str:
    if not verification:
        return missing
    return "passed" if verification.get("passed") is True else "failed"


def _csv_row(row: JobRow) -> list[object]:
    latest = row.secondary_verifications[-1] if row.secondary_verifications else None
    return [row.id, row.state, row.created_at, row.finished_at, row.device_path, row.drive.model, row.drive.serial,
            row.drive.size_bytes, row.asset_tag, _operator_cell(row), row.profile, row.method, row.level,
            _verdict(row.verification, ""), _verdict(latest, ""), row.certificate_path]


def _operator_cell(row: JobRow) -> str:
    """The signed-in person, or the plain statement that nobody was (an empty cell reads as "unknown")."""
    if row.operator_via is not None and not row.operator_named:
        return unnamed_text(row.operator_uid, row.operator_via)
    return row.operator


def _utc(value: datetime | None, *, day_end: bool = False) -> datetime | None:
    """A ``--since``/``--until`` value, read as UTC; a bare date as ``--until`` includes that whole day."""
    if value is None:
        return None
    if day_end and value.time() == datetime.min.time():
        value += timedelta(days=1)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@click.command()
@json_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="How many recent jobs.")
@click.option("--since", type=click.DateTime(_DATE_FORMATS), default=None, help="Created at or after (UTC).")
@click.option("--until", type=click.DateTime(_DATE_FORMATS), default=None,
              help="Created before (UTC); a date alone includes that day.")
@click.option("--asset", default=None, help="Only this asset tag.")
@click.option("--serial", default=None, help="Only this drive serial.")
@click.option("--state", type=OneOf([*ACTIVE_STATES, *FINAL_STATES]), default=None, help="Only this state.")
@click.option("--operator", default=None, help="Only jobs of this operator.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on standard output (cells safe to open in a spreadsheet).")
@click.pass_context
@handle_errors
def jobs(ctx: click.Context, as_json: bool, limit: int, since: datetime | None, until: datetime | None,
         asset: str | None, serial: str | None, state: str | None, operator: str | None, as_csv: bool) -> None:
    """Recent jobs, newest first (filtered by any of --since --until --asset --serial --state --operator)."""
    if as_json and as_csv:
        raise ConfigError("--json and --csv exclude each other")
    registry = _registry(ctx)
    rows = registry.jobs(limit, since=_utc(since), until=_utc(until, day_end=True), asset=asset, serial=serial,
                         state=state, operator=operator)
    if as_json:
        print_json({"jobs": [row.to_json() for row in rows]})
        return
    if as_csv:
        write_csv(_CSV_COLUMNS, [_csv_row(row) for row in rows])
        return
    if not rows:
        click.echo("no jobs")
        return
    click.echo(f"{'JOB':<16} {'STATE':<11} {'DEVICE':<12} {'PROFILE':<26} {'METHOD':<18} {'LEVEL':<6} "
               f"{'RECHECK':<7} CREATED")
    for row in rows:
        latest = row.secondary_verifications[-1] if row.secondary_verifications else None
        click.echo(f"{row.id:<16} {row.state:<11} {printable(row.device_path):<12} {row.profile:<26} "
                   f"{row.method or '-':<18} {row.level or '-':<6} {_verdict(latest):<7} {row.created_at}")


@click.command()
@click.argument("job_id")
@json_option
@click.option("--events", is_flag=True, help="Include the job's journal of state transitions.")
@click.pass_context
@handle_errors
def job(ctx: click.Context, job_id: str, as_json: bool, events: bool) -> None:
    """One job in detail."""
    registry = _registry(ctx)
    row = registry.job(job_id)
    if as_json:
        data = row.to_json()
        if events:
            data["events"] = registry.events(row.id)
        print_json(data)
        return
    render_job(row)
    if events:
        for event in registry.events(row.id):
            click.echo(f"  {event['at']}  {event['state']:<11} {event['event']}")


# verify-media ---------------------------------------------------------------------------------
def _render_secondary(job: JobRow, data: dict[str, Any]) -> None:
    """Human form of ``verify-media --job``: verdict, extents, the independent check."""
    verdict = "PASSED" if data["passed"] else "FAILED"
    click.echo(f"{printable(data['device'])}: secondary {data['mode']} verification of job {job.id} {verdict} "
               f"(expectation {data['expectation'].get('kind')}, from the job's record)")
    click.echo(f"  checked {human_size(data['bytes_checked'])} of {human_size(data['size_bytes'])} "
               f"({data['coverage'] * 100:.1f}%)" + (f", seed {data['seed']}" if data.get("seed") else ""))
    mismatches = data["mismatches"]
    if mismatches["mismatched_sectors"]:
        extents = mismatches["extents"]
        click.echo(f"  mismatched: {mismatches['mismatched_bytes']} bytes in {mismatches['mismatched_sectors']} "
                   f"sector(s), {len(extents)} extent(s)")
        for extent in extents[:MAX_LISTED_EXTENTS]:
            click.echo(f"    {describe_extent(extent)}")
        if len(extents) > MAX_LISTED_EXTENTS:
            click.echo(f"    … and {len(extents) - MAX_LISTED_EXTENTS} more (--json lists all)")
    if "canaries" in data:
        canaries = data["canaries"]
        click.echo(f"  canaries: {canaries['checked']} checked, {len(canaries['survivors'])} survived")
    click.echo(f"  recorded as verification {data['verification_id']} of job {job.id} (and in the audit chain)")
    if data["independent_check"]:
        click.echo("  repeat with another tool (full read, exit 0 = identical):")
        click.echo(f"    {data['independent_check']}")
    else:
        click.echo("  no standard tool can regenerate this expectation; compare the canary digests in the job")


@click.command("verify-media")
@click.argument("device", shell_complete=complete_device)
@click.option("--job", "job_id", default=None,
              help="Re-verify this job's drive against the job's own record (zero, pattern, clear-random "
                   "stream, canaries) and record the result with the job.")
@click.option("--expect", "expect", default=None, help="Without --job: zero (default) or pattern:HEX.")
@click.option("--mode", type=OneOf(VERIFY_MODES), default="sampling", show_default=True)
@click.option("--seed", default=None, help="Reproduce an earlier sampling run.")
@click.option("--operator", default=None, help="Who performs the check (default: login name).")
@json_option
@click.pass_context
@handle_errors
def verify_media(ctx: click.Context, device: str, job_id: str | None, expect: str | None, mode: str,
                 seed: str | None, operator: str | None, as_json: bool) -> None:
    """Re-verify a sanitised drive (compliance spot check). Read-only. Exit 0 pass, 1 mismatch."""
    if job_id is not None and expect is not None:
        raise ConfigError("--expect and --job exclude each other: with --job the job's own record is the expectation")
    if job_id is None and expect == "random":
        raise ConfigError("--expect random needs the stream's key: use --job ID to verify against that job's record")
    expectation = expectation_from_spec(expect or "zero") if job_id is None else None
    device = resolve_device(device)
    if not os.access(device, os.R_OK):
        # read-only: a plain user with read access (the disk group) may spot-check; say that, not "writing"
        raise DriveNotFound(f"{device}: verify-media needs read access to the device (or root)")
    if job_id is not None:
        registry = _registry(ctx)
        try:
            job_row = registry.job(job_id)
            secondary = verify_job(registry, job_row, udev.identify(device), mode, seed=seed,
                                   by=_verified_by(registry, operator))
        finally:
            registry.close()
        if as_json:
            print_json({"job_id": job_row.id, **secondary})
        else:
            _render_secondary(job_row, secondary)
        sys.exit(EXIT_OK if secondary["passed"] else EXIT_FAILED)
    assert expectation is not None
    identity = udev.identify(device)
    with BlockDevice(device, writable=False, exclusive=False) as handle:
        result = verify(handle, expectation, mode, seed=seed)
    try:
        registry = Registry(state_dir(ctx)).open()
        registry.record_verification(None, identity, result.to_json())
        registry.close()
    except AgentError:
        pass  # a spot check on a machine without a registry still reports its result
    data = {"device": identity.path, "model": identity.model, "serial": identity.serial, **result.to_json()}
    if as_json:
        print_json(data)
    else:
        verdict = "PASSED" if result.passed else "FAILED"
        click.echo(f"{printable(identity.path)} ({printable(identity.model)}, serial {printable(identity.serial)}): "
                   f"{mode} verification {verdict}")
        click.echo(f"  checked {human_size(result.bytes_checked)} of {human_size(result.size_bytes)} "
                   f"({result.coverage * 100:.1f}%) in {result.seconds:.2f} s"
                   + (f", seed {result.seed}" if result.seed else ""))
        if result.first_mismatches:
            click.echo("  unexpected data at byte offsets: " + ", ".join(map(str, result.first_mismatches)))
    sys.exit(EXIT_OK if result.passed else EXIT_FAILED)


# profiles -------------------------------------------------------------------------------------
@click.group()
def profiles() -> None:
    """Wipe profiles: list, show, check."""


@profiles.command("list")
@json_option
@handle_errors
def profiles_list(as_json: bool) -> None:
    """Every available profile."""
    rows = []
    for name, source in available_profiles().items():
        profile = load_profile(name)
        rows.append({"name": name, "source": source, "summary": profile.summary,
                     "minimum_level": profile.minimum_level.value, "legacy": profile.legacy})
    if as_json:
        print_json({"profiles": rows})
        return
    for row in rows:
        click.echo(f"{row['name']:<28} {row['minimum_level']:<6} {row['summary']}")


@profiles.command("show")
@click.argument("name", shell_complete=complete_profile)
@json_option
@handle_errors
def profiles_show(name: str, as_json: bool) -> None:
    """One profile in full."""
    data = load_profile(name).to_json()
    if as_json:
        print_json(data)
        return
    click.echo(f"{data['name']} ({data['source']})\n  {data['summary']}")
    click.echo(f"  minimum level: {data['minimum_level']}   media: {', '.join(data['media'])}   "
               f"verify: {data['verify']['mode']}")
    for index, step in enumerate(data["steps"], start=1):
        click.echo(f"  {index}. {step['method']}" + "".join(f" {k}={v}" for k, v in step.items() if k != "method"))


@profiles.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def profiles_check(file: str, as_json: bool) -> None:
    """Validate a profile file; says exactly what is wrong and where."""
    path = Path(file)
    if not path.exists():
        raise ProfileError(f"{file}: no such file")
    profile = load_profile_file(path)
    if as_json:
        print_json({"valid": True, "profile": profile.to_json()})
    else:
        click.echo(f"{file}: valid profile {profile.name!r} ({len(profile.steps)} step(s))")


# demo -----------------------------------------------------------------------------------------
@click.command()
@json_option
@click.option("--size", "size_mib", default=256, show_default=True, help="Size of each demo drive in MiB.")
@click.option("--discard", is_flag=True, help="Also remove the results (registry, certificates, trust bundle).")
@click.option("--fleet", is_flag=True,
              help="Two demo stations into a local fleet on PostgreSQL (needs postgresql: scripts/demo.sh --fleet).")
@click.pass_context
@handle_errors
def demo(ctx: click.Context, as_json: bool, size_mib: int, discard: bool, fleet: bool) -> None:
    """Sanitise four throw-away loop drives end to end, certify and prove the data is gone (root only)."""
    if fleet:
        from agent.fleet.demo import run_fleet_demo

        sys.exit(run_fleet_demo(as_json=as_json, size_mib=size_mib, discard=discard))
    from agent.cli.demo import run_demo

    code = run_demo(as_json=as_json, size_mib=size_mib, state_dir=ctx.obj.get("state_dir"), discard=discard)
    sys.exit(code)

