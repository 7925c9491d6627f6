"""Balanced replay sampling in NumPy: p_i = softmax(-v_i / tau), drawn without replacement."""

import numpy as np


def start_probabilities(visits: np.ndarray, *, tau: float) -> np.ndarray:
    """Balanced sampling distribution p_i = softmax(-v_i / tau) (paper Eq. 11).

    Args:
        visits: [n] how often each start was drawn.
        tau: temperature > 0; inf gives the uniform distribution.

    Returns:
        [n] float64 probabilities.
    """
    logits = -np.asarray(visits, np.float64) / tau
    # Shifting by the max keeps exp() in range however large the counts grow.
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def sample_without_replacement(
    logits: np.ndarray, *, num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws `num_samples` distinct indices from softmax(logits), in draw order.

    Gumbel-top-k (Kool et al. 2019): the k largest of logits_i + Gumbel noise are distributed
    exactly like k successive draws without replacement from softmax(logits). The noise is
    -log(E) with E ~ Exp(1), which is cheaper than numpy's gumbel(); no exp() of the logits is
    needed, so large logits cannot overflow. O(n) time.

    Args:
        logits: [n] unnormalized log-probabilities.
        num_samples: k <= n.
        rng: the random number generator to advance.

    Returns:
        [k] int64 indices; the first is a draw from softmax(logits), the second a draw from the
        rest, and so on.
    """
    num = len(logits)
    if not 0 < num_samples <= num:
        raise ValueError(f"cannot draw {num_samples} distinct samples from {num} candidates")
    # Largest logit - log(E) == smallest log(E) - logit.
    keys = np.log(rng.standard_exponential(num)) - logits
    chosen = np.argpartition(keys, num_samples - 1)[:num_samples]
    return chosen[np.argsort(keys[chosen])]
