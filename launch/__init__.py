"""absl binaries over twm_tf (`python -m launch.<name>`).

Importing this package, which `python -m launch.<name>` does before the binary's own imports,
turns TensorFlow's oneDNN CPU kernels on unless TF_ENABLE_ONEDNN_OPTS is already set: TensorFlow
enables them by default only on CPUs with AVX-512 VNNI/bf16/AMX, yet on an AVX2-only CPU they made
the world-model update 2.2x faster (README "Benchmarks"). TensorFlow reads the variable once, when
it is imported, so it must be set here rather than in twm_tf.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
