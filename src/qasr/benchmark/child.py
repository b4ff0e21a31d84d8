"""``python -m qasr.benchmark.child JOB.json``: one provider over the benchmark's files, in its own process.

Why a process per provider: its peak resident set is then its own (VmHWM of a fresh process, not of
the parent that also parsed references and loaded the other provider), a native crash costs one
provider's figures instead of the run, and upstream chatllm.cpp aborts at interpreter exit once a
model was loaded, so this process ends with ``os._exit`` after flushing (`qasr.channel.exit_now`).

The job is a `Job`: the provider's `EngineSpec` and the files. It answers over the child channel
(`qasr.channel`): ``loaded`` (load time, what the provider is), ``unavailable`` (the reason it could
not start, with the error as a record), ``file`` (text and figures) or ``failed`` (the error) per
file, then ``done`` with the process's peak RSS. Anything else goes to stderr, which the parent
keeps in a log.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from qasr.spec import EngineSpec


@dataclass(frozen=True)
class Job:
    """What one benchmark child runs: a provider's spec and the audio files."""

    spec: EngineSpec
    files: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"spec": self.spec.to_dict(), "files": self.files}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(EngineSpec.from_dict(data["spec"]), [str(f) for f in data["files"]])


def run(job: Job) -> int:
    from qasr.channel import Sender
    from qasr.errors import QasrError, to_record
    from qasr.providers import failure_reason
    from qasr.providers.chain import peak_rss_of, provider_class

    out = Sender.for_stdout()
    try:
        provider = provider_class(job.spec.provider)(job.spec)
    except QasrError as exc:
        out.send("unavailable", reason=failure_reason(exc), **to_record(exc))
        return exc.exit_code
    out.send("loaded", load_seconds=provider.load_seconds, streams=provider.streams, describe=provider.describe())
    for path in job.files:
        try:
            result = provider.transcribe(path)
        except QasrError as exc:
            out.send("failed", source=path, error=str(exc))
            continue
        f = result.figures
        out.send("file", source=path, text=result.text, language=result.language, audio_seconds=f.audio_seconds,
                 inference_seconds=f.inference_seconds, ttft_seconds=f.ttft_seconds, rtf=f.rtf)  # fmt: skip
    out.send("done", peak_rss_bytes=peak_rss_of(provider))
    return 0


def main(argv: list[str]) -> None:
    from qasr.channel import exit_now

    code = 1
    try:
        with open(argv[0], encoding="utf-8") as fh:
            code = run(Job.from_json(fh.read()))
    except BaseException:  # the parent shows the log's last line; os._exit would swallow the traceback
        import traceback

        traceback.print_exc()
    finally:
        exit_now(code)  # static destructors abort upstream once a model was loaded


if __name__ == "__main__":
    main(sys.argv[1:])
