"""Two models in one process on the real engine: what upstream 4a4310e does, and that qasr copes.

The first tests pin the engine's behaviour through its C ABI alone (`two_models_repro.py`, plain
ctypes), docs/study.md "Two models in one process" has the causes:

- once a second object is started, every object's chunks reach the print callback (and user data)
  of the object started last (one process-wide chunk interceptor). **When that test fails because
  each object's text reaches its own callback, upstream has fixed it**: `qasr.engine.switchboard`'s
  process-wide turn lock can go;
- a Qwen3-ASR object loaded before another one leaves its audio features with the other (one prompt
  encoder per model class): the live heap rises by exactly those features after its turn and falls
  by as much after the other's. **When that test fails, upstream may have fixed it**: check, then
  lift `switchboard.admit`'s refusal (README "Known engine issues" 9).

The last test checks qasr's binding: an ASR model and an aligner alternate in one process, and a
second ASR model is refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, SHARED_MODELS, engine_child, requires_real_engine, requires_shared_data

pytestmark = [pytest.mark.real_engine, requires_real_engine, requires_shared_data]

HERE = Path(__file__).resolve().parent
ASR_A = SHARED_MODELS / "tiny-asr-a-q4_0.bin"
ASR_B = SHARED_MODELS / "tiny-asr-b-q4_0.bin"
ALIGNER = SHARED_MODELS / "tiny-aligner-q4_0.bin"
FIXED_UPSTREAM = ("upstream now delivers each model's chunks to its own callback: the switchboard's process-wide turn "
                  "lock can go (README known issue 9, docs/study.md)")  # fmt: skip
FIXED_ENCODER = ("the first Qwen3-ASR object's audio features no longer stay with the second: upstream may have fixed "
                 "the shared prompt encoder; check, then lift switchboard.admit's refusal (README known issue 9)")  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The engine's paths, a PATH whose ``ffmpeg`` the engine can run, and jfk.wav as a 16 kHz WAV we wrote."""
    from qasr.engine.ffmpeg_shim import real_ffmpeg
    from qasr.engine.library import find_ggml_dir

    ffmpeg = real_ffmpeg()
    if ffmpeg is None:
        pytest.skip("the engine decodes audio with ffmpeg: none on PATH, in $QASR_FFMPEG or from imageio-ffmpeg")
    lib = Path(os.environ["QASR_CHATLLM_LIB"])
    lib = lib / "libchatllm.so" if lib.is_dir() else lib
    ggml = find_ggml_dir(lib)
    if ggml is None:
        pytest.skip(f"no libggml*.so found for {lib} (set QASR_GGML_DIR)")
    work = tmp_path_factory.mktemp("two-models")
    (work / "bin").mkdir()
    (work / "bin" / "ffmpeg").symlink_to(ffmpeg)
    wav = work / "jfk16k.wav"
    assert re.fullmatch(r"[A-Za-z0-9/._+-]+", str(wav)), wav  # the engine puts it in a shell command line
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(SHARED_DATA / "jfk.wav"), "-ar", "16000", "-ac", "1",
                    str(wav)], check=True, timeout=60)  # fmt: skip
    return {"lib": str(lib), "ggml": str(ggml), "wav": str(wav), "path": f"{work / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def repro(setup: dict[str, str], models: list[Path], *options: str) -> dict:
    cmd = [sys.executable, str(HERE / "two_models_repro.py"), "--lib", setup["lib"], "--ggml-dir", setup["ggml"],
           "--wav", setup["wav"], *(w for m in models for w in ("--model", str(m))), *options]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "PATH": setup["path"]})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not found" not in r.stderr and "Error" not in r.stderr, r.stderr[-2000:]  # ffmpeg decoded the audio
    report = json.loads(r.stdout)
    assert report["init"] == 0 and all(s["rc"] == 0 for s in report["starts"]), report["starts"]
    return report


@pytest.fixture(scope="module")
def alone(setup: dict[str, str]) -> dict[str, str]:
    """What each model prints when it is the only one in its process (the text to look for)."""
    texts = {}
    for model in (ASR_A, ASR_B, ALIGNER):
        turn = repro(setup, [model], "--turns", "0")["turns"][0]
        assert list(turn["received"]) == ["cb0/ud1"] and turn["received"]["cb0/ud1"]["ends"] == 2
        texts[model.name] = turn["received"]["cb0/ud1"]["chunks"]
        assert texts[model.name], f"{model.name} printed nothing alone"
    assert len(set(texts.values())) == 3
    return texts


