"""The shared test harness (keras-hub style): one helper per concern, reused by every test.

- `harness.data`: small datasets made in memory and written in the real file formats.
- `harness.models`: tiny Keras models, including residual models with exactly rank-k kernels.
- `harness.export`: export round trips and parity assertions.
- `harness.latency`: latency tables made in memory, and the tiny kit model.
- `harness.bench_records`: synthetic bench folders (chosen latencies, accuracies, sizes; no TF).
"""
