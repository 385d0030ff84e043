"""Data preparation: official benchmark files -> NAR cell-information JSON -> HDF5 tensor store."""
