"""LocalStore writes, content-addressed keys, format sniffing and open_store's URL forms."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from homeshots.core.errors import ConfigError, StoreError
from homeshots.core.settings import Settings
from homeshots.storage import LocalStore, image_key, open_store, sniff_format
from homeshots.storage.s3 import S3Store

SHA = "ab" + "c" * 62


def test_put_is_create_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.put("raw/a.jpg", b"first") is True
    assert store.put("raw/a.jpg", b"second") is False
    assert store.get("raw/a.jpg") == b"first"
    assert store.put("raw/a.jpg", b"third", overwrite=True) is True
    assert store.get("raw/a.jpg") == b"third"


def test_no_temp_files_and_keys_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("processed/ab/x.png", b"1")
    store.put("processed/ab/x.png", b"2")
    store.put("metadata/run.json", b"{}", overwrite=True)
    assert [n for _, _, files in os.walk(tmp_path) for n in files if n.startswith(".tmp-")] == []
    assert list(store.keys()) == ["metadata/run.json", "processed/ab/x.png"]
    assert list(store.keys("processed")) == ["processed/ab/x.png"]
    assert store.get("metadata/run.json") == b"{}"
    with pytest.raises(StoreError):
        store.get("metadata/other.json")


@pytest.mark.parametrize("key", ["../x", "raw/../../x", "/etc/passwd"])
def test_key_escaping_root_is_refused(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StoreError):
        store.put(key, b"x")
    assert not (tmp_path / "x").exists()


def test_image_key_layout() -> None:
    assert image_key("processed", SHA, "PNG") == f"processed/ab/{SHA}.png"
    assert image_key("raw", SHA, "jpeg") == f"raw/ab/{SHA}.jpg"
    assert image_key("raw", SHA, "???") == f"raw/ab/{SHA}.bin"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_sniff_format(fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, fmt)
    assert sniff_format(buf.getvalue()) == fmt


def test_sniff_unknown() -> None:
    assert sniff_format(b"<html>not an image</html>") == "BIN"
    assert sniff_format(b"") == "BIN"


def test_open_store_local_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases = {
        f"file://{tmp_path / 'abs'}": tmp_path / "abs",
        "file://./rel": tmp_path / "rel",
        "plain/dir": tmp_path / "plain" / "dir",
    }
    for url, expected in cases.items():
        store = open_store(Settings(store_url=url))
        assert isinstance(store, LocalStore)
        assert store.location() == str(expected)
        assert expected.is_dir()


def test_open_store_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    store = open_store(Settings(store_url="s3://bucket/some/prefix/"))
    assert isinstance(store, S3Store)
    assert store.location("processed/ab/x.png") == "s3://bucket/some/prefix/processed/ab/x.png"


@pytest.mark.parametrize("url", ["http://example.com/data", "s3:///prefix"])
def test_open_store_bad_url(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(Settings(store_url=url))


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_setting_decides_whether_each_file_is_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    """Each put is flushed to the disk before it is linked (or not, when turned off); the file is whole either way."""
    flushed: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.append(fd) or real_fsync(fd))
    store = open_store(Settings(store_url=f"file://{tmp_path}", store_fsync=fsync))
    assert isinstance(store, LocalStore) and store.fsync is fsync
    data = os.urandom(100_000)
    assert store.put("processed/ab/x.png", data) and store.put("raw/ab/x.jpg", data)
    assert store.get("processed/ab/x.png") == data and store.get("raw/ab/x.jpg") == data
    assert len(flushed) == (2 if fsync else 0)
