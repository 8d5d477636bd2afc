"""The inspection store: rows in a SQL database (SQLite by default, PostgreSQL for a plant).

`InspectionStore.open(url)` connects, brings the schema up to date with the Alembic
migrations and returns the store. SQLite runs in WAL mode with `synchronous=FULL`, so a
committed row survives a crash of the process or the machine and readers never wait for the
writer; PostgreSQL commits durably by default. Every write is one transaction: the rows of a
request are all there or none is. Filters are bound parameters, never pasted into SQL.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import case, create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from oddity.core.errors import ConfigError
from oddity.serve.schema import inspections, threshold_changes

MIGRATIONS = Path(__file__).with_name("migrations")


def utc_now() -> dt.datetime:
    """The current time in UTC, without tzinfo (the store keeps naive UTC times)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def database_url(url: str) -> str:
    """`url` with PostgreSQL URLs pointed at the psycopg 3 driver (`postgresql+psycopg://`).

    Parameters
    ----------
    url : str
        Database URL as the user gave it.

    Returns
    -------
    str
        ``postgresql://`` and ``postgres://`` URLs rewritten; any other unchanged.

    Examples
    --------
    >>> database_url("postgresql://plant@db/oddity")
    'postgresql+psycopg://plant@db/oddity'
    >>> database_url("sqlite:///store.sqlite")
    'sqlite:///store.sqlite'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass(frozen=True)
class InspectionQuery:
    """Filters of an inspection listing; None means any. `verdict="none"` selects unreviewed
    rows; `cursor` is the id below which the page starts (newest first)."""

    model: str | None = None
    anomalous: bool | None = None
    verdict: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 50
    cursor: int | None = None


class InspectionStore:
    """Inspections and threshold changes in the database at `engine` (see module docstring).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        Connection to a database with the current schema (`open` makes one).
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> "InspectionStore":
        """Connect to `url` and migrate its schema to the latest revision.

        Parameters
        ----------
        url : str
            SQLAlchemy URL: `sqlite:///path/to/file.sqlite` or `postgresql://user@host/db`.

        Returns
        -------
        InspectionStore

        Raises
        ------
        ConfigError
            If the URL is malformed, names an unknown database or the database is unreachable.
        """
        try:
            parsed = make_url(database_url(url))
            engine = create_engine(parsed, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ConfigError(f"--store {url!r}: not a database URL oddity can use ({exc}); "
                              "give sqlite:///FILE or postgresql://USER@HOST/DB") from None
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            store.migrate()
        except OperationalError as exc:
            raise ConfigError(f"--store {parsed.render_as_string(hide_password=True)}: cannot open "
                              f"the database ({exc.orig}); check the URL and that the server "
                              "is running") from None
        return store

    def migrate(self) -> None:
        """Apply every Alembic migration the database does not have yet."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # --- inspections ---------------------------------------------------------------------
    def add_inspections(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert the rows in one transaction (committed when this returns).

        Parameters
        ----------
        rows : list of dict
            Column name -> value for the `inspections` table.

        Returns
        -------
        list of int
            The new rows' ids, in order.
        """
        ids = []
        with self.engine.begin() as connection:
            for row in rows:
                result = connection.execute(insert(inspections).values(**row))
                ids.append(int(result.inserted_primary_key[0]))
        return ids

    def get(self, inspection_id: int) -> dict[str, Any] | None:
        """The inspection with this id.

        Parameters
        ----------
        inspection_id : int
            Row id.

        Returns
        -------
        dict or None
            Column name -> value, or None if there is no such row.
        """
        with self.engine.connect() as connection:
            row = connection.execute(select(inspections).where(inspections.c.id == inspection_id)).first()
        return dict(row._mapping) if row is not None else None

    def search(self, query: InspectionQuery) -> tuple[list[dict[str, Any]], int | None]:
        """A page of inspections, newest first.

        Parameters
        ----------
        query : InspectionQuery
            Filters, page size and cursor.

        Returns
        -------
        rows : list of dict
            At most `query.limit` rows, column name -> value.
        next_cursor : int or None
            The cursor of the next page (the last row's id), None at the end.
        """
        c = inspections.c
        statement = select(inspections).order_by(c.id.desc()).limit(query.limit + 1)
        if query.model is not None:
            statement = statement.where(c.model == query.model)
        if query.anomalous is not None:
            statement = statement.where(c.anomalous == query.anomalous)
        if query.verdict == "none":
            statement = statement.where(c.verdict.is_(None))
        elif query.verdict is not None:
            statement = statement.where(c.verdict == query.verdict)
        if query.since is not None:
            statement = statement.where(c.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(c.created_at < query.until)
        if query.cursor is not None:
            statement = statement.where(c.id < query.cursor)
        with self.engine.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(statement)]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return rows, (rows[-1]["id"] if more else None)

    def set_verdict(self, inspection_id: int, verdict: str, who: str, note: str) -> dict[str, Any] | None:
        """Record the operator's verdict on an inspection, with the time it was given.

        Parameters
        ----------
        inspection_id : int
            Row id.
        verdict : str
            The verdict (the caller checks its value).
        who : str
            The operator.
        note : str
            Free text stored with the verdict.

        Returns
        -------
        dict or None
            The updated row, or None if there is no such id.
        """
        with self.engine.begin() as connection:
            result = connection.execute(
                update(inspections).where(inspections.c.id == inspection_id)
                .values(verdict=verdict, verdict_by=who, verdict_note=note, verdict_at=utc_now()))
            if result.rowcount == 0:
                return None
        return self.get(inspection_id)

    def reviewed_scores(self, model: str, version: str) -> dict[str, list[float]]:
        """Scores of a model version's inspections by what is known of them.

        The groups: `false_alarm` (reviewed and normal), `normal` (labelled normal, not
        disputed by a review), `confirmed_defect` (reviewed and defective).

        Parameters
        ----------
        model : str
            Model name.
        version : str
            Model version; inspections by other versions are left out.

        Returns
        -------
        dict of str to list of float
            Scores under `false_alarm`, `normal` and `confirmed_defect` (each present, maybe
            empty).
        """
        c = inspections.c
        statement = select(c.score, c.anomalous, c.verdict).where(c.model == model, c.model_version == version)
        groups: dict[str, list[float]] = {"false_alarm": [], "normal": [], "confirmed_defect": []}
        with self.engine.connect() as connection:
            for score, anomalous, verdict in connection.execute(statement):
                if verdict in ("false_alarm", "confirmed_defect"):
                    groups[verdict].append(float(score))
                elif not anomalous and verdict is None:
                    groups["normal"].append(float(score))
        return groups

    def counts(self, model: str) -> dict[str, int]:
        """Numbers of a model's inspections: total, anomalous, and per verdict.

        Parameters
        ----------
        model : str
            Model name (all versions).

        Returns
        -------
        dict of str to int
            `inspections`, `anomalous` and `verdict_<verdict>` for each verdict given.
        """
        c = inspections.c
        with self.engine.connect() as connection:
            total, anomalous = connection.execute(
                select(func.count(), func.coalesce(func.sum(case((c.anomalous, 1), else_=0)), 0))
                .where(c.model == model)).one()
            verdicts = dict(connection.execute(
                select(c.verdict, func.count()).where(c.model == model, c.verdict.is_not(None))
                .group_by(c.verdict)).all())
        return {"inspections": int(total), "anomalous": int(anomalous),
                **{f"verdict_{k}": int(v) for k, v in verdicts.items()}}

    # --- thresholds ----------------------------------------------------------------------
    def add_threshold_change(self, row: dict[str, Any]) -> int:
        """Record a threshold change (committed when this returns), stamped with the time.

        Parameters
        ----------
        row : dict
            Column name -> value for the `threshold_changes` table, but `created_at`.

        Returns
        -------
        int
            The new row's id.
        """
        with self.engine.begin() as connection:
            result = connection.execute(insert(threshold_changes).values(created_at=utc_now(), **row))
        return int(result.inserted_primary_key[0])

    def threshold_history(self, model: str) -> list[dict[str, Any]]:
        """Every threshold change of a model, oldest first.

        Parameters
        ----------
        model : str
            Model name (all versions).

        Returns
        -------
        list of dict
            Column name -> value per change.
        """
        statement = (select(threshold_changes).where(threshold_changes.c.model == model)
                     .order_by(threshold_changes.c.id))
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(statement)]

    def current_threshold(self, model: str, version: str) -> float | None:
        """The threshold last set for this model version.

        Parameters
        ----------
        model : str
            Model name.
        version : str
            Model version.

        Returns
        -------
        float or None
            The last change's new value, or None if it was never changed.
        """
        t = threshold_changes.c
        statement = (select(t.new_value).where(t.model == model, t.model_version == version)
                     .order_by(t.id.desc()).limit(1))
        with self.engine.connect() as connection:
            value = connection.execute(statement).scalar()
        return None if value is None else float(value)

    def integrity_errors(self) -> list[str]:
        """Problems the database reports about itself (SQLite `integrity_check`; none elsewhere)."""
        if self.engine.dialect.name != "sqlite":
            return []
        with self.engine.connect() as connection:
            result = [r[0] for r in connection.execute(text("PRAGMA integrity_check"))]
        return [] if result == ["ok"] else result
