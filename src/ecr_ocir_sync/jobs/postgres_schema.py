"""The PostgreSQL schema, as numbered migrations applied at start-up.

``schema_version`` records each migration applied. Processes starting at
once take an advisory lock first, so each migration runs exactly once; a
database migrated by a newer release than this one is refused rather than
guessed at.
"""

from __future__ import annotations

from typing import LiteralString

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from ecr_ocir_sync.errors import ConfigError

__all__ = ["MIGRATIONS", "SCHEMA_LOCK", "migrate"]

SCHEMA_LOCK = (0x45_43_52_53, 0)  # advisory lock key: "ECRS", 0 = migrations

# Append only: a released migration never changes, the next one gets the next number.
MIGRATIONS: tuple[LiteralString, ...] = (
    # 1: jobs, the newest event per image key, heartbeat, reconciliation passes.
    """
    CREATE TABLE jobs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        action TEXT NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        repository TEXT NOT NULL,
        tag TEXT,
        digest TEXT,
        image_key TEXT NOT NULL,
        event_time DOUBLE PRECISION NOT NULL,
        event_id TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before DOUBLE PRECISION NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        started DOUBLE PRECISION,
        finished DOUBLE PRECISION,
        last_error TEXT,
        lease_owner TEXT,
        lease_expires DOUBLE PRECISION,
        destinations TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX jobs_ready ON jobs (not_before, seq) WHERE state = 'pending';
    CREATE INDEX jobs_leases ON jobs (lease_expires, seq) WHERE state = 'running';
    CREATE INDEX jobs_image ON jobs (image_key, state);
    CREATE INDEX jobs_state ON jobs (state, seq);
    CREATE INDEX jobs_finished ON jobs (finished) WHERE finished IS NOT NULL;
    -- The fleet-wide promise, kept by the database itself: one running job per tag.
    CREATE UNIQUE INDEX jobs_one_running_per_image ON jobs (image_key) WHERE state = 'running';
    CREATE TABLE image_events (
        image_key TEXT PRIMARY KEY,
        event_time DOUBLE PRECISION NOT NULL,
        seq BIGINT NOT NULL
    );
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at DOUBLE PRECISION NOT NULL);
    CREATE TABLE reconcile_passes (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        started DOUBLE PRECISION NOT NULL,
        finished DOUBLE PRECISION,
        outcome TEXT,
        summary TEXT
    );
    """,
    # 2: where a job's request came from; a reconciliation repair is outside event order.
    """
    ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT 'event';
    """,
)


async def migrate(connection: AsyncConnection[DictRow], now: float) -> int:
    """Bring the schema up to date; returns the version it is at."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", SCHEMA_LOCK)
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                   version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"""
        )
        cursor = await connection.execute(
            "SELECT COALESCE(MAX(version), 0) AS version FROM schema_version"
        )
        row = await cursor.fetchone()
        current = int(row["version"]) if row else 0
        if current > len(MIGRATIONS):
            raise ConfigError(
                f"the job database is at schema version {current}, newer than this release "
                f"knows ({len(MIGRATIONS)}): run the newer ecr-ocir-sync, or a new database"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await connection.execute(MIGRATIONS[version - 1])
            await connection.execute(
                "INSERT INTO schema_version (version, applied) VALUES (%s, %s)", (version, now)
            )
    return len(MIGRATIONS)
