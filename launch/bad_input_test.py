"""Every row of the bad-input table (docs/robustness.md): one error line, exit 1, no change.

Rows run against fixture directories (below) as a user would run them, but one process per binary
runs all of that binary's rows (launch/in_process.py): a fresh interpreter per row is not what
most rows test, and importing TensorFlow once per row took most of the test's time. The rows of
FRESH run as separate processes too, the way a user runs them, to show the two agree.

A full disk: inside a private user and mount namespace (`unshare --user --map-root-user --mount`)
a 1 MiB tmpfs is mounted on {full} and filled but for 8 KiB; where the machine cannot do that,
writes of the rows that use {full} are limited to 8 KiB per file (RLIMIT_FSIZE) instead.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import NamedTuple

from absl.testing import absltest

from launch import in_process
from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.deploy import export
from twm_tf.dev import testing
from twm_tf.models import actor_critic
from twm_tf.run import restore
from twm_tf.run import run_dir as run_dir_lib
from twm_tf.run import run_lock


class Row(NamedTuple):
    binary: str
    args: str  # {name} is the fixture path of that name.
    error: str  # A regex the error line must match.


_FULL = r"failed: (No space left on device|File too large); nothing was"
# Fixtures: {run} a run directory with a checkpoint (debug preset, Pong), {config_only} one
# without, {finished} one with episodes.csv, evals.csv and eval.json, {empty} an empty directory,
# {locked} a run directory a live trainer holds, {new} a path that must not be created, {file} a
# regular file, {full} a full disk. Damaged run directories (a copy of {run} or {finished} with one
# file damaged): {bad_config} (config.json cut in half), {empty_config} (config.json empty),
# {odd_config} (config.json's seed a string), {bad_checkpoint} (ckpt-1.index cut),
# {bad_evals} (a non-number in evals.csv), {bad_eval} (eval.json cut), {bad_episodes} (a line of
# episodes.csv with two values). {theirs} a directory holding another program's report.md,
# dream.json and world_model_eval.json, {their_png} another program's PNG, {video} an existing
# .mp4. Exports: {policy} a working one (debug preset, Pong), {bad_pb} its saved_model.pb
# overwritten, {no_metadata} without assets/metadata.json, {boxing} with metadata saying Boxing.
ROWS = [
    Row("train", "--run_dir={new} --game=Pongg", r"config.game must be one of the 26"),
    Row("train", "--run_dir={new} --preset=huge", r"--preset=huge: value should be one of"),
    Row("train", "--run_dir={new} --config.nope=1", r"Unknown command line flag 'config.nope'"),
    Row("train", "--run_dir={new} --config.gamma=2", r"config.gamma must be in \[0, 1\], got 2.0"),
    Row("train", "--run_dir={new} --config.seq_len=abc", r"--config.seq_len=abc: invalid literal"),
    Row("train", "--run_dir={new} --config.replay_tau=-1", r"config.replay_tau must be > 0"),
    Row("train", "--run_dir={new} --config.wm_batch=0", r"config.wm_batch must be > 0, got 0"),
    Row("train", "--run_dir={new} --config.encoder_channels=8,16", r"encoder_channels must be 4"),
    Row(
        "train", "--run_dir={new} --config.dyn_heads=3", r"dyn_heads must be a divisor of dyn_width"
    ),
    Row("train", "--run_dir={new} --config.precision=float16", r"precision must be one of"),
    Row(
        "train", "--run_dir={new} --config.prefill_steps=200000", r"prefill_steps must be <= env_st"
    ),
    Row("train", "--run_dir={new} --eval_episodes=0", r"config.eval_episodes must be > 0, got 0"),
    Row("train", "--game=Pong", r"Flag --run_dir must have a value other than None"),
    Row("train", "--run_dir={new} --game=Pong --config.game=Boxing", r"disagree; give one of them"),
    Row("train", "--run_dir={run} --preset=debug --config.seq_len=3", r"another config \(seq_len"),
    Row("train", "--run_dir={run} --preset=debug --game=Boxing", r"another config \(game"),
    Row("train", "--run_dir={locked} --preset=debug", r"being trained by another process \(pid"),
    Row("evaluate", "--run_dir={empty}", r"no config.json in .*: not a launch.train run directory"),
    Row("evaluate", "--run_dir={config_only}", r"no checkpoint in .*checkpoints"),
    Row(
        "evaluate",
        "--run_dir={run} --episodes=0",
        r"flag --episodes=0: 0 is not a positive integer",
    ),
    Row(
        "export_policy",
        "--run_dir={empty}",
        r"no config.json in .*: not a launch.train run directory",
    ),
    Row("export_policy", "--run_dir={config_only}", r"no checkpoint in .*checkpoints"),
    Row("play", "--policy={run}", r"not an exported policy \(no saved_model.pb\)"),
    Row(
        "play", "--policy={empty} --runtime=tflite", r"value should be one of <saved_model\|litert>"
    ),
    Row("play", "--policy={empty} --episodes=0", r"flag --episodes=0: 0 is not a positive integer"),
    Row("report", "--runs={empty}/* --out={new}", r"--runs=.* matches no run directory"),
    Row("report", "--published=NoSuchAgent --out={new}", r"unknown published agent 'NoSuchAgent'"),
    Row("report", "--out={new}", r"Exactly one of \(runs, published\) must have a value"),
    Row("plot_run", "--run_dir={empty}", r"not a run directory \(no config.json\)"),
    Row("world_model_eval", "--run_dir={empty}", r"no config.json in .*: not a launch.train run"),
    Row("imagine", "--run_dir={config_only} --out={new}", r"no checkpoint in .*checkpoints"),
    Row("sweep", "--games=Pong", r"Flag --root must have a value other than None"),
    Row("sweep", "--root={new} --seeds=0,x", r"--seeds must be comma-separated ints"),
    Row("sweep", "--root={new} --variant=u:tau=inf", r"--variant='u:tau=inf': config has no field"),
    Row("sweep", "--root={new} --variant=u:gamma", r"expected FIELD=VALUE, got 'gamma'"),
    Row("sweep", "--root={new} --games=Pongg", r"config.game must be one of the 26"),
    # Second round: files in the way, damaged files, out-of-range counts, full disks.
    Row("train", "--run_dir={file} --preset=debug", r"--run_dir=.* is a file, not a directory"),
    Row("train", "--run_dir=/proc/twm_run --preset=debug", r"cannot be created: No such file"),
    Row(
        "train", "--run_dir={bad_config} --preset=debug", r"config .*config.json is not valid JSON"
    ),
    Row("train", "--run_dir={new} --preset=debug --seed=-1", r"--seed=-1: -1 is not a non-negat"),
    Row("train", "--run_dir={new} --preset=debug --config.seed=-1", r"config.seed must be >= 0"),
    Row("evaluate", "--run_dir={bad_config}", r"config .*config.json is not valid JSON \(\w"),
    Row("evaluate", "--run_dir={bad_checkpoint}", r"checkpoint .*ckpt-1 cannot be read"),
    Row("evaluate", "--run_dir={run} --seed=-3", r"--seed=-3: -3 is not a non-negative"),
    Row("evaluate", "--run_dir={empty_config}", r"config .*config.json is empty \(a half-wri"),
    Row("train", "--run_dir={odd_config} --preset=debug", r"config.seed must be an int, got '0'"),
    Row("export_policy", "--run_dir={run} --output={file}", r"--output=.* is a file, not an"),
    Row("export_policy", "--run_dir={run} --output={theirs}", r"holds no export of launch.export"),
    Row("export_policy", "--run_dir={bad_checkpoint} --output={new}", r"ckpt-1 cannot be read"),
    Row(
        "export_policy",
        "--run_dir={run} --output={full}/policy",
        r"export .* failed \((No space|File too)",
    ),
    Row("export_policy", "--run_dir={bad_config}", r"config .*config.json is not valid JSON"),
    Row("export_policy", "--run_dir={empty_config}", r"config .*config.json is empty"),
    Row("play", "--policy={bad_pb}", r"--policy=.* is a damaged or partial export \(.*saved_mod"),
    Row("play", "--policy={no_metadata}", r"is a damaged or partial export \(.*metadata.json"),
    Row("play", "--policy={boxing} --runtime=litert", r"acts with \['NOOP'.*Boxing's actions"),
    Row("play", "--policy={policy} --video={video}", r"--video=.* exists; play overwrites nothin"),
    Row("play", "--policy={policy} --video={run}/clip.avi", r"expected a file name ending in .mp4"),
    Row("play", "--policy={policy} --video=/proc/twm/clip.gif", r"cannot write in /proc/twm"),
    Row("play", "--policy={policy} --max_steps=-1", r"--max_steps=-1: -1 is not a positive"),
    Row("play", "--policy={policy} --seed=-1", r"--seed=-1: -1 is not a non-negative"),
    Row(
        "play",
        "--policy={policy} --runtime=litert --max_steps=150 --video={full}/clip.gif",
        r"writing --video=.* failed \(.*(No space left|File too large).*nothing was written",
    ),
    Row("report", "--runs={bad_evals} --out={new}", r"evaluation log .*evals.csv line 2: mean mu"),
    Row("report", "--runs={bad_eval} --out={new}", r"final evaluation .*eval.json is not valid J"),
    Row("report", "--runs={bad_config} --out={new}", r"config .*config.json is not valid JSON"),
    Row("report", "--runs={finished} --out={theirs}", r"holds report.md, which is not an earlier"),
    Row("report", "--runs={finished} --out={file}", r"--out=.* is a file, not a directory"),
    Row("report", "--runs={finished} --out={full}/report", _FULL),
    Row("report", "--published=TWM --resamples=0 --out={new}", r"--resamples=0: 0 is not a pos"),
    Row("report", "--published=TWM --out=/proc/twm_report", r"cannot write in /proc"),
    Row("plot_run", "--run_dir={bad_episodes}", r"episode log .*episodes.csv line 2: expected 3"),
    Row("plot_run", "--run_dir={bad_config}", r"config .*config.json is not valid JSON"),
    Row("plot_run", "--run_dir={bad_eval}", r"final evaluation .*eval.json is not valid JSON"),
    Row("plot_run", "--run_dir={finished} --out={their_png}", r"exists and is a file this binar"),
    Row("plot_run", "--run_dir={finished} --out={run}/curves.txt", r"expected a file name endin"),
    Row("plot_run", "--run_dir={finished} --window=0", r"--window=0: 0 is not a positive"),
    Row("plot_run", "--run_dir={finished} --out={full}/curves.png", _FULL),
    Row("world_model_eval", "--run_dir={bad_config}", r"config .*config.json is not valid JSON"),
    Row("world_model_eval", "--run_dir={run} --recorded=Breakout", r"the run plays Pong"),
    Row("world_model_eval", "--run_dir={run} --steps=-5", r"--steps=-5: -5 is not integer >= 2"),
    Row("world_model_eval", "--run_dir={run} --horizon=0", r"--horizon=0: 0 is not a positive"),
    Row("world_model_eval", "--run_dir={run} --episodes=0", r"--episodes=0: 0 is not a posit"),
    Row("world_model_eval", "--run_dir={run} --out={theirs}", r"holds world_model_eval.json, wh"),
    Row("world_model_eval", "--run_dir={run} --out={file}", r"--out=.* is a file, not a direct"),
    Row(
        "world_model_eval",
        "--run_dir={run} --recorded=Pong --horizon=2 --out={full}/analysis",
        _FULL,
    ),
    Row("imagine", "--run_dir={bad_config} --out={new}", r"config .*config.json is not valid JS"),
    Row("imagine", "--run_dir={run} --out={theirs}", r"holds dream.json, which is not an earlier"),
    Row("imagine", "--run_dir={run} --out={new} --steps=0", r"--steps=0: 0 is not a positive"),
    Row("imagine", "--run_dir={odd_config} --out={new}", r"config.seed must be an int, got '0'"),
    Row("imagine", "--run_dir={run} --out={new} --warmup=-1", r"--warmup=-1: -1 is not a non-n"),
    Row("sweep", "--root={new} --cpus_per_run=0", r"--cpus_per_run must be > 0 \(a trial"),
    Row("sweep", "--root={new} --num_cpus=1 --cpus_per_run=2", r"--num_cpus=1 holds no trial"),
    Row("sweep", "--root={file}", r"--root=.* is a file, not a directory"),
    Row("sweep", "--root=/proc/twm_grid", r"--root: cannot write in /proc"),
]
# Rows also run in a fresh process each, as a user runs them (their index in ROWS).
FRESH = [
    ROWS.index(row)
    for row in ROWS
    if row.args.startswith(("--run_dir={file}", "--policy={bad_pb}"))
]

# TensorFlow's C++ start-up lines, which Python cannot turn off (docs/training.md), and the
# emulator's banner, printed by ale-py when it loads, and LiteRT's line when it starts XNNPACK.
_STARTUP = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]\d{4} |A\.L\.E: Arcade|\[Powered by Stella\]"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)


_FREE = 8 * 1024  # Bytes left on the full disk, and the per-file limit where it cannot be mounted.
_TMPFS = 1024 * 1024


def _lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not _STARTUP.match(line)]


def _damage(path: str, keep: float = 0.5, text: str | None = None) -> None:
    """Cuts `path` to `keep` of its bytes, or replaces its contents with `text`."""
    if text is None:
        with open(path, "rb") as f:
            data = f.read()
        text = data[: int(len(data) * keep)]
    with open(path, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)


class BadInputTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        p = cls.paths = {
            name: os.path.join(cls.root, name)
            for name in (
                "run", "config_only", "finished", "empty", "locked", "new", "file", "full",
                "bad_config", "bad_checkpoint", "bad_evals", "bad_eval", "bad_episodes", "theirs",
                "their_png", "video", "policy", "bad_pb", "no_metadata", "boxing", "odd_config",
                "empty_config",
            )
        }  # fmt: skip
        p.update(
            file=p["file"] + ".txt", their_png=p["their_png"] + ".png", video=p["video"] + ".mp4"
        )
        config = config_lib.debug(game="Pong")
        world_model = world_model_lib.WorldModel(config, num_actions=6)
        world_model.build()
        ac = actor_critic.ActorCritic(config, 6)
        restore.write_run(p["run"], config, world_model, ac)
        for name in ("config_only", "locked", "finished"):
            config.save(p[name])
        for name in ("empty", "full", "theirs"):
            os.makedirs(p[name])
        for name in ("bad_config", "bad_checkpoint", "odd_config", "empty_config"):
            shutil.copytree(p["run"], p[name])
        _damage(run_dir_lib.path(p["bad_config"], run_dir_lib.CONFIG))
        _damage(run_dir_lib.path(p["empty_config"], run_dir_lib.CONFIG), keep=0.0)
        odd_path = run_dir_lib.path(p["odd_config"], run_dir_lib.CONFIG)
        with open(odd_path) as f:
            _damage(odd_path, text=f.read().replace('"seed": 0', '"seed": "0"'))
        _damage(os.path.join(p["bad_checkpoint"], "checkpoints", "ckpt-1.index"))
        for env_steps, episode, score in ((50, 1, -21.0), (120, 2, -20.0)):
            run_dir_lib.append_episode(p["finished"], env_steps, episode, score)
        run_dir_lib.log_evaluation(p["finished"], 100, [-21.0, -19.0], 0.01)
        with open(run_dir_lib.path(p["finished"], run_dir_lib.EVAL), "w") as f:
            json.dump({"game": "Pong", "mean": -20.0, "std": 1.0, "random_mean": -20.7}, f)
        for name in ("bad_evals", "bad_eval", "bad_episodes"):
            shutil.copytree(p["finished"], p[name])
        _damage(
            run_dir_lib.path(p["bad_evals"], "evals.csv"), text="100,-20,1,0.01,2\n200,x,1,0,2\n"
        )
        _damage(run_dir_lib.path(p["bad_eval"], run_dir_lib.EVAL))
        _damage(run_dir_lib.path(p["bad_episodes"], "episodes.csv"), text="50,1,-21\n120,2\n")
        for name in ("report.md", "dream.json", "world_model_eval.json", "notes.txt"):
            _damage(os.path.join(p["theirs"], name), text="another program's file\n")
        _damage(p["file"], text="a user's file\n")
        _damage(p["their_png"], text=b"\x89PNG\r\n\x1a\n another program's image")
        _damage(p["video"], text=b"a user's video")
        export.export_policy(
            p["policy"], world_model.observation, ac.actor, config, _PONG, jit_compile=False
        )
        for name in ("bad_pb", "no_metadata", "boxing"):
            shutil.copytree(p["policy"], p[name])
        _damage(os.path.join(p["bad_pb"], "saved_model.pb"), text=b"\x00 damaged")
        os.remove(os.path.join(p["no_metadata"], "assets", export.METADATA_FILE))
        metadata_path = os.path.join(p["boxing"], "assets", export.METADATA_FILE)
        with open(metadata_path) as f:
            metadata = json.load(f)
        _damage(metadata_path, text=json.dumps({**metadata, "game": "Boxing"}))
        # This process holds "locked" as a live trainer would, for the whole test.
        cls.lock = contextlib.ExitStack()
        cls.lock.enter_context(run_lock.hold(p["locked"]))
        cls.tmpfs = _can_mount_tmpfs()

    @classmethod
    def tearDownClass(cls):
        cls.lock.close()
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def _args(self, row: Row) -> list[str]:
        return row.args.format(**self.paths).split()

    def _env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def _check(self, row: Row, status: int, stderr: str, changed: list[str]) -> None:
        lines = _lines(stderr)
        self.assertEqual(status, 1, stderr)
        self.assertLessEqual(len(lines), 2, "\n".join(lines))  # absl adds a help hint.
        self.assertRegex(lines[0] if lines else "", row.error)
        self.assertEqual(changed, [], "a bad input changed files")
        self.assertFalse(os.path.exists(self.paths["new"]))

    def test_every_row(self):
        """Each binary's rows in one process of its own (launch/in_process.py)."""
        for binary in dict.fromkeys(row.binary for row in ROWS):
            rows = [row for row in ROWS if row.binary == binary]
            full = [i for i, row in enumerate(rows) if "{full}" in row.args]
            spec = {
                "binary": binary,
                "root": self.root,
                "rows": [self._args(row) for row in rows],
                "file_size_limit": None if self.tmpfs else _FREE,
                "limited": [] if self.tmpfs else full,
            }
            spec_path = os.path.join(tempfile.mkdtemp(), "spec.json")
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            command = [sys.executable, "-m", "launch.in_process", spec_path]
            if self.tmpfs:
                command = [*_TMPFS_COMMAND, self.paths["full"], *command]
            result = subprocess.run(
                command, capture_output=True, text=True, env=self._env(), timeout=1200
            )
            outcomes = [json.loads(line) for line in result.stdout.splitlines()]
            self.assertLen(outcomes, len(rows), result.stderr[-3000:])
            for row, outcome in zip(rows, outcomes):
                with self.subTest(binary=binary, args=row.args):
                    self._check(row, outcome["status"], outcome["stderr"], outcome["changed"])

    def test_fresh_processes_agree(self):
        """A few rows as a user runs them: a new interpreter per command line."""
        for index in FRESH:
            row = ROWS[index]
            with self.subTest(binary=row.binary, args=row.args):
                before = in_process.snapshot(self.root)
                result = subprocess.run(
                    [sys.executable, "-m", f"launch.{row.binary}", *self._args(row)],
                    capture_output=True,
                    text=True,
                    env=self._env(),
                    timeout=300,
                )
                after = in_process.snapshot(self.root)
                changed = sorted(
                    p for p in before.keys() | after.keys() if before.get(p) != after.get(p)
                )
                self._check(row, result.returncode, result.stderr, changed)


_PONG = ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")
# Mounts a tmpfs of _TMPFS bytes on the directory given next, filled but for _FREE bytes, in a
# private user and mount namespace, then runs the rest of the command line there.
_TMPFS_COMMAND = [
    "unshare",
    "--user",
    "--map-root-user",
    "--mount",
    "sh",
    "-c",
    f'mount -t tmpfs -o size={_TMPFS} tmpfs "$1" && head -c {_TMPFS - _FREE} /dev/zero >"$1/filler"'
    ' && shift && exec "$@"',
    "sh",
]


def _can_mount_tmpfs() -> bool:
    directory = tempfile.mkdtemp()
    try:
        result = subprocess.run(
            [*_TMPFS_COMMAND, directory, "test", "-f", os.path.join(directory, "filler")],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return result.returncode == 0


if __name__ == "__main__":
    absltest.main()
