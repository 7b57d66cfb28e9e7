# lowrank-edge benchmark image: times exported models (TFLite/ONNX + manifest.json) on
# LiteRT and ONNX Runtime, without TensorFlow.
#
#   docker build -t lowrank-edge .                      # bench only (no TensorFlow)
#   docker build --build-arg FULL=1 -t lowrank-edge:full .   # + TensorFlow/Keras backend, plots
#   docker run --rm --cpuset-cpus 0-3 --cpus 4 -v "$PWD/models:/models" -v "$PWD/bench:/work/bench" \
#       lowrank-edge /models/mnist/base /models/mnist/e75 --threads 1,2,4 --cpus 0,1,2,3 \
#       --out /work/bench/results/mnist-docker
#
# Arguments after the image name go to `lowrank-edge bench`; results land in /work/bench
# (mount it) unless --out says otherwise. Given TF_CONFIG (full image), the container is a
# multi-worker process instead and the arguments are a whole lowrank-edge command:
#   docker run --rm --network host -v "$PWD/models:/work/models" -e TF_CONFIG='{...}' \
#       lowrank-edge:full compress models/mnist/base.keras --dataset mnist \
#       --finetune-epochs 2 --distribute multi-worker      # README: "More than one machine"
FROM python:3.11-slim

ARG FULL=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/lowrank-edge
# Only what the install needs (README.md when present: setup.cfg reads it).
COPY pyproject.toml setup.cfg README.m[d] ./
COPY lowrank_edge ./lowrank_edge
COPY scripts/install-bench.sh scripts/docker-entrypoint.sh ./scripts/
RUN if [ "$FULL" = "1" ]; then EXTRA=--full; else EXTRA=; fi \
    && bash scripts/install-bench.sh /opt/venv --python python3 $EXTRA \
    && rm -rf build lowrank_edge.egg-info

ENV PATH=/opt/venv/bin:$PATH
VOLUME ["/models"]
WORKDIR /work
ENTRYPOINT ["/opt/lowrank-edge/scripts/docker-entrypoint.sh"]
CMD ["--help"]
