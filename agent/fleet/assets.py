"""The force's asset register in the fleet: CSV import (all or nothing) and lookup by tag or serial.

The register is the programme's denominator: every laptop and desktop due for refresh, with its asset
tag, make, model, serial, type, department and due date. ``import_register`` reads the whole file,
checks every row (``FILE:LINE: column: message`` per problem, all of them, not just the first), and only
when every row is good writes them in one transaction: new assets start ``awaiting``; a re-import updates
the register fields of known assets and never touches their programme state. A file with any bad row
changes nothing.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.tomlfile import read_bounded_bytes
from agent.vocabulary import HOST_KINDS

COLUMNS: tuple[str, ...] = ("asset_tag", "make", "model", "serial", "type", "department", "due_date")
KINDS: tuple[str, ...] = HOST_KINDS
MAX_REGISTER_BYTES = 64 << 20  # 30,000 rows are ~3 MB; a file past this is a mistake
MAX_FIELD = 128
MAX_PROBLEMS_SHOWN = 20
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_SERIAL = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,62}[\x21-\x7e])?")


class AssetState(StrEnum):
    """One state per asset across every station (the programme's model)."""

    AWAITING = "awaiting"
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    SANITISED = "sanitised"
    ELIGIBLE = "eligible"
    ALLOCATED = "allocated"
    HANDED_OVER = "handed_over"
    HELD = "held"
    DESTROYED = "destroyed"


@dataclass(frozen=True)
class Asset:
    """One asset of the register, with its programme state."""

    asset_tag: str
    make: str
    model: str
    serial: str
    kind: str
    department: str
    due_date: date
    state: AssetState
    state_since: datetime

    def to_json(self) -> dict[str, Any]:
        return {"asset_tag": self.asset_tag, "make": self.make, "model": self.model, "serial": self.serial,
                "type": self.kind, "department": self.department, "due_date": self.due_date.isoformat(),
                "state": str(self.state), "state_since": self.state_since.isoformat()}


@dataclass(frozen=True)
class ImportResult:
    """What an import did (counts) and the file's identity."""

    source: str
    sha256: str
    rows: int
    added: int
    updated: int
    unchanged: int

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "rows": self.rows, "added": self.added,
                "updated": self.updated, "unchanged": self.unchanged}


def _printable(value: str) -> str:
    return value if value.isprintable() else value.encode("unicode_escape").decode("ascii")


def _header(source: str, fields: list[str] | None) -> list[str]:
    if not fields:
        raise FleetInputError(f"{source}:1: empty file: the first line must name the columns "
                              f"({', '.join(COLUMNS)})")
    names = [field.strip().lower() for field in fields]
    problems = []
    for name in names:
        if name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (columns: {', '.join(COLUMNS)})"
            problems.append(f"{source}:1: unknown column {_printable(name)!r}{hint}")
    for name in COLUMNS:
        if names.count(name) == 0:
            problems.append(f"{source}:1: missing column {name!r}")
        elif names.count(name) > 1:
            problems.append(f"{source}:1: column {name!r} appears {names.count(name)} times")
    if problems:
        raise _refused(source, problems)
    return names


def _refused(source: str, problems: list[str]) -> FleetInputError:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return FleetInputError(f"{source}: asset register refused, nothing imported: {len(problems)} problem(s): "
                           + "; ".join(shown) + more, tuple(problems))


def _check_row(source: str, line: int, row: dict[str, str], problems: list[str]) -> tuple[Any, ...] | None:
    start = len(problems)
    values = {name: (row.get(name) or "").strip() for name in COLUMNS}
    for name, value in values.items():
        if len(value) > MAX_FIELD:
            problems.append(f"{source}:{line}: {name}: longer than {MAX_FIELD} characters")
        elif not value.isprintable():
            problems.append(f"{source}:{line}: {name}: control characters in {_printable(value)!r}")
    tag = values["asset_tag"]
    if not tag:
        problems.append(f"{source}:{line}: asset_tag: empty")
    elif not _TAG.fullmatch(tag):
        problems.append(f"{source}:{line}: asset_tag: {_printable(tag)!r} is not an asset tag (letters, digits, "
                        ". _ / -, at most 64)")
    for name in ("make", "model", "department"):
        if not values[name]:
            problems.append(f"{source}:{line}: {name}: empty")
    serial = values["serial"]
    if serial and not _SERIAL.fullmatch(serial):
        problems.append(f"{source}:{line}: serial: {_printable(serial)!r} is not a serial number (printable ASCII)")
    kind = values["type"].lower()
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{source}:{line}: type: {_printable(values['type'])!r} is not one of "
                        f"{', '.join(KINDS)}{hint}")
    due: date | None = None
    try:
        due = date.fromisoformat(values["due_date"])
    except ValueError:
        problems.append(f"{source}:{line}: due_date: {_printable(values['due_date'])!r} is not a date "
                        "(YYYY-MM-DD)")
    if len(problems) > start or due is None:
        return None
    return (tag, values["make"], values["model"], serial, kind, values["department"], due)


