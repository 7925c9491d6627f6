"""Replay: the buffer of real experience, its balanced sampling and its file format."""
