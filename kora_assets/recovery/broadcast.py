"""Fix broadcasts on Redis pub/sub, signed; and the one-agent-per-signature lock.

A proven fix is published on the plan's channel as ``{"payload": <json text>, "sig": <hex
HMAC-SHA256>}``. A worker uses a message only if the HMAC verifies with the configured key
(``KORA_FIX_HMAC_KEY``, else a key generated once per fix library) *and* its operators validate
against the closed operator schema; anything else is dropped and logged. Redis only
coordinates: a missed message costs nothing, because workers also load the library's active
fixes whenever it changes (checked before each partition). Cross-column fixes
(``split_from_sibling``) are signed and validated like any other (their sibling must be a column
of the plan's table), but workers do not apply them inline (``inline_ok``): recovery does.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

from kora_assets.plan.model import Plan
from kora_assets.recovery.classify import Signature, guarded, shape_kind
from kora_assets.recovery.library import FixLibrary, LibraryFix, library_url, ops_to_json, parse_ops
from kora_assets.transforms.compiler import LearnedFix
from kora_assets.transforms.operators import cross_column_ops

log = logging.getLogger("kora.recovery")
MAX_AGE_S = 24 * 3600


def namespace(plan: Plan) -> str:
    """Runs of one plan against one target share a namespace (no secrets: the URL template)."""
    return hashlib.sha1(f"{plan.name}|{plan.target.url}".encode()).hexdigest()[:12]


def channel(plan: Plan) -> str:
    return f"kora:fixes:{namespace(plan)}"


def sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def encode_fix(key: bytes, plan: Plan, table: str, fix: LibraryFix) -> str:
    payload = json.dumps({"v": 1, "ns": namespace(plan), "table": table, "fix_id": fix.id,
                          "signature": str(fix.signature), "ops": ops_to_json(fix.ops),
                          "ts": time.time(), "nonce": uuid.uuid4().hex}, ensure_ascii=False, sort_keys=True)
    return json.dumps({"payload": payload, "sig": sign(key, payload)})


class RejectedBroadcast(ValueError):
    pass


def decode_fix(key: bytes, plan: Plan, message: str | bytes) -> tuple[str, LearnedFix]:
    """(plan table, the fix as a worker applies it) from a broadcast, or ``RejectedBroadcast``."""
    try:
        env = json.loads(message)
        payload, sig = env["payload"], env["sig"]
    except Exception:
        raise RejectedBroadcast("not a signed fix message") from None
    if not isinstance(payload, str) or not isinstance(sig, str) or not hmac.compare_digest(sign(key, payload), sig):
        raise RejectedBroadcast("bad signature")
    data = json.loads(payload)
    if data.get("v") != 1 or data.get("ns") != namespace(plan):
        raise RejectedBroadcast("another plan's fix")
    if abs(time.time() - float(data.get("ts", 0))) > MAX_AGE_S:
        raise RejectedBroadcast("stale message")
    table = data.get("table")
    if table not in plan.tables:
        raise RejectedBroadcast(f"unknown table {table!r}")
    try:
        ops = parse_ops(data["ops"])
        sigobj = Signature.parse(data["signature"])
    except Exception as exc:
        raise RejectedBroadcast(f"operators do not validate: {str(exc).splitlines()[0]}") from None
    lf = LibraryFix(int(data["fix_id"]), sigobj, ops).learned(plan, table)
    if lf is None or sigobj.table != plan.target_name(table):
        raise RejectedBroadcast("the fix names a column the plan does not have")
    return table, lf


def publish(redis_url: str, plan: Plan, table: str, fix: LibraryFix, key: bytes) -> int:
    """Send a fix to every subscribed worker; returns how many received it."""
    import redis

    r = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    return int(r.publish(channel(plan), encode_fix(key, plan, table, fix)))


class FixSubscriber:
    """A daemon thread that receives broadcasts and hands verified fixes to ``on_fix``."""

    def __init__(self, redis_url: str, plan: Plan, key: bytes, on_fix: Callable[[str, LearnedFix], None]):
        self.redis_url, self.plan, self.key, self.on_fix = redis_url, plan, key, on_fix
        self.received = 0
        self.rejected = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kora-fix-subscriber", daemon=True)

    def start(self) -> FixSubscriber:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import redis

        while not self._stop.is_set():
            try:
                ps = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2).pubsub(ignore_subscribe_messages=True)
                ps.subscribe(channel(self.plan))
                self._ready.set()
                while not self._stop.is_set():
                    msg = ps.get_message(timeout=0.5)
                    if msg and msg.get("type") == "message":
                        self.handle(msg["data"])
            except Exception as exc:  # Redis gone: the library path still delivers fixes
                self._ready.set()
                log.warning("fix subscriber: %s; reconnecting", exc)
                time.sleep(1.0)

    def handle(self, data: bytes | str) -> bool:
        try:
            table, fix = decode_fix(self.key, self.plan, data)
        except RejectedBroadcast as exc:
            self.rejected += 1
            log.warning("dropped a fix broadcast: %s", exc)
            return False
        self.on_fix(table, fix)
        self.received += 1  # counted once handed over (a hot swap done), so a waiter sees its effect
        return True


class SignatureLock:
    """Only one recovery agent works on a signature at a time (Redis ``SET NX`` with expiry)."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

    def __init__(self, redis_url: str | None, plan: Plan, sig: Signature, ttl_s: int = 600):
        self.redis_url, self.ttl_s = redis_url, ttl_s
        self.key = f"kora:recovery:{namespace(plan)}:lock:{hashlib.sha1(str(sig).encode()).hexdigest()[:16]}"
        self.token = uuid.uuid4().hex
        self.held = False

    def acquire(self) -> bool:
        if not self.redis_url:
            self.held = True
            return True
        import redis

        try:
            self._r = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
            self.held = bool(self._r.set(self.key, self.token, nx=True, ex=self.ttl_s))
        except Exception as exc:  # no Redis, no coordination: work alone rather than not at all
            log.warning("signature lock unavailable (%s); proceeding without it", exc)
            self._r, self.held = None, True
        return self.held

    def release(self) -> None:
        if self.held and self.redis_url and getattr(self, "_r", None) is not None:
            try:
                self._r.eval(self._RELEASE, 1, self.key, self.token)
            except Exception:
                pass
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def inline_ok(fix: LearnedFix) -> bool:
    """Whether a worker may apply a fix inline. Not a cross-column one: the worker's validator
    replaces one column's values per fix, and half a split (``state`` filled, ``city`` still
    ``'Bend OR'``) would land a wrong row. Its rows are queued instead, and recovery, which
    applies both halves together (``kora_assets.recovery.siblings``), lands them."""
    return not cross_column_ops(fix.ops)


