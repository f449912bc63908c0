"""The gateway token ``jitgate login`` stores, and handing it to psql.

The token lives in ``$XDG_CONFIG_HOME/jitgate/credentials.json`` (``~/.config/jitgate``
when unset): a file of mode 0600 in a directory of mode 0700, written whole under a new
name and renamed into place, so a reader never sees half of it and nobody else can read it.
It holds the gateway's URL, the token, whose it is, until when, and where psql connects.

psql takes the token as its password, three ways: ``PGPASSWORD`` (``jitgate connect R
--env``), a line in the password file (``jitgate connect R --pgpass`` writes it into
``$PGPASSFILE`` or ``~/.pgpass``, mode 0600, replacing an older line for the same
gateway and user), or the connection string with the password left out, which psql asks
for.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from jitgate.errors import UsageError


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str
    token: str
    email: str
    expires_at: str
    postgres_host: str
    postgres_port: int


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jitgate"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def save(credentials: Credentials) -> Path:
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(path, json.dumps(asdict(credentials), indent=2) + "\n")
    return path


def load() -> Credentials | None:
    """The stored credentials, or None when nobody signed in here."""
    try:
        data = json.loads(credentials_path().read_text(encoding="utf-8"))
        return Credentials(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{credentials_path()} cannot be read ({exc}); run jitgate login") from exc


def forget() -> bool:
    """Delete the stored credentials; whether there were any."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def connection_uri(credentials: Credentials, resource: str) -> str:
    """A libpq URI for ``resource``, without the password."""
    user = quote(credentials.email, safe="")
    host = credentials.postgres_host
    host = f"[{host}]" if ":" in host else host
    return f"postgresql://{user}@{host}:{credentials.postgres_port}/{quote(resource, safe='')}"


def env_lines(credentials: Credentials, resource: str) -> str:
    """Shell ``export`` lines for libpq's environment, PGPASSWORD included."""
    values = {
        "PGHOST": credentials.postgres_host,
        "PGPORT": str(credentials.postgres_port),
        "PGUSER": credentials.email,
        "PGDATABASE": resource,
        "PGPASSWORD": credentials.token,
    }
    return "\n".join(f"export {name}={_shell_quoted(value)}" for name, value in values.items())


def write_pgpass(credentials: Credentials, token: str | None = None) -> Path:
    """Put the gateway's line in the password file (``token=None``: take it out)."""
    path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    fields = [credentials.postgres_host, str(credentials.postgres_port), "*", credentials.email]
    prefix = ":".join(_pgpass_escaped(f) for f in fields) + ":"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    kept = [line for line in lines if not line.startswith(prefix)]
    if token is not None:
        kept.append(prefix + _pgpass_escaped(token))
    _write_private(path, "".join(line + "\n" for line in kept))
    return path


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(partial, path)


def _pgpass_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _shell_quoted(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
