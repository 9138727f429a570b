"""Anonymisers (GAN, DFI, baselines) and releases of anonymised datasets."""
