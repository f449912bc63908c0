"""``jitgate teams-app``: the Teams app package, zipped with the App ID filled in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def teams_app(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jitgate", "teams-app", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_package_holds_the_manifest_for_the_app_id_and_the_icons(tmp_path: Path) -> None:
    output = tmp_path / "app.zip"
    run = teams_app("--app-id", APP_ID.upper(), "--package", str(output))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(output)
    with zipfile.ZipFile(output) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        for icon in ("color.png", "outline.png"):
            assert package.read(icon) == (ROOT / "teams" / icon).read_bytes()
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert manifest["bots"][0]["scopes"] == ["team", "personal", "groupChat"]
    commands = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
    assert commands == ["run", "status", "pending", "help"]
    # The source stays a template.
    assert json.loads((ROOT / "teams" / "manifest.json").read_text())["id"] != APP_ID


def test_a_bad_app_id_or_icon_is_refused_with_one_line(tmp_path: Path) -> None:
    run = teams_app("--app-id", "my-bot", "--package", str(tmp_path / "x.zip"))
    assert run.returncode == 2 and "--app-id must be the bot's Microsoft App ID" in run.stderr
    source = tmp_path / "teams"
    shutil.copytree(ROOT / "teams", source)
    shutil.copy(source / "outline.png", source / "color.png")
    run = teams_app("--app-id", APP_ID, "--package", str(tmp_path / "x.zip"),
                    "--source", str(source))  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "color icon" in run.stderr and "is 32x32; Teams wants 192x192" in run.stderr
    assert not (tmp_path / "x.zip").exists()
