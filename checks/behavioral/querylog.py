"""What the application really ran, read from the log a plan names.

Behavioral validation replays the application's own statements, so the first job is to get
them back out of whatever recorded them, with the transaction boundaries the application
used (a write is only meaningful inside its transaction). Three formats are understood:

* a plain **SQL file**: statements separated by ``;`` (``DELIMITER`` lines honoured), optional
  ``-- name: label`` comments, transactions marked by ``BEGIN``/``START TRANSACTION`` ...
  ``COMMIT``/``ROLLBACK``;
* a **MySQL/MariaDB general query log**: multi-line entries, one session per thread id, with
  autocommit, explicit transactions and implicit commits tracked per session;
* a **pg_stat_statements export** (CSV or TSV with a ``query`` column, e.g. from
  ``\\copy (select queryid, calls, query from pg_stat_statements) to 'x.csv' csv header``),
  or the live view through :func:`read_pg_stat_statements`. It has no transaction
  information, so every statement is its own group, and statements whose constants were
  normalised into ``$n`` placeholders keep them (the replay reports those as untranslatable).

Transaction control (``BEGIN``, ``COMMIT``, ``SET autocommit``) shapes the groups and is not
itself returned; every other statement is, classified by :func:`classify`.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

#: A statement that only reads tables: replayed read-only and compared by result.
READ = "read"
#: INSERT/UPDATE/DELETE/REPLACE/MERGE: replayed inside its transaction, always rolled back.
WRITE = "write"
#: Session and driver chatter (SET, SHOW, USE, ``SELECT @@version``): not replayable.
SESSION = "session"
#: DDL and anything else that would change the schema or the server: never replayed.
OTHER = "other"

_CONTROL = "control"


@dataclass(frozen=True)
class LoggedStatement:
    """One statement the application ran.

    ``group_id`` ties together the statements of one transaction (an autocommitted statement
    is a group of its own); ``origin`` says where in the log it came from, for reports.
    """

    sql: str
    group_id: str
    kind: str
    label: str | None = None
    origin: str = ""
    calls: int = 1

    @property
    def title(self) -> str:
        """A short name for reports: the label, else the origin."""
        return self.label or self.origin or self.group_id


# --------------------------------------------------------------------------- classification

_FIRST_WORD = re.compile(r"[A-Za-z_]+")
_READ_WORDS = {"select", "with", "values", "table"}
_WRITE_WORDS = {"insert", "update", "delete", "replace", "merge", "upsert"}
_SESSION_WORDS = {"set", "use", "show", "describe", "desc", "explain", "kill", "flush", "lock",
                  "unlock", "discard", "reset", "deallocate", "prepare", "execute", "do", "help",
                  "listen", "unlisten", "notify", "checkpoint", "load", "handler", "fetch",
                  "close", "declare", "move", "call"}
_CONTROL_WORDS = {"begin", "start", "commit", "rollback", "end", "savepoint", "release", "xa", "abort"}
_SESSION_FUNCS = re.compile(
    r"@@|\b(database|schema|version|user|current_user|session_user|system_user|connection_id|"
    r"last_insert_id|found_rows|row_count|pg_backend_pid|current_database|current_schema|"
    r"pg_is_in_recovery|get_lock|release_lock|is_free_lock|sleep|pg_sleep|set_config|"
    r"nextval|setval|pg_advisory_lock|pg_try_advisory_lock|txid_current)\s*\(", re.I)
_INTO_FILE = re.compile(r"\binto\s+(outfile|dumpfile)\b", re.I)
_DML_IN_WITH = re.compile(r"\)\s*(insert|update|delete|merge)\b", re.I)


def strip_comments(sql: str) -> str:
    """The statement without leading/trailing comments and whitespace (quotes respected)."""
    pieces = _split(sql, keep_empty=True)
    return pieces[0][0].strip() if pieces else ""


def _first_word(sql: str) -> str:
    body = strip_comments(sql).lstrip("( \t\r\n")
    m = _FIRST_WORD.match(body)
    return m.group(0).lower() if m else ""


def classify(sql: str) -> str:
    """``read``, ``write``, ``session`` or ``other`` (plus ``control`` for transaction control).

    A read that calls session or side-effecting functions (``@@vars``, ``DATABASE()``,
    ``SLEEP()``, ``nextval()``) or writes a file (``INTO OUTFILE``) is ``session``: it is not a
    question about the data and must not be replayed.
    """
    word = _first_word(sql)
    body = strip_comments(sql)
    if word in _CONTROL_WORDS:
        return _CONTROL
    if word == "set" and re.match(r"set\s+(session\s+|local\s+|@@session\.|@@)?(autocommit|transaction)\b",
                                   body, re.I):
        return _CONTROL
    if word in _WRITE_WORDS:
        return WRITE
    if word in _READ_WORDS:
        if word == "with" and _DML_IN_WITH.search(body):
            return WRITE
        if _SESSION_FUNCS.search(body) or _INTO_FILE.search(body):
            return SESSION
        return READ
    if word in _SESSION_WORDS:
        return SESSION
    return OTHER


def _is_implicit_commit(sql: str) -> bool:
    """MySQL commits the open transaction before DDL and similar statements."""
    return _first_word(sql) in {"create", "alter", "drop", "truncate", "rename", "grant", "revoke",
                                "lock", "unlock", "analyze", "optimize", "repair", "load"}


# --------------------------------------------------------------------------- SQL scripts

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_DELIMITER = re.compile(r"^[ \t]*delimiter[ \t]+(\S+)[ \t]*$", re.I | re.M)
_LABEL = re.compile(r"^(?:--|#)\s*name\s*:\s*(\S+)\s*$", re.I | re.M)


def _split(text: str, delimiter: str = ";", keep_empty: bool = False) -> list[tuple[str, int, str]]:
    """Split on ``delimiter`` outside quotes, comments and dollar quotes.

    Returns ``(statement text without leading comments, 1-based line, leading comments)``.
    """
    out: list[tuple[str, int, str]] = []
    i, n = 0, len(text)
    start = 0
    comments: list[str] = []
    body_start: int | None = None
    counted = [0, 1]  # position up to which newlines are counted, line number there

    def line_at(pos: int) -> int:
        counted[1] += text.count("\n", counted[0], pos)
        counted[0] = pos
        return counted[1]

    def flush(end: int) -> None:
        nonlocal comments, body_start
        body = text[body_start:end].strip() if body_start is not None else ""
        if body or keep_empty:
            out.append((body, line_at(body_start if body_start is not None else start), "\n".join(comments)))
        comments, body_start = [], None

    while i < n:
        ch = text[i]
        if text.startswith(delimiter, i):
            flush(i)
            i += len(delimiter)
            start = i
            continue
        if ch in " \t\r\n":
            i += 1
            continue
        if text.startswith("--", i) or ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            if body_start is None:
                comments.append(text[i:j])
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            if body_start is None and not text.startswith("/*!", i) and not text.startswith("/*+", i):
                comments.append(text[i:j])
                i = j
                continue
            body_start = i if body_start is None else body_start
            i = j
            continue
        if body_start is None:
            body_start = i
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if text[j] == "\\" and ch != "`":
                    j += 2
                    continue
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if ch == "$":
            m = _DOLLAR.match(text, i)
            if m:
                j = text.find(m.group(0), m.end())
                i = n if j < 0 else j + len(m.group(0))
                continue
        i += 1
    flush(n)
    return out


def split_statements(text: str) -> list[tuple[str, int, str | None]]:
    """Statements of a SQL script as ``(sql, line, label)``; honours MySQL ``DELIMITER`` lines."""
    result: list[tuple[str, int, str | None]] = []
    pos, line_offset, delimiter = 0, 0, ";"
    for m in list(_DELIMITER.finditer(text)) + [None]:
        chunk = text[pos:m.start()] if m else text[pos:]
        for sql, line, comments in _split(chunk, delimiter):
            labels = _LABEL.findall(comments)
            result.append((sql, line + line_offset, labels[-1] if labels else None))
        if m:
            line_offset += text.count("\n", pos, m.end())
            pos, delimiter = m.end(), m.group(1)
    return result


class _Sessions:
    """Per-session transaction tracking shared by the script and general-log readers."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.autocommit: dict[str, bool] = {}
        self.open: dict[str, str | None] = {}
        self.seq = 0
        self.out: list[LoggedStatement] = []

    def _new_group(self, session: str) -> str:
        self.seq += 1
        return f"{self.prefix}{session}#{self.seq}" if session else f"{self.prefix}{self.seq}"

    def close(self, session: str) -> None:
        self.open[session] = None

    def add(self, session: str, sql: str, *, origin: str, label: str | None = None) -> None:
        kind = classify(sql)
        low = strip_comments(sql).lower()
        if kind == _CONTROL:
            if re.match(r"(begin|start\s+transaction)\b", low):
                self.open[session] = self._new_group(session)
            elif re.match(r"(commit|rollback|end|abort)\b", low) and "to savepoint" not in low:
                self.close(session)
            else:
                m = re.search(r"autocommit\s*(?:=|to)\s*'?(\w+)", low)
                if m:
                    on = m.group(1) in ("1", "on", "true")
                    if on:
                        self.close(session)
                    self.autocommit[session] = on
            return
        if _is_implicit_commit(sql):
            self.close(session)
        group = self.open.get(session)
        if group is None:
            group = self._new_group(session)
            if not self.autocommit.get(session, True) and kind != OTHER:
                self.open[session] = group  # autocommit off: a transaction starts implicitly
        self.out.append(LoggedStatement(sql=sql, group_id=group, kind=kind, label=label, origin=origin))
        if kind == OTHER and _is_implicit_commit(sql):
            self.close(session)


