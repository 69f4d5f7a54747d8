"""The inference engines, one per module, registered by name in :mod:`ppgen.infer.engine`."""
