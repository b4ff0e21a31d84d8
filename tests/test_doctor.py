"""``qasr doctor`` on a bare machine (no engine, no models, no ffmpeg), with the test double, and --json."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import run_qasr
from engine_tree import checkout_at, isolate_lookup
from modelfiles import write_model

from qasr import doctor
from qasr.doctor import Check, Options, Status, required_failures, run_checks
from qasr.engine import registry


def _bin_without(tmp_path: Path, *tools: str) -> Path:
    """A PATH directory holding only ``tools`` (links to the real ones): no ffmpeg, no docker."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        assert real, f"{tool} is needed to build the test PATH"
        (directory / tool).symlink_to(real)
    return directory


def _bare_env(tmp_path: Path, path: Path, **extra: str) -> dict[str, str]:
    """Env vars pointing at empty places: no engine, no models; PATH without ffmpeg."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QASR_")}
    env.update(PATH=str(path), QASR_CHATLLM_LIB=str(empty), QASR_MODELS_DIR=str(tmp_path / "models"), **extra)
    return env


def _by_name(doc: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["name"]: c for c in doc["checks"]}


def test_bare_machine_exits_1_and_names_every_fix(tmp_path: Path) -> None:
    env = _bare_env(tmp_path, _bin_without(tmp_path, "sh", "cat"))
    r = run_qasr(["doctor"], env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    assert "MISSING  libchatllm*" in out
    assert f"tried {tmp_path / 'empty' / 'libchatllm.so'} (not found)" in out
    assert "git submodule update --init chatllm.cpp, then build its libchatllm target as the engine's docs/binding.md says" in out
    assert "QASR_CHATLLM_LIB" in out and "docs/engine.md" in out
    assert "fix: apt-get install ffmpeg (Debian), or pip install" in out
    assert "fix: qasr models pull qwen3-asr-0.6b-q4_0" in out
    assert "not ready: required check(s) failed: libchatllm" in out

    doc = json.loads(run_qasr(["doctor", "--json"], env).stdout)
    checks = _by_name(doc)
    assert doc["ok"] is False and doc["required_failed"] == ["libchatllm"]
    assert checks["ffmpeg"]["status"] == "missing" and checks["ffmpeg"]["required"] is False  # the shim serves ASR
    assert checks["ffmpeg shim"]["status"] == "ok"
    assert checks["models dir"]["status"] == "missing"
    assert all(checks[f"model {n}"]["status"] == "missing" for n in registry.names())


def test_with_the_shim_off_ffmpeg_becomes_required(tmp_path: Path) -> None:
    env = _bare_env(tmp_path, _bin_without(tmp_path, "sh", "cat"), QASR_FFMPEG_SHIM="0")
    doc = json.loads(run_qasr(["doctor", "--json"], env).stdout)
    checks = _by_name(doc)
    assert checks["ffmpeg shim"]["status"] == "missing" and checks["ffmpeg shim"]["fix"] == "unset QASR_FFMPEG_SHIM"
    assert checks["ffmpeg"]["required"] is True and doc["required_failed"] == ["libchatllm", "ffmpeg"]


def test_an_empty_path_does_not_crash_it(tmp_path: Path) -> None:
    empty_bin = tmp_path / "nothing"
    empty_bin.mkdir()
    r = run_qasr(["doctor", "--json", "--docker"], _bare_env(tmp_path, empty_bin))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    checks = _by_name(doc)
    assert checks["ffmpeg shim"]["status"] == "broken" and "sh and cat" in checks["ffmpeg shim"]["detail"]
    assert checks["docker"]["status"] == "missing" and checks["docker"]["fix"] == "sudo apt-get install docker.io"
    assert doc["required_failed"] == ["libchatllm", "ffmpeg", "docker"]


def test_test_double_as_engine_is_ok_and_json_has_the_shape(double_lib: Path, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg on PATH for an all-ok run")
    models = tmp_path / "models"
    models.mkdir()
    write_model(models / "qwen3-asr-0.6b-q4_0.bin")
    (models / "qwen3-asr-0.6b.bin").write_bytes(b"\0" * 64)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QASR_")}
    env.update(QASR_CHATLLM_LIB=str(double_lib), QASR_MODELS_DIR=str(models))
    r = run_qasr(["doctor", "--json"], env)
    assert r.returncode == 0, r.stdout
    doc = json.loads(r.stdout)
    assert set(doc) == {"ok", "required_failed", "checks"} and doc["ok"] is True and doc["required_failed"] == []
    for c in doc["checks"]:
        assert {"name", "status", "required", "detail", "fix"} <= c.keys()
        assert c["status"] in ("ok", "warn", "missing", "broken") and isinstance(c["required"], bool)
        assert (c["fix"] is None) == (c["status"] == "ok")
    checks = _by_name(doc)
    assert checks["libchatllm"]["status"] == "ok" and checks["libchatllm"]["test_double"] is True
    assert checks["libchatllm"]["path"] == str(double_lib) and "TEST DOUBLE" in checks["libchatllm"]["detail"]
    assert checks["model qwen3-asr-0.6b-q4_0"]["status"] == "ok"
    bad = checks["model qwen3-asr-0.6b-q8_0"]
    assert bad["status"] == "broken" and bad["fix"] == "qasr models pull qwen3-asr-0.6b-q8_0 --force"
    assert [n for n, c in checks.items() if c["required"]] == ["python", "qasr", "libchatllm", "ffmpeg shim", "soundfile", "soxr"]
    r = run_qasr(["doctor"], env)
    assert r.returncode == 0 and "ready: every required check (*) is ok" in r.stdout


def test_a_library_that_does_not_load_is_broken(tmp_path: Path) -> None:
    fake = tmp_path / "libchatllm.so"
    fake.write_text("not a shared object")
    checks = {c.name: c for c in run_checks(Options(engine=str(fake)), [doctor.check_engine])}
    assert checks["libchatllm"].status is Status.BROKEN and "cannot load" in checks["libchatllm"].detail
    assert checks["libchatllm"].fix and "--engine PATH" in checks["libchatllm"].fix


def test_a_library_without_the_abi_is_broken(tmp_path: Path) -> None:
    libc = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6", "/usr/lib64/libm.so.6")
                 if Path(p).exists()), None)
    if libc is None:
        pytest.skip("no libm.so.6 at a known place")
    [check, _] = run_checks(Options(engine=libc), [doctor.check_engine])
    assert check.status is Status.BROKEN and "does not export chatllm_" in check.detail


def test_a_check_that_raises_becomes_a_broken_record() -> None:
    def check_exploding(opts: Options):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")
        yield  # pragma: no cover

    results = run_checks(Options(), [doctor.check_python, check_exploding])
    assert [c.status for c in results] == [Status.OK, Status.BROKEN]
    assert results[1].name == "exploding" and "RuntimeError: boom" in results[1].detail
    assert required_failures(results) == []  # an unknown check is not required
    assert required_failures([Check("x", Status.MISSING, True, "d", "f")])[0].name == "x"


def test_optional_lab_tools_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import PackageNotFoundError

    import qasr.lab.runner

    def no_dist(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(qasr.lab.runner, "JEMALLOC_CANDIDATES", ())
    monkeypatch.delenv("QASR_JEMALLOC", raising=False)
    monkeypatch.setattr("importlib.metadata.version", no_dist)
    memray, jemalloc = doctor.check_optional_tools(Options())
    assert (memray.status, memray.required, memray.fix) == (Status.MISSING, False, "pip install 'qasr[trace]'")
    assert jemalloc.status is Status.MISSING and jemalloc.fix.startswith("sudo apt-get install libjemalloc2")


def test_python_and_qasr_versions_are_reported() -> None:
    import qasr

    [py] = doctor.check_python(Options())
    [q] = doctor.check_qasr(Options())
    assert py.ok and py.data["version"] == ".".join(map(str, sys.version_info[:3]))
    assert q.ok and q.data["version"] == qasr.__version__


# --- the chatllm.cpp submodule folder behind the engine -----------------------------------------

OTHER = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def lookup_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate_lookup(tmp_path, monkeypatch)


def _engine_records(opts: Options | None = None) -> dict[str, Check]:
    return {c.name: c for c in run_checks(opts or Options(), [doctor.check_engine])}


def test_an_empty_submodule_folder_is_named_with_the_two_steps(lookup_here: Path) -> None:
    from qasr.engine.checkout import STEPS

    lookup_here.mkdir()
    records = _engine_records()
    assert list(records) == ["libchatllm", "chatllm.cpp", "ggml dir"]
    assert records["libchatllm"].status is Status.MISSING and STEPS in (records["libchatllm"].fix or "")
    folder = records["chatllm.cpp"]
    assert (folder.status, folder.required, folder.fix) == (Status.MISSING, False, STEPS)
    assert folder.detail == f"{lookup_here} is an empty submodule folder: the engine's source is not checked out"
    assert folder.data["state"] == "empty" and folder.data["commit"] is None


def test_no_folder_and_no_library_names_no_folder(lookup_here: Path) -> None:
    assert list(_engine_records()) == ["libchatllm", "ggml dir"]


def test_a_checkout_at_the_tested_commit_with_the_library_built(lookup_here: Path, double_lib: Path) -> None:
    from qasr.engine.checkout import TESTED_COMMIT

    checkout_at(lookup_here, TESTED_COMMIT, double_lib)
    records = _engine_records()
    assert records["libchatllm"].ok and records["libchatllm"].data["path"] == str(lookup_here / "bindings" / "libchatllm.so")
    folder = records["chatllm.cpp"]
    assert folder.ok and folder.fix is None and folder.data["tested"] is True and folder.data["commit"] == TESTED_COMMIT
    assert folder.detail == f"{lookup_here} is at 4a4310e, the commit qasr is tested with"


def test_a_checkout_at_another_commit_warns_which_and_is_not_a_failure(lookup_here: Path, double_lib: Path) -> None:
    from qasr.engine.checkout import TESTED_COMMIT

    checkout_at(lookup_here, OTHER, double_lib)
    results = run_checks(Options(), [doctor.check_engine])
    folder = {c.name: c for c in results}["chatllm.cpp"]
    assert folder.status is Status.WARN and not folder.ok and not folder.required
    assert f"{lookup_here} is at 0123456, not 4a4310e, the commit qasr is tested with: results may differ" in folder.detail
    assert folder.fix == f"to use the tested engine: git -C {lookup_here} checkout {TESTED_COMMIT}, then rebuild libchatllm"
    assert (folder.data["commit"], folder.data["tested_commit"], folder.data["tested"]) == (OTHER, TESTED_COMMIT, False)
    assert required_failures(results) == []


def test_a_checkout_without_a_build_says_to_build_it(lookup_here: Path) -> None:
    checkout_at(lookup_here, OTHER)
    folder = _engine_records()["chatllm.cpp"]
    assert folder.status is Status.MISSING and "not 4a4310e" in folder.detail
    assert folder.detail.endswith("; no libchatllm is built there")
    assert folder.fix == f"in {lookup_here}, build its libchatllm target as the engine's docs/binding.md says"


def test_files_without_git_metadata_warn_that_the_commit_is_unknown(lookup_here: Path, double_lib: Path) -> None:
    from qasr.engine.checkout import STEPS

    (lookup_here / "bindings").mkdir(parents=True)
    shutil.copy(double_lib, lookup_here / "bindings" / "libchatllm.so")
    folder = _engine_records()["chatllm.cpp"]
    assert folder.status is Status.WARN and "its commit is unknown (no git metadata)" in folder.detail
    assert folder.fix == f"to know what you run, use a git checkout: move {lookup_here} aside, then {STEPS}"


def test_a_library_found_elsewhere_names_no_folder(lookup_here: Path, double_lib: Path) -> None:
    lookup_here.mkdir()  # an empty submodule does not matter once a library loads from elsewhere
    assert list(_engine_records(Options(engine=str(double_lib)))) == ["libchatllm", "ggml dir"]


def _own_submodule_is_built() -> bool:
    from conftest import ROOT

    from qasr.engine.library import paths_in

    return any(p.is_file() for p in paths_in(ROOT / "chatllm.cpp"))


@pytest.mark.parametrize("commit", ["empty", "other"])
def test_the_cli_renders_the_folder_record(tmp_path: Path, double_lib: Path, commit: str) -> None:
    import subprocess

    if _own_submodule_is_built():
        pytest.skip("this clone's own chatllm.cpp submodule holds a built libchatllm: the lookup would find it too")
    folder = tmp_path / "chatllm.cpp"
    if commit == "empty":
        folder.mkdir()
    else:
        checkout_at(folder, OTHER, double_lib)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QASR_")}
    env["QASR_MODELS_DIR"] = str(tmp_path / "models")
    run = [sys.executable, "-m", "qasr", "doctor"]
    text = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in text.stderr
    doc = json.loads(subprocess.run(run + ["--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                                    stdin=subprocess.DEVNULL).stdout)
    record = _by_name(doc)["chatllm.cpp"]
    assert record["path"] == str(folder) and "chatllm.cpp" not in doc["required_failed"]
    if commit == "empty":
        assert text.returncode == 1 and "libchatllm" in doc["required_failed"]
        assert "MISSING  chatllm.cpp" in text.stdout and "is an empty submodule folder" in text.stdout
        assert "fix: git submodule update --init chatllm.cpp, then build its libchatllm target" in text.stdout
    else:
        assert "libchatllm" not in doc["required_failed"] and record["status"] == "warn"
        assert "WARN     chatllm.cpp" in text.stdout and "is at 0123456, not 4a4310e" in text.stdout
        assert f"fix: to use the tested engine: git -C {folder} checkout" in text.stdout
