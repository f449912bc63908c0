"""The ``jitgate`` command line.

Every failure the operator can fix ends with one line on stderr and a non-zero exit:
2 for a usage or configuration problem, 1 when something outside jitgate failed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import uvloop

from identity import Directory
from jitgate.config import load_config, parse_duration
from jitgate.errors import ConfigError, JitgateError, UsageError
from jitgate.logs import configure_logging
from store.db import connect_pool, migrate
from store.tokens import issue_token, revoke_tokens

log = logging.getLogger("jitgate")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.handler
    try:
        return uvloop.run(handler(args))
    except JitgateError as exc:
        prefix = "config error: " if isinstance(exc, ConfigError) else ""
        print(f"jitgate: {prefix}{exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jitgate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True)
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(handler=_serve)

    guard = commands.add_parser("guard", help="classify SQL from stdin and show the decision")
    guard.add_argument("--config", required=True)
    guard.add_argument("--resource", required=True)
    guard.add_argument("--user", required=True)
    guard.set_defaults(handler=_guard)

    mask = commands.add_parser("mask", help="mask JSON lines from stdin, as results are masked")
    mask.set_defaults(handler=_mask)

    mig = commands.add_parser("migrate", help="apply the store's schema migrations")
    mig.add_argument("--config", required=True)
    mig.set_defaults(handler=_migrate)

    token = commands.add_parser("token", help="issue or revoke access tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    issue = token_commands.add_parser("issue", help="print a new access token")
    issue.add_argument("--config", required=True)
    issue.add_argument("--user", required=True)
    issue.add_argument("--ttl", default="8h")
    issue.set_defaults(handler=_token_issue)
    revoke = token_commands.add_parser("revoke", help="revoke one token or all of a user's")
    revoke.add_argument("--config", required=True)
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--user")
    target.add_argument("--token", help="the token itself (or - to read it from stdin)")
    revoke.set_defaults(handler=_token_revoke)
    roles = commands.add_parser("roles", help="print (or apply) a resource's reader role SQL")
    roles.add_argument("--config", required=True)
    roles.add_argument("--resource", required=True)
    roles.add_argument("--apply", metavar="ADMIN_URL", help="run it with this admin URL")
    roles.set_defaults(handler=_roles)
    doctor = commands.add_parser("doctor", help="check every resource's credentials")
    doctor.add_argument("--config", required=True)
    doctor.add_argument("--output", choices=("text", "json"), default="text")
    doctor.set_defaults(handler=_doctor)
    teams_app = commands.add_parser("teams-app", help="write the Teams app package (a zip)")
    teams_app.add_argument("--app-id", required=True, help="the bot's Microsoft App ID")
    teams_app.add_argument("--package", default="jitgate-teams.zip", help="the zip to write")
    teams_app.add_argument("--source", help="the manifest and icons (default: teams/)")
    teams_app.set_defaults(handler=_teams_app)
    _add_request_commands(commands)
    return parser


def _add_request_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``request`` and ``requests``: the engineer's side of the REST API (jitgate.client)."""
    gateway = argparse.ArgumentParser(add_help=False)
    gateway.add_argument("--url", help="the gateway's HTTP address (default: $JITGATE_URL)")
    gateway.add_argument("--token", help="your access token (default: $JITGATE_TOKEN)")
    gateway.add_argument("--output", choices=("text", "json"), default="text")
    request = commands.add_parser(
        "request", parents=[gateway], help="run one statement, through approval if needed"
    )
    request.add_argument("resource")
    request.add_argument("sql")
    request.add_argument("--reason", help="why you need it, shown to approvers")
    request.add_argument("--wait", action="store_true", help="wait for the decision and result")
    request.set_defaults(handler=_request)
    listing = commands.add_parser("requests", parents=[gateway], help="list your requests")
    listing.add_argument(
        "--pending", action="store_true", help="list the requests awaiting your decision instead"
    )
    listing.set_defaults(handler=_requests)
    _add_account_commands(commands, gateway)


