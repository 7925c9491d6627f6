"""How fresh are the windows that balanced sampling draws? (the small preset's replay_tau)

Simulates twm_tf's start sampling (softmax(-visits / tau), Gumbel top-k) over a whole run and
reports, over the last 20 % of it, the median age (env steps) of the drawn starts and the share
drawn from the newest 5,000 and 1,000 steps. Run from the repository root (~2 min; the output is
in replay_recency.txt):

    PYTHONPATH=. .venv/bin/python docs/results/small/replay_recency.py
"""

import numpy as np

from twm_tf.replay import sampling


def recency(total, prefill, env_steps_per_train_step, starts_per_step, tau, seed=0):
    rng = np.random.default_rng(seed)
    visits = np.zeros(total)
    ages, train_steps, size = [], 0, prefill
    while size < total:
        train_steps += 1
        size = min(total, prefill + int(train_steps * env_steps_per_train_step))
        drawn = sampling.sample_without_replacement(
            -visits[:size] / tau, num_samples=starts_per_step, rng=rng
        )
        visits[drawn] += 1
        if size > 0.8 * total:
            ages.append(size - drawn)
    ages = np.concatenate(ages)
    return float(np.median(ages)), float(np.mean(ages < 5000)), float(np.mean(ages < 1000))


if __name__ == "__main__":
    cases = [
        ("paper: a train step per 0.76 env steps, N = 100, tau = 20", (0.76, 100, 20.0)),
        ("small: a train step per 24 env steps, N = 32, tau = 20", (24.0, 32, 20.0)),
        ("small: a train step per 24 env steps, N = 32, tau = 0.2", (24.0, 32, 0.2)),
    ]
    for name, args in cases:
        median, last_5k, last_1k = recency(100_000, 5_000, *args)
        print(f"{name}: median age {median:,.0f}, newest 5k {last_5k:.0%}, newest 1k {last_1k:.0%}")
