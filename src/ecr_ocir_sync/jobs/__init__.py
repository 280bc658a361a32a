"""The durable job store: an accepted event is never lost."""
