"""Hardware-aware benchmarks of exported models (`lowrank-edge bench`, `bench-report`).

TensorFlow-free: this package imports only numpy, the stdlib and the runtimes
(lazily). The Keras backend runs in a subprocess (`keras_worker`), the only
module here that imports TensorFlow, and only inside its `main`.
"""
