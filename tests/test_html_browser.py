"""The HTML view in a real browser: headless Chromium loads the page ``scripts/predict.py --format html`` wrote,
its DOM holds as many highlighted entities as the JSONL output of the same input, the hostile text stays text,
and a screenshot comes out (the README's picture is made the same way: ``save_screenshot``).

Chromium is Debian's ``chromium``; the fixture installs it with apt-get when it is missing and the tests run as
root, and skips, saying why, where it cannot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from src.predict.cli import main

HOSTILE = (
    "Putin met Kim in Moscow on Monday.\n"
    "<script>alert(1)</script> and </div> must stay text in Moscow.\n"
    "Analysts in Seoul said Putin wants weapons."
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a Chromium binary; installed through apt-get when missing (as root only), else a skip."""
    path = find_chromium()
    if path:
        return path
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium on PATH and no apt-get to install it (Debian's chromium package is needed)")
    if os.geteuid() != 0:
        pytest.skip("no chromium on PATH; installing it needs root (apt-get install -y chromium)")
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, timeout=900, check=False
    )
    path = find_chromium()
    if path is None:
        pytest.skip(f"apt-get install chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return path


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def save_screenshot(chromium: str, page: Path, png: Path, profile: Path, size: str = "1200,1600") -> Path:
    """A PNG of the page as headless Chromium renders it at ``size`` (width,height in CSS pixels)."""
    run_chromium(chromium, profile, f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri())
    return png


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.in_script = False
        self.scripts: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, dict(attrs)))
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False if tag == "script" else self.in_script

    def handle_data(self, data: str) -> None:
        (self.scripts if self.in_script else self.text).append(data)


@pytest.mark.slow
def test_page_in_headless_chromium(chromium: str, runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(
            json.dumps({"id": i, "text": t}) + "\n" for i, t in [("hostile", HOSTILE), ("short", "Kim met Putin.")]
        ),
        encoding="utf-8",
    )
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]
    outputs = {"jsonl": tmp_path / "out.jsonl", "html": tmp_path / "out.html"}
    for fmt, out in outputs.items():  # scripts/predict.py's main, in this process: torch is imported once
        assert main([*models, "--format", fmt, "-o", str(out), str(docs)]) == 0
    predictions = [json.loads(line) for line in outputs["jsonl"].read_text(encoding="utf-8").splitlines()]
    n_entities = sum(len(p["entities"]) for p in predictions)
    assert n_entities >= 4  # the toy-trained checkpoint finds names, so the count means something

    dumped = run_chromium(chromium, tmp_path / "profile", "--dump-dom", outputs["html"].resolve().as_uri()).stdout
    dom = Dom()
    dom.feed(dumped)
    marks = [a for tag, a in dom.elements if "entity" in (a.get("class") or "").split()]
    assert len(marks) == n_entities
    assert [m["data-label"] for m in marks] == [e["label"] for p in predictions for e in p["entities"]]
    assert not [tag for tag, _ in dom.elements if tag == "script"] and not dom.scripts  # no script element at all
    visible = "".join(dom.text)
    assert "<script>alert(1)</script> and </div> must stay text" in visible
    articles = [a for tag, a in dom.elements if tag == "article"]
    assert len(articles) == 2  # "</div>" closed nothing: both articles are still there, in order

    png = save_screenshot(chromium, outputs["html"], tmp_path / "page.png", tmp_path / "profile")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 1600)
