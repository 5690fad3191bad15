"""The parent keys a worker holds for orphan flags: read once, read again when the parent changes."""
from kora_assets.bookkeeping.tables import bookkeeping_ddl
from kora_assets.dbio.connections import Database
from kora_assets.workers.parent_keys import ParentKeyCache


def _setup(url: str) -> Database:
    db = Database(url, "target")
    with db.engine.begin() as c:
        for stmt in bookkeeping_ddl(db):
            c.exec_driver_sql(stmt)
        c.exec_driver_sql("CREATE TABLE public.parent (id int, code text)")
        c.exec_driver_sql("INSERT INTO public.parent VALUES (1, 'a'), (2, 'b'), (NULL, 'c')")
        c.exec_driver_sql("INSERT INTO kora.partition_ledger (table_name, partition_key, source_rows, landed_rows, "
                          "queued_rows, seconds, run_id, worker) VALUES ('parent', 'all', 3, 3, 0, 0, 'r1', 'w')")
    return db


def _keys(cache: ParentKeyCache, db: Database) -> list:
    """The parent's keys as a new partition of a child sees them."""
    cache.retain(db, {'"public"."parent"'})
    frame = cache.keys(db, "parent", '"public"."parent"', ["id"])
    return sorted(frame["id"].to_list())


def test_parent_keys_follow_the_ledger_and_recovery(pg_db):
    db = _setup(pg_db)
    cache = ParentKeyCache()
    assert _keys(cache, db) == [1, 2]  # NULL keys reference nothing
    with db.engine.begin() as c:  # a row landed behind the ledger's back is not seen: the copy is reused
        c.exec_driver_sql("INSERT INTO public.parent VALUES (3, 'c')")
    assert _keys(cache, db) == [1, 2]
    with db.engine.begin() as c:  # a partition re-landed: the ledger row changes
        c.exec_driver_sql("UPDATE kora.partition_ledger SET landed_rows = 4, updated_at = now() + interval '1 s'")
    assert _keys(cache, db) == [1, 2, 3]
    with db.engine.begin() as c:  # recovery lands a fixed row: the fixed count changes
        c.exec_driver_sql("INSERT INTO public.parent VALUES (4, 'd')")
        c.exec_driver_sql("""INSERT INTO kora.error_queue (table_name, partition_key, primary_key, "row",
                             error_class, reason, status) VALUES ('parent', 'all', '{"id": 4}', '{}', 'parse.number',
                             'x', 'fixed')""")
    assert _keys(cache, db) == [1, 2, 3, 4]
    dense = cache.dense(db, '"public"."parent"', ["id"])  # the bitmap follows the re-read keys
    assert dense is not None and dense.lo == 1 and dense.bits.tolist() == [True] * 4


def test_parent_keys_hold_only_the_current_tables_parents_and_not_huge_ones(pg_db):
    db = _setup(pg_db)
    cache = ParentKeyCache()
    _keys(cache, db)
    cache.retain(db, {'"public"."other"'})
    assert cache._frames == {}
    assert ParentKeyCache(max_rows=2).keys(db, "parent", '"public"."parent"', ["id"]) is None  # 3 landed > 2


def test_integer_parent_keys_read_as_one_array_equal_the_rows(pg_db):
    """Each integer width, negative and extreme values, NULLs left out, an empty parent; text
    keys take the row-wise read. Compared with the keys read row by row (connectorx)."""
    import connectorx as cx
    import polars as pl

    from kora_assets.workers.parent_keys import _integer_keys, _read_keys

    db = Database(pg_db, "target")
    with db.engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE public.p (a smallint, b int, c bigint, d text)")
        c.exec_driver_sql("INSERT INTO public.p VALUES (-32768, -2147483648, -9223372036854775808, 'x'), "
                          "(32767, 2147483647, 9223372036854775807, 'y'), (NULL, NULL, NULL, NULL), (0, 7, 42, 'z')")
        c.exec_driver_sql("CREATE TABLE public.empty (id bigint)")
    for col, dtype in (("a", pl.Int16), ("b", pl.Int32), ("c", pl.Int64)):
        got = _read_keys(db, '"public"."p"', [col])
        rowwise = pl.from_arrow(cx.read_sql(db.connectorx_url, f"SELECT {col} FROM public.p WHERE {col} IS NOT NULL",
                                            return_type="arrow")).sort(col)
        assert got.schema == {col: dtype} and got.equals(rowwise), (col, got, rowwise)
    assert _integer_keys(db, '"public"."p"', "d") is None  # not an integer: read row by row
    assert sorted(_read_keys(db, '"public"."p"', ["d"])["d"].to_list()) == ["x", "y", "z"]
    assert _read_keys(db, '"public"."empty"', ["id"]).schema == {"id": pl.Int64}
    assert _read_keys(db, '"public"."empty"', ["id"]).height == 0


def test_single_integer_keys_are_found_by_binary_search():
    """Pure logic: the sorted-key lookup agrees with a set lookup, nulls stay null (no
    reference), values outside the parent's integer type are simply not found."""
    import polars as pl

    from kora_assets.workers.parent_keys import contains, hits

    held = pl.DataFrame({"id": [40, 10, 30, 20]}, schema={"id": pl.Int32}).sort("id")
    values = pl.Series("fk", [10, 15, None, 40, 41, 2**40, -5, 30], dtype=pl.Int64)
    assert contains(held, values).to_list() == [True, False, None, True, False, False, False, True]
    assert contains(held.clear(), values).to_list() == [False, False, None, False, False, False, False, False]
    # the bitmap path gives the same answers (also for a value beyond int64, from a UInt64 column)
    from kora_assets.workers.parent_keys import Dense

    dense = Dense.of(held)
    assert dense is not None and dense.lo == 10 and len(dense.bits) == 31
    assert contains(held, values, dense).to_list() == [True, False, None, True, False, False, False, True]
    huge = pl.Series("fk", [2**64 - 1, 20, None], dtype=pl.UInt64)
    assert contains(held, huge, dense).to_list() == [False, True, None]
    assert Dense.of(pl.DataFrame({"id": [1, 10**9]})) is None  # too sparse: binary search instead
    unsorted = pl.DataFrame({"id": [40, 10]}, schema={"id": pl.Int32})
    assert contains(unsorted, values) is None  # not known to be sorted: the caller joins
    assert contains(pl.DataFrame({"id": ["a"]}), pl.Series(["a"])) is None  # text keys: the caller joins
    keys = pl.DataFrame({"fk": [10, 15, 40]})
    assert sorted(hits(held, keys, ["fk"])["fk"].to_list()) == [10, 40]
