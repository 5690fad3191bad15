"""Turning plan URLs into live connections, with errors that say which database failed and why.

URLs in a plan are templates (``${VAR}``); they are resolved here, at connection time, so the
resolved secret never sits in Dagster config, metadata or logs.
"""
from __future__ import annotations

import functools
import sqlite3
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from kora_assets.naming import redact_url
from kora_assets.plan.loader import resolve_env


class DatabaseUnreachable(RuntimeError):
    """The database did not answer; the message names it (without password) and the cause."""


@dataclass(frozen=True)
class Database:
    """One side of a migration: its dialect, a SQLAlchemy engine, and native fast paths."""

    template: str
    role: str = "database"

    @functools.cached_property
    def url(self) -> URL:
        raw = resolve_env(self.template, what=f"{self.role} url")
        try:
            url = make_url(raw)
        except Exception:
            raise DatabaseUnreachable(f"{self.role} URL {redact_url(raw)!r} is not a valid database URL "
                                      "(expected e.g. postgresql://user@host:5432/db, mysql://root@host/db, sqlite:///file.db)") from None
        return _with_driver(url)

    @property
    def dialect(self) -> str:
        name = self.url.get_backend_name()
        return {"mariadb": "mysql"}.get(name, name)

    @property
    def display(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @functools.cached_property
    def engine(self) -> sa.Engine:
        """The process's engine (and connection pool) for this database and role, shared by every
        ``Database`` naming it: a run's checks connect again and again, and each new MariaDB
        connection built a TLS context (PyMySQL's preferred mode: 4.7 CPU-s of the coordinator's
        TPC-H SF1 run), each PostgreSQL one a server process. The least recently used engines
        beyond ``_ENGINES_KEPT`` are disposed, so idle pools do not pile up on the servers."""
        key = (self.url.render_as_string(hide_password=False), self.role == "target" and self.dialect == "sqlite")
        return cached_engine(_ENGINES, _ENGINES_LOCK, key, self._new_engine, _ENGINES_KEPT)

    def _new_engine(self) -> sa.Engine:
        kw = {"pool_pre_ping": True}
        if self.dialect == "postgresql":
            kw["connect_args"] = {"connect_timeout": 10}
        elif self.dialect == "mysql":
            kw["connect_args"] = {"connect_timeout": 10, "local_infile": True}
        engine = sa.create_engine(self.url, **kw)
        if self.dialect == "sqlite" and self.role == "target":
            # Checks must see FKs enforced as an application would (the loader's own
            # connection keeps them off: it proves parents itself, partition by partition).
            sa.event.listen(engine, "connect", lambda con, _: con.execute("PRAGMA foreign_keys=ON"))
        return engine

    def check(self) -> None:
        """Connect once; raise DatabaseUnreachable with a specific reason."""
        if self.dialect == "sqlite" and self.role == "source":
            path = self.url.database
            import os

            if not path or (path != ":memory:" and not os.path.exists(path)):
                raise DatabaseUnreachable(f"{self.role} SQLite file {path!r} does not exist")
        try:
            with self.engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
        except Exception as exc:  # the driver's own text is the most specific reason there is
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise DatabaseUnreachable(f"cannot connect to the {self.role} database {self.display}: {reason}") from None

    @property
    def connectorx_url(self) -> str:
        """The URL connectorx wants: no SQLAlchemy driver suffix, absolute SQLite paths."""
        u = self.url
        if self.dialect == "sqlite":
            import os

            return "sqlite://" + os.path.abspath(u.database)
        scheme = {"postgresql": "postgresql", "mysql": "mysql"}[self.dialect]
        if not u.host and u.query.get("host"):  # a Unix socket: connectorx wants a host beside ?host=
            u = u.set(host="localhost")
        text = u.set(drivername=scheme).render_as_string(hide_password=False)
        base, _, query = text.partition("?")
        return base + ("?" + unquote(query) if query else "")

    def psycopg_conninfo(self) -> str:
        """A libpq conninfo for psycopg 3 (handles socket paths in ``?host=``)."""
        u = self.url
        parts = {"dbname": u.database, "user": u.username, "password": u.password,
                 "host": u.host or u.query.get("host"), "port": u.port}
        return " ".join(f"{k}={_libpq_quote(str(v))}" for k, v in parts.items() if v)

    def sqlite_connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.url.database, timeout=60, isolation_level=None)
        use_wal(con)
        return con

    def quote(self, ident: str) -> str:
        return self.engine.dialect.identifier_preparer.quote_identifier(ident)

    def qualified(self, table: str, schema: str | None) -> str:
        if schema and self.dialect != "sqlite":
            return f"{self.quote(schema)}.{self.quote(table)}"
        return self.quote(table)


_ENGINES: OrderedDict[tuple[str, bool], sa.Engine] = OrderedDict()
_ENGINES_LOCK = threading.Lock()
_ENGINES_KEPT = 8


def cached_engine(cache: OrderedDict, lock: threading.Lock, key, create, kept: int) -> sa.Engine:
    """``cache[key]`` (made by ``create()`` when absent), now the most recently used; engines
    used least recently beyond ``kept`` are disposed, so idle pools do not pile up."""
    with lock:
        engine = cache.pop(key, None)
        if engine is None:
            engine = create()
        cache[key] = engine
        while len(cache) > kept:
            cache.popitem(last=False)[1].dispose()
        return engine


def use_wal(con) -> None:
    """WAL journaling (readers never block the loader's writes). The mode is stored in the file,
    so it is switched once, by whoever creates the target; switching needs the file to itself
    and can fail at once with "database is locked" while another connection reads (seen when a
    worker switched a freshly created target while the coordinator read it), so a connection
    that finds WAL set leaves it alone. ``con``: a DB-API connection outside a transaction."""
    if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        con.execute("PRAGMA journal_mode=WAL")


def _with_driver(url: URL) -> URL:
    name = url.drivername
    if name in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if name in ("mysql", "mariadb"):
        return url.set(drivername="mysql+pymysql")
    return url


def _libpq_quote(v: str) -> str:
    v = unquote(v)
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def reflect_columns(insp, table: str, schema: str | None) -> list[dict]:
    """``insp.get_columns`` without SQLAlchemy's warning for each type it does not know (xml,
    point, geometry, ...): kora reads those as text and ``kora init`` says so in the plan. The
    filter is set once, for the process: ``catch_warnings`` is not safe beside the threads that
    run checks side by side."""
    if not _QUIET_UNKNOWN_TYPES:
        warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
        _QUIET_UNKNOWN_TYPES.append(True)
    return insp.get_columns(table, schema=schema)


_QUIET_UNKNOWN_TYPES: list[bool] = []
