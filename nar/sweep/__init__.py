"""``nar-cli sweep``: resumable experiment grids over the train / test / sample code.

``spec``   the YAML spec (dataclasses, validation: unknown keys, paths, models, empty grids)
``grid``   expands a spec into cells, each named from a hash of its resolved settings
``cell``   runs one cell into a temporary folder and publishes it complete (or failed)
``runner`` backends: in-process, local worker processes (joblib loky), Ray; progress bar
``report`` tidy CSV, markdown mean +- std tables and PNG plots from the run directories
"""
