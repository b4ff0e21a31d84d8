# qasr: the CLI and the lab, for running one experiment at a time with `docker run`.
#
#   docker build -t qasr .                                   # users: an official Python slim image
#   docker build --network host --build-arg BASE_IMAGE=qasr/base:local -t qasr .   # CI (GUIDE §5)
#
# libchatllm and the models are mounted at run time, never baked in (chatllm.cpp is built by you, docs/engine.md):
#   docker run --rm --user "$(id -u):$(id -g)" \
#     -v /opt/chatllm:/opt/chatllm:ro -e QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so \
#     -v "$PWD/models:/models:ro" -v "$PWD/results:/results" \
#     qasr transcribe /models/... (or: qasr lab run restart ...)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Runtime libraries of a CPU build of chatllm.cpp (libstdc++, OpenMP) and jemalloc for the lab's
# allocator matrix. ffmpeg (the engine decodes the aligner's audio with it) comes from the
# imageio-ffmpeg wheel below: a static binary of ~75 MB, where Debian's package pulls ~680 MB.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libstdc++6 libgomp1 libjemalloc2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Heavy Python dependencies in their own layer: it only changes when pyproject.toml does.
RUN python3 -m venv /opt/venv
# PATH in full: an image made with `docker import` (CI's debootstrap base) defines none.
# (One ENV for everything: with the vfs storage driver every instruction copies the whole image.)
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QASR_MODELS_DIR=/models \
    QASR_HOME=/opt/qasr \
    QASR_EXPERIMENTS_DIR=/opt/qasr/experiments \
    MPLBACKEND=Agg
COPY pyproject.toml /tmp/qasr-deps/pyproject.toml
RUN python3 -c "import tomllib; p = tomllib.load(open('/tmp/qasr-deps/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['trace'] + p['optional-dependencies']['ffmpeg']))" \
    > /tmp/qasr-deps/requirements.txt \
 && pip install -r /tmp/qasr-deps/requirements.txt

# qasr itself (small, changes often).
COPY README.md LICENSE /src/qasr/
COPY src /src/qasr/src
RUN cp /tmp/qasr-deps/pyproject.toml /src/qasr/ && pip install --no-deps /src/qasr && rm -rf /src/qasr/build

# The experiments and their sample clips (small); an experiment image only names one of them.
COPY experiments /opt/qasr/experiments
COPY samples /opt/qasr/samples
# One entry point: `qasr ARGS`, or, in an experiment image (QASR_EXPERIMENT set), that experiment.
RUN printf '%s\n' '#!/bin/sh' \
      'if [ -n "$QASR_EXPERIMENT" ]; then cd /results && exec qasr experiment run "$QASR_EXPERIMENT" --results /results "$@"; fi' \
      'if [ $# -eq 0 ]; then exec qasr --help; fi' \
      'exec qasr "$@"' > /usr/local/bin/qasr-entry \
 && chmod 755 /usr/local/bin/qasr-entry \
 && useradd --create-home --uid 1000 qasr && mkdir -p /results /models && chown qasr /results
USER qasr
WORKDIR /home/qasr
ENTRYPOINT ["/usr/local/bin/qasr-entry"]
