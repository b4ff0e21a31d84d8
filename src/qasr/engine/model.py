"""`Model`: one chatllm.cpp model object (Qwen3-ASR or ForcedAligner) behind a small, safe API.

Why it looks like this:

* ``chatllm_user_input`` is synchronous and delivers tokens through a C callback while it runs. To
  hand callers an *iterator* of chunks we run the native call on a worker thread and pass chunks
  through a queue; stopping the iteration early aborts generation and waits for the worker.
* The two C callbacks are created per model and dropped when the native object is destroyed, never
  kept in a class-level registry (upstream's ``bindings/chatllm.py`` leaks that way). If a `Model`
  is garbage-collected without `close()`, its native object lives on (destroying it may abort the
  process upstream), so its callbacks are parked for the life of the process: ggml may still log
  through the first live object's print callback.
* One thread at a time per model (a lock); callbacks may arrive on native threads and only touch a
  per-turn queue.
* One turn at a time per *process* (`qasr.engine.switchboard`): upstream 4a4310e delivers every
  model's chunks to the print callback of the model started last, so chunks and ends go to the turn
  running now, whichever model's callback received them. That lets an ASR model and an aligner share
  a process; a second live model of the same kind is refused before it is created (upstream's shared
  prompt encoder would leave the first one deaf).
* Upstream 4a4310e: ``chatllm_destroy`` aborts the process for Qwen3-ASR models, and so does normal
  interpreter exit once a model was loaded (README, "Known engine issues"). `close()` destroys
  honestly; the exit is guarded (`qasr.engine.exit_guard`): a program that loaded a model ends with
  its own exit status.
"""

from __future__ import annotations

import codecs
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterator, Sequence

from qasr.audio.decode import as_audio, check_one_call
from qasr.cancel import Cancel, guarded
from qasr.engine import exit_guard, ffmpeg_shim, switchboard
from qasr.engine.library import END_FUNC, PRINT_FUNC, Engine, load_library
from qasr.engine.modelfile import ModelFileInfo, ModelKind, inspect_model_file, require_kind
from qasr.engine.modelinfo import ModelInfo  # noqa: F401 - part of this module's API
from qasr.engine.switchboard import BOARD
from qasr.errors import EngineError, ModelFileError, UsageError
from qasr.spec import EngineSpec

PRINT_CHUNK = 0
PRINT_ERROR = 2
PRINT_LOGGING = 11
PRINT_MODEL_INFO = 13

# Callbacks of models that were garbage-collected while their native object still exists.
_parked_callbacks: list[object] = []


class _Turn:
    """What the callbacks of one native call write to: a chunk queue, error lines, end count."""

    __slots__ = ("chunks", "errors", "ends", "decoder")

    def __init__(self) -> None:
        self.chunks: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.errors: list[str] = []
        self.ends = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")


class _Sink:
    """Receives the C callbacks. Holds no reference to the `Model`, so it can outlive it safely.

    ``turn`` is this model's running turn (its error lines, printed by the engine through this model's
    own callback). Chunks and ends go to the process's running turn (`BOARD.turn`): upstream prints
    every model's chunks through the callback of the model started last (`qasr.engine.switchboard`).
    """

    def __init__(self) -> None:
        self.turn: _Turn | None = None
        self.errors: list[str] = []
        self.info_lines: list[str] = []
        self.log: list[str] = []

    def on_print(self, _user: object, print_type: int, data: bytes | None) -> None:
        try:
            if print_type == PRINT_CHUNK:
                turn = BOARD.turn  # not self.turn: these may be another model's chunks (see the class)
                if turn is None:
                    return
                text = turn.decoder.decode(data or b"")
                if text:
                    turn.chunks.put(text)
                return
            line = (data or b"").decode("utf-8", "replace")
            turn = self.turn
            if print_type == PRINT_ERROR:
                (turn.errors if turn is not None else self.errors).append(line)
            elif print_type == PRINT_MODEL_INFO:
                self.info_lines.append(line)
            elif print_type == PRINT_LOGGING:
                if len(self.log) < 200:  # bounded: the tail explains a failed load, not a log store
                    self.log.append(line)
        except Exception:  # noqa: BLE001 - an exception must never cross into C
            pass

    def on_end(self, _user: object) -> None:
        turn = BOARD.turn
        if turn is not None:
            turn.ends += 1


