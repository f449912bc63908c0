"""The Postgres wire protocol: a sans-IO codec, the asyncio relay and the hook chain."""
