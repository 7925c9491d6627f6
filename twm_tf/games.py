"""The 26 Atari 100k games and their reference scores, from the shipped atari100k.csv."""

import csv
import functools
import os

_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "atari100k.csv")


@functools.cache
def reference_scores() -> dict[str, dict[str, float]]:
    """Per-game random, human and published scores, in the table's order."""
    with open(_TABLE) as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {row.pop("game"): {k: float(v) for k, v in row.items()} for row in rows}


GAMES = tuple(reference_scores())  # As named in ALE/<game>-v5.


def human_normalized(game: str, score: float) -> float:
    """(score - random) / (human - random), with the table's random and human scores."""
    table = reference_scores()
    if game not in table:
        raise ValueError(f"no reference scores for game {game!r}; known: {sorted(table)}")
    ref = table[game]
    return (score - ref["random"]) / (ref["human"] - ref["random"])
