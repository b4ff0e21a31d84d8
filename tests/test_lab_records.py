"""samples.jsonl on the channel (issue 21): the lab child's records are `qasr.channel` messages in
the channel's durable copy (``kind``); files written before (``type``) read the same."""

from __future__ import annotations

import json
from pathlib import Path

from qasr.channel import Sender, read_durable
from qasr.errors import to_record
from qasr.lab.analysis import load_records, summarize

MEM = {"rss_anon": 1000, "heap_live": 500, "vm_size": 9000}
RECORDS = [
    ("meta", {"pid": 7, "scenario": "restart", "final_phase": "end", "models": []}),
    ("setup", {"phases": {"setup": MEM}}),
    ("enter", {"i": 1, "phase": "infer"}),
    ("sample", {"i": 1, "phase": "end", "mem": MEM}),
    ("iteration", {"i": 1, "phases": {"end": MEM}, "text": "hi", "wall_seconds": 0.1}),
    ("enter", {"i": 2, "phase": "infer"}),
    ("sample", {"i": 2, "phase": "infer", "mem": MEM}),
]


def _old_file(path: Path, error: ValueError) -> None:
    lines = [{"type": kind, **fields} for kind, fields in RECORDS]
    lines.append({"type": "error", "i": 2, "message": str(error), "kind": "ValueError", "expected": False, "traceback": "tb"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"type": "sam')  # a crash mid-line


def _channel_file(path: Path, error: ValueError) -> None:
    sender = Sender(None, durable=path)  # what the lab child does
    for kind, fields in RECORDS:
        sender.send(kind, **fields)
    sender.send("error", **{**to_record(error), "i": 2, "message": str(error), "exception": "ValueError", "expected": False,
                            "traceback": "tb"})  # fmt: skip
    sender.close()
    with path.open("a") as fh:
        fh.write('{"kind":"sam')


def test_old_and_channel_files_read_the_same(tmp_path: Path) -> None:
    error = ValueError("boom")
    _old_file(old := tmp_path / "old.jsonl", error)
    _channel_file(new := tmp_path / "new.jsonl", error)
    assert [m.kind for m in read_durable(new)] == [k for k, _ in RECORDS] + ["error"]  # the channel's own reader
    a, b = load_records(old), load_records(new)
    assert a.broken_lines == b.broken_lines == 1
    assert a.iterations[0]["text"] == b.iterations[0]["text"] == "hi" and len(a.iterations) == len(b.iterations) == 1
    assert a.partial == b.partial == {"i": 2, "phases": {"infer": MEM}}
    assert a.last_enter["i"] == b.last_enter["i"] == 2  # type: ignore[index]
    assert a.error["kind"] == b.error["kind"] == "ValueError" and a.error["message"] == b.error["message"] == "boom"  # type: ignore[index]
    config = {"scenario": "restart", "iterations": 5}
    sa, sb = (summarize(r, config, 1, []) for r in (a, b))
    assert sa["status"] == sb["status"] == "error" and sa["crash"]["phase"] == sb["crash"]["phase"] == "infer"
    assert sa["crash"]["error"]["kind"] == sb["crash"]["error"]["kind"] == "ValueError"
    assert sb["sampled_process"] == {"process": "lab", "pid": 7, "phase": "end"} and sb["lab_process"] is None
