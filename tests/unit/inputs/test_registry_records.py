"""Property test: records read back from the registry (JSON columns, the journal) decode or fail in one line.

SQLite itself may be sound while a row is not (a hand edit, a bug of an older version, a disk that
flipped bits inside a text value): ``jobs``, ``job`` and the journal must then name the damaged job,
never raise a KeyError or JSONDecodeError.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.job_commands import render_job
from agent.errors import ConfigError
from agent.store.registry import Registry
from tests.unit.core.test_registry import IDENTITY

VERIFICATION = '{"passed": true, "mode": "sampling", "coverage": 0.1, "bytes_checked": 1}'
COLUMNS = [("jobs", "decisions_json"), ("jobs", "method_json"), ("jobs", "host_json"),
           ("drives", "identity_json"), ("job_events", "data_json"), ("verifications", "result_json")]
VALUES = st.one_of(st.text(max_size=60), st.sampled_from(["", "{", "[]", "{}", "null", "1", '{"model": 1}',
                                                          "[" * 100 + "]" * 100, json.dumps(IDENTITY.to_json()),
                                                          "[1]", '[{"method": "m"}]', '{"passed": 1}', VERIFICATION]))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(COLUMNS), VALUES)
def test_damaged_json_columns_are_one_line_errors(column: tuple[str, str], value: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        registry = Registry(Path(directory)).open()
        try:
            job_id = registry.create_job(IDENTITY, "p", "me", "x")
            registry.record_verification(job_id, IDENTITY, {"passed": True, "mode": "sampling", "coverage": 0.1,
                                                            "bytes_checked": 1})
            table, name = column
            with registry.transaction() as tx:
                tx.execute(f"UPDATE {table} SET {name}=?", (value,))
            for read in (lambda: render_job(registry.job(job_id)), lambda: registry.jobs(),
                         lambda: registry.events(job_id)):
                try:
                    read()
                except ConfigError as error:
                    assert job_id in error.message and "\n" not in error.message
        finally:
            registry.close()
