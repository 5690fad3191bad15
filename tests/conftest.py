"""Fixtures on the real services: PostgreSQL, MariaDB and Redis must be running (.ci/run
starts them). Every test gets its own fresh databases, so tests never see each other's rows."""
from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("DAGSTER_TELEMETRY_DISABLED", "1")

PG_ADMIN = os.environ.get("KORA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN = os.environ.get("KORA_TEST_MYSQL", "mysql://root@127.0.0.1:3306/")
REDIS_URL = os.environ.get("KORA_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN.replace("postgresql://", "postgresql://", 1), autocommit=True) as c:
        c.execute(sql)


def _mysql_exec(sql: str) -> None:
    import pymysql

    con = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


@pytest.fixture
def pg_db():
    """A fresh, empty PostgreSQL database; its URL."""
    name = f"kora_t_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_db2(pg_db):
    """A second fresh PostgreSQL database (e.g. a PostgreSQL source beside a target)."""
    name = f"kora_t_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mysql_db():
    name = f"kora_t_{uuid.uuid4().hex[:10]}"
    _mysql_exec(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield f"mysql://root@127.0.0.1:3306/{name}"
    _mysql_exec(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def redis_url():
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    r.ping()
    os.environ["KORA_REDIS_URL"] = REDIS_URL
    return REDIS_URL


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    from resources.ray_cluster import RayResource

    os.environ.setdefault("KORA_TEST_RAY_ENV", "inherited")  # tests/test_ray_local.py: reaches the workers
    RayResource(num_cpus=4).ensure()
    yield
    ray.shutdown()


@pytest.fixture
def dagster_instance(tmp_path):
    import dagster as dg

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as inst:
        yield inst