def _park(callbacks: tuple[object, ...]) -> None:
    _parked_callbacks.append(callbacks)


def _deprecated(message: str) -> None:
    import warnings

    warnings.warn(message + " (the old name goes in 0.3)", DeprecationWarning, stacklevel=3)


class Model:
    """A loaded chatllm.cpp model. Use as a context manager, or call `close()` yourself.

    >>> with Model("models/qwen3-asr-0.6b-q4_0.bin", language="English") as m:   # doctest: +SKIP
    ...     for chunk in m.transcribe_raw("talk.wav"):   # the engine's own chunks, header included
    ...         print(chunk, end="", flush=True)

    The parsed, post-processed transcript with segments and figures is `qasr.transcribe(model, audio)`.

    Hazard (upstream 4a4310e): destroying a Qwen3-ASR or aligner model aborts the process
    (``free(): invalid pointer``), so `close()` and leaving a ``with`` block do too. Long-lived
    programs keep the model. Ending the program is safe: `qasr.engine.exit_guard` keeps the
    engine's static destructors (which abort too) from running.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        language: str | None = None,
        threads: int | None = None,
        max_length: int | None = None,
        kind: ModelKind = ModelKind.ASR,
        engine: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        settings: dict[str, str] | None = None,
    ) -> None:
        self.file: ModelFileInfo = require_kind(inspect_model_file(path), kind)
        self.language = self._check_language(language)
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be at least 1, got {threads}")
        self.threads = threads  # as asked (None: the engine's default)
        if max_length is not None and max_length < 256:
            raise UsageError(f"max_length must be at least 256, got {max_length}")
        self._engine: Engine = load_library(engine)
        switchboard.admit(self.file.kind.value, self._engine)  # before the engine re-points shared state
        ffmpeg_shim.activate()
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._sink = _Sink()
        self._callbacks = (PRINT_FUNC(self._sink.on_print), END_FUNC(self._sink.on_end))
        self._obj: int | None = None
        self.info: ModelInfo | None = None
        self.load_seconds: float = 0.0
        self.turns_since_restart = 0
        #: The system prompt the engine holds now ("" is upstream's default for Qwen3-ASR).
        self.system_prompt = ""

        lib = self._engine.lib
        obj = lib.chatllm_create()
        if not obj:
            raise EngineError("chatllm_create() returned NULL (out of memory?)")
        self._obj = obj
        # From here on the native object exists: its callbacks must outlive it, even if we are dropped.
        self._finalizer = weakref.finalize(self, _park, self._callbacks)
        for word in self._params(threads, max_length, extra_args, settings or {}):
            lib.chatllm_append_param(obj, os.fsencode(word))  # a path's own bytes, whatever its encoding
        t0 = time.perf_counter()
        rc = lib.chatllm_start(obj, self._callbacks[0], self._callbacks[1], None)
        self.load_seconds = time.perf_counter() - t0
        if rc != 0:
            words = "; ".join(self._sink.errors) or "; ".join(self._sink.log[-3:]) or "no message"
            raise EngineError(f"engine failed to load {self.file.path} (code {rc}): {words}", words)
        if self._sink.info_lines:
            self.info = ModelInfo.parse(self._sink.info_lines[-1])
        switchboard.register(self.file.kind.value, self)
        exit_guard.install()  # from now on a normal exit would abort in the engine's destructors

    @classmethod
    def from_spec(cls, spec: EngineSpec, kind: ModelKind = ModelKind.ASR) -> Model:
        """Load the spec's ASR model (``spec.model``) or, with ``kind=ALIGNER``, its aligner
        (``spec.aligner``, JSON output, the spec's language as one of the aligner's 11), with the
        spec's engine, threads and context length. The name is resolved through the registry."""
        from qasr.engine.registry import model_file

        name = spec.model if kind is ModelKind.ASR else spec.aligner
        if not name:
            what = "a Qwen3-ASR model (--model FILE or a registry name, or QASR_MODEL)" if kind is ModelKind.ASR else "a ForcedAligner model (--aligner)"
            raise ModelFileError(f"no model to load: give {what}")
        path = model_file(name, kind).path
        load = dict(threads=spec.threads, max_length=spec.max_length, engine=spec.engine)
        if kind is ModelKind.ASR:
            return cls(path, language=spec.language, **load)  # type: ignore[arg-type]
        from qasr.text.languages import aligner_language

        language = aligner_language(spec.language or "en")
        return cls(path, kind=kind, language=language, settings={"format": "json"}, **load)  # type: ignore[arg-type]

    # -- construction helpers -------------------------------------------------------------

    def _check_language(self, language: str | None) -> str | None:
        """Map a language name to the model's own spelling; unknown names are refused, not ignored.

        Upstream treats an unknown ``--set language`` as "auto", which silently hides typos.
        """
        if language is None or language.lower() in ("", "auto"):
            return None
        known = {lang.lower(): lang for lang in self.file.languages}
        if known and language.lower() not in known:
            raise UsageError(
                f"language {language!r} is not supported by {self.file.name}; choose one of: {', '.join(self.file.languages)}"
            )
        return known.get(language.lower(), language)

    def _params(
        self, threads: int | None, max_length: int | None, extra: Sequence[str], settings: dict[str, str]
    ) -> list[str]:
        words = ["-m", str(self.file.path), "--multimedia_file_tags", "{{", "}}"]
        if self.language:
            words += ["--set", "language", self.language]
        for key, value in settings.items():
            words += ["--set", key, value]
        if threads is not None:
            words += ["--threads", str(threads)]  # upstream's -t is the temperature, not threads
        if max_length is not None:
            words += ["--max_length", str(max_length)]
        return words + list(extra)

    # -- properties -----------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def closed(self) -> bool:
        return self._obj is None

    def _handle(self) -> int:
        if self._obj is None:
            raise EngineError("model is closed")
        return self._obj

    # -- running a turn -------------------------------------------------------------------

    def _acquire(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            raise EngineError("this model is already running a turn in this thread; finish or close that iterator first")
        self._lock.acquire()
        self._owner = me

    def _release(self) -> None:
        self._owner = None
        self._lock.release()

    def run_turn(self, start_native_call, *, max_tokens: int | None = None) -> Iterator[str]:  # type: ignore[no-untyped-def]
        """Run one native call on a worker thread and yield its text chunks as they arrive.

        ``start_native_call(lib, obj) -> int`` performs the synchronous C call. Engine error lines
        or a non-zero return raise `EngineError` after the last chunk.
        """
        self._acquire()
        try:
            obj = self._handle()
        except EngineError:
            self._release()
            raise
        lib = self._engine.lib
        turn = _Turn()
        try:
            BOARD.enter(turn)  # one turn per process: see qasr.engine.switchboard
        except EngineError:
            self._release()
            raise
        self._sink.turn = turn
        outcome: dict[str, object] = {}

        def worker() -> None:
            try:
                outcome["rc"] = start_native_call(lib, obj)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer thread
                outcome["exc"] = exc
            finally:
                tail = turn.decoder.decode(b"", final=True)
                if tail:
                    turn.chunks.put(tail)
                turn.chunks.put(None)

        lib.chatllm_set_gen_max_tokens(obj, -1 if max_tokens is None else int(max_tokens))
        thread = threading.Thread(target=worker, name="qasr-engine-turn", daemon=True)
        finished = False
        try:
            thread.start()
            while True:
                chunk = turn.chunks.get()
                if chunk is None:
                    break
                yield chunk
            finished = True
        finally:
            if not finished:
                lib.chatllm_abort_generation(obj)
            thread.join()
            self._sink.turn = None
            BOARD.leave()
            self._release()
        if "exc" in outcome:
            raise outcome["exc"]  # type: ignore[misc]
        rc = outcome.get("rc", 0)
        if turn.errors or rc != 0:
            words = "; ".join(turn.errors) or "no message"
            raise EngineError(f"engine error (code {rc}): {words}", words)

    def abort(self) -> None:
        """Stop the running turn soon (``chatllm_abort_generation``), from any thread, without its lock.

        For a caller whose consumer went away while the turn runs (the server's worker when its
        client disconnects). Upstream clears the flag when the next generation starts, so a call
        that lands between turns stops nothing later; one that lands while the audio is still being
        encoded is lost the same way, so such a caller also stops iterating at its next chunk.
        """
        obj = self._obj
        if obj is not None:
            self._engine.lib.chatllm_abort_generation(obj)

    def _fresh_turn(self, lib, obj, fresh: bool, context: str | None = None) -> None:  # type: ignore[no-untyped-def]
        """Restart first when an earlier turn left history, or when the turn wants another system prompt."""
        wanted = self.system_prompt if context is None else context
        if fresh and (self.turns_since_restart or wanted != self.system_prompt):
            lib.chatllm_restart(obj, wanted.encode("utf-8") if wanted != self.system_prompt else None)
            self.system_prompt = wanted
            self.turns_since_restart = 0
        self.turns_since_restart += 1

    def transcribe_raw(
        self,
        audio: object,
        *,
        fresh: bool = True,
        max_tokens: int | None = None,
        context: str | None = None,
        prefix: str | None = None,
        cancel: Cancel | None = None,
    ) -> Iterator[str]:
        """Transcribe audio (a path, an `Audio`, or 16 kHz mono samples); yield the engine's raw chunks.

        The chunks are exactly what the engine prints (``language English<asr_text>...``); `qasr.text.parse`
        turns them into language and text, and `qasr.transcribe` does all of that for you. The engine
        is handed a private copy, never ``audio``'s path. ``fresh`` restarts the conversation first if
        an earlier turn left history: without it the engine keeps every earlier file in its context
        (measured: the cursor grows by each turn). ``context`` is Qwen3-ASR's hint text, its system
        prompt ("" for none; None keeps the current one); clean it with `qasr.text.context.clean_context`.
        ``prefix`` forces the start of the answer (``chatllm_set_ai_prefix``), e.g. ``"<asr_text>the
        first words"``: the engine prints it as the first chunk and continues after it (measured with
        upstream: the tiny model's planted chain resumes exactly after a prefix of it). It applies to
        this call only. ``cancel`` (a `qasr.cancel.Cancel`) stops the call: setting it aborts the
        running turn at once (`abort`), and `qasr.errors.Aborted` is raised at the next chunk.
        """
        from qasr.audio.staging import staged_wav

        if self.file.kind is not ModelKind.ASR:
            raise UsageError(f"{self.file.name} is not an ASR model; use qasr.pipeline.align for the aligner")
        if context is not None and not fresh:
            raise UsageError("a context replaces the system prompt, which needs a fresh conversation (fresh=True)")
        prepared = as_audio(audio)
        check_one_call(prepared)  # longer audio aborts the engine (qasr.transcribe cuts it at pauses)

        def call(lib, obj):  # type: ignore[no-untyped-def]
            self._fresh_turn(lib, obj, fresh, context)
            with staged_wav(prepared.samples) as wav:
                if not prefix:
                    return lib.chatllm_user_input(obj, f"{{{{audio:{wav}}}}}".encode())
                # Upstream unescapes C sequences in the prefix: keep its backslashes literal.
                lib.chatllm_set_ai_prefix(obj, prefix.replace("\\", "\\\\").encode("utf-8"))
                try:
                    return lib.chatllm_user_input(obj, f"{{{{audio:{wav}}}}}".encode())
                finally:
                    lib.chatllm_set_ai_prefix(obj, b"")

        return guarded(self.run_turn(call, max_tokens=max_tokens), cancel, self.abort)

    def align_raw(self, audio: object, transcript: str, *, fresh: bool = True) -> Iterator[str]:
        """Run the ForcedAligner on audio plus its transcript; yield the engine's raw output.

        Uses the multimedia-message API: the WAV goes in as base64 bytes and the transcript as a
        separate text piece, so a transcript containing ``{{audio:...}}`` is never parsed as a tag
        (with ``chatllm_user_input`` it would be, and would reach ffmpeg's shell command line).
        Load the model with ``settings={"format": "json"}`` to get JSON (upstream's SRT is broken);
        `qasr.align` parses and repairs the times.
        """
        import base64

        from qasr.audio.staging import wav_bytes

        if self.file.kind is not ModelKind.ALIGNER:
            raise UsageError(f"{self.file.name} is not a ForcedAligner model")
        if not transcript.strip():
            raise UsageError("the transcript to align is empty")
        prepared = as_audio(audio)
        check_one_call(prepared)
        payload = base64.b64encode(wav_bytes(prepared.samples))
        text = transcript.encode("utf-8")

        def call(lib, obj):  # type: ignore[no-untyped-def]
            self._fresh_turn(lib, obj, fresh)
            lib.chatllm_multimedia_msg_prepare(obj)
            if lib.chatllm_multimedia_msg_append(obj, b"audio", payload) != 0:
                raise EngineError("engine refused the audio piece of the alignment message")
            if lib.chatllm_multimedia_msg_append(obj, b"text", text) != 0:
                raise EngineError("engine refused the text piece of the alignment message")
            return lib.chatllm_user_input_multimedia_msg(obj)

        return self.run_turn(call)

    def transcribe(self, audio: object, *, fresh: bool = True, max_tokens: int | None = None) -> Iterator[str]:
        """Deprecated (0.2): the raw chunks are `transcribe_raw`; the transcript is `qasr.transcribe(model, audio)`."""
        _deprecated("Model.transcribe() yields raw engine chunks and is now Model.transcribe_raw(); "
                    "for the parsed transcript use qasr.transcribe(model, audio)")  # fmt: skip
        return self.transcribe_raw(audio, fresh=fresh, max_tokens=max_tokens)

    def align(self, audio: object, transcript: str, *, fresh: bool = True) -> Iterator[str]:
        """Deprecated (0.2): the raw output is `align_raw`; parsed word times are `qasr.align(model, audio, text)`."""
        _deprecated("Model.align() yields raw engine output and is now Model.align_raw(); "
                    "for word times use qasr.align(model, audio, transcript)")  # fmt: skip
        return self.align_raw(audio, transcript, fresh=fresh)

    def restart(self, system_prompt: str | None = None) -> None:
        """Discard the conversation so the next call starts fresh (``chatllm_restart``).

        ``system_prompt`` replaces the system prompt (Qwen3-ASR reads it as context, e.g. the previous
        chunk's text); None keeps the current one.
        """
        self._acquire()
        try:
            prompt = None if system_prompt is None else system_prompt.encode("utf-8")
            self._engine.lib.chatllm_restart(self._handle(), prompt)
            if system_prompt is not None:
                self.system_prompt = system_prompt
            self.turns_since_restart = 0
        finally:
            self._release()

    def close(self) -> None:
        """Destroy the native object (``chatllm_destroy``). Upstream 4a4310e aborts here for Qwen3-ASR."""
        if self._obj is None:
            return
        self._acquire()
        try:
            if self._obj is None:  # another thread closed it while we waited for the lock
                return
            rc = self._engine.lib.chatllm_destroy(self._obj)
            if rc != 0:
                raise EngineError(f"chatllm_destroy failed with code {rc} (model busy?)")
            self._obj = None
            self._finalizer.detach()  # the native object is gone: its callbacks may go too
            self._callbacks = ()  # type: ignore[assignment]
        finally:
            self._release()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "loaded"
        return f"<qasr.Model {self.file.name} ({self.file.kind.value}, {state})>"
