"""chatllm.cpp/ as a git submodule pinned at the tested commit: what the repository tracks, how a
checkout's commit is read, and what the library lookup says about an empty or built submodule folder.
(``qasr doctor``'s records for the same folders are in test_doctor.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from engine_tree import checkout_at, isolate_lookup

from qasr.engine import checkout, library
from qasr.engine.checkout import TESTED_COMMIT, State, read_checkout
from qasr.errors import EngineNotFound

OTHER = "0123456789abcdef0123456789abcdef01234567"


def _git(*args: str) -> str:
    """``git ARGS`` in this repository; skip when this is not a git checkout (an sdist, a copied tree)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout of qasr (or no git on PATH)")
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"git {' '.join(args)} failed here: {proc.stderr.strip()}")
    return proc.stdout


# --- the repository -----------------------------------------------------------------------------

def test_the_gitlink_is_the_tested_commit_and_gitmodules_names_upstream() -> None:
    entries = _git("ls-files", "--stage", "--", "chatllm.cpp").splitlines()
    assert entries == [f"160000 {TESTED_COMMIT} 0\tchatllm.cpp"]
    assert _git("config", "-f", ".gitmodules", "submodule.chatllm.cpp.path").strip() == "chatllm.cpp"
    assert _git("config", "-f", ".gitmodules", "submodule.chatllm.cpp.url").strip() == "https://github.com/foldl/chatllm.cpp"


def test_no_file_of_the_engine_is_tracked() -> None:
    files = _git("ls-files", "-z").split("\0")
    assert "chatllm.cpp" in files  # the gitlink, and nothing under it
    assert [f for f in files if f.startswith("chatllm.cpp/")] == []
    engine_like = (".cpp", ".cc", ".cxx", ".hpp", ".h", ".cu", ".metal", ".so", ".a", ".dylib", ".dll")
    assert [f for f in files if f != "chatllm.cpp" and f.endswith(engine_like)] == []
    names = {Path(f).name for f in files}
    assert not names & {"CMakeLists.txt", "Makefile", "libchatllm.h", "libchatllm.so", "chatllm.py"}


def test_no_script_or_ci_step_of_ours_builds_or_fetches_the_engine() -> None:
    files = [f for f in _git("ls-files", "-z").split("\0") if f]
    scripts = [f for f in files if f.startswith(".ci/") or f.endswith((".sh", "Dockerfile", ".toml"))
               or f.startswith("benchmarks/")]
    assert ".ci/run" in scripts and "Dockerfile" in scripts
    for name in scripts:
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        for word in ("cmake", "submodule update", "--recursive", "--recurse-submodules"):
            assert word not in text, f"{name} mentions {word!r}: no script of ours builds or fetches the engine"


def test_no_link_points_at_the_old_engine_readme() -> None:
    # moved to docs/engine.md; the study's own folders (qwen3-aligner-chatllm.cpp/README.md) are other files
    old = re.compile(r"(?<![\w.-])chatllm\.cpp/README")
    for name in _git("ls-files", "-z").split("\0"):
        path = ROOT / name
        if name and path.is_file() and path.suffix in (".md", ".py", ".toml", ".sh", ".txt", ""):
            assert not old.search(path.read_text(encoding="utf-8", errors="replace")), name


def test_docs_name_the_tested_commit_and_the_constant() -> None:
    engine_doc = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    assert TESTED_COMMIT in engine_doc and "qasr.engine.checkout.TESTED_COMMIT" in engine_doc
    assert checkout.INIT_STEP in engine_doc and "docs/binding.md" in engine_doc
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The engine", 1)[1].split("\n## ", 1)[0]
    assert checkout.INIT_STEP in section and checkout.short(TESTED_COMMIT) in section
    assert "docs/engine.md" in section


# --- reading a checkout's commit -----------------------------------------------------------------

