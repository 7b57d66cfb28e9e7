"""Hardware-aware ranks: micro-models of single layers (the latency kit) and costs from their
measured latency. Building a kit imports TensorFlow; timing it (`benchmark.kit_timing`) does not.
"""
