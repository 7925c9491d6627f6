"""Every row of the bad-input table (docs/robustness.md): one error line, exit 1, no change.

Each row runs a binary in a fresh process, as a user would, against fixture directories: a run
directory with a checkpoint (debug config), one with only a config, an empty one, and a run
directory another trainer holds.
"""

import contextlib
import os
import re
import subprocess
import sys
import tempfile

from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import run_lock
from twm_tf import testing
from twm_tf import world_model as world_model_lib
from twm_tf.analysis import restore
from twm_tf.models import actor_critic

# (binary, arguments, regex of the error line); {run}, {config_only}, {empty}, {locked}, {new}
# are fixture paths. Mirrors the table "Bad input" of docs/robustness.md.
ROWS = [
    ("train", "--run_dir={new} --game=Pongg", r"config.game must be one of the 26"),
    ("train", "--run_dir={new} --preset=huge", r"--preset=huge: value should be one of"),
    ("train", "--run_dir={new} --config.nope=1", r"Unknown command line flag 'config.nope'"),
    ("train", "--run_dir={new} --config.gamma=2", r"config.gamma must be in \[0, 1\], got 2.0"),
    ("train", "--run_dir={new} --config.seq_len=abc", r"--config.seq_len=abc: invalid literal"),
    ("train", "--run_dir={new} --config.replay_tau=-1", r"config.replay_tau must be > 0"),
    ("train", "--run_dir={new} --config.wm_batch=0", r"config.wm_batch must be > 0, got 0"),
    ("train", "--run_dir={new} --config.encoder_channels=8,16", r"encoder_channels must be 4"),
    ("train", "--run_dir={new} --config.dyn_heads=3", r"dyn_heads must be a divisor of dyn_width"),
    ("train", "--run_dir={new} --config.precision=float16", r"precision must be one of"),
    ("train", "--run_dir={new} --config.prefill_steps=200000", r"prefill_steps must be <= env_st"),
    ("train", "--run_dir={new} --eval_episodes=0", r"config.eval_episodes must be > 0, got 0"),
    ("train", "--game=Pong", r"Flag --run_dir must have a value other than None"),
    ("train", "--run_dir={new} --game=Pong --config.game=Boxing", r"disagree; give one of them"),
    ("train", "--run_dir={run} --preset=debug --config.seq_len=3", r"another config \(seq_len"),
    ("train", "--run_dir={run} --preset=debug --game=Boxing", r"another config \(game"),
    ("train", "--run_dir={locked} --preset=debug", r"being trained by another process \(pid"),
    ("evaluate", "--run_dir={empty}", r"no config.json in .*: not a launch.train run directory"),
    ("evaluate", "--run_dir={config_only}", r"no checkpoint in .*checkpoints"),
    ("evaluate", "--run_dir={run} --episodes=0", r"flag --episodes=0: 0 is not a positive integer"),
    (
        "export_policy",
        "--run_dir={empty}",
        r"no config.json in .*: not a launch.train run directory",
    ),
    ("export_policy", "--run_dir={config_only}", r"no checkpoint in .*checkpoints"),
    ("play", "--policy={run}", r"not an exported policy \(no saved_model.pb\)"),
    ("play", "--policy={empty} --runtime=tflite", r"value should be one of <saved_model\|litert>"),
    ("play", "--policy={empty} --episodes=0", r"flag --episodes=0: 0 is not a positive integer"),
    ("report", "--runs={empty}/* --out={new}", r"--runs=.* matches no run directory"),
    ("report", "--published=NoSuchAgent --out={new}", r"unknown published agent 'NoSuchAgent'"),
    ("report", "--out={new}", r"Exactly one of \(runs, published\) must have a value"),
    ("plot_run", "--run_dir={empty}", r"not a run directory \(no config.json\)"),
    ("world_model_eval", "--run_dir={empty}", r"no config.json in .*: not a launch.train run"),
    ("imagine", "--run_dir={config_only} --out={new}", r"no checkpoint in .*checkpoints"),
    ("sweep", "--games=Pong", r"Flag --root must have a value other than None"),
    ("sweep", "--root={new} --seeds=0,x", r"--seeds must be comma-separated ints"),
    ("sweep", "--root={new} --variant=u:tau=inf", r"--variant='u:tau=inf': config has no field"),
    ("sweep", "--root={new} --variant=u:gamma", r"expected FIELD=VALUE, got 'gamma'"),
    ("sweep", "--root={new} --games=Pongg", r"config.game must be one of the 26"),
]

# TensorFlow's C++ start-up lines, which Python cannot turn off (docs/training.md), and the
# emulator's banner, printed by ale-py when it loads.
_STARTUP = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]\d{4} |A\.L\.E: Arcade|\[Powered by Stella\])"
)


def _snapshot(root: str) -> dict[str, tuple[int, int]]:
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            info = os.stat(path)
            files[path] = (info.st_size, info.st_mtime_ns)
    return files


class BadInputTest(testing.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        config = config_lib.debug(game="Pong")
        world_model = world_model_lib.WorldModel(config, num_actions=6)
        world_model.build()
        cls.paths = {
            name: os.path.join(cls.root, name)
            for name in ("run", "config_only", "empty", "locked", "new")
        }
        restore.write_run(
            cls.paths["run"], config, world_model, actor_critic.ActorCritic(config, 6)
        )
        config.save(cls.paths["config_only"])
        config.save(cls.paths["locked"])
        os.makedirs(cls.paths["empty"])
        # This process holds "locked" as a live trainer would, for the whole test.
        cls.lock = contextlib.ExitStack()
        cls.lock.enter_context(run_lock.hold(cls.paths["locked"]))

    @classmethod
    def tearDownClass(cls):
        cls.lock.close()
        super().tearDownClass()

    def _run(self, binary: str, args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        command = [sys.executable, "-m", f"launch.{binary}", *args.format(**self.paths).split()]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    def test_every_row(self):
        for binary, args, pattern in ROWS:
            with self.subTest(binary=binary, args=args):
                before = _snapshot(self.root)
                result = self._run(binary, args)
                lines = [
                    line
                    for line in result.stderr.splitlines()
                    if line.strip() and not _STARTUP.match(line)
                ]
                self.assertNotEqual(result.returncode, 0, result.stderr)
                self.assertLessEqual(len(lines), 2, "\n".join(lines))  # absl adds a help hint.
                self.assertRegex(lines[0] if lines else "", pattern)
                self.assertEqual(_snapshot(self.root), before, "a bad input changed files")
                self.assertFalse(os.path.exists(self.paths["new"]))


if __name__ == "__main__":
    absltest.main()
