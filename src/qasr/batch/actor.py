"""The Ray Data actor class: one loaded provider per actor process, serving piece after piece.

`Transcriber.__init__` builds the provider from the `EngineSpec` JSON (the one value every place
that starts an engine receives) and loads the model once; each call takes a batch of piece rows and
returns one row per piece, ``done`` with its result or ``failed`` with its error. It never raises
for a bad piece: one failing block would abort the whole dataset (Ray Data's rule), so an input's
error travels as data, as it does in ``qasr transcribe``'s batch.

It never destroys a model (upstream chatllm.cpp aborts in destroy): an actor that has served
``max_requests`` pieces or whose RSS passed ``max_worker_rss`` finishes the batch it holds and, at
its next call, leaves by ending its process (`qasr.channel.exit_now`); Ray restarts it and hands that
call's rows to the new process, as the server replaces its workers. A process that aborts in the
engine is restarted by Ray the same way; `qasr.batch.ledger` counts those attempts per piece, so a
poison input is retried ``retries`` times and then reported failed with its signal.
"""

from __future__ import annotations

import faulthandler
from typing import Any

import numpy as np

from qasr.batch.ledger import Ledger
from qasr.batch.pieces import DONE, FAILED, TODO
from qasr.errors import AudioError, QasrError, to_record

#: The columns an actor returns (no samples: they are not needed past this point).
OUT_COLUMNS = ("id", "path", "key", "sha256", "seconds", "piece", "pieces", "start", "end", "status", "error", "signal", "result", "worker")


class Transcriber:
    """A Ray Data map_batches class (see the module doc)."""

    def __init__(self, spec_json: str, ledger_root: str, run_id: str, retries: int = 2,
                 max_requests: int | None = None, max_worker_rss: int | None = None) -> None:  # fmt: skip
        from qasr.providers import make_provider
        from qasr.spec import EngineSpec

        self.ledger = Ledger(ledger_root, run_id)
        self.fault_file = self.ledger.fault_file()
        self.fault_file.parent.mkdir(parents=True, exist_ok=True)
        self._faults = open(self.fault_file, "w", encoding="utf-8")  # noqa: SIM115 - lives with the process
        faulthandler.enable(file=self._faults, all_threads=False)
        self.retries, self.max_requests, self.max_worker_rss = retries, max_requests, max_worker_rss
        self.served = 0
        self.retire = False
        self.init_error: str | None = None
        try:
            self.provider: Any = make_provider(EngineSpec.from_json(spec_json), on_fallback=None)
        except QasrError as exc:  # every piece this actor gets fails with the reason, instead of a restart loop
            self.provider, self.init_error = None, f"the engine could not start: {exc}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        if self.retire:
            from qasr.channel import exit_now

            exit_now(0)  # Ray restarts this actor and gives this call's rows to the new process
        n = len(batch["id"])
        rows = [self._one({k: batch[k][i] for k in batch}) for i in range(n)]
        self._check_limits()
        return {c: [r.get(c) for r in rows] for c in OUT_COLUMNS}

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {c: _plain(row.get(c)) for c in OUT_COLUMNS if c in row}
        out.update(signal="", result="", worker="")
        if row["status"] != TODO:
            return out
        out["worker"] = self.fault_file.stem  # host-pid: which process served it
        key, k = str(row["key"]), int(row["piece"])
        saved = self.ledger.result(key, k)
        if saved is not None:
            return {**out, "status": DONE, "result": _dumps(saved)}
        if self.init_error is not None:  # not these bytes' fault: no SHA-256, so a rerun tries again
            return {**out, "status": FAILED, "error": self.init_error, "sha256": ""}
        refused = self.ledger.begin(key, k, self.retries, self.fault_file)
        if refused is not None:
            return {**out, "status": FAILED, "error": refused.message, "signal": refused.signal or ""}
        try:
            result = self._transcribe(row)
        except Exception as exc:  # noqa: BLE001 - any failure is this input's, never the dataset's
            message = str(exc) if isinstance(exc, QasrError) else str(to_record(exc)["message"])
            return {**out, "status": FAILED, "error": message, "sha256": out.get("sha256") if isinstance(exc, AudioError) else ""}
        self.served += 1
        self.ledger.save(key, k, result)
        return {**out, "status": DONE, "result": _dumps(result)}

    def _transcribe(self, row: dict[str, Any]) -> dict[str, Any]:
        from qasr.audio import SAMPLE_RATE, from_array
        from qasr.spec import CallOptions

        samples = np.frombuffer(row["samples"], dtype=np.float32)
        audio = from_array(samples, SAMPLE_RATE, source=f"{row['path']}@{float(row['start']):.2f}s")
        options = CallOptions.from_json(str(row["options"])).replace(max_chunk=None)  # a piece is one call
        return self.provider.transcribe(audio, options).to_dict()  # type: ignore[no-any-return]

    def _check_limits(self) -> None:
        """Retire after this batch when a limit is passed (the server's rule for its workers)."""
        if self.max_requests is not None and self.served >= self.max_requests:
            self.retire = True
        if self.max_worker_rss is not None:
            from qasr.processes import status_bytes

            rss = status_bytes("VmRSS")
            if rss is not None and rss > self.max_worker_rss:
                self.retire = True


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (Arrow and JSON take those)."""
    return value.item() if isinstance(value, np.generic) else value


def _dumps(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)
