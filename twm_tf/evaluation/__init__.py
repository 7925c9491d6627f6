"""Evaluation: the real-game protocol, learning curves and the multi-run report."""
