"""The gateway's own store: the asyncpg pool, schema migrations and access tokens."""
