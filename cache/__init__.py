"""The cached HDF5 tensor store (``cache/*.h5``) and its reader/writer (``cache.store``)."""
