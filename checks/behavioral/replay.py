"""Running the application's statements on one database without changing anything in it.

A query replays inside a READ ONLY transaction with a statement timeout, and is rolled back.
A transaction of writes replays inside a transaction that is *always* rolled back, whatever
happens, after which anything a rollback does not undo is put back: PostgreSQL sequences
(``nextval`` is not transactional) and MySQL ``AUTO_INCREMENT`` counters. On MySQL/MariaDB a
write is refused outright when a table it writes is not transactional (MyISAM, Aria, MEMORY,
views): a rollback could not undo it.

What a transaction did to a table is the difference between the table at its end and a
temporary copy taken at its start (``EXCEPT ALL``, computed by the database), so only the
changed rows travel to be compared. The copy is a temporary table inside the transaction: the
rollback removes it on PostgreSQL and SQLite, an explicit ``DROP TEMPORARY TABLE`` on MySQL.

Per dialect:

=============  ==========================================  =====================================
dialect        read-only                                   timeout
=============  ==========================================  =====================================
PostgreSQL     ``BEGIN TRANSACTION READ ONLY``             ``SET LOCAL statement_timeout``,
                                                           ``lock_timeout``
MariaDB        ``START TRANSACTION READ ONLY``             ``SET SESSION max_statement_time``
MySQL          ``START TRANSACTION READ ONLY``             ``SET SESSION max_execution_time``
SQLite         ``PRAGMA query_only = ON``                  a progress handler that interrupts
=============  ==========================================  =====================================

A :class:`ReplaySide` wraps a SQLAlchemy engine (it opens one connection of its own) or a
DBAPI connection (psycopg 3/2, pymysql/MySQLdb, sqlite3; it is borrowed and handed back in the
state it came in). The connection must not be in use by anyone else during the replay. With
pymysql directly, open it with ``client_flag=pymysql.constants.CLIENT.FOUND_ROWS`` so that an
UPDATE reports matched rows like every other database (SQLAlchemy does this by itself).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from checks.behavioral.compare import normalize_row
from checks.behavioral.translate import sqlglot_dialect

_PG_BPCHAR = 1042
_MYSQL_JSON = 245
_TRANSACTIONAL_ENGINES = {"innodb", "xtradb", "ndbcluster", "ndb", "tokudb", "rocksdb"}


class ReplayError(RuntimeError):
    """A statement failed on one side; ``timeout`` says whether the timeout stopped it."""

    def __init__(self, message: str, *, timeout: bool = False, index: int | None = None):
        super().__init__(message)
        self.timeout = timeout
        self.index = index  # which statement of a transaction failed


class ReplayRefused(RuntimeError):
    """The replay was not attempted because it could not be undone."""


@dataclass
class Result:
    """What one statement returned: normalised rows (for a query) or an affected-row count."""

    rows: list[tuple] | None
    rowcount: int | None
    columns: list[str] = field(default_factory=list)
    truncated: bool = False
    seconds: float = 0.0


@dataclass
class TableSnapshot:
    """What the transaction did to one table, read just before the rollback.

    ``added``/``removed`` are the rows that appeared/disappeared (an updated row is one of
    each), computed by the database against a copy taken when the transaction began, so only
    the change travels, however large the table. None when the change exceeded the limit.
    """

    table: str
    count: int  # rows in the table at the end of the transaction
    added: list[tuple] | None
    removed: list[tuple] | None
    full: list[tuple] | None = None  # every row, where the database cannot compute a difference
@dataclass
class TransactionResult:
    results: list[Result]
    tables: list[TableSnapshot]
    error: ReplayError | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class TableRef:
    """A table to snapshot after a write: its name on this side and the columns to read."""

    name: str
    columns: tuple[str, ...] | None = None  # None: every column (``*``)


def _driver_dialect(conn) -> str:
    mod = type(conn).__module__.split(".")[0].lower()
    if mod in ("psycopg", "psycopg2", "pg8000", "asyncpg"):
        return "postgresql"
    if mod in ("pymysql", "mysqldb", "mysql", "mariadb"):
        return "mysql"
    if mod in ("sqlite3", "pysqlite2"):
        return "sqlite"
    raise TypeError(f"cannot tell the database of a {type(conn).__module__}.{type(conn).__name__} connection")


class ReplaySide:
    """One database of the comparison, able to replay statements without changing it."""

    def __init__(self, conn_or_engine, *, name: str = "database", schema: str | None = None):
        self.name = name
        self.schema = schema
        self._engine = None
        self._raw = None  # pooled connection we opened (engine case)
        self._conn = None  # the DBAPI connection statements run on
        try:
            import sqlalchemy as sa

            if isinstance(conn_or_engine, str):
                conn_or_engine = sa.create_engine(_with_driver(conn_or_engine), poolclass=sa.pool.NullPool)
            if isinstance(conn_or_engine, sa.engine.Engine):
                self._engine = conn_or_engine
            elif isinstance(conn_or_engine, sa.engine.Connection):
                self._conn = conn_or_engine.connection.driver_connection
        except ImportError:  # pragma: no cover - SQLAlchemy is a dependency
            pass
        if self._engine is None and self._conn is None:
            self._conn = conn_or_engine
        if self._engine is not None:
            name_ = self._engine.dialect.name
            self.dialect = "mysql" if name_ in ("mysql", "mariadb") else name_
        else:
            self.dialect = _driver_dialect(self._conn)
        self._mariadb = False
        self._prepared = False
        self._saved_session: dict[str, object] = {}

    # ------------------------------------------------------------------ connection handling

    @property
    def sqlglot_dialect(self) -> str:
        return sqlglot_dialect(self.dialect)

    def _connection(self):
        if self._conn is None:
            self._raw = self._engine.raw_connection()
            self._conn = self._raw.driver_connection
            self._prepared = False
        if self.dialect == "mysql" and not self._prepared:
            cur = self._conn.cursor()
            try:  # remember the session settings we are about to change, to put them back
                cur.execute("SELECT VERSION(), @@SESSION.innodb_lock_wait_timeout")
                version, lock_wait = cur.fetchone()
                self._mariadb = "mariadb" in str(version).lower()
                var = "max_statement_time" if self._mariadb else "max_execution_time"
                cur.execute(f"SELECT @@SESSION.{var}")
                self._saved_session = {var: cur.fetchone()[0], "innodb_lock_wait_timeout": lock_wait}
            finally:
                cur.close()
            self._prepared = True
        return self._conn

    def close(self) -> None:
        """Restore the session settings we changed and give the connection back."""
        if self._conn is not None and self._saved_session and self.dialect == "mysql":
            try:
                self._set_autocommit(True)
                cur = self._conn.cursor()
                for var, val in self._saved_session.items():
                    cur.execute(f"SET SESSION {var} = %s", (val,))
                cur.close()
            except Exception:
                pass
        self._saved_session, self._prepared = {}, False
        if self._raw is not None:
            try:
                self._raw.close()
            finally:
                self._raw, self._conn = None, None
        if self._engine is not None:
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _get_autocommit(self):
        c = self._conn
        if self.dialect == "mysql":
            return c.get_autocommit()
        if self.dialect == "sqlite":
            return c.isolation_level
        return c.autocommit

    def _set_autocommit(self, value) -> None:
        """Autocommit on, so that BEGIN/ROLLBACK below are exactly the ones we send."""
        c = self._conn
        if self.dialect == "mysql":
            c.autocommit(bool(value))
        elif self.dialect == "sqlite":
            c.isolation_level = None if value is True else value
        elif c.autocommit != value:
            c.autocommit = value

    def _enter(self):
        conn = self._connection()
        try:
            conn.rollback()  # a clean session: nothing of ours may join someone's transaction
        except Exception:
            pass
        saved = self._get_autocommit()
        self._set_autocommit(True)
        return conn, saved

    def _leave(self, saved) -> None:
        try:
            self._set_autocommit(saved)
        except Exception:
            pass

    # ------------------------------------------------------------------ dialect pieces

    def _begin(self, cur, timeout_s: float, *, read_only: bool) -> None:
        ms = max(1, int(timeout_s * 1000))
        if self.dialect == "postgresql":
            cur.execute("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION READ WRITE")
            cur.execute(f"SET LOCAL statement_timeout = {ms}")
            cur.execute(f"SET LOCAL lock_timeout = {ms}")
            if self.schema:
                cur.execute(f"SET LOCAL search_path TO {_quote_pg(self.schema)}")
        elif self.dialect == "mysql":
            if self._mariadb:
                cur.execute(f"SET SESSION max_statement_time = {timeout_s:.3f}")
            else:
                cur.execute(f"SET SESSION max_execution_time = {ms}")
            cur.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, math.ceil(timeout_s))}")
            cur.execute("START TRANSACTION READ ONLY" if read_only else "START TRANSACTION READ WRITE")
        else:
            cur.execute("PRAGMA query_only = ON" if read_only else "PRAGMA query_only = OFF")
            deadline = time.monotonic() + timeout_s
            self._conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
            cur.execute("BEGIN")

    def _rollback(self, cur) -> None:
        try:
            cur.execute("ROLLBACK")
        except Exception:
            try:
                self._conn.rollback()
            except Exception:
                self._broken()
                raise
        finally:
            if self.dialect == "sqlite":
                self._conn.set_progress_handler(None, 0)
                try:
                    cur.execute("PRAGMA query_only = OFF")
                except Exception:
                    pass

    def _broken(self) -> None:
        """Drop a connection that failed mid-rollback; the server rolls back on disconnect."""
        try:
            if self._raw is not None:
                self._raw.invalidate()
        except Exception:
            pass
        self._raw = None
        if self._engine is not None:
            self._conn = None

    def _is_timeout(self, exc: Exception) -> bool:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code == "57014":
            return True
        args = getattr(exc, "args", ())
        if self.dialect == "mysql" and args and args[0] in (1969, 3024, 1317):
            return True
        text = str(exc).lower()
        return "interrupted" in text or "statement timeout" in text or "max_statement_time" in text

    def _fetch(self, cur, max_rows: int | None) -> tuple[list[tuple], list[str], bool]:
        desc = cur.description or []
        columns = [d[0] for d in desc]
        codes = [getattr(d, "type_code", d[1]) for d in desc]
        if max_rows is None:
            raw = cur.fetchall()
            truncated = False
        else:
            raw = cur.fetchmany(max_rows + 1)
            truncated = len(raw) > max_rows
            raw = raw[:max_rows]
        pad = [i for i, c in enumerate(codes) if self.dialect == "postgresql" and c == _PG_BPCHAR]
        js = [i for i, c in enumerate(codes) if self.dialect == "mysql" and c == _MYSQL_JSON]
        rows = []
        for r in raw:
            if pad or js:
                r = list(r)
                for i in pad:
                    if isinstance(r[i], str):
                        r[i] = r[i].rstrip(" ")
                for i in js:
                    if isinstance(r[i], (str, bytes)):
                        try:
                            r[i] = json.loads(r[i])
                        except ValueError:
                            pass
            rows.append(normalize_row(r))
        return rows, columns, truncated

    def _execute(self, cur, sql: str, max_rows: int | None, index: int | None = None) -> Result:
        t0 = time.perf_counter()
        try:
            cur.execute(sql)
            if cur.description is not None:
                rows, columns, truncated = self._fetch(cur, max_rows)
                return Result(rows, None, columns, truncated, time.perf_counter() - t0)
            return Result(None, cur.rowcount, [], False, time.perf_counter() - t0)
        except Exception as exc:
            raise ReplayError(_message(exc), timeout=self._is_timeout(exc), index=index) from exc

    # ------------------------------------------------------------------ public

    def run_read(self, sql: str, *, timeout_s: float = 30.0, max_rows: int | None = 100_000) -> Result:
        """Run one query read-only with a timeout, fetch its rows, roll back."""
        t0 = time.perf_counter()
        conn, saved = self._enter()
        cur = conn.cursor()
        rolled_back = False
        try:
            self._begin(cur, timeout_s, read_only=True)
            result = self._execute(cur, sql, max_rows)
            self._rollback(cur)
            rolled_back = True
            result.seconds = time.perf_counter() - t0  # the whole round: begin, run, fetch, rollback
            return result
        finally:
            try:
                if not rolled_back:
                    self._rollback(cur)
            finally:
                try:
                    cur.close()
                except Exception:
                    pass
                self._leave(saved)

    def run_transaction(self, statements: list[str], *, tables: list[TableRef] = (),
                        timeout_s: float = 30.0, max_rows: int | None = 100_000,
                        max_table_rows: int = 200_000) -> TransactionResult:
        """Run the statements in one transaction, read what they did to ``tables``, roll back.

        Raises :class:`ReplayRefused` (before doing anything) when the rollback could not undo
        the writes. A failing statement ends the transaction early; its error is returned.
        """
        conn, saved = self._enter()
        cur = conn.cursor()
        t0 = time.perf_counter()
        results: list[Result] = []
        snapshots: list[TableSnapshot] = []
        error = None
        copies: list[str | None] = []
        try:
            counters = self._save_counters(cur, tables)
            try:
                self._begin(cur, timeout_s, read_only=False)
                try:
                    copies = [self._copy_before(cur, t, i) for i, t in enumerate(tables)]
                    for i, sql in enumerate(statements):
                        results.append(self._execute(cur, sql, max_rows, index=i))
                    for t, copy in zip(tables, copies):
                        snapshots.append(self._difference(cur, t, copy, max_table_rows))
                except ReplayError as exc:
                    error = exc
            finally:
                self._rollback(cur)
                self._restore_counters(cur, counters)
                self._drop_copies(cur, copies)
        finally:
            try:
                cur.close()
            except Exception:
                pass
            self._leave(saved)
        return TransactionResult(results, snapshots, error, time.perf_counter() - t0)

    def quote(self, ident: str) -> str:
        if self.dialect == "mysql":
            return "`" + ident.replace("`", "``") + "`"
        q = '"' + ident.replace('"', '""') + '"'
        if self.dialect == "postgresql" and self.schema:
            return f"{_quote_pg(self.schema)}.{q}"
        return q

    def _select_list(self, table: TableRef) -> str:
        return ", ".join(self.quote_column(c) for c in table.columns) if table.columns else "*"

    def _copy_before(self, cur, table: TableRef, i: int) -> str | None:
        """A temporary copy of the table as the transaction found it (None: cannot copy)."""
        name = f"kora_replay_before_{i}"
        body = f"SELECT {self._select_list(table)} FROM {self.quote(table.name)}"
        if self.dialect == "postgresql":
            sql = f'CREATE TEMPORARY TABLE "{name}" ON COMMIT DROP AS {body}'
        elif self.dialect == "mysql":  # no implicit commit for temporary tables
            sql = f"CREATE TEMPORARY TABLE `{name}` AS {body}"
        else:
            sql = f'CREATE TEMP TABLE "{name}" AS {body}'
        try:
            self._execute(cur, sql, None)
        except ReplayError:
            if self.dialect == "postgresql":  # the transaction is aborted; nothing to fall back on
                raise
            return None  # e.g. MySQL with GTID consistency: compare whole tables instead
        return name

    def _drop_copies(self, cur, copies: list[str | None]) -> None:
        """PostgreSQL and SQLite roll temporary tables back; MySQL keeps them for the session."""
        if self.dialect != "mysql":
            return
        for name in copies:
            if name:
                try:
                    cur.execute(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
                except Exception:
                    self._broken()  # the session, and its temporary tables, end with the connection
                    return

    def _difference(self, cur, table: TableRef, copy: str | None, max_rows: int) -> TableSnapshot:
        cols = self._select_list(table)
        now = f"SELECT {cols} FROM {self.quote(table.name)}"
        count = self._execute(cur, f"SELECT COUNT(*) FROM {self.quote(table.name)}", None).rows[0][0]
        minus = "EXCEPT" if self.dialect == "sqlite" else "EXCEPT ALL"
        try:
            if copy is None:
                raise ReplayError("no copy of the table to compare with")
            q = self.quote_column(copy)
            added = self._execute(cur, f"{now} {minus} SELECT * FROM {q}", max_rows)
            removed = self._execute(cur, f"SELECT * FROM {q} {minus} {now}", max_rows)
        except ReplayError:  # no copy, or a server without EXCEPT ALL: bring the whole table
            if self.dialect == "postgresql":
                raise
            full = self._execute(cur, now, max_rows)
            return TableSnapshot(table.name, int(count), None, None, None if full.truncated else full.rows)
        return TableSnapshot(table.name, int(count), None if added.truncated else added.rows,
                             None if removed.truncated else removed.rows)

    def quote_column(self, ident: str) -> str:
        if self.dialect == "mysql":
            return "`" + ident.replace("`", "``") + "`"
        return '"' + ident.replace('"', '""') + '"'

    # ------------------------------------------------------------------ counters a rollback keeps

    def _save_counters(self, cur, tables: list[TableRef]):
        if self.dialect == "postgresql":
            cur.execute("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                        "last_value, start_value FROM pg_sequences")
            return {name: (last, start) for name, last, start in cur.fetchall()}
        if self.dialect == "mysql":
            names = [t.name for t in tables]
            if not names:
                return {}
            if not self._mariadb:
                try:
                    cur.execute("SET SESSION information_schema_stats_expiry = 0")
                except Exception:
                    pass
            marks = ", ".join(["%s"] * len(names))
            cur.execute("SELECT TABLE_NAME, ENGINE, AUTO_INCREMENT, TABLE_TYPE FROM information_schema.TABLES "
                        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})", names)
            info = {r[0]: r for r in cur.fetchall()}
            for n in names:
                row = info.get(n)
                if row is None:
                    raise ReplayRefused(f"table {n!r} is not a base table of the current database; "
                                        "cannot make sure a rollback undoes writes to it")
                if (row[1] or "").lower() not in _TRANSACTIONAL_ENGINES:
                    raise ReplayRefused(f"table {n!r} uses the non-transactional {row[1] or row[3]} engine; "
                                        "a rollback would not undo the writes")
            return {n: info[n][2] for n in names if info[n][2] is not None}
        return {}

    def _restore_counters(self, cur, saved) -> None:
        if not saved:
            return
        if self.dialect == "postgresql":
            cur.execute("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                        "last_value, start_value FROM pg_sequences")
            for name, last, start in cur.fetchall():
                if name in saved and saved[name][0] != last:
                    before, begin = saved[name]
                    if before is None:
                        cur.execute("SELECT setval(%s::regclass, %s, false)", (name, begin))
                    else:
                        cur.execute("SELECT setval(%s::regclass, %s, true)", (name, before))
        elif self.dialect == "mysql":
            marks = ", ".join(["%s"] * len(saved))
            cur.execute("SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})", list(saved))
            for name, now in cur.fetchall():
                if now is not None and saved.get(name) is not None and now != saved[name]:
                    cur.execute(f"ALTER TABLE {self.quote(name)} AUTO_INCREMENT = {int(saved[name])}")


def _quote_pg(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _with_driver(url: str):
    """SQLAlchemy defaults to drivers kora does not ship; name the ones it does."""
    from sqlalchemy.engine import make_url

    from kora_assets.dbio.connections import _with_driver as with_driver

    return with_driver(make_url(url))


def _message(exc: Exception) -> str:
    text = str(exc).strip()
    if getattr(exc, "args", None) and isinstance(exc.args[0], int) and len(exc.args) > 1:
        text = f"({exc.args[0]}) {exc.args[1]}"
    return text.splitlines()[0] if text else type(exc).__name__
