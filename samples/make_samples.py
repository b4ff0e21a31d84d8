#!/usr/bin/env python3
"""Regenerate the synthetic speech clips in samples/ with espeak-ng: 16 kHz mono 16-bit WAV + .txt.

    .venv/bin/python samples/make_samples.py            # rewrites samples/*.wav and samples/*.txt

Why espeak-ng: it is free, offline and in Debian (`apt-get install espeak-ng`), so anyone can rebuild
these clips and they carry no third party's voice or licence. Mandarin goes through the
`cmn-latn-pinyin` voice with tone-numbered pinyin, because Debian's espeak-ng 1.51 `cmn` voice reads
most Hanzi as English letter names; the .txt beside each clip holds the Hanzi it speaks. espeak-ng's
output (22,050 Hz) is resampled by qasr.audio (soxr), exactly as qasr treats any input.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Clip:
    name: str
    voice: str
    text: str  # what the clip says, written as a transcript (the .txt)
    spoken: str  # what espeak-ng is given (pinyin for Mandarin)
    speed: int = 150  # words per minute


CLIPS = (
    Clip("en-hello", "en-us", "Hello, this is a short test of speech recognition on a plain computer.",
         "Hello, this is a short test of speech recognition on a plain computer."),
    Clip("zh-phone", "cmn-latn-pinyin", "我的电话号码是零九一二三四五六七八。",
         "wo3 de5 dian4 hua4 hao4 ma3 shi4, ling2 jiu3 yi1 er4, san1 si4 wu3, liu4 qi1 ba1."),
    Clip("zh-date", "cmn-latn-pinyin", "会议在二零二六年三月五日下午三点开始。",
         "hui4 yi4 zai4 er4 ling2 er4 liu4 nian2 san1 yue4 wu3 ri4, xia4 wu3 san1 dian3 kai1 shi3."),
)


def synthesize(clip: Clip) -> tuple[Any, int]:
    """espeak-ng's WAV on stdout, decoded to float samples and its rate."""
    import soundfile

    wav = subprocess.run(["espeak-ng", "-v", clip.voice, "-s", str(clip.speed), "--stdout", clip.spoken],
                         capture_output=True, check=True).stdout
    data, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return data, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the clips (default: samples/)")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("make_samples: espeak-ng not found; install it: sudo apt-get install espeak-ng", file=sys.stderr)
        return 1
    voices = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout.split()
    for voice in sorted({c.voice for c in CLIPS} - set(voices)):
        print(f"make_samples: espeak-ng has no voice {voice!r} (see: espeak-ng --voices)", file=sys.stderr)
        return 1

    import soundfile
    from qasr.audio import SAMPLE_RATE, from_array

    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    for clip in CLIPS:
        data, rate = synthesize(clip)
        audio = from_array(data, rate, source=clip.name)
        soundfile.write(str(args.out / f"{clip.name}.wav"), audio.samples, SAMPLE_RATE, subtype="PCM_16")
        (args.out / f"{clip.name}.txt").write_text(clip.text + "\n", encoding="utf-8")
        print(f"{clip.name}.wav  {audio.seconds:5.2f} s  {clip.voice:16}  {clip.text}")
    print(f"made with {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
