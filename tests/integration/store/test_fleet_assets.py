"""The fleet's asset register on a real PostgreSQL server: all-or-nothing import of 30,000 rows, one located
error per bad row, re-import that never touches programme state, lookups by tag or serial, the CLI's errors."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import pytest

from agent.fleet.assets import AssetState, counts_by_state, find_asset, import_register
from agent.fleet.database import SCHEMA_VERSION, FleetDatabase
from agent.fleet.errors import FleetConfigError, FleetInputError, FleetSchemaError, FleetUnavailable
from tests.conftest import run_cli

pytestmark = pytest.mark.root

HEADER = ["asset_tag", "make", "model", "serial", "type", "department", "due_date"]


def register_rows(count: int, start: int = 0) -> list[list[str]]:
    kinds = ("laptop", "desktop", "tablet")
    return [[f"PF-{n:06d}", "Dell" if n % 2 else "HP", f"Model {n % 17}", f"SN{n:08d}", kinds[n % 3],
             f"Dept {n % 40}", f"2027-{1 + n % 12:02d}-15"] for n in range(start, start + count)]


def write_register(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def asset_count(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as db:
        row = db.execute("SELECT count(*) FROM fleet_assets").fetchone()
        assert row is not None
        return int(row[0])


def test_thirty_thousand_rows_import_in_one_transaction_and_reimport_changes_nothing(
        postgres_dsn: str, tmp_path: Path) -> None:
    register = write_register(tmp_path / "register.csv", register_rows(30_000))
    with FleetDatabase(postgres_dsn) as fleet:
        first = import_register(fleet, register)
        assert (first.rows, first.added, first.updated, first.unchanged) == (30_000, 30_000, 0, 0)
        again = import_register(fleet, register)
        assert (again.rows, again.added, again.updated, again.unchanged) == (30_000, 0, 0, 30_000)
        assert counts_by_state(fleet)["awaiting"] == 30_000
        assert sum(counts_by_state(fleet).values()) == 30_000
    assert asset_count(postgres_dsn) == 30_000


def test_one_bad_row_refuses_the_whole_file_naming_every_problem_by_line(postgres_dsn: str, tmp_path: Path) -> None:
    rows = register_rows(1_000)
    rows[9][4] = "laptp"            # line 11: type, with a suggestion
    rows[99][6] = "2027-13-01"      # line 101: not a date
    rows[499][0] = rows[0][0]       # line 501: duplicate tag (first on line 2)
    rows[699][3] = rows[1][3]       # line 701: duplicate serial (first on line 3)
    rows[899][1] = ""               # line 901: empty make
    rows[949][0] = "TAG\x1b[2J"     # line 951: control characters never echoed raw
    register = write_register(tmp_path / "bad.csv", rows)
    with FleetDatabase(postgres_dsn) as fleet, pytest.raises(FleetInputError) as refused:
        import_register(fleet, register)
    problems = refused.value.problems
    assert f"{register}:11: type: 'laptp' is not one of laptop, desktop, tablet (did you mean 'laptop'?)" in problems
    assert f"{register}:101: due_date: '2027-13-01' is not a date (YYYY-MM-DD)" in problems
    assert f"{register}:501: asset_tag: 'PF-000000' already on line 2" in problems
    assert f"{register}:701: serial: 'SN00000001' already on line 3" in problems
    assert f"{register}:901: make: empty" in problems
    assert any(problem.startswith(f"{register}:951: asset_tag:") and "\x1b" not in problem for problem in problems)
    assert "nothing imported" in refused.value.message and "\n" not in refused.value.message
    assert asset_count(postgres_dsn) == 0


@pytest.mark.parametrize(("header", "expected"), [
    (["asset_tag", "make", "model", "serial", "typ", "department", "due_date"],
     "unknown column 'typ' (did you mean 'type'?)"),
    (["asset_tag", "make", "model", "serial", "type", "department"], "missing column 'due_date'"),
    (["asset_tag", "make", "model", "serial", "type", "department", "due_date", "make"], "column 'make' appears 2"),
])
def test_a_bad_header_is_refused_with_the_column_named(postgres_dsn: str, tmp_path: Path, header: list[str],
                                                        expected: str) -> None:
    register = write_register(tmp_path / "header.csv", [row[:len(header)] + [""] * (len(header) - 7)
                                                        for row in register_rows(3)], header)
    with FleetDatabase(postgres_dsn) as fleet, pytest.raises(FleetInputError, match=expected.replace("(", r"\(")
                                                                 .replace(")", r"\)").replace("?", r"\?")):
        import_register(fleet, register)
    assert asset_count(postgres_dsn) == 0


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "empty file"),
    (b"\xff\xfe" + "asset_tag".encode("utf-16-le"), "not UTF-8"),
    (",".join(HEADER).encode() + b"\r\n", "no assets"),
    (",".join(HEADER).encode() + b'\r\n"PF-1,Dell\r\n', "not valid CSV|fields"),
    (b"asset_tag\x00,make", "NUL"),
])
def test_files_that_are_not_registers_are_refused_in_one_line(postgres_dsn: str, tmp_path: Path, data: bytes,
                                                              expected: str) -> None:
    register = tmp_path / "odd.csv"
    register.write_bytes(data)
    with FleetDatabase(postgres_dsn) as fleet, pytest.raises(FleetInputError, match=expected) as refused:
        import_register(fleet, register)
    assert "\n" not in refused.value.message
    assert asset_count(postgres_dsn) == 0


def test_reimport_updates_register_fields_but_never_programme_state(postgres_dsn: str, tmp_path: Path) -> None:
    import psycopg

    rows = register_rows(10)
    with FleetDatabase(postgres_dsn) as fleet:
        import_register(fleet, write_register(tmp_path / "v1.csv", rows))
    with psycopg.connect(postgres_dsn) as db:
        db.execute("UPDATE fleet_assets SET state = 'sanitised' WHERE asset_tag = 'PF-000003'")
    rows[3][5] = "Moved department"
    with FleetDatabase(postgres_dsn) as fleet:
        result = import_register(fleet, write_register(tmp_path / "v2.csv", rows + register_rows(2, start=10)))
        assert (result.added, result.updated, result.unchanged) == (2, 1, 9)
        asset = find_asset(fleet, "pf-000003")
        assert asset is not None and asset.department == "Moved department" and asset.state is AssetState.SANITISED


def test_a_serial_or_case_variant_tag_already_in_the_fleet_refuses_the_file(postgres_dsn: str, tmp_path: Path) -> None:
    with FleetDatabase(postgres_dsn) as fleet:
        import_register(fleet, write_register(tmp_path / "v1.csv", register_rows(5)))
        moved = [["PF-999999", "Dell", "Model 1", "SN00000002", "laptop", "Dept 1", "2027-01-15"]]
        with pytest.raises(FleetInputError, match="serial of 'PF-999999' already belongs to asset 'PF-000002'"):
            import_register(fleet, write_register(tmp_path / "v2.csv", moved))
        variant = [["pf-000001", "Dell", "Model 1", "SN77777777", "laptop", "Dept 1", "2027-01-15"]]
        with pytest.raises(FleetInputError, match="differs only in case from 'PF-000001'"):
            import_register(fleet, write_register(tmp_path / "v3.csv", variant))
    assert asset_count(postgres_dsn) == 5


def test_lookup_by_tag_or_serial(postgres_dsn: str, tmp_path: Path) -> None:
    with FleetDatabase(postgres_dsn) as fleet:
        import_register(fleet, write_register(tmp_path / "r.csv", register_rows(20)))
        by_tag, by_serial = find_asset(fleet, "PF-000007"), find_asset(fleet, "sn00000007")
        assert by_tag is not None and by_tag == by_serial and by_tag.serial == "SN00000007"
        assert by_tag.kind == "desktop" and by_tag.state is AssetState.AWAITING
        assert find_asset(fleet, "PF-404") is None


def test_two_instances_migrating_one_database_at_once_apply_the_ladder_once(postgres_dsn: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            with FleetDatabase(postgres_dsn) as fleet:
                assert fleet.schema_version() == SCHEMA_VERSION
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_a_newer_schema_is_refused_and_left_alone(postgres_dsn: str) -> None:
    import psycopg

    with FleetDatabase(postgres_dsn):
        pass
    with psycopg.connect(postgres_dsn) as db:
        db.execute("UPDATE fleet_meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(FleetSchemaError, match="upgrade wipe-agent"):
        FleetDatabase(postgres_dsn).open()
    with psycopg.connect(postgres_dsn) as db:
        assert db.execute("SELECT value FROM fleet_meta").fetchone() == (str(SCHEMA_VERSION + 1),)


def test_an_unreachable_or_malformed_database_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FleetUnavailable, match="cannot connect") as down:
        FleetDatabase(f"host={tmp_path} dbname=none user=postgres connect_timeout=2").open()
    assert "\n" not in down.value.message
    with pytest.raises((FleetConfigError, FleetUnavailable), match=r"bad fleet database address|cannot connect"):
        FleetDatabase("this is = not a dsn =").open()
    with pytest.raises(FleetConfigError, match="no fleet database given"):
        FleetDatabase("  ").open()


def test_cli_imports_shows_and_refuses_with_one_line_and_exit_2(postgres_dsn: str, tmp_path: Path) -> None:
    env = {"WIPE_AGENT_FLEET_DATABASE": postgres_dsn}
    good = write_register(tmp_path / "good.csv", register_rows(50))
    imported = run_cli("fleet", "assets", "import", str(good), "--json", env=env)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["added"] == 50
    shown = run_cli("fleet", "assets", "show", "SN00000042", "--json", env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["asset_tag"] == "PF-000042"
    summary = run_cli("fleet", "assets", "summary", "--json", env=env)
    assert json.loads(summary.stdout) == {"states": {**{str(s): 0 for s in AssetState}, "awaiting": 50}, "total": 50}
    bad_rows = register_rows(3, start=100)
    bad_rows[1][6] = "tomorrow"
    bad = run_cli("fleet", "assets", "import", str(write_register(tmp_path / "bad.csv", bad_rows)), env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and ":3: due_date: 'tomorrow' is not a date" in bad.stderr
    programme = json.loads(run_cli("fleet", "summary", "--json", env=env, check=True).stdout)
    assert programme["total"] == 50 and programme["states"] == {"awaiting": 50} and programme["done"] == 0
    missing = run_cli("fleet", "assets", "show", "NOPE", env=env)
    assert missing.returncode == 2 and "no asset with tag or serial 'NOPE'" in missing.stderr
    down = run_cli("fleet", "assets", "summary", "--database", f"host={tmp_path} dbname=x connect_timeout=2")
    assert down.returncode == 1 and "cannot connect to the fleet database" in down.stderr
    assert "Traceback" not in down.stderr
    assert asset_count(postgres_dsn) == 50
