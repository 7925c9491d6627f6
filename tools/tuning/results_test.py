import contextlib
import json
import os
from unittest import mock

from absl.testing import absltest
import tensorflow as tf

from tools.tuning import results


@contextlib.contextmanager
def _threads(api: int, env: str | None, cores: int = 6):
    """TensorFlow's API reporting `api` threads, TF_NUM_INTRAOP_THREADS = `env`, `cores` cores."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    if env is not None:
        environ["TF_NUM_INTRAOP_THREADS"] = env
    with (
        mock.patch.object(
            tf.config.threading, "get_intra_op_parallelism_threads", return_value=api
        ),
        mock.patch.dict(os.environ, environ, clear=True),
        mock.patch.object(os, "cpu_count", return_value=cores),
    ):
        yield


class IntraOpThreadsTest(absltest.TestCase):
    def test_the_environment_variable_counts_when_the_api_reports_zero(self):
        with _threads(api=0, env="1"):
            self.assertEqual(results.intra_op_threads(), 1)

    def test_the_api_wins_when_it_set_the_threads(self):
        with _threads(api=3, env="1"):
            self.assertEqual(results.intra_op_threads(), 3)

    def test_unset_means_one_thread_per_core(self):
        with _threads(api=0, env=None):
            self.assertEqual(results.intra_op_threads(), 6)

    def test_a_zero_environment_variable_means_one_thread_per_core(self):
        with _threads(api=0, env="0"):
            self.assertEqual(results.intra_op_threads(), 6)


class WriteTest(absltest.TestCase):
    def test_writes_the_result_with_its_threads(self):
        path = os.path.join(self.create_tempdir().full_path, "probe.json")
        with mock.patch.object(results, "intra_op_threads", return_value=2):
            results.write(path, {"game": "Boxing", "log": [{"updates": 0}]})
        with open(path) as f:
            self.assertEqual(
                json.load(f), {"game": "Boxing", "log": [{"updates": 0}], "threads": 2}
            )


class MeasuredUpdatesTest(absltest.TestCase):
    def test_measures_at_the_start_every_k_and_after_the_last_update(self):
        done = []
        log = results.measured_updates(5, 2, lambda i: {"seen": list(done), "at": i}, done.append)
        self.assertEqual(done, [0, 1, 2, 3, 4])
        self.assertEqual([entry["updates"] for entry in log], [0, 2, 4, 5])
        self.assertEqual([entry["seen"] for entry in log], [[], [0, 1], [0, 1, 2, 3], done])
        self.assertEqual([entry["at"] for entry in log], [0, 2, 4, 5])
        self.assertTrue(all(entry["seconds"] >= 0 for entry in log))


if __name__ == "__main__":
    absltest.main()