def _add_account_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    gateway: argparse.ArgumentParser,
) -> None:
    """``login``, ``logout``, ``whoami``, ``connect`` and ``agent``: jitgate.account."""
    login = commands.add_parser("login", parents=[gateway], help="sign in with the IdP")
    login.add_argument(
        "--flow", choices=("auto", "device", "browser"), default="auto",
        help="device code (where the IdP offers it) or this machine's browser",
    )  # fmt: skip
    login.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL, do not open it"
    )
    login.set_defaults(handler=_account("login_command"))
    logout = commands.add_parser("logout", parents=[gateway], help="revoke and forget the token")
    logout.set_defaults(handler=_account("logout_command"))
    whoami = commands.add_parser("whoami", parents=[gateway], help="who the token speaks for")
    whoami.set_defaults(handler=_account("whoami_command"))
    psql = commands.add_parser("connect", help="connection details for psql after login")
    psql.add_argument("resource")
    how = psql.add_mutually_exclusive_group()
    how.add_argument("--env", action="store_true", help="print export lines with PGPASSWORD")
    how.add_argument("--pgpass", action="store_true", help="write the token to ~/.pgpass too")
    psql.set_defaults(handler=_account("connect_command"))
    agent = commands.add_parser("agent", help="hand your access to an agent, or take it back")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True)
    grant = agent_commands.add_parser(
        "grant", parents=[gateway], help="print a token for agent NAME acting for you"
    )
    grant.add_argument("name")
    grant.add_argument("--resource", action="append", help="only these resources (repeatable)")
    grant.add_argument(
        "--class", dest="statement_class", action="append",
        help="only these statement classes, e.g. read,write",
    )  # fmt: skip
    grant.add_argument("--ttl", default="8h", help="lifetime (never past your own token's)")
    grant.set_defaults(handler=_account("agent_grant_command"))
    revoke = agent_commands.add_parser(
        "revoke", parents=[gateway], help="end agent NAME's access now"
    )
    revoke.add_argument("name")
    revoke.set_defaults(handler=_account("agent_revoke_command"))


