"""A small multi-table shop with FK chains, a self-reference and known dirty rows, loadable
into SQLite, MariaDB and PostgreSQL alike; plus its plan and the exact expected outcome."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from kora_assets.dbio.connections import Database

CLEAN_CUSTOMERS = list(range(11, 41))

# id -> (name, email, born, balance, status); ids 3..10 are dirty with a known error class
CUSTOMERS = {
    1: ("Ann", "ann@x.io", "1990-01-02", "10.50", "active"),
    2: ("  Bob ", "bob@x.io", "1985-05-06", "0", "ACTIVE "),
    3: ("Cid", "cid@x.io", "02.03.1980", "5", "active"),
    4: ("Dee", "dee@x.io", "0000-00-00", "5", "active"),
    5: ("Eve", "eve@x.io", "1970-01-01", "$1,000.00", "active"),
    6: ("Fay", "fay@x.io", "1970-01-01", "-5", "active"),
    7: ("Gus", "gus@x.io", "1970-01-01", "5", "zombie"),
    8: ("averyveryveryverylongname", "h@x.io", "1970-01-01", "5", "inactive"),
    9: (None, "i@x.io", "1970-01-01", "5", "active"),
    10: ("JosÃ©", "j@x.io", "1970-01-01", "5", "active"),
    **{i: (f"Cust{i}", f"c{i}@x.io", f"19{50 + i}-0{1 + i % 9}-1{i % 10}", f"{i}.25",
           "inactive" if i % 3 == 0 else "active") for i in CLEAN_CUSTOMERS},
}
EXPECTED_CUSTOMER_ERRORS = {
    3: ("born", "parse.date"), 4: ("born", "sentinel.zero_date"), 5: ("balance", "parse.number"),
    6: ("balance", "range.out_of_bounds"), 7: ("status", "enum.unknown_value"), 8: ("name", "length.too_long"),
    9: ("name", "constraint.not_null"), 10: ("name", "encoding.mojibake"),
}
LANDED_CUSTOMERS = [1, 2, *CLEAN_CUSTOMERS]

# orders: id -> (customer_id, amount, ordered_at)
ORDERS = {i: (LANDED_CUSTOMERS[i % len(LANDED_CUSTOMERS)], f"{i * 3}.10", f"2024-01-{1 + i % 28:02d} 10:00:00")
          for i in range(1, 61)}
ORDERS.update({61: (3, "1.00", "2024-02-01 00:00:00"), 62: (999, "1.00", "2024-02-01 00:00:00"),
               63: (1, "abc", "2024-02-01 00:00:00")})
EXPECTED_ORDER_ERRORS = {61: ("customer_id", "fk_orphan"), 62: ("customer_id", "fk_orphan"),
                         63: ("amount", "parse.number")}

# employees: a self-reference; 4 points at a manager that does not exist
EMPLOYEES = {1: ("Boss", None), 2: ("Mid", 1), 3: ("Low", 2), 4: ("Lost", 77)}
EXPECTED_EMPLOYEE_ERRORS = {4: ("manager_id", "fk_orphan")}


def build_source(url: str) -> None:
    """Create and fill the legacy tables (everything but keys as text, like old systems)."""
    db = Database(url, "source")
    md = sa.MetaData()
    txt = sa.Text if db.dialect != "mysql" else sa.String(255)
    customers = sa.Table("customers", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                         sa.Column("name", txt), sa.Column("email", txt), sa.Column("born", txt),
                         sa.Column("balance", txt), sa.Column("status", txt))
    orders = sa.Table("orders", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                      sa.Column("customer_id", sa.Integer), sa.Column("amount", txt), sa.Column("ordered_at", txt),
                      sa.Index("ix_orders_customer", "customer_id"))
    employees = sa.Table("employees", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                         sa.Column("name", txt), sa.Column("manager_id", sa.Integer))
    md.create_all(db.engine)
    with db.engine.begin() as c:
        c.execute(customers.insert(), [dict(zip(["id", "name", "email", "born", "balance", "status"], (k, *v)))
                                       for k, v in CUSTOMERS.items()])
        c.execute(orders.insert(), [dict(zip(["id", "customer_id", "amount", "ordered_at"], (k, *v)))
                                    for k, v in ORDERS.items()])
        c.execute(employees.insert(), [{"id": k, "name": n, "manager_id": m} for k, (n, m) in EMPLOYEES.items()])
    db.engine.dispose()


def plan_yaml(source_url: str, target_url: str, *, schema: str | None = "public", workers: int = 2) -> str:
    schema_line = f"\n  schema: {schema}" if schema else ""
    return f"""
version: 1
name: shop
source:
  url: {source_url}
target:
  url: {target_url}{schema_line}
settings:
  chunk_rows: 16
  workers: {workers}
tables:
  customers:
    target: clients
    primary_key: [id]
    partitioning: {{kind: key_range, column: id, bounds: [20]}}
    unique: [[email]]
    columns:
      id: {{type: integer, nullable: false}}
      name: {{target: full_name, type: varchar(20), nullable: false, transform: [{{op: trim}}]}}
      email: {{type: varchar(60)}}
      born: {{type: date}}
      balance: {{type: "numeric(12,2)", rules: {{min: 0}}}}
      status: {{type: varchar(10), transform: [{{op: trim}}, {{op: lower}}], rules: {{allowed: [active, inactive]}}}}
  orders:
    primary_key: [id]
    partitioning: {{kind: key_range, column: id, bounds: [30]}}
    columns:
      id: {{type: integer, nullable: false}}
      customer_id: {{type: integer, nullable: false}}
      amount: {{type: "numeric(12,2)"}}
      ordered_at: {{type: timestamp}}
    foreign_keys:
      - {{columns: [customer_id], references: customers, ref_columns: [id], on_delete: cascade}}
    indexes:
      - {{columns: [customer_id]}}
  employees:
    primary_key: [id]
    columns:
      id: {{type: integer, nullable: false}}
      name: {{type: text}}
      manager_id: {{type: integer}}
    foreign_keys:
      - {{columns: [manager_id], references: employees, ref_columns: [id], on_delete: set null}}
"""


def expected_clients() -> list[tuple]:
    out = []
    for i in LANDED_CUSTOMERS:
        name, email, born, bal, status = CUSTOMERS[i]
        out.append((i, name.strip(), email, dt.date.fromisoformat(born), Decimal(bal).quantize(Decimal("0.01")),
                    status.strip().lower()))
    return out


def expected_orders() -> list[tuple]:
    return [(i, c, Decimal(a), dt.datetime.fromisoformat(t)) for i, (c, a, t) in sorted(ORDERS.items())
            if i not in EXPECTED_ORDER_ERRORS]