def parse_register(data: bytes, source: str) -> list[tuple[Any, ...]]:
    """Every row of the register, checked; :class:`FleetInputError` listing every problem otherwise."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FleetInputError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise FleetInputError(f"{source}: contains NUL bytes: not a CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = _header(source, next(reader, None))
        problems: list[str] = []
        rows: list[tuple[Any, ...]] = []
        tags: dict[str, int] = {}
        serials: dict[str, int] = {}
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue  # a blank line (a trailing newline, a spreadsheet's empty row)
            if len(fields) != len(header):
                problems.append(f"{source}:{line}: {len(fields)} fields, the header has {len(header)}")
                continue
            checked = _check_row(source, line, dict(zip(header, fields, strict=True)), problems)
            if checked is None:
                continue
            tag, serial = checked[0], checked[3]
            if tag.upper() in tags:
                problems.append(f"{source}:{line}: asset_tag: {tag!r} already on line {tags[tag.upper()]}")
                continue
            if serial and serial.upper() in serials:
                problems.append(f"{source}:{line}: serial: {serial!r} already on line {serials[serial.upper()]}")
                continue
            tags[tag.upper()] = line
            if serial:
                serials[serial.upper()] = line
            rows.append(checked)
    except csv.Error as exc:
        raise FleetInputError(f"{source}:{reader.line_num}: not valid CSV: {exc}") from None
    if problems:
        raise _refused(source, problems)
    if not rows:
        raise FleetInputError(f"{source}: no assets in the register (only a header)")
    return rows


def import_register(fleet: FleetDatabase, path: Path) -> ImportResult:
    """Check the whole file, then write it in one transaction (see the module docstring)."""
    data = read_bounded_bytes(path, FleetInputError, "asset register", MAX_REGISTER_BYTES)
    source = str(path)
    rows = parse_register(data, source)
    digest = hashlib.sha256(data).hexdigest()
    with fleet.transaction() as db:
        db.execute("CREATE TEMPORARY TABLE register_in (asset_tag TEXT, make TEXT, model TEXT, serial TEXT, "
                   "kind TEXT, department TEXT, due_date DATE) ON COMMIT DROP")
        with db.cursor().copy("COPY register_in FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        clash = db.execute(
            "SELECT r.asset_tag, a.asset_tag, 'serial' FROM register_in r JOIN fleet_assets a "
            "ON upper(a.serial) = upper(r.serial) AND r.serial <> '' AND a.asset_tag <> r.asset_tag "
            "UNION ALL SELECT r.asset_tag, a.asset_tag, 'tag' FROM register_in r JOIN fleet_assets a "
            "ON upper(a.asset_tag) = upper(r.asset_tag) AND a.asset_tag <> r.asset_tag LIMIT 21").fetchall()
        if clash:
            raise _refused(source, [
                f"{source}: serial of {new!r} already belongs to asset {old!r} in the fleet" if what == "serial"
                else f"{source}: asset tag {new!r} differs only in case from {old!r} in the fleet"
                for new, old, what in clash])
        counts = db.execute(
            "SELECT count(*) FILTER (WHERE a.asset_tag IS NULL), "
            "count(*) FILTER (WHERE a.asset_tag IS NOT NULL AND (a.make, a.model, a.serial, a.kind, a.department, "
            "a.due_date) IS DISTINCT FROM (r.make, r.model, r.serial, r.kind, r.department, r.due_date)) "
            "FROM register_in r LEFT JOIN fleet_assets a USING (asset_tag)").fetchone()
        assert counts is not None
        added, updated = int(counts[0]), int(counts[1])
        db.execute(
            "INSERT INTO fleet_assets (asset_tag, make, model, serial, kind, department, due_date) "
            "SELECT asset_tag, make, model, serial, kind, department, due_date FROM register_in "
            "ON CONFLICT (asset_tag) DO UPDATE SET make = excluded.make, model = excluded.model, "
            "serial = excluded.serial, kind = excluded.kind, department = excluded.department, "
            "due_date = excluded.due_date, updated_at = now() "
            "WHERE (fleet_assets.make, fleet_assets.model, fleet_assets.serial, fleet_assets.kind, "
            "fleet_assets.department, fleet_assets.due_date) IS DISTINCT FROM "
            "(excluded.make, excluded.model, excluded.serial, excluded.kind, excluded.department, excluded.due_date)")
        result = ImportResult(source, digest, len(rows), added, updated, len(rows) - added - updated)
        db.execute("INSERT INTO fleet_imports (source, sha256, rows, added, updated, unchanged) "
                   "VALUES (%s, %s, %s, %s, %s, %s)",
                   (source, digest, result.rows, result.added, result.updated, result.unchanged))
    return result


def find_asset(fleet: FleetDatabase, key: str) -> Asset | None:
    """The asset whose tag, or else whose serial, is ``key`` (case-insensitive, as the register's uniqueness)."""
    found = asset_by_key(fleet.db, key)
    fleet.db.commit()
    return found


def asset_by_key(db: Any, key: str) -> Asset | None:
    """:func:`find_asset` on an open connection, inside the caller's transaction."""
    columns = "asset_tag, make, model, serial, kind, department, due_date, state, state_since"
    row = db.execute(
        f"SELECT {columns}, 0 AS rank FROM fleet_assets WHERE upper(asset_tag) = upper(%s) UNION ALL "
        f"SELECT {columns}, 1 FROM fleet_assets WHERE upper(serial) = upper(%s) AND serial <> '' "
        "ORDER BY rank LIMIT 1", (key, key)).fetchone()
    if row is None:
        return None
    return Asset(row[0], row[1], row[2], row[3], row[4], row[5], row[6], AssetState(row[7]), row[8])


def counts_by_state(fleet: FleetDatabase) -> dict[str, int]:
    """How many assets are in each programme state (every state listed, zeros included)."""
    rows = fleet.db.execute("SELECT state, count(*) FROM fleet_assets GROUP BY state").fetchall()
    fleet.db.commit()
    found = {str(state): int(count) for state, count in rows}
    return {str(state): found.get(str(state), 0) for state in AssetState}
