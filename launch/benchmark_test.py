"""launch.benchmark as a user runs it: a debug-size world-model section with --profile_dir."""

import glob
import json
import os
import subprocess
import sys

from absl.testing import absltest


class BenchmarkTest(absltest.TestCase):
    def test_profile_dir_holds_a_profile_per_section(self):
        profile_dir = self.create_tempdir().full_path
        args = ["--preset=debug", "--only=world_model", "--repeats=1"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        out = subprocess.run(
            [sys.executable, "-m", "launch.benchmark", *args, f"--profile_dir={profile_dir}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=True,
        )
        results = json.loads(out.stdout)
        self.assertEqual(results["profile_dir"], profile_dir)
        self.assertGreater(results["world_model_update_s"], 0.0)
        self.assertNotIn("imagination_and_update_s", results)  # --only keeps to its section
        profiles = glob.glob(f"{profile_dir}/world_model/plugins/profile/*/*.xplane.pb")
        self.assertLen(profiles, 1)
        self.assertGreater(os.path.getsize(profiles[0]), 0)
        self.assertEqual(os.listdir(profile_dir), ["world_model"])


if __name__ == "__main__":
    absltest.main()
