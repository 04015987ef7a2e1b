"""Create the PostgreSQL database named by a DATABASE_URL if it does not exist yet (used by `make test`)."""

from __future__ import annotations

import sys
from urllib.parse import unquote, urlparse

import psycopg
from psycopg import sql


def main(url: str) -> int:
    parts = urlparse(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        sys.stdout.write(f"{parts.scheme}:// needs no database server; nothing to create\n")
        return 0
    name = unquote(parts.path.lstrip("/"))
    server = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or "") or None,
        "dbname": "postgres",
        "autocommit": True,
        "connect_timeout": 10,
    }
    with psycopg.connect(**server) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return 0
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    sys.stdout.write(f"created database {name!r}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
