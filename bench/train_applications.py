"""Play the user: briefly train a keras.applications model on an image folder and save it.

Usage (from the repo root, with the project's environment):

    python bench/train_applications.py --data /tmp/emnist-png --arch MobileNetV3Small \
        --image-size 64 --epochs 4 --out models/own/mnv3s.keras

The model is built with `weights=None` (no weight downloads here), the folder's class count,
its default softmax head and, for the MobileNetV3 family, its own `Rescaling` layer
(`include_preprocessing=True`), so it takes the folder's 0..255 pixel values as they are. Every
BatchNormalization's momentum is set to 0.9 before training: keras.applications uses 0.99/0.999,
whose moving statistics lag far behind a run of a few hundred steps (see
`lowrank_edge/model/resnet.py`). Training is the project's own `fit` (Adam, cosine decay,
validation split, loss following the softmax head). This stands in for a model a user trained
elsewhere; it is not a product feature.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ARCHS = ("MobileNetV3Small", "MobileNetV3Large", "MobileNetV2")


def build(arch: str, image_size: int, num_classes: int):
    """keras.applications `arch` for (image_size, image_size, 3), random weights, softmax head."""
    import keras

    from lowrank_edge.model.recipe import batchnorm_layers

    shape = (image_size, image_size, 3)
    if arch == "MobileNetV2":
        inputs = keras.Input(shape, name="image")
        scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_symmetric")(inputs)
        core = keras.applications.MobileNetV2(input_shape=shape, weights=None, classes=num_classes)
        model = keras.Model(inputs, core(scaled), name="mobilenetv2")
    else:
        model = getattr(keras.applications, arch)(
            input_shape=shape, weights=None, classes=num_classes, include_preprocessing=True
        )
    for layer in batchnorm_layers(model):
        layer.momentum = 0.9
    return model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an image folder (or any --data spec)")
    parser.add_argument("--arch", choices=ARCHS, default="MobileNetV3Small")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from lowrank_edge.data import load_data
    from lowrank_edge.fileio import check_can_write
    from lowrank_edge.model.saving import save_model
    from lowrank_edge.model.train import FitConfig, fit
    from lowrank_edge.pipeline.measure import accuracy_record

    check_can_write(args.out, args.overwrite)
    data = load_data(args.data, image_shape=(args.image_size, args.image_size, 3), seed=args.seed)
    model = build(args.arch, args.image_size, data.num_classes)
    print(f"[train] {args.arch} {model.count_params():,} params on {data.summary()}")
    result = fit(
        model,
        data,
        FitConfig(epochs=args.epochs, learning_rate=args.lr, seed=args.seed, augment=True),
    )
    save_model(model, args.out, overwrite=args.overwrite)
    acc = accuracy_record(model, data)
    print(
        f"[train] {result.seconds:.0f} s; val {acc['val']:.4f}, test {acc['test']:.4f}; "
        f"saved {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
