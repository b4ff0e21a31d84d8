"""The driver: inputs to skip or to do, the Ray Data pipeline, and each input's outputs as it completes.

Ray's batch-inference shape: read (one row per input) -> `qasr.batch.pieces.prepare` in Ray tasks
(hash, decode, VAD-split: a row per piece) -> ``map_batches`` over `qasr.batch.actor.Transcriber`
actors that hold the model -> rows back here. This process is the only writer of outputs and of the
manifest: when the last piece of an input arrives it assembles the result, writes its files
atomically and appends its manifest row, so what is on disk is always whole inputs.

Inputs done before with the same audio and options are skipped before Ray starts (a rerun with
nothing to do starts no Ray at all). An input Ray never gives back (which should not happen) is
recorded failed, never silently dropped.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qasr.batch import cluster as clusters
from qasr.batch.inputs import InputItem
from qasr.batch.ledger import Ledger
from qasr.batch.manifest import DONE, FAILED, SKIPPED, Manifest, file_sha256, options_hash, row
from qasr.progress import Progress, SilentProgress
from qasr.spec import CallOptions, EngineSpec


@dataclass(frozen=True)
class BatchOptions:
    """How to run: where results go, in which formats, on which cluster, with which limits."""

    out_dir: Path
    formats: tuple[str, ...] = ("json",)
    cluster: str = "local"
    actors: int | None = None
    threads: int | None = None
    retries: int = 2
    max_worker_rss: int | None = None
    max_requests: int | None = None
    force: bool = False
    retry_failed: bool = False
    max_chunk: float = 30.0


@dataclass
class Summary:
    """What a run did; ``exit_code`` 0 when every input is done or skipped, 1 when some failed."""

    inputs: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    actors: int = 0
    threads: int = 0
    cluster: str = "local"
    out_dir: str = ""
    actor_processes: set[str] = field(default_factory=set)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else None
        return {"inputs": self.inputs, "done": self.done, "skipped": self.skipped, "failed": len(self.failed),
                "failures": self.failed, "audio_seconds": round(self.audio_seconds, 3), "wall_seconds": round(self.wall_seconds, 3),
                "speed": round(speed, 3) if speed else None, "actors": self.actors, "threads": self.threads,
                "actor_processes": len(self.actor_processes),
                "cluster": self.cluster, "out_dir": self.out_dir, "manifest": str(Path(self.out_dir) / "manifest.jsonl"),
                "exit_code": self.exit_code}  # fmt: skip


@dataclass
class _Pending:
    item: InputItem
    pieces: int = 0
    seconds: float = 0.0
    sha256: str = ""
    key: str = ""
    parts: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)


class _Run:
    """One run's bookkeeping: the manifest, the progress bar, the summary."""

    def __init__(self, items: list[InputItem], options: BatchOptions, progress: Progress) -> None:
        self.options, self.progress = options, progress
        self.manifest = Manifest(options.out_dir)
        self.summary = Summary(inputs=len(items), cluster=options.cluster, out_dir=str(options.out_dir))
        self.t0 = time.perf_counter()
        self.pending: dict[str, _Pending] = {}
        self.keys: set[str] = set()  # the ledger keys of this run's inputs

    def note(self) -> None:
        s = self.summary
        wall = time.perf_counter() - self.t0
        speed = f" · {s.audio_seconds / wall:.1f} audio s/s" if wall > 0 and s.audio_seconds else ""
        self.progress.update("inputs", note=f"{s.audio_seconds / 3600:.2f} h audio{speed} · {len(s.failed)} failed")

    def skip(self, item: InputItem, old: dict[str, Any], opts_hash: str) -> None:
        fields = {k: old.get(k) for k in ("sha256", "audio_seconds", "rtf", "engine_calls", "inference_seconds", "language", "outputs")}
        self.manifest.record(row(item.id, item.path, SKIPPED, options_hash=opts_hash, **fields))
        self.summary.skipped += 1

    def fail(self, item: InputItem, error: str, *, sha256: str = "", opts_hash: str = "", signal: str = "") -> None:
        self.manifest.record(row(item.id, item.path, FAILED, error=error, sha256=sha256 or None, options_hash=opts_hash or None,
                                 signal=signal or None))  # fmt: skip
        self.summary.failed.append({"id": item.id, "path": item.path, "error": error})
        self.progress.advance("inputs")
        self.note()

    def done(self, p: _Pending, opts_hash: str, ledger: Ledger) -> None:
        from qasr.batch.outputs import write_outputs
        from qasr.batch.pieces import assemble
        from qasr.errors import QasrError

        result = assemble(p.item.path, p.seconds, list(p.parts.values()))
        try:
            written = write_outputs(self.options.out_dir, p.item.rel, result, self.options.formats)
        except QasrError as exc:
            self.fail(p.item, str(exc), sha256=p.sha256, opts_hash=opts_hash)
            return
        f = result.figures
        self.manifest.record(row(p.item.id, p.item.path, DONE, sha256=p.sha256, options_hash=opts_hash, audio_seconds=f.audio_seconds,
                                 rtf=f.rtf, engine_calls=f.engine_calls, inference_seconds=f.inference_seconds,
                                 language=result.language, outputs=written))  # fmt: skip
        ledger.forget(p.key)
        self.summary.done += 1
        self.summary.audio_seconds += f.audio_seconds
        self.progress.advance("inputs")
        self.note()


