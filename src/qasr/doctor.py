"""What ``qasr doctor`` checks, as data: each check returns `Check` records; the CLI only renders them.

A diagnosis tool is run exactly when things are broken, so no check may crash: each one runs under a
guard that turns an unexpected exception into a "broken" record, and the engine library is loaded in a
child process (a bad .so can crash its loader; upstream aborts at exit once loaded). Every record that
is not ok carries the command that fixes it. ``required`` marks what ``qasr transcribe`` cannot run
without; the exit status depends on those alone. ``warn`` is for what works but is not what qasr was
tested with (an engine checkout at another commit): worth knowing, never a failure.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable

OK, WARN, MISSING, BROKEN = "ok", "warn", "missing", "broken"

# qasr never carries a recipe that builds chatllm.cpp: the user follows upstream's own documentation
# (the submodule steps come from qasr.engine.checkout, imported where a check runs, under its guard).
FIX_ENGINE = (
    "in a qasr clone: {steps}; or export QASR_CHATLLM_LIB=/path/to/libchatllm.so (or pass --engine PATH) "
    "for one built elsewhere; see docs/engine.md"
)
FIX_GGML = "export QASR_GGML_DIR=/path/to/chatllm.cpp/build/lib"
FIX_FFMPEG = "apt-get install ffmpeg (Debian), or pip install 'qasr[ffmpeg]' (a static ffmpeg in a wheel)"


class Status(str, Enum):
    OK = OK
    WARN = WARN
    MISSING = MISSING
    BROKEN = BROKEN


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, and how to fix it when it is not ok."""

    name: str
    status: Status
    required: bool
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "required": self.required, "detail": self.detail,
                "fix": self.fix, **self.data}


@dataclass(frozen=True)
class Options:
    """What the user asked the doctor to look at."""

    engine: str | None = None
    models_dir: str | None = None
    docker: bool = False
    timeout: float = 30.0


def _ok(name: str, detail: str, required: bool = False, **data: Any) -> Check:
    return Check(name, Status.OK, required, detail, None, data)


def _bad(name: str, status: Status, detail: str, fix: str, required: bool = False, **data: Any) -> Check:
    return Check(name, status, required, detail, fix, data)


# --- the checks -------------------------------------------------------------------------------

def check_python(opts: Options) -> Iterable[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 10):
        yield _bad("python", Status.BROKEN, f"{version} is too old (qasr needs 3.10+)", "install Python 3.10 or newer", True)
    else:
        yield _ok("python", f"{version} ({sys.executable})", True, version=version)


def check_qasr(opts: Options) -> Iterable[Check]:
    import qasr

    yield _ok("qasr", f"{qasr.__version__} ({Path(qasr.__file__).parent})", True, version=qasr.__version__)


def _module(name: str, module: str, required: bool, fix: str, what: str, version: Callable[[Any], str]) -> Check:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return _bad(name, Status.MISSING, f"not importable ({exc}); {what}", fix, required)
    except Exception as exc:  # a broken binary wheel raises anything from OSError to RuntimeError
        return _bad(name, Status.BROKEN, f"import failed ({exc.__class__.__name__}: {exc}); {what}", fix, required)
    v = version(mod)
    return _ok(name, f"{v}; {what}", required, version=v)


def check_audio(opts: Options) -> Iterable[Check]:
    yield _module("soundfile", "soundfile", True, "pip install --force-reinstall soundfile", "WAV/FLAC/OGG/MP3 decoding",
                  lambda m: f"{m.__version__}, {m.__libsndfile_version__ and 'libsndfile ' + m.__libsndfile_version__}")
    yield _module("soxr", "soxr", True, "pip install --force-reinstall soxr", "resampling to 16 kHz", lambda m: m.__version__)
    yield _module("PyAV", "av", False, "pip install av", "m4a/mp4/opus/webm decoding", lambda m: m.__version__)


