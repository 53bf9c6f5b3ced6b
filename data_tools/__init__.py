"""Datasets: the HDF5 format, the synthetic renderer, converters, augmentation, inspection."""
