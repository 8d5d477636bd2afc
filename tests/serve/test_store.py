"""The inspection store on SQLite and on a real PostgreSQL server: migrations match the
schema, rows round-trip, filters and cursors page correctly, commits are durable settings."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from oddity.core.errors import ConfigError
from oddity.serve.schema import metadata
from oddity.serve.store import InspectionQuery, InspectionStore, database_url, utc_now


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster in a temporary folder (run as the `postgres` user when
    the tests run as root, as initdb refuses root); skipped only if the binaries are missing."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed: apt-get install postgresql")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="oddity-pg-"))
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    run = lambda *args: subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True)  # noqa: E731
    run(binaries / "initdb", "-D", data, "-U", "oddity", "--auth=trust", "-E", "UTF8")
    run(binaries / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql://oddity@127.0.0.1:{port}/postgres"
    finally:
        run(binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'a' / 'inspections.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = InspectionStore.open(url)
    yield store
    with store.engine.begin() as connection:
        for table in ("inspections", "threshold_changes"):
            connection.execute(text(f"DELETE FROM {table}"))
    store.close()


def _row(model: str = "m", score: float = 1.0, anomalous: bool = False, when: dt.datetime | None = None) -> dict:
    return {"created_at": when or utc_now(), "model": model, "model_version": "v1", "filename": "x.png",
            "score": score, "threshold": 2.0, "threshold_source": "model", "anomalous": anomalous,
            "pixel_threshold": None, "latency_ms": 1.0, "width": 4, "height": 3, "image_sha256": "0" * 64,
            "image_type": "image/png", "map_sha256": None, "verdict": None, "verdict_by": None,
            "verdict_note": None, "verdict_at": None}


def test_migrations_build_exactly_the_schema(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    store.migrate()  # a second run is a no-op


def test_rows_round_trip_and_filters_page(store):
    old = utc_now() - dt.timedelta(days=2)
    ids = store.add_inspections([_row("m", 1.0, False, old), _row("m", 3.0, True), _row("k", 5.0, True),
                                 _row("m", 0.5, False)])
    assert ids == sorted(ids) and len(set(ids)) == 4
    row = store.get(ids[1])
    assert row["score"] == 3.0 and row["anomalous"] is True and row["width"] == 4
    rows, cursor = store.search(InspectionQuery(limit=3))
    assert [r["id"] for r in rows] == ids[::-1][:3] and cursor == ids[1]
    rows, cursor = store.search(InspectionQuery(limit=3, cursor=cursor))
    assert [r["id"] for r in rows] == [ids[0]] and cursor is None
    assert [r["id"] for r in store.search(InspectionQuery(model="m", anomalous=True))[0]] == [ids[1]]
    since = utc_now() - dt.timedelta(days=1)
    assert ids[0] not in [r["id"] for r in store.search(InspectionQuery(since=since))[0]]
    assert [r["id"] for r in store.search(InspectionQuery(until=since))[0]] == [ids[0]]
    store.set_verdict(ids[1], "false_alarm", "ana", "dust")
    assert store.search(InspectionQuery(verdict="false_alarm"))[0][0]["verdict_by"] == "ana"
    assert len(store.search(InspectionQuery(verdict="none"))[0]) == 3
    assert store.set_verdict(10**9, "unsure", "x", "") is None
    assert store.reviewed_scores("m", "v1") == {"false_alarm": [3.0], "normal": [1.0, 0.5], "confirmed_defect": []}
    assert store.counts("m") == {"inspections": 3, "anomalous": 1, "verdict_false_alarm": 1}


def test_threshold_changes_are_kept_in_order(store):
    assert store.current_threshold("m", "v1") is None
    store.add_threshold_change({"model": "m", "model_version": "v1", "old_value": 1.0, "new_value": 2.0,
                                "target_fpr": 0.01, "expected_fpr": 0.01, "n_normal": 99, "who": "a", "why": "b"})
    store.add_threshold_change({"model": "m", "model_version": "v1", "old_value": 2.0, "new_value": 1.5,
                                "target_fpr": 0.05, "expected_fpr": 0.05, "n_normal": 99, "who": "c", "why": "d"})
    assert store.current_threshold("m", "v1") == 1.5 and store.current_threshold("m", "v2") is None
    assert [h["who"] for h in store.threshold_history("m")] == ["a", "c"]


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    store = InspectionStore.open(f"sqlite:///{tmp_path / 'inspections.sqlite'}")
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    assert store.integrity_errors() == []
    store.close()


def test_bad_store_urls_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a database URL"):
        InspectionStore.open("nonsense://")
    with pytest.raises(ConfigError, match="cannot open the database"):
        InspectionStore.open(f"postgresql://nobody@127.0.0.1:{_free_port()}/none?connect_timeout=2")
    assert database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
