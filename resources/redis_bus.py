"""The Redis bus: work queues, locks and fix broadcasts. Coordination only; nothing durable.

With no Redis configured kora first tries the conventional local one, and only when none
answers starts an embedded Redis-protocol server (fakeredis over TCP) inside this process,
so a laptop needs no server at all. Ray workers reach it over TCP like any Redis.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

import dagster as dg
import redis
from pydantic import Field

log = logging.getLogger("kora.redis")
DEFAULT_URL = "redis://127.0.0.1:6379/0"
_embedded: dict[str, str] = {}
_lock = threading.Lock()


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except Exception:
        return False


def start_embedded_redis() -> str:
    """Start (once per process) an in-process Redis-protocol server; returns its URL."""
    with _lock:
        if "url" in _embedded:
            return _embedded["url"]
        from fakeredis import TcpFakeServer

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        threading.Thread(target=server.serve_forever, name="kora-embedded-redis", daemon=True).start()
        _embedded["url"] = f"redis://127.0.0.1:{port}/0"
        log.info("no Redis answered; started an embedded Redis-protocol server at %s", _embedded["url"])
        return _embedded["url"]


def resolve_redis_url(configured: str | None) -> str:
    """The configured Redis, else a local one that answers, else an embedded server."""
    url = configured or os.environ.get("KORA_REDIS_URL")
    if url:
        if not _answers(url):
            raise ConnectionError(f"the configured Redis at {url.split('@')[-1]} does not answer")
        return url
    return DEFAULT_URL if _answers(DEFAULT_URL) else start_embedded_redis()


class RedisResource(dg.ConfigurableResource):
    """Where kora's workers coordinate. Leave ``url`` unset for local/embedded Redis."""

    url: str | None = Field(None, description="redis://host:port/db; default: KORA_REDIS_URL, a local Redis, or embedded")

    def resolved_url(self) -> str:
        return resolve_redis_url(self.url)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.resolved_url())