def run_batch(items: list[InputItem], spec: EngineSpec, calls: CallOptions, options: BatchOptions,
              progress: Progress | None = None) -> Summary:  # fmt: skip
    """Transcribe ``items`` into ``options.out_dir`` (see the module doc); the run's summary."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(items, options, progress or SilentProgress())
    hashes: dict[str, str] = {}
    per_input: dict[str, CallOptions] = {}  # a table's language / context over the command line's
    todo: list[InputItem] = []
    for item in items:
        per_input[item.id] = calls.replace(language=item.language or calls.language, context=item.context or calls.context)
        hashes[item.id] = options_hash(spec, per_input[item.id], options.formats)
        old = None if options.force else run.manifest.rows.get(item.id)
        if old is not None and old.get("options_hash") == hashes[item.id]:
            try:
                old = run.manifest.finished(item.id, file_sha256(item.path), hashes[item.id], retry_failed=options.retry_failed)
            except OSError:
                old = None
            if old is not None and old.get("status") == FAILED:
                run.summary.failed.append({"id": item.id, "path": item.path, "error": f"{old.get('error')} (kept from an earlier run)"})
                continue
            if old is not None:
                run.skip(item, old, hashes[item.id])
                continue
        todo.append(item)
    run.progress.start("inputs", len(items), label="batch", done=len(items) - len(todo))
    try:
        if todo:
            with contextlib.redirect_stdout(sys.stderr):  # Ray prints its raylet's messages on stdout: keep it for results
                _run_on_ray(run, todo, spec, per_input, hashes)
    finally:
        run.progress.stop()
        run.manifest.finish()
        run.summary.wall_seconds = time.perf_counter() - run.t0
    return run.summary


def _run_on_ray(run: _Run, todo: list[InputItem], spec: EngineSpec, per_input: dict[str, CallOptions], hashes: dict[str, str]) -> None:
    from qasr.batch.actor import Transcriber
    from qasr.batch.pieces import prepare

    o = run.options
    ray = clusters.connect(o.cluster)
    ledger = Ledger(o.out_dir / ".qasr-batch", uuid.uuid4().hex[:12])
    try:
        actors, threads = clusters.layout(clusters.cluster_cpus(ray), o.actors, o.threads)
        run.summary.actors, run.summary.threads = actors, threads
        ledger.create()
        probe = ledger.run / "visible"
        probe.write_text("qasr batch: every node must see this file\n", encoding="utf-8")
        model = [spec.model] if spec.model and Path(spec.model).is_file() else []
        clusters.check_nodes(ray, [str(probe), *model, todo[0].path])
        rows = []
        for item in todo:
            rows.append({"id": item.id, "path": item.path, "options": per_input[item.id].to_json(), "options_hash": hashes[item.id],
                         "max_chunk": o.max_chunk})  # fmt: skip
            run.pending[item.id] = _Pending(item)
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.flat_map(prepare, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=actors))
        ds = ds.map_batches(
            Transcriber, batch_size=1, batch_format="numpy", num_cpus=threads, compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={"spec_json": spec.replace(threads=threads).to_json(), "ledger_root": str(ledger.root),
                                   "run_id": ledger.run.name, "retries": o.retries, "max_requests": o.max_requests,
                                   "max_worker_rss": o.max_worker_rss},
        )  # fmt: skip
        try:
            for piece in ds.iter_rows():
                _collect(run, piece, hashes, ledger)
        except Exception as exc:  # noqa: BLE001 - Ray's own failure: every input still open is reported, none dropped
            for p in list(run.pending.values()):
                run.fail(p.item, f"the run stopped before this input finished: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
                         opts_hash=hashes[p.item.id])  # fmt: skip
            run.pending.clear()
        for p in list(run.pending.values()):
            run.fail(p.item, "lost: Ray returned no result for it", opts_hash=hashes[p.item.id])
        for key in run.keys:  # pieces of failed inputs, and any a duplicate delivery saved late
            ledger.forget(key)
    finally:
        ledger.close_run()
        clusters.shutdown(ray)


def _collect(run: _Run, piece: dict[str, Any], hashes: dict[str, str], ledger: Ledger) -> None:
    """One row from the actors: an input failed, a piece done, or an input complete."""
    import json

    p = run.pending.get(str(piece["id"]))
    if p is None:  # its input already failed on another piece (or a duplicate delivery)
        return
    opts_hash = hashes[p.item.id]
    if piece.get("key"):
        run.keys.add(str(piece["key"]))
    if piece.get("worker"):
        run.summary.actor_processes.add(str(piece["worker"]))
    if piece["status"] != DONE:
        del run.pending[p.item.id]
        run.fail(p.item, str(piece["error"]), sha256=str(piece.get("sha256") or ""), opts_hash=opts_hash, signal=str(piece.get("signal") or ""))
        return
    p.pieces, p.seconds, p.sha256, p.key = int(piece["pieces"]), float(piece["seconds"]), str(piece["sha256"]), str(piece["key"])
    p.parts[int(piece["piece"])] = (float(piece["start"]), json.loads(piece["result"]))
    if len(p.parts) == p.pieces:
        del run.pending[p.item.id]
        run.done(p, opts_hash, ledger)
