"""Observations: spike trains, calcium ΔF/F, their Zarr stores and forward operators.

The package is built by the observations issue (DESIGN.md, "Observations"); the filter
core does not depend on it.
"""
