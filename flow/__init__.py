"""Optical flow backends and warping of points through a flow field."""
