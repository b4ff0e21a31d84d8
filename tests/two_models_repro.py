"""Two chatllm.cpp models in one process, through libchatllm's C ABI only (plain ctypes, no qasr).

The smallest program that shows what upstream 4a4310e does with two model objects: both are created
and started, then used alternately, and every callback call is recorded with the callback that
received it and the user data it carried. Run by hand (it prints one JSON document)::

    python tests/two_models_repro.py --lib /opt/chatllm/bindings/libchatllm.so \\
        --ggml-dir /opt/chatllm/build/lib --wav /tmp/x/jfk16k.wav \\
        --model A.bin --model B.bin [--callbacks same|distinct] [--user-data same|distinct] \\
        [--start-order interleaved|create-all-first] [--turns 0,1,0,1]

A model whose file name contains "aligner" is started with ``--set format json`` and given
``{{audio:WAV}}`` plus a transcript; the others get ``{{audio:WAV}}``. Each turn also records how
much glibc's live heap (``mallinfo2``: in use + mmapped) changed over it, restart included: the
audio features of a Qwen3-ASR turn that end up held by another object show there. The WAV must be a file this
program's caller made (the engine hands its name to a shell, GUIDE §2). The process ends with
``os._exit`` because upstream aborts at normal exit once a model was loaded.

`tests/test_two_models_upstream.py` runs it and pins what it prints.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys

PRINT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
END = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
ALIGN_TEXT = "and so my fellow americans"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def live_heap() -> int:
    """Bytes glibc's allocator has handed out and not got back (GUIDE §4: uordblks + hblkhd)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _declare(lib: ctypes.CDLL) -> None:
    vp, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, res, args in (
        ("chatllm_append_init_param", None, [s]),
        ("chatllm_init", i, []),
        ("chatllm_create", vp, []),
        ("chatllm_append_param", None, [vp, s]),
        ("chatllm_start", i, [vp, PRINT, END, vp]),
        ("chatllm_user_input", i, [vp, s]),
        ("chatllm_restart", None, [vp, s]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


class Recorder:
    """Every callback call, as (callback name, user data, print type, text) or an end."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def printer(self, name: str):  # type: ignore[no-untyped-def]
        def on_print(user: int | None, print_type: int, data: bytes | None) -> None:
            self.events.append({"cb": name, "ud": user or 0, "type": print_type,
                                "text": (data or b"").decode("utf-8", "replace")})
        return PRINT(on_print)

    def ender(self, name: str):  # type: ignore[no-untyped-def]
        def on_end(user: int | None) -> None:
            self.events.append({"cb": name, "ud": user or 0, "type": "end"})
        return END(on_end)


def _turn_summary(events: list[dict]) -> dict:
    """Per receiver (callback name/user data): the chunk text it got and how many f_end calls."""
    out: dict[str, dict] = {}
    for e in events:
        if e["type"] not in (0, "end"):
            continue
        slot = out.setdefault(f"{e['cb']}/ud{e['ud']}", {"chunks": "", "ends": 0})
        if e["type"] == "end":
            slot["ends"] += 1
        else:
            slot["chunks"] += e["text"]
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", required=True)
    p.add_argument("--ggml-dir", required=True)
    p.add_argument("--wav", required=True)
    p.add_argument("--model", action="append", required=True, help="twice (or once for the baseline)")
    p.add_argument("--callbacks", choices=("same", "distinct"), default="distinct")
    p.add_argument("--user-data", choices=("same", "distinct"), default="distinct")
    p.add_argument("--start-order", choices=("interleaved", "create-all-first"), default="interleaved",
                   help="create+start each in turn, or create every object before starting any")
    p.add_argument("--turns", default="0,1,0,1", help="which object runs each turn (indexes into --model)")
    args = p.parse_args(argv)

    lib = ctypes.CDLL(args.lib, mode=ctypes.RTLD_GLOBAL)
    _declare(lib)
    lib.chatllm_append_init_param(b"--ggml_dir")
    lib.chatllm_append_init_param(args.ggml_dir.encode())
    report: dict = {"init": lib.chatllm_init(), "models": args.model, "options": vars(args), "starts": [], "turns": []}

    rec = Recorder()
    keep = []  # the CFUNCTYPE objects must live as long as the native objects
    shared = (rec.printer("cb0"), rec.ender("cb0"))
    objs: list[int] = []

    def create(k: int) -> int:
        obj = lib.chatllm_create()
        words = ["-m", args.model[k], "--multimedia_file_tags", "{{", "}}", "--threads", "1"]
        if "aligner" in os.path.basename(args.model[k]):
            words += ["--set", "format", "json"]
        for w in words:
            lib.chatllm_append_param(obj, w.encode())
        return obj

    def start(k: int) -> None:
        cbs = shared if args.callbacks == "same" else (rec.printer(f"cb{k}"), rec.ender(f"cb{k}"))
        keep.append(cbs)
        ud = 1 if args.user_data == "same" else k + 1
        rec.events.clear()
        rc = lib.chatllm_start(objs[k], cbs[0], cbs[1], ctypes.c_void_p(ud))
        info = [e["text"] for e in rec.events if e["type"] == 13]
        report["starts"].append({"obj": k, "rc": rc, "receivers_of_model_info": sorted({f"{e['cb']}/ud{e['ud']}" for e in rec.events if e["type"] == 13}),
                                 "purpose": json.loads(info[-1]).get("purpose") if info else None})

    if args.start_order == "create-all-first":
        objs = [create(k) for k in range(len(args.model))]
        for k in range(len(args.model)):
            start(k)
    else:
        for k in range(len(args.model)):
            objs.append(create(k))
            start(k)

    for k in (int(t) for t in args.turns.split(",")):
        rec.events.clear()
        heap_before = live_heap()
        prompt = f"{{{{audio:{args.wav}}}}}"
        if "aligner" in os.path.basename(args.model[k]):
            prompt += ALIGN_TEXT
        rc = lib.chatllm_user_input(objs[k], prompt.encode())
        lib.chatllm_restart(objs[k], None)
        report["turns"].append({"obj": k, "rc": rc, "received": _turn_summary(rec.events),
                                "errors": [e["text"] for e in rec.events if e["type"] == 2],
                                "heap_delta": live_heap() - heap_before})

    print(json.dumps(report))
    sys.stdout.flush()
    os._exit(0)  # upstream aborts in its static destructors at normal exit once a model was loaded


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
