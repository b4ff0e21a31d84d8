"""The lab's own overhead per iteration, on the real engine with a tiny model. Prints figures.

    QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \\
    python benchmarks/bench_lab_overhead.py --model ../shared/models/tiny-asr-a-q4_0.bin \\
        --audio ../shared/data/jfk.wav [--iterations 50]

(1) the cost of each kind of sample, measured inside a child process with the model loaded and one
transcription done (the state the lab samples in); (2) a `restart` lab run: per iteration, the time
the lab spent sampling and writing records against the whole iteration. Target: at most 10 ms of
lab overhead per iteration, where an iteration takes about 150 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = """
import json, os, sys
from qasr.engine.model import Model
from qasr.lab.memory import measure_sampling_cost
from qasr.pipeline.transcribe import TranscriptionStream
m = Model({model!r})
TranscriptionStream(m, {audio!r}).run()
costs = measure_sampling_cost(200)
import gc, time
gc.collect(); gc.freeze()  # what the lab's child does after setup
t0 = time.perf_counter()
for _ in range(200):
    gc.collect()
costs["gc_collect_after_freeze"] = (time.perf_counter() - t0) / 200 * 1e6
print(json.dumps(costs))
sys.stdout.flush(); os._exit(0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    if not os.environ.get("QASR_CHATLLM_LIB"):
        raise SystemExit("set QASR_CHATLLM_LIB to a libchatllm.so (the real engine, or the test double for a dry run)")

    out = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD.format(model=args.model, audio=args.audio))],
                         capture_output=True, text=True, check=True)
    costs = json.loads(out.stdout.strip().splitlines()[-1])
    print("(1) cost of each kind of sample, model loaded (microseconds, mean of 200)")
    for name, us in costs.items():
        print(f"    {name:22s} {us:9.1f}")

    from qasr.lab.config import RunConfig, validate
    from qasr.lab.runner import run

    with tempfile.TemporaryDirectory(prefix="qasr-bench-lab-") as tmp:
        cfg = validate(RunConfig(scenario="restart", model=args.model, audio=[args.audio], iterations=args.iterations,
                                 results_dir=tmp, peaks=False))
        s = run(cfg, show_progress=False).summary
    lab, wall = s["timing"]["lab_overhead_ms"], s["timing"]["wall_ms"]
    print(f"\n(2) restart run, {s['iterations_completed']} iterations (per iteration, ms)")
    print(f"    iteration wall   median {wall['median']:7.1f}   mean {wall['mean']:7.1f}   p95 {wall['p95']:7.1f}")
    print(f"    lab overhead     median {lab['median']:7.2f}   mean {lab['mean']:7.2f}   p95 {lab['p95']:7.2f}"
          f"   target <= 10 ms   {'OK' if lab['median'] <= 10 else 'MISSED'}")
    print(f"    share of the iteration: {100 * lab['median'] / wall['median']:.1f}% (medians)")


if __name__ == "__main__":
    main()
