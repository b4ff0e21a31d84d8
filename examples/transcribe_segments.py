"""Transcribe a file and print its segments, word times (with an aligner) and figures.

    python examples/transcribe_segments.py MODEL AUDIO [--aligner ALIGNER] [--context "names, terms"]

MODEL and ALIGNER are chatllm.cpp model files (or registry names: qasr models list); the engine is
found through QASR_CHATLLM_LIB. Long audio is cut at pauses, one segment per engine call.
"""

from __future__ import annotations

import argparse
import os
import sys

import qasr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("audio")
    parser.add_argument("--aligner")
    parser.add_argument("--context")
    args = parser.parse_args()

    model = qasr.Model(args.model)
    # The aligner is a model file: it runs in a process of its own (upstream cannot hold two models).
    result = qasr.transcribe(model, args.audio, context=args.context, aligner=args.aligner)
    for segment in result.segments:
        print(f"[{segment.start:7.2f} -> {segment.end:7.2f}] {segment.text}")
        for word in segment.words or []:
            print(f"    {word.start:7.2f} {word.end:7.2f}  {word.text}")
    f = result.figures
    print(f"{f.audio_seconds:.1f} s of audio in {f.inference_seconds:.2f} s (RTF {f.rtf:.3f}), "
          f"first token after {f.ttft_seconds} s, {f.tokens} tokens, {f.engine_calls} engine call(s)")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # upstream chatllm.cpp aborts at normal interpreter exit once a model was loaded
