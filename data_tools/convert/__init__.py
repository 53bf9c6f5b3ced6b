"""Converters from the public benchmark datasets to the project's HDF5 format."""
