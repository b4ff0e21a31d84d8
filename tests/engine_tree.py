"""A ``chatllm.cpp/`` folder in a temporary tree, laid out as git and upstream's build leave it, and a
lookup that sees only that folder (no ``QASR_CHATLLM_LIB``, not this clone's own submodule).
Shared by test_submodule.py (the lookup, reading the commit) and test_doctor.py (its records)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qasr.engine import library


def isolate_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``tmp_path/chatllm.cpp`` the only folder the lookup searches, and return it (not created)."""
    monkeypatch.delenv("QASR_CHATLLM_LIB", raising=False)
    monkeypatch.delenv("QASR_GGML_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(library, "_source_tree_root", lambda: None)
    monkeypatch.setattr(library, "_engine", None)
    return tmp_path / "chatllm.cpp"


def checkout_at(folder: Path, head: str, built: Path | None = None) -> Path:
    """A submodule checkout as git lays it out: ``folder/.git`` is a ``gitdir:`` file pointing into the
    superproject's ``.git/modules/chatllm.cpp``, whose HEAD is ``head`` (a hash or ``ref: ...``);
    ``built`` (the test double) is copied to where upstream's build writes libchatllm.so."""
    (folder / "bindings").mkdir(parents=True)
    git_dir = folder.parent / ".git" / "modules" / "chatllm.cpp"
    git_dir.mkdir(parents=True)
    (git_dir / "HEAD").write_text(head + "\n")
    (folder / ".git").write_text("gitdir: ../.git/modules/chatllm.cpp\n")
    if built is not None:
        shutil.copy(built, folder / "bindings" / "libchatllm.so")
    return folder