_PROBE = r"""
import ctypes, json, os, sys
path, ggml, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
try:
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
except OSError as exc:
    out["error"] = str(exc)
else:
    out["missing"] = [n for n in names if not hasattr(lib, n)]
    out["test_double"] = hasattr(lib, "qasr_double_identity")
    if not out["missing"]:
        add = lib.chatllm_append_init_param
        add.argtypes, add.restype = [ctypes.c_char_p], None
        if ggml:
            add(b"--ggml_dir")
            add(os.fsencode(ggml))
        lib.chatllm_init.restype = ctypes.c_int
        out["init"] = lib.chatllm_init()
sys.stdout.write(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def _probe_library(path: Path, ggml_dir: Path | None, timeout: float) -> tuple[bool, str, bool]:
    """Load ``path`` and run ``chatllm_init`` in a child: (ok, what happened, is the test double)."""
    from qasr.engine.library import PROTOTYPES

    cmd = [sys.executable, "-c", _PROBE, str(path), str(ggml_dir or ""), json.dumps(sorted(PROTOTYPES))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"loading it hung for {timeout:g} s", False
    if proc.returncode != 0:
        code = proc.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit {code}"
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        return False, f"loading it crashed ({how}) {tail[0]}".rstrip(), False
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        return False, f"the loader printed no result: {proc.stdout[-200:]!r}", False
    if "error" in out:
        return False, f"cannot load: {out['error']}", False
    if out["missing"]:
        return False, f"does not export {', '.join(out['missing'])}: not chatllm.cpp's libchatllm (or too old)", False
    if out.get("init") != 0:
        return False, f"chatllm_init() returned {out.get('init')} (ggml dir {ggml_dir})", out["test_double"]
    return True, "loads, exports the ABI qasr uses, chatllm_init() = 0", out["test_double"]


def _checkout_check(folder: Path, built: bool) -> Check:
    """The chatllm.cpp folder behind the engine: an empty submodule (the two steps), a checkout at the
    tested commit, or at another one (which, and that results may differ)."""
    from qasr.engine import checkout

    found = checkout.read_checkout(folder)
    name, detail, data = "chatllm.cpp", found.describe(), found.to_dict()
    if found.state is checkout.State.EMPTY:
        return _bad(name, Status.MISSING, detail, checkout.STEPS, **data)
    if not built:
        return _bad(name, Status.MISSING, f"{detail}; no libchatllm is built there", f"in {folder}, {checkout.BUILD_STEP}",
                    **data)
    if found.tested:
        return _ok(name, detail, **data)
    fix = f"to use the tested engine: git -C {folder} checkout {checkout.TESTED_COMMIT}, then rebuild libchatllm"
    if found.state is checkout.State.FILES:
        fix = f"to know what you run, use a git checkout: move {folder} aside, then {checkout.STEPS}"
    return _bad(name, Status.WARN, detail, fix, **data)


def _engine_folder(library: Path | None, explicit: str | None) -> tuple[Path, bool] | None:
    """Which chatllm.cpp folder to report, and whether a libchatllm is built in it: the one holding the
    library that loaded, else the first conventional ``chatllm.cpp/`` folder that exists when the lookup
    searched those (a path the user named that fails is about that path, not about the submodule)."""
    from qasr.engine import checkout
    from qasr.engine.library import conventional_folders, paths_in, searches_folders

    if library is not None:
        folder = checkout.folder_holding(library)
        return (folder, True) if folder is not None else None
    if not searches_folders(explicit):
        return None
    for folder in conventional_folders():
        if folder.is_dir():
            return folder, any(p.is_file() for p in paths_in(folder))
    return None


def check_engine(opts: Options) -> Iterable[Check]:
    """libchatllm by the same discovery as `qasr.engine.library`, the chatllm.cpp checkout it comes
    from (or the empty submodule), then the ggml dir beside it."""
    from qasr.engine.checkout import STEPS
    from qasr.engine.library import ENV_GGML_DIR, candidate_paths, find_ggml_dir

    tried: list[str] = []
    found: tuple[Path, Path | None, bool] | None = None
    broken: str | None = None
    for path in candidate_paths(opts.engine):
        if not path.is_file():
            tried.append(f"{path} (not found)")
            continue
        ggml = find_ggml_dir(path)
        ok, what, double = _probe_library(path, ggml, opts.timeout)
        tried.append(f"{path} ({what})")
        if ok:
            found = (path, ggml, double)
            break
        broken = broken or f"{path}: {what}"
    if found is None:
        status = Status.BROKEN if broken else Status.MISSING
        detail = f"unusable: {broken}" if broken else f"not found in any of {len(tried)} places"
        yield _bad("libchatllm", status, detail, FIX_ENGINE.format(steps=STEPS), True, tried=tried)
        folder = _engine_folder(None, opts.engine)
        if folder is not None:
            yield _checkout_check(*folder)
        yield _bad("ggml dir", Status.MISSING, "no usable libchatllm to look beside", FIX_GGML, tried=[])
        return
    path, ggml, double = found
    note = " — the qasr TEST DOUBLE, not the engine" if double else ""
    yield _ok("libchatllm", f"{path}{note}", True, path=str(path), test_double=double, tried=tried)
    folder = _engine_folder(path, opts.engine)
    if folder is not None:
        yield _checkout_check(*folder)
    env = os.environ.get(ENV_GGML_DIR)
    if env and not Path(env).expanduser().is_dir():
        yield _bad("ggml dir", Status.BROKEN, f"{ENV_GGML_DIR}={env} is not a directory", FIX_GGML)
    elif ggml is None:
        yield _bad("ggml dir", Status.MISSING,
                   f"no libggml*.so beside {path} or in ../build/lib (libchatllm may still find ggml via its RUNPATH)",
                   FIX_GGML)
    else:
        yield _ok("ggml dir", str(ggml), path=str(ggml))


def _shim_works() -> tuple[Status, str]:
    """Run the packaged shim on a staged pair, as the engine would, and compare the bytes."""
    from qasr.engine import ffmpeg_shim

    shim = ffmpeg_shim.PACKAGED
    if not shim.is_file():
        return Status.BROKEN, f"{shim} is missing from the installed package"
    if shutil.which("sh") is None or shutil.which("cat") is None:
        return Status.BROKEN, "the shim needs sh and cat on PATH"
    payload = bytes(range(64))
    with tempfile.TemporaryDirectory(prefix="qasr-") as tmp:
        (Path(tmp) / "audio.wav").write_bytes(b"")
        (Path(tmp) / "audio.f32").write_bytes(payload)
        argv = ["-nostdin", "-threads", "0", "-i", f"{tmp}/audio.wav", "-f", "f32le", "-ac", "1", "-ar", "16000",
                "-hide_banner", "-loglevel", "error", "-"]
        runner = [str(shim)] if os.access(shim, os.X_OK) else ["sh", str(shim)]
        try:
            out = subprocess.run(runner + argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Status.BROKEN, f"running {shim} failed: {exc}"
    if out != payload:
        return Status.BROKEN, f"{shim} did not stream the staged samples ({len(out)} bytes instead of {len(payload)})"
    copy = "" if os.access(shim, os.X_OK) else " (no exec bit: qasr runs a private copy)"
    return Status.OK, f"{shim} serves staged audio{copy}"


def check_ffmpeg(opts: Options) -> Iterable[Check]:
    """The engine runs ffmpeg: the shim serves ASR; the aligner (and a disabled shim) need the real one."""
    from qasr.engine import ffmpeg_shim

    if not ffmpeg_shim.enabled():
        shim_status, shim_detail = Status.MISSING, f"turned off by {ffmpeg_shim.ENV_SWITCH}=0"
    else:
        shim_status, shim_detail = _shim_works()
    shim_ok = shim_status is Status.OK
    if shim_ok:
        yield _ok("ffmpeg shim", shim_detail, True)
    else:
        fix = f"unset {ffmpeg_shim.ENV_SWITCH}" if shim_status is Status.MISSING else "pip install --force-reinstall qasr"
        yield _bad("ffmpeg shim", shim_status, shim_detail + "; then the real ffmpeg is required", fix, False)

    real = ffmpeg_shim.real_ffmpeg()
    need = "needed by the ForcedAligner" + ("" if shim_ok else " and, with the shim off, by ASR")
    if real is None:
        yield _bad("ffmpeg", Status.MISSING, f"not on PATH; {need}", FIX_FFMPEG, not shim_ok)
        return
    try:
        proc = subprocess.run([real, "-version"], capture_output=True, text=True, timeout=opts.timeout, stdin=subprocess.DEVNULL)
        first = (proc.stdout.splitlines() or [""])[0]
        ok = proc.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        first, ok = str(exc), False
    if ok:
        yield _ok("ffmpeg", f"{real}: {first}", not shim_ok, path=real)
    else:
        yield _bad("ffmpeg", Status.BROKEN, f"{real} -version failed: {first}", FIX_FFMPEG, not shim_ok, path=real)


def check_models(opts: Options) -> Iterable[Check]:
    """The models directory, every registry model by size and header (headers only), and any synthetic
    model there, labelled as such."""
    from qasr.engine import registry

    directory = registry.models_dir(opts.models_dir)
    if not directory.exists():
        yield _bad("models dir", Status.MISSING, f"{directory} does not exist (created by the first pull)",
                   f"qasr models pull {registry.DEFAULTS[registry.ASR]}", path=str(directory))
    elif not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        yield _bad("models dir", Status.BROKEN, f"{directory} is not a writable directory",
                   f"set {registry.ENV_MODELS_DIR} to a writable directory", path=str(directory))
    else:
        yield _ok("models dir", str(directory), path=str(directory))
    for model in registry.MODELS:
        state = registry.local_state(model, directory)
        name = f"model {model.name}"
        if state.valid:
            yield _ok(name, f"{state.path} ({state.size:,} bytes, header ok)", local=state.to_dict())
        elif state.present:
            yield _bad(name, Status.BROKEN, state.problem or "invalid", f"qasr models pull {model.name} --force",
                       local=state.to_dict())
        else:
            partial = f"; {state.partial_bytes:,} bytes downloaded so far" if state.partial_bytes else ""
            yield _bad(name, Status.MISSING, f"not downloaded{partial}", f"qasr models pull {model.name}", local=state.to_dict())
    for synth in registry.synthetic_files(directory):
        name = f"SYNTHETIC {synth.path.name}"
        if synth.info is None:
            yield _bad(name, Status.BROKEN, synth.problem or "invalid", f"rm {synth.path}  (or: qasr models synth NAME --force)",
                       synthetic=True, local=synth.to_dict())
        else:
            yield _ok(name, f"{synth.path} ({synth.info.file_bytes:,} bytes): random weights, published shapes; "
                      "for measurements only, never for transcripts", synthetic=True, local=synth.to_dict())


def check_optional_tools(opts: Options) -> Iterable[Check]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        yield _ok("memray", f"{version('memray')}; native traces for qasr lab --trace-native")
    except PackageNotFoundError:
        yield _bad("memray", Status.MISSING, "needed only by qasr lab --trace-native", "pip install 'qasr[trace]'")
    from qasr.errors import UsageError
    from qasr.lab.runner import find_jemalloc

    try:
        yield _ok("jemalloc", f"{find_jemalloc()}; for qasr lab matrix")
    except UsageError:
        yield _bad("jemalloc", Status.MISSING, "needed only by the lab's jemalloc runs (qasr lab matrix)",
                   "sudo apt-get install libjemalloc2  (or set QASR_JEMALLOC=/path/to/libjemalloc.so.2)")


def check_docker(opts: Options) -> Iterable[Check]:
    if not opts.docker:
        return
    docker = shutil.which("docker")
    if docker is None:
        yield _bad("docker", Status.MISSING, "docker CLI not on PATH", "sudo apt-get install docker.io", True)
        return
    try:
        proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=opts.timeout, stdin=subprocess.DEVNULL)
        ok, said = proc.returncode == 0, (proc.stdout.strip() if proc.returncode == 0 else proc.stderr.strip())
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, said = False, str(exc)
    if ok:
        yield _ok("docker", f"{docker}, server {said}", True)
    else:
        last = (said.splitlines() or ["no output"])[-1]
        yield _bad("docker", Status.BROKEN, f"docker info failed: {last}",
                   "start the daemon (sudo systemctl start docker, or sudo dockerd &) and allow your user "
                   "(sudo usermod -aG docker $USER)", True)


CHECKS: tuple[Callable[[Options], Iterable[Check]], ...] = (
    check_python, check_qasr, check_engine, check_ffmpeg, check_audio, check_models, check_optional_tools, check_docker,
)


def run_checks(opts: Options | None = None, checks: Iterable[Callable[[Options], Iterable[Check]]] = CHECKS) -> list[Check]:
    """Every check, in order; a check that raises becomes one "broken" record instead of a crash."""
    opts = opts or Options()
    results: list[Check] = []
    for check in checks:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            results.extend(check(opts))
        except Exception as exc:  # the doctor must report, never crash
            results.append(_bad(name, Status.BROKEN, f"the check itself failed: {exc.__class__.__name__}: {exc}",
                                "please report this as a qasr bug"))
    return results


def required_failures(results: Iterable[Check]) -> list[Check]:
    return [c for c in results if c.required and not c.ok]