class WorkerFixes:
    """What a worker knows about learned fixes: the library's (reloaded when it changes) plus
    broadcasts received since. Used by the Ray worker actor."""

    def __init__(self, plan: Plan, on_new: Callable[[str], None] | None = None):
        self.plan = plan
        self.on_new = on_new
        self._lib: FixLibrary | None = None
        self._versions: dict[str, tuple] = {}
        self._library: dict[str, list[LearnedFix]] = {}
        self._broadcast: dict[str, list[LearnedFix]] = {}
        self._lock = threading.Lock()
        self.subscriber: FixSubscriber | None = None

    def _library_obj(self) -> FixLibrary:
        if self._lib is None:
            self._lib = FixLibrary(library_url(self.plan))
        return self._lib

    def listen(self, redis_url: str) -> None:
        if self.subscriber is not None:
            return
        try:
            key = self._library_obj().hmac_key()
            self.subscriber = FixSubscriber(redis_url, self.plan, key, self._received).start()
        except Exception as exc:
            log.warning("fix broadcasts off for this worker: %s", exc)

    def _received(self, table: str, fix: LearnedFix) -> None:
        if not inline_ok(fix):
            log.info("fix %s is cross-column: recovery applies it, not the worker inline", fix.fix_id)
            return
        with self._lock:
            known = self._library.get(table, []) + self._broadcast.get(table, [])
            if any(f.fix_id == fix.fix_id for f in known):
                return
            self._broadcast.setdefault(table, []).append(fix)
        if self.on_new:
            self.on_new(table)

    def for_table(self, table: str, refresh: bool = True) -> list[LearnedFix]:
        """Active fixes for a table: the library's (re-read if it changed) and broadcast ones."""
        if refresh:
            try:
                lib = self._library_obj()
                v = lib.version(self.plan.target_name(table))
                if self._versions.get(table) != v:
                    fixes = [f for f in lib.learned_fixes(self.plan, table) if inline_ok(f)]
                    with self._lock:
                        self._library[table] = fixes
                        self._versions[table] = v
                        ids = {f.fix_id for f in fixes}
                        self._broadcast[table] = [f for f in self._broadcast.get(table, []) if f.fix_id not in ids]
            except Exception as exc:  # no library yet (or unreachable): run on the plan alone
                log.debug("fix library not available: %s", exc)
        with self._lock:
            return list(self._library.get(table, [])) + list(self._broadcast.get(table, []))


__all__ = ["FixSubscriber", "SignatureLock", "WorkerFixes", "channel", "decode_fix", "encode_fix", "inline_ok", "publish",
           "shape_kind", "guarded"]
