"""The reference network (`resnet`), training and fine-tuning (`train`), and safe loading and
saving of `.keras` files with their compression sidecars (`saving`)."""
