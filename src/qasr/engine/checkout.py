"""Which chatllm.cpp sits in a ``chatllm.cpp/`` folder: an empty submodule, or a checkout at which commit.

qasr pins the engine as a git submodule (``chatllm.cpp/``) at the commit it is tested with,
`TESTED_COMMIT`: the one place in the code that names it (the repository's gitlink records the same
commit, and a test compares the two). A clone without ``--recursive`` leaves the folder empty, and a
user may check out another commit; both change what to expect, so the library lookup and
``qasr doctor`` say which case they see and what to do.

The commit is read from the files git writes (``.git`` as a ``gitdir:`` file or a directory, then
``HEAD``: a detached hash, or a branch resolved through its ref file or ``packed-refs``). Nothing is
run: no git binary is needed, and a diagnosis never fails because git is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

#: The upstream chatllm.cpp commit qasr is tested against (foldl/chatllm.cpp, Aug 2026).
TESTED_COMMIT = "4a4310e165cad9232a347dd299593b8ebaae1ac1"
#: The submodule's folder, at the top of a qasr clone.
FOLDER = "chatllm.cpp"
INIT_STEP = f"git submodule update --init {FOLDER}"
BUILD_STEP = "build its libchatllm target as the engine's docs/binding.md says"
#: What a user with an empty submodule folder does, in order (docs/engine.md explains both).
STEPS = f"{INIT_STEP}, then {BUILD_STEP}"

_HASH = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")


def short(commit: str) -> str:
    """The 7-character form git prints."""
    return commit[:7]


class State(str, Enum):
    ABSENT = "absent"      # no such folder
    EMPTY = "empty"        # the folder holds nothing: a submodule that was never initialised
    CHECKOUT = "checkout"  # a git checkout (its commit, or why it could not be read)
    FILES = "files"        # files without git metadata: the commit cannot be known


@dataclass(frozen=True)
class Checkout:
    """What one ``chatllm.cpp`` folder holds."""

    path: Path
    state: State
    commit: str | None = None
    branch: str | None = None
    problem: str | None = None

    @property
    def tested(self) -> bool:
        return self.commit is not None and self.commit.lower() == TESTED_COMMIT

    def describe(self) -> str:
        """One phrase for messages: where the folder is and which engine it holds."""
        if self.state is State.EMPTY:
            return f"{self.path} is an empty submodule folder: the engine's source is not checked out"
        if self.state is State.ABSENT:
            return f"{self.path} does not exist"
        if self.commit is None:
            why = self.problem or "no git metadata"
            return f"{self.path}: its commit is unknown ({why}); qasr is tested with {short(TESTED_COMMIT)}"
        on = f" (branch {self.branch})" if self.branch else ""
        if self.tested:
            return f"{self.path} is at {short(self.commit)}{on}, the commit qasr is tested with"
        return (f"{self.path} is at {short(self.commit)}{on}, not {short(TESTED_COMMIT)}, the commit qasr is "
                f"tested with: results may differ from qasr's")

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "state": self.state.value, "commit": self.commit, "branch": self.branch,
                "tested_commit": TESTED_COMMIT, "tested": self.tested}


def read_checkout(folder: Path) -> Checkout:
    """Inspect ``folder`` (never raises: what cannot be read becomes ``problem``)."""
    try:
        if not folder.is_dir():
            return Checkout(folder, State.ABSENT)
        if not any(folder.iterdir()):
            return Checkout(folder, State.EMPTY)
        if not (folder / ".git").exists():
            return Checkout(folder, State.FILES)
        commit, branch = _head(_git_dir(folder))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return Checkout(folder, State.CHECKOUT, problem=str(exc))
    problem = None if commit else f"branch {branch} has no commit yet"
    return Checkout(folder, State.CHECKOUT, commit, branch, problem)


def folder_holding(library: Path) -> Path | None:
    """The chatllm.cpp source folder a built library sits in (``bindings/`` or ``build/...`` below it):
    a folder named ``chatllm.cpp``, or any git checkout with a ``bindings/`` directory. None when the
    library lives elsewhere (an installed copy, the test double)."""
    for folder in list(library.parents)[:3]:
        if (folder / "bindings").is_dir() and (folder.name == FOLDER or (folder / ".git").exists()):
            return folder
    return None


def _git_dir(folder: Path) -> Path:
    """The git directory of a checkout: ``.git`` itself, or where its ``gitdir:`` line points
    (a submodule's lives in the superproject's ``.git/modules/``)."""
    entry = folder / ".git"
    if entry.is_dir():
        return entry
    text = entry.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        raise ValueError(".git is neither a directory nor a 'gitdir:' file")
    git_dir = Path(text.removeprefix("gitdir:").strip())
    git_dir = git_dir if git_dir.is_absolute() else folder / git_dir
    if not git_dir.is_dir():
        raise ValueError(f"its .git points to {git_dir}, which does not exist")
    return git_dir


def _head(git_dir: Path) -> tuple[str | None, str | None]:
    """(commit, branch) of HEAD; the commit is None for a branch with no commit yet."""
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if _HASH.fullmatch(head):
        return head.lower(), None
    if not head.startswith("ref:"):
        raise ValueError(f"HEAD holds neither a commit nor a ref: {head[:60]!r}")
    ref = head.removeprefix("ref:").strip()
    branch = ref.removeprefix("refs/heads/")
    common = git_dir
    if (git_dir / "commondir").is_file():  # a linked worktree keeps its refs in the main git dir
        common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
    for base in (git_dir, common):
        if (base / ref).is_file():
            value = (base / ref).read_text(encoding="utf-8").strip()
            if _HASH.fullmatch(value):
                return value.lower(), branch
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            commit, _, name = line.partition(" ")
            if name.strip() == ref and _HASH.fullmatch(commit):
                return commit.lower(), branch
    return None, branch
