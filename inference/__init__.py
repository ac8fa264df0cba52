"""Estimators on spike trains: GLMCC and the triplet map (DESIGN.md, "Inference").

Built by the GLMCC and triplet-map issues; the filter core does not depend on it.
"""
