"""Helpers shared by the tests: real models with random weights, artifacts on disk, the shared/ fixtures."""