def parse_sql_script(text: str, *, name: str = "script") -> list[LoggedStatement]:
    """Statements of a SQL file, grouped by its explicit transactions."""
    sessions = _Sessions(prefix=f"{name}:")
    for sql, line, label in split_statements(text):
        sessions.add("", sql, origin=f"{name}:{line}", label=label)
    return sessions.out


# --------------------------------------------------------------------------- MySQL general log

_GL_ENTRY = re.compile(
    r"^(?P<ts>\d{6}\s+\d{1,2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"\t+ *(?P<id>\d+) (?P<cmd>[A-Z][A-Za-z]*(?: [A-Za-z]+)?)\t(?P<arg>.*)$")
_GL_HEADER = re.compile(r"^\S.*, Version: .*started with:$|^Tcp port: \d+|^Time\s+Id\s+Command\s+Argument")


def looks_like_general_log(text: str) -> bool:
    head = text[:4096].splitlines()[:20]
    return any(_GL_HEADER.match(line) for line in head) or \
        sum(bool(_GL_ENTRY.match(line)) for line in head) >= max(1, len(head) // 2)


def parse_mysql_general_log(text: str, *, name: str = "general.log") -> list[LoggedStatement]:
    """Statements of a MySQL/MariaDB general query log, grouped per session and transaction.

    Only ``Query`` and ``Execute`` entries are statements (``Execute`` carries the values of a
    prepared statement); ``Connect``/``Quit`` end a session's open transaction.
    """
    sessions = _Sessions(prefix=f"{name}:t")
    entries: list[list] = []  # [thread, command, lines, line number]
    for lineno, line in enumerate(text.splitlines(), 1):
        if _GL_HEADER.match(line):
            continue
        m = _GL_ENTRY.match(line)
        if m:
            entries.append([m.group("id"), m.group("cmd"), [m.group("arg")], lineno])
        elif entries:
            entries[-1][2].append(line)
    for thread, cmd, lines, lineno in entries:
        arg = "\n".join(lines).strip()
        if cmd in ("Connect", "Quit", "Change user"):
            sessions.close(thread)
            sessions.autocommit.pop(thread, None)
        elif cmd in ("Query", "Execute") and arg:
            for sql, _, label in split_statements(arg):  # a multi-statement Query
                sessions.add(thread, sql, origin=f"{name}:{lineno} (thread {thread})", label=label)
    return sessions.out


# --------------------------------------------------------------------------- pg_stat_statements

def parse_pg_stat_statements(text: str, *, name: str = "pg_stat_statements") -> list[LoggedStatement]:
    """Rows of a pg_stat_statements export (CSV or TSV with a header naming ``query``)."""
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames or "query" not in reader.fieldnames:
        raise ValueError(f"{name}: a pg_stat_statements export needs a 'query' column "
                         f"(found {reader.fieldnames})")
    return _pgss_rows(((r.get("queryid"), r.get("calls"), r["query"]) for r in reader), name)


def _pgss_rows(rows, name: str) -> list[LoggedStatement]:
    out = []
    for i, (queryid, calls, query) in enumerate(rows, 1):
        if not query or not query.strip():
            continue
        kind = classify(query)
        if kind == _CONTROL:
            continue
        label = f"queryid {queryid}" if queryid not in (None, "") else None
        out.append(LoggedStatement(sql=query.strip().rstrip(";"), group_id=f"{name}:{i}", kind=kind,
                                   label=label, origin=f"{name} row {i}",
                                   calls=int(calls) if calls not in (None, "") else 1))
    return out


def read_pg_stat_statements(conn, *, min_calls: int = 1) -> list[LoggedStatement]:
    """Statements recorded by the live ``pg_stat_statements`` view of the connected database.

    ``conn`` is a DBAPI connection (psycopg). The extension must be in
    ``shared_preload_libraries`` and created in the database.
    """
    cur = conn.cursor()
    try:
        cur.execute("SELECT queryid, calls, query FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND calls >= %s ORDER BY calls DESC, queryid", (min_calls,))
        rows = cur.fetchall()
    finally:
        cur.close()
    return _pgss_rows(rows, "pg_stat_statements")


# --------------------------------------------------------------------------- entry point

def detect_format(text: str, path: str = "") -> str:
    """``sql``, ``mysql_general_log`` or ``pg_stat_statements``, from the name and the content."""
    suffix = Path(path).suffix.lower()
    first = text.lstrip().split("\n", 1)[0].lower()
    if suffix in (".csv", ".tsv") or re.match(r"^[\w\",\t]*\bquery\b[\w\",\t]*$", first):
        return "pg_stat_statements"
    if looks_like_general_log(text):
        return "mysql_general_log"
    return "sql"


def parse_query_log(text: str, *, format: str | None = None, name: str = "log") -> list[LoggedStatement]:
    """Parse log text in the given (or detected) format."""
    fmt = format or detect_format(text, name)
    if fmt == "pg_stat_statements":
        return parse_pg_stat_statements(text, name=name)
    if fmt == "mysql_general_log":
        return parse_mysql_general_log(text, name=name)
    if fmt == "sql":
        return parse_sql_script(text, name=name)
    raise ValueError(f"unknown query log format {fmt!r} (sql, mysql_general_log, pg_stat_statements)")


def read_query_log(path: str | Path, *, format: str | None = None) -> list[LoggedStatement]:
    """The statements of the query log file at ``path`` (format detected unless given)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    fmt = format or detect_format(text, str(p))
    return parse_query_log(text, format=fmt, name=p.name)
