#!/bin/sh
# The image's entry point. Given TF_CONFIG, the container is a tf.distribute worker: the
# arguments are a whole lowrank-edge command (train, compress or pipeline with
# --distribute multi-worker; the full image, FULL=1, has TensorFlow). Otherwise they go to
# `lowrank-edge bench`, the image's timing job.
set -eu
if [ -n "${TF_CONFIG:-}" ]; then
  exec lowrank-edge "$@"
fi
exec lowrank-edge bench "$@"
