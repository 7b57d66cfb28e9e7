"""Which layers the compressor looks at, and why a layer it looks at cannot be factorised.

Candidates are leaf layers holding a kernel-like weight (kernel, depthwise/pointwise kernel,
recurrent kernel, embeddings). Only stock Conv2D (groups=1) and Dense are factorised; every
other candidate is kept and reported with the reason.
"""

from __future__ import annotations

import keras

_KERNEL_WEIGHT_SUFFIXES = ("kernel", "embeddings")


def is_candidate(layer: keras.layers.Layer) -> bool:
    """True if the layer holds a kernel-like weight (so it belongs in the per-layer report)."""
    return any(w.name.endswith(_KERNEL_WEIGHT_SUFFIXES) for w in layer.weights)


def unsupported_reason(layer: keras.layers.Layer) -> str | None:
    """None if `layer` can be factorised, else a short reason such as 'DepthwiseConv2D'."""
    kind = type(layer)
    if kind not in (keras.layers.Conv2D, keras.layers.Dense):
        for base in (keras.layers.Conv2D, keras.layers.Dense):
            if isinstance(layer, base):
                return f"{kind.__name__}, a subclass of {base.__name__}"
        return kind.__name__
    if getattr(layer, "quantization_mode", None):
        return f"{kind.__name__} quantized ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return f"{kind.__name__} with LoRA enabled"
    if kind is keras.layers.Conv2D and layer.groups != 1:
        return f"grouped Conv2D, groups={layer.groups}"
    return None