@pytest.mark.parametrize(
    ("models", "callbacks", "user_data"),
    [
        ((ASR_A, ASR_B), "distinct", "distinct"),
        ((ASR_B, ASR_A), "distinct", "distinct"),
        ((ASR_A, ASR_B), "same", "distinct"),
        ((ASR_A, ASR_B), "distinct", "same"),
        ((ASR_A, ALIGNER), "distinct", "distinct"),
        ((ALIGNER, ASR_A), "distinct", "distinct"),
    ],
    ids=["asr-a+asr-b", "asr-b+asr-a", "same-callback", "same-user-data", "asr+aligner", "aligner+asr"],
)
def test_the_first_models_text_reaches_the_last_started_callback(setup, alone, models, callbacks, user_data) -> None:
    report = repro(setup, list(models), "--callbacks", callbacks, "--user-data", user_data, "--turns", "0,1,0,1")
    own = [s["receivers_of_model_info"][0] for s in report["starts"]]  # each object's own callback/user data
    assert own[0] != own[1]
    for turn in report["turns"]:
        k, got = turn["obj"], turn["received"]
        text = alone[models[k].name]
        assert turn["rc"] == 0 and not turn["errors"]
        if k == 1:  # the object started last: as if alone
            assert got == {own[1]: {"chunks": text, "ends": 2}}
            continue
        if got.get(own[0], {}).get("chunks"):
            pytest.fail(f"{FIXED_UPSTREAM}: {got}")
        assert got == {own[1]: {"chunks": text, "ends": 2}, own[0]: {"chunks": "", "ends": 1}}


def test_one_callback_with_one_user_data_gets_every_text_in_order(setup, alone) -> None:
    """With nothing to tell the objects apart, the text of each turn arrives where it is expected: what
    qasr's binding does in effect (it routes by the turn running now)."""
    report = repro(setup, [ASR_A, ALIGNER], "--callbacks", "same", "--user-data", "same", "--turns", "0,1,0")
    texts = [t["received"]["cb0/ud1"]["chunks"] for t in report["turns"]]
    assert texts == [alone[ASR_A.name], alone[ALIGNER.name], alone[ASR_A.name]]
    ends = [t["received"]["cb0/ud1"]["ends"] for t in report["turns"]]
    assert ends == [3, 2, 3], f"{FIXED_UPSTREAM}? {ends}"  # the first object's turn: 1 own f_end + 2 of the receiver


def _mel_bytes(wav: str) -> int:
    """Bytes of the log-mel features upstream computes for a 16 kHz clip: 128 bins x frames (10 ms hop,
    padded as qwen_asr.cpp's pad_mel_len does) x 4-byte floats."""
    import soundfile

    frames = soundfile.info(wav).frames // 160
    padded = (frames // 100) * 100 + ((frames % 100) + 7) // 8 * 8
    return 128 * padded * 4


def test_the_first_asr_objects_audio_features_stay_with_the_second(setup) -> None:
    """Each turn of the ASR object loaded first leaves its mel features in the other's tokenizer (the
    shared encoder wrote them there); the other's next turn frees them. Alone, or beside an aligner,
    turns leave nothing behind."""
    mel = _mel_bytes(setup["wav"])
    assert mel > 256 * 1024  # jfk.wav: 550 KiB, far above the few KiB a turn's noise is
    two = [t["heap_delta"] for t in repro(setup, [ASR_A, ASR_B], "--turns", "0,1,0,1,0,1")["turns"]]
    beside_aligner = [t["heap_delta"] for t in repro(setup, [ASR_A, ALIGNER], "--turns", "0,1,0,1,0,1")["turns"]]
    alone = [t["heap_delta"] for t in repro(setup, [ASR_A], "--turns", "0,0,0,0")["turns"]]
    assert all(abs(d) < 16 * 1024 for d in alone[1:] + beside_aligner[2:]), (alone, beside_aligner)
    after_first = two[2::2]  # from the third turn on, both objects have run once
    after_second = two[3::2]
    if any(abs(d - mel) > 16 * 1024 for d in after_first) or any(abs(d + mel) > 16 * 1024 for d in after_second):
        pytest.fail(f"{FIXED_ENCODER}: heap deltas {two}, mel features {mel} B")


def test_qasr_keeps_both_models_audible(setup, alone) -> None:
    """Through qasr.Model: ASR and aligner loaded once each, used alternately; a second ASR model refused."""
    r = engine_child(f"""
        import json, os, sys
        from qasr.engine.model import Model
        from qasr.engine.modelfile import ModelKind
        from qasr.errors import EngineError
        os.environ["PATH"] = {setup['path']!r}  # the aligner's audio goes to a real ffmpeg
        wav = {setup['wav']!r}
        a = Model({str(ASR_A)!r})
        first = "".join(a.transcribe_raw(wav))
        al = Model({str(ALIGNER)!r}, kind=ModelKind.ALIGNER, settings={{"format": "json"}})
        out = {{"first": first, "turns": []}}
        for _ in range(2):
            out["turns"].append(["".join(a.transcribe_raw(wav)), "".join(al.align_raw(wav, "and so my fellow americans"))])
        try:
            Model({str(ASR_B)!r})
        except EngineError as exc:
            out["refused"] = str(exc)
        out["after"] = "".join(a.transcribe_raw(wav))
        print(json.dumps(out)); sys.stdout.flush(); os._exit(0)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["first"] == out["after"] == alone[ASR_A.name]
    for asr, aligned in out["turns"]:
        assert asr == alone[ASR_A.name]
        assert [w["text"] for w in json.loads(aligned)] == "and so my fellow americans".split()
    assert "cannot hold two Qwen3-ASR models in one process" in out["refused"] and "tiny-asr-a-q4_0.bin" in out["refused"]
