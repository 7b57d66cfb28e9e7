"""What runs a model: LiteRT and ONNX Runtime in-process (`runtimes`), Keras/TF in a worker
subprocess (`keras_backend` starts it, `keras_worker` is it), and the fixed inputs (`inputs`)."""
