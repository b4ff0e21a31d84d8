#!/usr/bin/env bash
# Build the qasr image and one image per experiment, then run every experiment image with a few
# iterations against the test double mounted as the engine (CI has no libchatllm), and with
# ../shared/models when present, asserting each writes its report. Any failure fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

bash .ci/docker-up.sh
BASE_IMAGE=${BASE_IMAGE:-qasr/base:local}

echo "== docker build qasr:ci"
docker build -q --network host --build-arg BASE_IMAGE="$BASE_IMAGE" -t qasr:ci . >/dev/null
built=$SECONDS
experiments=()
for cfg in experiments/*/config.toml; do
    name=$(basename "$(dirname "$cfg")")
    experiments+=("$name")
    docker build -q --network host --build-arg QASR_IMAGE=qasr:ci --build-arg EXPERIMENT="$name" \
        -f experiments/Dockerfile -t "qasr-exp-${name%%-*}:ci" . >/dev/null
done
echo "== built qasr:ci in $((built - start)) s and ${#experiments[@]} experiment images in $((SECONDS - built)) s"

work=$(mktemp -d /tmp/qasr-docker-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/engine" "$work/models" "$work/data" "$work/results"
# The test double (never the engine), models with valid headers, and a clip with its transcript.
.venv/bin/python - "$work" <<'PY'
import sys
from pathlib import Path
sys.path[:0] = ["tests"]
import numpy as np, soundfile
from native.build import build_double
from modelfiles import write_model, write_aligner
work = Path(sys.argv[1])
build_double(work / "engine")
write_model(work / "models" / "asr.bin")
write_model(work / "models" / "asr-b.bin", name="test-asr-b")
write_aligner(work / "models" / "aligner.bin")
t = np.arange(16000) / 16000
soundfile.write(str(work / "data" / "clip.wav"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
(work / "data" / "clip.txt").write_text("hello world from the test double\n")
PY
chmod -R a+rX "$work" && chmod a+rwx "$work/results"

run_experiment() { # image results-subdir extra-args...
    local image=$1 out=$2; shift 2
    mkdir -p "$work/results/$out" && chmod a+rwx "$work/results/$out"
    docker run --rm --network none --user "$(id -u):$(id -g)" \
        -v "$work/engine:/engine:ro" -e QASR_CHATLLM_LIB=/engine/libchatllm.so \
        -v "$work/models:/models:ro" -v "$work/data:/data:ro" -v "$work/results/$out:/results" \
        "$@" "$image" "${EXTRA_ARGS[@]}" >"$work/results/$out.log" 2>&1 || {
        echo "experiment image $image failed:" >&2; cat "$work/results/$out.log" >&2; exit 1; }
    local report
    report=$(find "$work/results/$out" -name experiment.md | head -n 1)
    if [ -z "$report" ]; then
        echo "experiment image $image wrote no experiment.md" >&2; cat "$work/results/$out.log" >&2; exit 1
    fi
    if ! grep -qE '^\| .* \| completed \||^Subtitles: ' "$report"; then
        echo "experiment image $image recorded no completed run or subtitles:" >&2; cat "$report" >&2; exit 1
    fi
    echo "   $image: $(grep -cE '^\| .* \| completed \||^Subtitles: ' "$report") completed step(s) in $(basename "$(dirname "$report")")/experiment.md"
}

echo "== running each experiment image on the test double"
MODELS=(-m /models/asr.bin --model-b /models/asr-b.bin --aligner /models/aligner.bin)
for name in "${experiments[@]}"; do
    case "$name" in
        # lab experiments: a few iterations on a generated clip; subtitle experiments: the image's own
        # speech samples (a tone has no speech for the VAD to find)
        0[1-4]-*) EXTRA_ARGS=(-n 3 --audio /data/clip.wav "${MODELS[@]}") ;;
        *) EXTRA_ARGS=("${MODELS[@]}") ;;
    esac
    run_experiment "qasr-exp-${name%%-*}:ci" "$name"
done

if [ -d ../shared/models ]; then
    echo "== experiment 02 with ../shared/models (engine: the test double)"
    EXTRA_ARGS=(-n 3 --audio /data/clip.wav -m /shared/tiny-asr-a-q4_0.bin)
    run_experiment "qasr-exp-02:ci" "02-shared" -v "$(cd ../shared/models && pwd):/shared:ro"
fi
echo "== the qasr image as a server (qasr serve on the test double, host network, loopback only)"
port=$(.venv/bin/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
docker run -d --rm --name qasr-serve-ci --network host --user "$(id -u):$(id -g)" \
    -v "$work/engine:/engine:ro" -e QASR_CHATLLM_LIB=/engine/libchatllm.so -v "$work/models:/models:ro" \
    qasr:ci serve -m /models/asr.bin --host 127.0.0.1 --port "$port" >/dev/null
trap 'docker rm -f qasr-serve-ci >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 1
done
answer=$(curl -sf -F file=@"$work/data/clip.wav" -F model=qwen3-asr "http://127.0.0.1:$port/v1/audio/transcriptions") || {
    echo "the server in the qasr image did not answer:" >&2; docker logs qasr-serve-ci >&2; exit 1; }
echo "   POST /v1/audio/transcriptions -> $answer"
echo "$answer" | grep -q '"text":"hello world from the test double"' || { echo "unexpected answer" >&2; exit 1; }
docker rm -f qasr-serve-ci >/dev/null
echo "== docker part took $((SECONDS - start)) s"
