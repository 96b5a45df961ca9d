"""Versioned migrations, applied in order when the database is opened.

`NNNN_name.sql` files are scripts; a migration that must move data in ways SQL says badly is a
module `mNNNN_name.py` with `migrate(conn)`, which opens the transaction itself (with
`begin(conn, ddl)`: sqlite3's `executescript` would commit a transaction begun before it). Each
runs in one transaction, with foreign keys checked before it commits, and sets
`PRAGMA user_version` to its number.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from core.errors import StorageError

__all__ = ["LATEST", "apply_migrations", "begin", "migrations"]

Step = Callable[[sqlite3.Connection], None]


def migrations() -> list[tuple[int, Step]]:
    """Every migration, by number."""
    found: dict[int, Step] = {}
    for entry in resources.files(__name__).iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found[int(name[:4])] = _script(entry.read_text(encoding="utf-8"))
        elif name.startswith("m") and name.endswith(".py") and name[1:5].isdigit():
            module = importlib.import_module(f"{__name__}.{name[:-3]}")
            found[int(name[1:5])] = module.migrate
    return sorted(found.items())


def begin(conn: sqlite3.Connection, ddl: str = "") -> None:
    """Open the migration's transaction, then run the statements of `ddl` in it."""
    conn.executescript(f"BEGIN IMMEDIATE;\n{ddl}")


def _script(sql: str) -> Step:
    def run(conn: sqlite3.Connection) -> None:
        begin(conn, sql)

    return run


LATEST = max(number for number, _ in migrations())


def apply_migrations(path: Path, *, upto: int = LATEST) -> int:
    """Bring the database at `path` to schema version `upto` (blocking; run it in a thread).

    Returns the version reached when something was applied, else 0. Raises `StorageError` for a
    database of a newer schema than this program knows.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA secure_delete = ON")  # dropped columns held personal data
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > LATEST:
            raise StorageError(f"database schema version {current} is newer than this program ({LATEST})")
        applied = 0
        for number, step in migrations():
            if number <= current or number > upto:
                continue
            conn.execute("PRAGMA foreign_keys = OFF")  # tables may be rebuilt; checked below instead
            try:
                step(conn)
                if not conn.in_transaction:
                    raise StorageError(f"migration {number} did not run in a transaction")
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StorageError(f"migration {number} would break {len(broken)} references")
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            applied = number
        return applied
    finally:
        conn.close()
