"""Tracking pipeline: sources, person detectors, the per-frame pipeline, outputs and the command line."""
