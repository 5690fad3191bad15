"""Reading the partition ledger: which partitions of a table have landed."""
from __future__ import annotations

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database


def ledger_partitions(db: Database, table: str) -> set[str]:
    mark = "?" if db.dialect == "sqlite" else "%s"
    sql = f"SELECT partition_key FROM {bookkeeping_table(db, 'partition_ledger')} WHERE table_name = {mark}"
    with db.engine.connect() as c:
        return {r[0] for r in c.exec_driver_sql(sql, (table,))}
