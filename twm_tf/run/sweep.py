"""A grid of training runs (games x seeds x config variants) as Ray Tune trials.

Each trial is one `launch.train` process on its own run directory, `<root>/<variant>/<game>-<seed>`,
so everything a single run guarantees holds per trial: a finished directory (one with eval.json)
is skipped, an interrupted one resumes from its last checkpoint, and a failed attempt that Ray
retries (`max_failures`) resumes too. Ray only places the processes on CPUs/GPUs, locally or on a
cluster; the run directories are the grid's state, so a sweep is re-run, not restored.
"""

import dataclasses
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Sequence

from twm_tf import config as config_lib
from twm_tf import config_flags
from twm_tf.run import run_dir as run_dir_lib

BASE = "base"  # Name of the variant without changes.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of the grid and the command line that trains it."""

    variant: str
    game: str
    seed: int
    run_dir: str  # absolute
    args: tuple[str, ...]  # launch.train's flags

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.game.lower()}-{self.seed}"

    @property
    def log(self) -> str:
        """Where every attempt's output is appended."""
        return self.run_dir + ".log"

    def finished(self) -> bool:
        return os.path.isfile(run_dir_lib.path(self.run_dir, run_dir_lib.EVAL))


def parse_variant(text: str) -> tuple[str, dict]:
    """'NAME[:FIELD=VALUE[:FIELD=VALUE...]]' -> (NAME, {field: parsed value}).

    Raises:
      ValueError: naming --variant and what is expected.
    """
    name, *assignments = text.split(":")
    if not name or "/" in name:
        raise ValueError(f"--variant={text!r}: expected NAME[:FIELD=VALUE...], NAME without '/'")
    changes = {}
    for assignment in assignments:
        field, sep, value = assignment.partition("=")
        if not sep:
            raise ValueError(f"--variant={text!r}: expected FIELD=VALUE, got {assignment!r}")
        try:
            changes[field] = config_flags.parse_field(field, value)
        except ValueError as error:
            raise ValueError(f"--variant={text!r}: {error}") from None
    return name, changes


def grid(
    *,
    root: str,
    preset: str,
    games: Sequence[str],
    seeds: Sequence[int],
    variants: dict[str, dict],
    common: dict,
) -> list[Trial]:
    """Every trial of the grid, its config validated up front.

    Args:
      root: directory of the grid's run directories.
      preset: launch.train's --preset.
      games, seeds: the grid's axes.
      variants: name -> config changes of that variant (e.g. {"base": {}}).
      common: config changes of every trial (the sweep's own --config.<field> flags).

    Raises:
      ValueError: naming the first field that makes a trial's config invalid.
    """
    root = os.path.abspath(root)
    trials = []
    for variant, changes in variants.items():
        fields = {**common, **changes}
        for game in games:
            for seed in seeds:
                config_lib.preset(preset, **fields, game=game, seed=seed)  # validates
                run_dir = os.path.join(root, variant, f"{game.lower()}-{seed}")
                args = (
                    f"--preset={preset}",
                    f"--game={game}",
                    f"--seed={seed}",
                    f"--run_dir={run_dir}",
                    *config_flags.field_flags(fields),
                )
                trials.append(Trial(variant, game, seed, run_dir, args))
    return trials


def train_trial(trial: Trial, threads: int) -> dict:
    """Runs (or resumes) one trial's launch.train to the end; returns its final evaluation.

    Output of every attempt is appended to `trial.log`, after a header line.

    Raises:
      RuntimeError: launch.train failed; Ray retries the trial up to max_failures times.
    """
    os.makedirs(os.path.dirname(trial.run_dir), exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO, env.get("PYTHONPATH")]))
    env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = str(threads)
    command = [sys.executable, "-m", "launch.train", *trial.args]
    with open(trial.log, "a") as log:
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        log.write(f"=== attempt started {started}: {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.call(
            command, cwd=_REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    if returncode != 0:
        raise RuntimeError(f"{trial.name}: launch.train exited with {returncode}; see {trial.log}")
    return final_result(trial)


def final_result(trial: Trial) -> dict:
    """The metrics of a finished trial's eval.json."""
    with open(run_dir_lib.path(trial.run_dir, run_dir_lib.EVAL)) as f:
        result = json.load(f)
    return {"mean": float(result["mean"]), "episodes": len(result["scores"])}


def run(
    trials: Sequence[Trial],
    *,
    root: str,
    address: str | None,
    cpus_per_run: float,
    gpus_per_run: float,
    max_failures: int,
    num_cpus: int | None = None,
) -> dict[str, dict]:
    """Runs the unfinished trials as Ray Tune trials; returns {trial name: outcome}.

    An outcome is {"status": "skipped" | "done" | "failed", ...} with the final "mean" of
    finished trials and the "error" of failed ones.

    Args:
      trials: from `grid`.
      root: the grid's directory; Ray Tune's own records go to <root>/ray_results.
      address: a Ray cluster to submit to (its nodes must share the run directories' file
        system), or None for a local Ray on this machine.
      cpus_per_run, gpus_per_run: Ray resources per trial (fractions allowed).
      max_failures: retries of a failed trial; each retry resumes its run directory.
      num_cpus: CPUs of the local Ray (default: all of this machine's).
    """
    outcomes, pending = {}, {}
    for trial in trials:  # One look at each run directory decides: skip it or run it.
        if trial.finished():
            outcomes[trial.name] = {"status": "skipped", **final_result(trial)}
        else:
            pending[trial.name] = trial
    if not pending:
        return outcomes
    outcomes.update(
        _run_on_ray(
            pending,
            root=root,
            address=address,
            cpus_per_run=cpus_per_run,
            gpus_per_run=gpus_per_run,
            max_failures=max_failures,
            num_cpus=num_cpus,
        )
    )
    return outcomes


def _run_on_ray(
    pending: dict[str, Trial],
    *,
    root: str,
    address: str | None,
    cpus_per_run: float,
    gpus_per_run: float,
    max_failures: int,
    num_cpus: int | None,
) -> dict[str, dict]:
    """Runs `pending` ({trial name: Trial}) as Ray Tune trials; returns their outcomes (`run`)."""
    import ray
    from ray import tune

    if address:
        ray.init(address=address)
    else:
        # Ray runs workers at niceness 15 by default; a local sweep's trials are the work itself.
        os.environ.setdefault("RAY_worker_niceness", "0")
        # Trials exchange nothing through Ray's object store: keep it at its minimum.
        ray.init(num_cpus=num_cpus, object_store_memory=80 * 1024**2, include_dashboard=False)
    threads = max(1, int(cpus_per_run))

    def trainable(params):
        tune.report(train_trial(pending[params["trial"]], threads))

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus_per_run, "gpu": gpus_per_run}),
        param_space={"trial": tune.grid_search(sorted(pending))},
        run_config=tune.RunConfig(
            name=f"sweep-{stamp}",
            storage_path=os.path.join(os.path.abspath(root), "ray_results"),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            verbose=1,
        ),
    )
    outcomes = {}
    try:
        for result in tuner.fit():
            name = result.config["trial"]
            if result.error is not None:
                outcomes[name] = {"status": "failed", "error": str(result.error).splitlines()[-1]}
            else:
                outcomes[name] = {"status": "done", **final_result(pending[name])}
    finally:
        ray.shutdown()
    return outcomes
