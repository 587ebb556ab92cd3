"""vs_superres.runtime.installed: registered models whose files are found, and what a
checkpoint file is (registered by sha256, the family that reads it, nothing)."""

from __future__ import annotations

import shutil

import torch

from vs_superres.models.ditn.arch import build
from vs_superres.runtime.installed import identify, missing_files
from vs_superres.runtime.registry import default_registry


def test_missing_files_follow_the_weight_search(ditn_x4_path, tmp_path, monkeypatch):
    desc = default_registry().get("ditn-real-x4")
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert [wf.relpath for wf in missing_files(desc)] == ["ditn/DITN_Real_x4.pth"]
    (tmp_path / "w" / "ditn").mkdir(parents=True)
    shutil.copy(ditn_x4_path, tmp_path / "w" / "ditn" / "DITN_Real_x4.pth")
    monkeypatch.setenv("SUPERRES_WEIGHTS", str(tmp_path / "w"))
    assert missing_files(desc) == []


def test_identify_a_registered_file_a_family_file_and_junk(ditn_x4_path, tmp_path):
    copy = tmp_path / "renamed.pth"
    shutil.copy(ditn_x4_path, copy)
    found = identify(copy)
    assert [name for name, _ in found.registered] == ["ditn-real-x4"] and found.family == "ditn"
    torch.manual_seed(0)
    torch.save(build({"dim": 8, "num_itl": 1, "num_sal": 1}).state_dict(), tmp_path / "tiny.pth")
    assert identify(tmp_path / "tiny.pth") == type(found)((), "ditn")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    assert identify(tmp_path / "junk.pth") == type(found)((), None)
    # one byte changed, same size: the hash decides, the file is still read by its shapes
    data = bytearray(copy.read_bytes())
    data[-100] ^= 1
    copy.write_bytes(bytes(data))
    assert identify(copy).registered == ()
