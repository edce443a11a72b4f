"""The closed error model: every raised class and code string is registered, and the API answers
each code with its declared status (httpx's exception-map test is the model)."""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agent
import agent.errors as errors
import certs
import certs.errors as certs_errors
from agent.errors import CODES, AgentError, status_of

ROOT = Path(agent.__file__).parent
PER_INSTANCE = {"RequestError", "ApiError", "RequestRefused"}  # first argument is the code


def _import_all() -> None:
    for package in (agent, certs):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


_import_all()


def _classes() -> dict[str, type[AgentError]]:
    found: dict[str, type[AgentError]] = {}
    pending: list[type[AgentError]] = [AgentError]
    while pending:
        cls = pending.pop()
        if cls.__module__.split(".")[0] == "agent":
            found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


# agent's own non-AgentError exceptions, each caught inside agent (private ones: the emulator's control flow)
INTERNAL = {"JsonInputError", "PlanNotPossible", "WatchUnavailable", "VerifyCancelled", "NewerSchema",
            # the fleet service (its own process, its own HTTP envelope): not yet in the registry
            "ApiRefused", "ClientRefused", "Refused"}


def test_every_raised_error_class_is_a_registered_agent_error() -> None:
    """Each ``raise X(...)`` in agent/ resolves (in its module) to an AgentError whose code is registered,
    a certs error whose code certs registers, or an exception from outside the project; never a
    stray error family of agent's own."""
    stray: list[str] = []
    checked = 0
    for path, tree in _sources():
        module = importlib.import_module("agent." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
                                         .removesuffix(".__init__"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            if not isinstance(func, ast.Name):
                continue
            raised = getattr(module, func.id, None) or getattr(builtins, func.id, None)
            if not isinstance(raised, type) or not issubclass(raised, BaseException):
                continue  # a local alias or a factory: not decidable here
            where = f"{path.relative_to(ROOT)}:{node.lineno} {func.id}"
            if issubclass(raised, AgentError):
                checked += 1
                if CODES.get(raised.code) is None or raised.__module__.split(".")[0] != "agent":
                    stray.append(where)
            elif issubclass(raised, certs_errors.CertificateError):
                if raised.code not in certs_errors.CODES:
                    stray.append(where)
            elif raised.__module__.split(".")[0] in ("agent", "certs") and raised.__name__ not in INTERNAL \
                    and not raised.__name__.startswith("_"):
                stray.append(where + " (an error family outside AgentError)")
    assert not stray, "\n".join(stray)
    assert checked > 100  # the walk saw the raises


def test_every_code_string_given_to_a_per_instance_error_is_registered() -> None:
    """``RequestError("x", ...)``, ``ApiError("x", ...)``, ``Blocked("state", ...)`` and every
    ``error_code="x"`` name a registered code, and an explicit status agrees with the declared one."""
    seen: list[str] = []
    bad: list[str] = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            name = _name(node.func)
            first = node.args[0] if node.args else None
            literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            if name in PER_INSTANCE and literal is not None:
                seen.append(literal)
                if literal not in CODES:
                    bad.append(f"{where} {name}({literal!r}) unregistered")
                if len(node.args) > 2 and isinstance(node.args[2], ast.Constant):
                    if node.args[2].value != status_of(literal):
                        bad.append(f"{where} {literal}: status {node.args[2].value!r} != {status_of(literal)}")
            if name == "Blocked" and literal is not None:
                seen.append(literal)
                if f"blocked_{literal.replace('-', '_')}" not in CODES:
                    bad.append(f"{where} Blocked({literal!r}) unregistered state")
            for keyword in node.keywords:
                if keyword.arg == "error_code" and isinstance(keyword.value, ast.Constant):
                    if keyword.value.value not in CODES:
                        bad.append(f"{where} error_code={keyword.value.value!r} unregistered")
    assert not bad, bad
    assert {"no_drive", "bad_request", "forbidden", "security-frozen"} <= set(seen)  # the walk found the calls


def test_computed_start_refusals_are_registered() -> None:
    """``start`` answers ``job_<outcome>`` for any outcome but sanitised/refused: each is registered."""
    from agent.store.registry import ACTIVE_STATES, FINAL_STATES

    for outcome in {*FINAL_STATES, *ACTIVE_STATES, "cancelled", "error"} - {"sanitised", "refused"}:
        assert f"job_{outcome}" in CODES, outcome
    assert "refused" in CODES


def test_codes_are_unique_and_fully_declared() -> None:
    for code, owner in CODES.items():
        declared = owner.__dict__.get("code") == code or code in owner.__dict__.get("codes", {})
        assert declared, (code, owner)
        assert isinstance(owner.exit_code, int) and owner.exit_code in (1, 2)
        assert 400 <= status_of(code) <= 599, code
    # no code of the agent is also a certs code, bar the twin base class
    assert set(CODES) & set(certs_errors.CODES) == {"certificate_error"}


def test_a_second_class_for_a_taken_code_is_refused() -> None:
    with pytest.raises(TypeError, match="already"):
        type("Impostor", (AgentError,), {"code": "drive_busy", "__module__": "tests.impostor"})
    with pytest.raises(TypeError, match="already"):
        type("Impostor", (AgentError,), {"codes": {"no_drive": 400}, "__module__": "tests.impostor"})
    with pytest.raises(TypeError, match="already"):
        type("Impostor", (certs_errors.CertificateError,), {"code": "bad_record", "__module__": "tests.impostor"})
    assert CODES["drive_busy"] is errors.DriveBusy and CODES["no_drive"] is errors.RequestRefused


def test_the_docstring_tree_is_the_registry() -> None:
    tree = "\n".join("    " + line for line in errors.error_tree().splitlines())
    assert tree in (errors.__doc__ or ""), "paste into agent/errors.py:\n" + tree
    classes = _classes()
    assert all(f" {name} " in tree or tree.startswith(f"    {name} ") for name in classes)


def test_the_certs_docstring_tree_lists_every_certs_code() -> None:
    drawn = dict(re.findall(r"(\w+)\s+code \"(\w+)\"", certs_errors.__doc__ or ""))
    assert drawn == {cls.__name__: code for code, cls in certs_errors.CODES.items()}


def _old_status(error: AgentError) -> int:
    """The API's mapping before the registry (STATUS_BY_CODE, then ``drive*`` → 409, else 400)."""
    table = {"bad_request": 400, "bad_json": 400, "json_too_deep": 400, "not_utf8": 400, "busy": 503,
             "bad_config": 400, "bad_profile": 400, "unknown_field": 400, "forbidden": 403, "not_found": 404,
             "method_not_allowed": 405, "length_required": 411, "payload_too_large": 413,
             "unsupported_media_type": 415, "shutting_down": 503, "internal": 500}
    return table.get(error.code, 409 if error.code.startswith("drive") else 400)


def test_declared_statuses_are_the_old_mapping() -> None:
    """No change of behaviour: every class code gets the status the old fallback gave it.

    ``refused`` is the one code two classes used: the station's refused job (409, said at the call
    site) and ReuseRefused (never reaches the API); it is 409."""
    for code, owner in CODES.items():
        if owner.__dict__.get("code") != code or code == "refused":
            continue
        error = owner.__new__(owner)
        Exception.__init__(error, "x")
        error.message = "x"
        assert error.http_status == DECLARED_SINCE.get(code, _old_status(error)), code


DECLARED_SINCE = {"manifest_unavailable": 503, "bad_query": 400}
"""Codes born after the registry, with the status they were declared with (no old mapping to keep)."""


class _Station:
    def __init__(self, error: AgentError) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def raise_it(*args: Any, **kwargs: Any) -> Any:
            raise self.error
        return raise_it


@pytest.mark.parametrize("error", [
    errors.DriveBusy("held elsewhere"),
    errors.MediumChanged("another medium"),
    errors.ProfileError("no such profile"),
    errors.CommandError("aborted", status=0x51),  # a device status byte is never the HTTP status
    AgentError("internal error: boom"),
], ids=lambda error: error.code)
def test_the_server_answers_each_code_with_its_declared_status(error: AgentError) -> None:
    from agent.api.client import ApiClient, RemoteError
    from agent.api.server import ApiServer
    from agent.daemon.station import RequestError

    cases = [error, RequestError("no_drive", "bay 1 is empty"), RequestError("not_found", "no bay", 404),
             RequestError("drive_protected", "refused"), RequestError("job_failed", "failed")]
    for case in cases:
        directory = Path(tempfile.mkdtemp(prefix="wa-err-", dir="/tmp"))
        server = ApiServer(directory / "api.sock", _Station(case), "wipe-operators-test-nonexistent",
                           on_error=lambda exc: None)
        try:
            with pytest.raises(RemoteError) as answered:
                ApiClient(directory / "api.sock", timeout=5).get("/v1/status")
        finally:
            server.close()
            directory.rmdir()
        assert (answered.value.code, answered.value.status) == (case.code, case.http_status)
        assert case.http_status == status_of(case.code) or case.code == "command_failed"
    assert cases[0].http_status == {"drive_busy": 409, "medium_changed": 400, "bad_profile": 400,
                                    "command_failed": 400, "internal": 500}[error.code]


def test_route_and_instruction_are_declared_where_the_runner_reads_them() -> None:
    from agent.methods.base import Blocked
    from agent.methods.firmware import SanitizeFailed
    from agent.policy.select import NoMethod

    assert errors.MediumChanged.route == "hold" and errors.DriveProtected.route is None
    assert AgentError.route is None and AgentError.instruction is None
    blocked = Blocked("security-locked", "locked", "destroy it", route="destroy")
    assert (blocked.code, blocked.route, blocked.instruction, blocked.http_status) == (
        "blocked_security_locked", "destroy", "destroy it", 400)
    refused = NoMethod("nothing applies", (), blocked)
    assert (refused.code, refused.route, refused.instruction) == ("blocked_security_locked", "destroy", "destroy it")
    plain = NoMethod("nothing applies", ())
    assert (plain.code, plain.route, plain.instruction) == ("not_supported", None, None)
    assert SanitizeFailed("failed").route == "destroy" and SanitizeFailed("x", route="hold").route == "hold"