def _account(name: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    async def run(args: argparse.Namespace) -> int:
        from jitgate import account

        command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
        command = getattr(account, name)
        return await command(args)

    return run


async def _request(args: argparse.Namespace) -> int:
    from jitgate.client import request_command

    return await request_command(args)


async def _requests(args: argparse.Namespace) -> int:
    from jitgate.client import requests_command

    return await requests_command(args)


async def _serve(args: argparse.Namespace) -> int:
    from jitgate.gateway import Gateway

    configure_logging(args.log_level)
    config = load_config(args.config)
    gateway = await Gateway.open(config)
    await gateway.start()
    # The proxy path allocates a few short-lived objects per statement, freed by reference
    # counting; cyclic collection over everything loaded at start-up only costs time there.
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    collector = asyncio.create_task(collect_cycles(CYCLE_COLLECTION_INTERVAL))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"jitgate: postgres on {config.postgres.listen.host}:{gateway.proxy.port},"
        f" http on {config.http_listen.host}:{gateway.http_port}",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    log.info("shutting down: draining sessions")
    collector.cancel()
    await gateway.stop(drain_timeout=config.postgres.hold_timeout)
    return 0


CYCLE_COLLECTION_INTERVAL = 10.0


async def collect_cycles(interval: float) -> None:
    """A full collection every ``interval`` seconds. A closed session leaves reference
    cycles behind (the session, its protocols, its engine and the engine's record
    buffers); with the thresholds above the collector would reach them only after billions
    of allocations, so the process would grow by each session it ever served. Only what
    was allocated since start-up is traversed (the rest is frozen): a few ms."""
    while True:
        await asyncio.sleep(interval)
        gc.collect()


async def _guard(args: argparse.Namespace) -> int:
    """Print what the gateway would do with the SQL on stdin, for testing a policy: the
    resource's own classifier, with the names of the functions its target defines (read
    from the target when it can be reached; a warning on stderr when not)."""
    from approvals.execute import fetch_rows
    from approvals.policy import action_for, strictest_action
    from guard.resources import ResourceClassifiers

    config = load_config(args.config)
    resource = config.resources.get(args.resource)
    if resource is None:
        raise UsageError(f"unknown resource {args.resource!r}")
    groups = Directory(config).groups_of(args.user)
    classifiers = ResourceClassifiers({resource.name: resource.allowed_functions})
    await classifiers.load(lambda _name, query: fetch_rows(resource.url, query))
    verdicts = classifiers.of(resource.name).classify(sys.stdin.read())
    action = strictest_action(action_for(resource, groups, v.statement_class) for v in verdicts)
    print(
        json.dumps(
            {
                "action": action,
                "statements": [
                    {"class": v.statement_class, "reasons": list(v.reasons)} for v in verdicts
                ],
            }
        )
    )
    return 0


async def _roles(args: argparse.Namespace) -> int:
    """Print the SQL of the resource's reader role (the role of its ``url``); with
    ``--apply``, run it as that admin and set the reader's password from its URL."""
    from jitgate.roles import apply_reader_role, reader_role_sql, writer_schemas

    config = load_config(args.config)
    resource = config.resources.get(args.resource)
    if resource is None:
        raise UsageError(f"unknown resource {args.resource!r}")
    if resource.write_url is None:
        raise UsageError(
            f"resources.{resource.name} has no write_url: its url is the only credential,"
            " so it cannot also be the reader; add write_url first"
        )
    schemas = await writer_schemas(resource)
    sql = reader_role_sql(resource.url.user, resource.writer.user, resource.url.database, schemas)
    print(sql, end="")
    if args.apply:
        await apply_reader_role(args.apply, sql, resource.url)
        print(f"-- applied; {resource.url.user}'s password set from resources.{resource.name}.url")
    return 0


async def _doctor(args: argparse.Namespace) -> int:
    """One line per resource about its credentials; non-zero when a reader can write."""
    from jitgate.doctor import check_reader

    config = load_config(args.config)
    checks = [await check_reader(resource) for resource in config.resources.values()]
    if args.output == "json":
        print(json.dumps([
            {"resource": c.resource, "status": c.status, "problems": list(c.problems),
             "warnings": list(c.warnings)}
            for c in checks
        ]))  # fmt: skip
    else:
        for check in checks:
            print(check.line)
            for warning in check.warnings:
                print(warning)
    return 1 if any(c.status == "writable" for c in checks) else 0


async def _teams_app(args: argparse.Namespace) -> int:
    """Print the path of the Teams app package written for ``--app-id``."""
    from pathlib import Path

    from bot.teams_package import SOURCE, build_package

    source = Path(args.source) if args.source else SOURCE
    print(build_package(args.app_id, Path(args.package), source))
    return 0


async def _mask(args: argparse.Namespace) -> int:
    """Read ``{"column": …, "type": …, "value": …}`` lines (column and type optional; type a
    PostgreSQL type name, ``text`` by default) and write ``{"value": <masked>, "entities":
    [...]}`` for each, masked exactly as the gateway masks a cell of such a column in a
    result (``"value": null`` where it would send NULL), for testing a policy. A line that
    is not such an object, or names an unknown type, gets ``{"error": …}`` naming its line
    number."""
    from masking.cell import CellMasker

    cells = CellMasker()
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            value, column, type_name = item["value"], item.get("column"), item.get("type")
            if not isinstance(value, str) or not all(
                isinstance(v, str | None) for v in (column, type_name)
            ):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            print(json.dumps({"error": f"line {number}: expected an object with a string value"}))
            continue
        try:
            result = cells.mask(value, column, type_name)
        except UnicodeEncodeError:
            print(json.dumps({"error": f"line {number}: the value is not valid Unicode text"}))
            continue
        except ValueError as exc:  # an unknown type name
            print(json.dumps({"error": f"line {number}: {exc}"}))
            continue
        print(json.dumps({"value": result.value, "entities": list(result.entities)}))
    return 0


async def _migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    pool = await connect_pool(config.database_url, max_size=2)
    try:
        applied = await migrate(pool)
    finally:
        await pool.close()
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0


async def _token_issue(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    ttl = parse_duration(args.ttl, "--ttl")
    if not Directory(config).groups_of(args.user):
        raise UsageError(f"user {args.user} is in no group of the configuration")
    pool = await connect_pool(config.database_url, max_size=2)
    try:
        await migrate(pool)
        token = await issue_token(pool, args.user, ttl)
    finally:
        await pool.close()
    print(token)
    return 0


async def _token_revoke(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    pool = await connect_pool(config.database_url, max_size=2)
    try:
        await migrate(pool)
        count = await revoke_tokens(pool, email=args.user, token=token)
    finally:
        await pool.close()
    print(f"revoked {count} token(s)")
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
