"""launch.dream as a user runs it: a recorded dream without a window, and its one-line errors."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import imageio
from absl.testing import absltest

from twm_tf import config as config_lib
from twm_tf import world_model as world_model_lib
from twm_tf.models import actor_critic
from twm_tf.run import restore

# TensorFlow's C++ start-up lines and ale-py's banner, which Python cannot turn off.
_STARTUP = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]\d{4} |A\.L\.E: |\[Powered by)"
)


class DreamBinaryTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        """A Pong debug-preset run dir (random weights) and one without a checkpoint."""
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        config = config_lib.debug(game="Pong")
        wm = world_model_lib.WorldModel(config, 6)
        wm.build()
        cls.run_dir = os.path.join(cls.root, "run")
        restore.write_run(cls.run_dir, config, wm, actor_critic.ActorCritic(config, 6))
        cls.config_only = os.path.join(cls.root, "config_only")
        config.save(cls.config_only)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root)

    def dream(self, *args: str) -> subprocess.CompletedProcess:
        """Runs the binary without a display, as on a server or in CI."""
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SDL_VIDEODRIVER")}
        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        return subprocess.run(
            [sys.executable, "-m", "launch.dream", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    def assert_one_line_error(self, out: subprocess.CompletedProcess, pattern: str) -> None:
        lines = [line for line in out.stderr.splitlines() if line and not _STARTUP.match(line)]
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertLen(lines, 1, out.stderr)
        self.assertRegex(lines[0], "^dream: " + pattern)

    def test_agent_dream_beside_the_real_game_records_a_video_without_a_window(self):
        video = os.path.join(self.create_tempdir().full_path, "dream.gif")
        args = ["--input=agent", "--steps=4", "--side_by_side", f"--video={video}"]
        out = self.dream(f"--run_dir={self.run_dir}", *args)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("4 dream steps, predicted return", out.stdout)
        frames = imageio.mimread(video)
        self.assertLen(frames, 5)  # the start and 4 steps
        self.assertGreater(frames[0].shape[1], 2 * 256)  # real, dream and the panel

    def test_keyboard_without_a_display(self):
        out = self.dream(f"--run_dir={self.run_dir}", "--input=user")
        self.assert_one_line_error(out, r"no display to open a window on .*--input=agent --video")

    def test_run_dir_without_a_checkpoint(self):
        video = os.path.join(self.create_tempdir().full_path, "dream.mp4")
        out = self.dream(f"--run_dir={self.config_only}", "--input=agent", f"--video={video}")
        self.assert_one_line_error(out, r"no checkpoint in .*checkpoints")
        self.assertFalse(os.path.exists(video))

    def test_side_by_side_needs_a_real_game(self):
        video = os.path.join(self.create_tempdir().full_path, "dream.mp4")
        args = ["--input=agent", "--start=recorded", "--side_by_side", f"--video={video}"]
        out = self.dream(f"--run_dir={self.run_dir}", *args)
        self.assert_one_line_error(out, r"side_by_side needs start='game'")

    def test_an_existing_video_is_not_overwritten(self):
        video = self.create_tempfile("mine.gif", content="not a video").full_path
        out = self.dream(f"--run_dir={self.run_dir}", "--input=agent", f"--video={video}")
        self.assert_one_line_error(out, r"--video=.*mine.gif exists; dream overwrites nothing")
        with open(video) as f:
            self.assertEqual(f.read(), "not a video")


if __name__ == "__main__":
    absltest.main()