def test_a_detached_submodule_at_the_tested_commit(tmp_path: Path) -> None:
    found = read_checkout(checkout_at(tmp_path / "chatllm.cpp", TESTED_COMMIT))
    assert (found.state, found.commit, found.branch, found.tested) == (State.CHECKOUT, TESTED_COMMIT, None, True)
    assert found.describe().endswith("is at 4a4310e, the commit qasr is tested with")


def test_a_branch_resolved_by_its_ref_file_and_by_packed_refs(tmp_path: Path) -> None:
    folder = tmp_path / "chatllm.cpp"
    (folder / ".git" / "refs" / "heads").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/master\n")
    (folder / ".git" / "refs" / "heads" / "master").write_text(OTHER + "\n")
    found = read_checkout(folder)
    assert (found.commit, found.branch, found.tested) == (OTHER, "master", False)
    assert "is at 0123456 (branch master), not 4a4310e" in found.describe() and "results may differ" in found.describe()

    (folder / ".git" / "refs" / "heads" / "master").unlink()
    (folder / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{TESTED_COMMIT} refs/heads/master\n")
    assert read_checkout(folder).commit == TESTED_COMMIT


def test_a_linked_worktree_reads_refs_from_its_common_dir(tmp_path: Path) -> None:
    common = tmp_path / "main.git"
    (common / "refs" / "heads").mkdir(parents=True)
    (common / "refs" / "heads" / "pr115").write_text(OTHER + "\n")
    private = common / "worktrees" / "chatllm.cpp"
    private.mkdir(parents=True)
    (private / "HEAD").write_text("ref: refs/heads/pr115\n")
    (private / "commondir").write_text("../..\n")
    folder = tmp_path / "chatllm.cpp"
    folder.mkdir()
    (folder / ".git").write_text(f"gitdir: {private}\n")
    assert (read_checkout(folder).commit, read_checkout(folder).branch) == (OTHER, "pr115")


@pytest.mark.parametrize(
    ("dot_git", "problem"),
    [("gitdir: ../nowhere", "does not exist"), ("something else", "neither a directory nor a 'gitdir:' file")],
)
def test_an_unreadable_git_pointer_is_a_problem_not_a_crash(tmp_path: Path, dot_git: str, problem: str) -> None:
    folder = tmp_path / "chatllm.cpp"
    folder.mkdir()
    (folder / ".git").write_text(dot_git)
    found = read_checkout(folder)
    assert found.state is State.CHECKOUT and found.commit is None and problem in (found.problem or "")
    assert "its commit is unknown" in found.describe()


def test_a_head_that_is_neither_hash_nor_ref(tmp_path: Path) -> None:
    found = read_checkout(checkout_at(tmp_path / "chatllm.cpp", "garbage"))
    assert found.commit is None and "neither a commit nor a ref" in (found.problem or "")
    unborn = read_checkout(checkout_at(tmp_path / "b" / "chatllm.cpp", "ref: refs/heads/main"))
    assert (unborn.commit, unborn.branch, unborn.problem) == (None, "main", "branch main has no commit yet")


def test_absent_empty_and_plain_files(tmp_path: Path) -> None:
    folder = tmp_path / "chatllm.cpp"
    assert read_checkout(folder).state is State.ABSENT
    folder.mkdir()
    empty = read_checkout(folder)
    assert empty.state is State.EMPTY and "is an empty submodule folder" in empty.describe()
    (folder / "README.md").write_text("a tarball, no git")
    files = read_checkout(folder)
    assert (files.state, files.commit) == (State.FILES, None) and "no git metadata" in files.describe()
    assert files.to_dict()["tested_commit"] == TESTED_COMMIT and files.to_dict()["tested"] is False


def test_what_git_itself_writes_is_read_right(tmp_path: Path) -> None:
    """A real submodule (``.git`` a gitdir file) and a real clone (a branch, its ref packed), from a
    local upstream: the commit read matches ``git rev-parse HEAD``."""
    if shutil.which("git") is None:
        pytest.skip("no git on PATH")

    def git(*args: str, cwd: Path) -> str:
        config = ["-c", "user.name=qasr", "-c", "user.email=qasr@localhost", "-c", "protocol.file.allow=always",
                  "-c", "init.defaultBranch=main"]
        return subprocess.run(["git", *config, *args], cwd=cwd, check=True, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL).stdout.strip()

    upstream = tmp_path / "upstream"
    (upstream / "bindings").mkdir(parents=True)
    (upstream / "bindings" / "note.txt").write_text("not the engine\n")
    git("init", "-q", cwd=upstream)
    git("add", ".", cwd=upstream)
    git("commit", "-qm", "one", cwd=upstream)
    commit = git("rev-parse", "HEAD", cwd=upstream)
    superproject = tmp_path / "qasr"
    superproject.mkdir()
    git("init", "-q", cwd=superproject)
    git("submodule", "add", "-q", str(upstream), "chatllm.cpp", cwd=superproject)
    git("-C", "chatllm.cpp", "checkout", "-q", "--detach", cwd=superproject)
    submodule = read_checkout(superproject / "chatllm.cpp")
    assert (superproject / "chatllm.cpp" / ".git").is_file()
    assert (submodule.state, submodule.commit, submodule.branch, submodule.tested) == (State.CHECKOUT, commit, None, False)

    git("clone", "-q", str(upstream), "clone", cwd=tmp_path)
    git("pack-refs", "--all", cwd=tmp_path / "clone")
    clone = read_checkout(tmp_path / "clone")
    assert (clone.commit, clone.branch) == (commit, "main")


def test_which_folder_holds_a_built_library(tmp_path: Path) -> None:
    folder = checkout_at(tmp_path / "chatllm.cpp", TESTED_COMMIT)
    assert checkout.folder_holding(folder / "bindings" / "libchatllm.so") == folder
    assert checkout.folder_holding(folder / "build" / "lib" / "libchatllm.so") == folder
    elsewhere = tmp_path / "opt" / "chatllm"
    (elsewhere / "bindings").mkdir(parents=True)
    assert checkout.folder_holding(elsewhere / "bindings" / "libchatllm.so") is None  # no git: not a checkout
    (elsewhere / ".git").mkdir()
    assert checkout.folder_holding(elsewhere / "bindings" / "libchatllm.so") == elsewhere
    assert checkout.folder_holding(tmp_path / "double" / "libchatllm.so") is None


# --- the lookup ----------------------------------------------------------------------------------

@pytest.fixture()
def only_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate_lookup(tmp_path, monkeypatch)


def test_lookup_in_an_empty_submodule_folder_says_so_and_gives_the_two_steps(only_here: Path) -> None:
    only_here.mkdir()
    assert library.conventional_folders() == [only_here]
    with pytest.raises(EngineNotFound) as err:
        library.load_library()
    message = str(err.value)
    assert f"{only_here} is an empty submodule folder" in message
    assert "git submodule update --init chatllm.cpp, then build its libchatllm target as the engine's docs/binding.md says" in message
    assert str(only_here / "bindings" / "libchatllm.so") in message


def test_lookup_without_the_folder_or_with_an_explicit_path_says_nothing_of_submodules(only_here: Path) -> None:
    with pytest.raises(EngineNotFound) as err:
        library.load_library()
    assert "empty submodule" not in str(err.value)
    only_here.mkdir()
    with pytest.raises(EngineNotFound) as err:
        library.load_library(only_here.parent / "elsewhere" / "libchatllm.so")
    assert "empty submodule" not in str(err.value)


def test_lookup_finds_the_library_built_inside_the_submodule(only_here: Path, double_lib: Path) -> None:
    folder = checkout_at(only_here, TESTED_COMMIT, built=double_lib)
    first = library.candidate_paths()[0]
    assert first == folder / "bindings" / "libchatllm.so" and first.is_file()
    assert library.paths_in(folder)[0] == first
