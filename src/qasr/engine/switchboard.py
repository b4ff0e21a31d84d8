"""What several models in one process need from qasr on upstream chatllm.cpp 4a4310e.

Two pieces of upstream state are shared by every model object (measured with
``tests/two_models_repro.py``; docs/study.md, "Two models in one process"):

1. **One chunk interceptor for the process** (``static ThoughtChunkInterceptor thought_interceptor``,
   src/main.cpp:28). Each ``chatllm_start`` links it to its own streamer (src/main.cpp:1777; the
   interceptor's ``next`` is overwritten at src/chat.cpp:487), so once a second model is started, the
   text of *every* model arrives at the print callback of the model started last, with that model's
   user data; the others' own callbacks get one ``f_end`` and no text. No callback and no user data
   can tell whose chunks they are; the time can. `Switchboard`: turns run one at a time in the
   process, and every model's sink hands the chunks and ends it receives to the turn running now.
   Cost: two models in one process never run turns at the same time.
2. **One prompt encoder per model class** (``static ChatHistoryEncoder _chat_encoder``,
   models/qwen.cpp:2995 for Qwen3-ASR, :3229 for the ForcedAligner), re-pointed at the newest
   tokenizer of its class by every load (src/chat.cpp:626). A Qwen3-ASR object loaded before another
   Qwen3-ASR object puts its audio features into the other's tokenizer and generates with none of its
   own: it transcribes without hearing the audio. No call order or parameter avoids it, so `admit`
   refuses a second live model of the same kind; an ASR model and an aligner do not share it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from qasr.errors import EngineError

#: The class whose static encoder each kind of model shares upstream (for the refusal's words).
_CLASS_NAMES = {"asr": ("Qwen3-ASR", "models/qwen.cpp:2995"), "aligner": ("Qwen3-ForcedAligner", "models/qwen.cpp:3229")}


class Switchboard:
    """The one engine turn running in this process, and the lock that keeps it to one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        #: What the callbacks of any model write to now (a `qasr.engine.model._Turn`), or None.
        self.turn: Any = None

    def enter(self, turn: Any) -> None:
        """Wait until no other turn runs, then make ``turn`` the one that receives text.

        A second turn started from the thread that is still consuming the first would wait for itself
        forever: refuse it instead.
        """
        if self._owner == threading.get_ident():
            raise EngineError(
                "another model's turn is still running in this thread; finish or close that iterator first "
                "(upstream chatllm.cpp cannot keep two models' text apart, so turns run one at a time per process)"
            )
        self._lock.acquire()
        self._owner = threading.get_ident()
        self.turn = turn

    def leave(self) -> None:
        self.turn = None
        self._owner = None
        self._lock.release()


#: The process's switchboard: one engine per process (`qasr.engine.library.load_library`), so one board.
BOARD = Switchboard()

# Loaded models per kind that a caller can still use (closed or garbage-collected ones drop out).
_residents: dict[str, weakref.WeakSet[Any]] = {}


def shares_prompt_encoder(engine: Any) -> bool:
    """Whether models of one kind share upstream's static prompt encoder on this engine.

    Every real libchatllm is taken to be upstream 4a4310e (tests/test_two_models_upstream.py fails the
    day upstream changes). The test double keeps each object's state apart.
    """
    return not engine.is_test_double


def admit(kind: str, engine: Any) -> None:
    """Refuse, before anything is created, a model that would deafen a live model of its kind."""
    if kind not in _CLASS_NAMES or not shares_prompt_encoder(engine):
        return
    live = [m for m in _residents.get(kind, ()) if not m.closed]
    if live:
        cls, where = _CLASS_NAMES[kind]
        raise EngineError(
            f"upstream chatllm.cpp cannot hold two {cls} models in one process: they share one prompt encoder "
            f"({where}) that follows the model loaded last, so {live[0].file.path.name} would from then on run without "
            f"hearing its audio. Load this one in another process (an ASR model and an aligner may share one)"
        )


def register(kind: str, model: Any) -> None:
    """Record a loaded model (held weakly: a model the caller dropped no longer counts)."""
    _residents.setdefault(kind, weakref.WeakSet()).add(model)
