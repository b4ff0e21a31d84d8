"""``python -m qasr.benchmark.child JOB.json``: one provider over the benchmark's files, in its own process.

Why a process per provider: its peak resident set is then its own (VmHWM of a fresh process, not of
the parent that also parsed references and loaded the other provider), a native crash costs one
provider's figures instead of the run, and upstream chatllm.cpp aborts at interpreter exit once a
model was loaded, so this process ends with ``os._exit`` after flushing.

The job is ``{"provider": NAME, "options": {ProviderOptions fields}, "files": [paths]}``. Each line
on stdout is one JSON event: ``loaded`` (load time, what the provider is), ``unavailable`` (the
reason it could not start), ``file`` (text and figures) or ``failed`` (the error) per file, then
``done`` with the process's peak RSS. Anything else goes to stderr, which the parent keeps in a log.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run(job: dict[str, Any]) -> int:
    from qasr.errors import QasrError
    from qasr.providers import ProviderOptions, failure_reason
    from qasr.providers.chain import peak_rss_of, provider_class

    try:
        provider = provider_class(job["provider"])(ProviderOptions(**job["options"]))
    except QasrError as exc:
        _emit("unavailable", reason=failure_reason(exc), error=str(exc), exit_code=exc.exit_code)
        return exc.exit_code
    _emit("loaded", load_seconds=provider.load_seconds, streams=provider.streams, describe=provider.describe())
    for path in job["files"]:
        try:
            result = provider.transcribe(path)
        except QasrError as exc:
            _emit("failed", source=path, error=str(exc))
            continue
        f = result.figures
        _emit("file", source=path, text=result.text, language=result.language, audio_seconds=f.audio_seconds,
              inference_seconds=f.inference_seconds, ttft_seconds=f.ttft_seconds, rtf=f.rtf)  # fmt: skip
    _emit("done", peak_rss_bytes=peak_rss_of(provider))  # the engine process's too, for crispasr
    return 0


def main(argv: list[str]) -> None:
    code = 1
    try:
        with open(argv[0], encoding="utf-8") as fh:
            code = run(json.load(fh))
    except BaseException:  # the parent shows the log's last line; os._exit would swallow the traceback
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)  # static destructors abort upstream once a model was loaded


if __name__ == "__main__":
    main(sys.argv[1:])
