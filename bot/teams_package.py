"""The Teams app package: ``teams/manifest.json`` with the bot's App ID filled in, zipped
with its two icons, ready to upload in Teams (*Apps → Manage your apps → Upload*).

``jitgate teams-app --app-id ID`` writes it. The App ID (the Azure Bot's *Microsoft App
ID*, a GUID) becomes the manifest's ``id`` and ``bots[0].botId``; the icons must be PNGs
of the sizes Teams asks for (color 192×192, outline 32×32). The three files sit at the
root of the zip, as Teams requires. The sources are the ``teams/`` folder of jitgate's
source tree unless ``--source`` names another.
"""

from __future__ import annotations

import json
import struct
import uuid
import zipfile
from pathlib import Path
from typing import Any

from jitgate.errors import UsageError

SOURCE = Path(__file__).resolve().parent.parent / "teams"
ICONS = {"color": (192, 192), "outline": (32, 32)}
_PNG = b"\x89PNG\r\n\x1a\n"


def build_package(app_id: str, output: Path, source: Path = SOURCE) -> Path:
    """Write the app package for ``app_id`` to ``output``; :class:`UsageError` naming what
    is wrong with the App ID or the sources."""
    try:
        app_id = str(uuid.UUID(app_id))
    except ValueError:
        problem = f"--app-id must be the bot's Microsoft App ID (a GUID): {app_id!r}"
        raise UsageError(problem) from None
    manifest = _manifest(source)
    manifest["id"] = app_id
    bots = manifest.get("bots")
    if not isinstance(bots, list) or not bots or not isinstance(bots[0], dict):
        raise UsageError(f"{source / 'manifest.json'} declares no bot")
    bots[0]["botId"] = app_id
    files = {"manifest.json": json.dumps(manifest, indent=2, ensure_ascii=False).encode()}
    icons = manifest.get("icons") or {}
    for kind, size in ICONS.items():
        name = str(icons.get(kind) or "")
        files[name] = _icon(source / name, kind, size)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            package.writestr(name, data)
    return output


def _manifest(source: Path) -> dict[str, Any]:
    path = source / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no Teams app manifest at {path}: pass --source, the teams/"
                         " folder of jitgate's source") from None  # fmt: skip
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise UsageError(f"{path} is not a JSON object")
    return manifest


def _icon(path: Path, kind: str, size: tuple[int, int]) -> bytes:
    """The icon's bytes, once it is known to be a PNG of ``size``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"the {kind} icon cannot be read: {exc}") from exc
    if data[:8] != _PNG or data[12:16] != b"IHDR":
        raise UsageError(f"the {kind} icon {path} is not a PNG")
    found = struct.unpack(">II", data[16:24])
    if found != size:
        raise UsageError(f"the {kind} icon {path} is {found[0]}x{found[1]};"
                         f" Teams wants {size[0]}x{size[1]}")  # fmt: skip
    return data
