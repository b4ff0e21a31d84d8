"""Print a transcript as the engine generates it, then the final text and how fast it came.

    python examples/stream_text.py MODEL AUDIO [--itn] [--zh-tw]

`qasr.TranscriptionStream` is lazy: nothing runs until you iterate. The pieces are the model's own
text; ITN and OpenCC need the whole text, so the final line shows the post-processed result.
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
    parser.add_argument("--itn", action="store_true")
    parser.add_argument("--zh-tw", action="store_true")
    args = parser.parse_args()

    model = qasr.Model(args.model)
    stream = qasr.TranscriptionStream(model, args.audio, itn=args.itn, opencc="s2twp" if args.zh_tw else None)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    result = stream.result
    assert result is not None
    print(f"final: {result.text}")
    print(f"time to first token {result.figures.ttft_seconds} s, {result.figures.tokens_per_second} tokens/s")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # upstream chatllm.cpp aborts at normal interpreter exit once a model was loaded
