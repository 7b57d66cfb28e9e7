"""The TF-free timing core: statistics (`stats`), warm-up and stopping rules (`calls`),
interleaved rounds (`interleave`) and per-round speedup ratios (`ratios`)."""
