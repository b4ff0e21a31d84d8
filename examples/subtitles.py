"""Subtitles for audio of any length: VAD chunks, Qwen3-ASR, then the ForcedAligner.

    python examples/subtitles.py MODEL ALIGNER AUDIO OUT.srt|OUT.vtt|OUT.json

Both models run in child processes, one after the other, so this process never loads the engine
and needs no os._exit. The output is rewritten after every chunk: stop it any time and it is valid.
"""

from __future__ import annotations

import sys

import qasr


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model, aligner, audio, out = argv
    result = qasr.subtitles(audio, out, asr_model=model, aligner_model=aligner)
    print(f"{out}: {result.cues} cues from {result.chunks} chunk(s), {result.aligned_chunks} aligned, "
          f"{result.audio_seconds:.1f} s of audio in {result.wall_seconds:.1f} s")
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
