#!/usr/bin/env bash
# Idempotent setup: .venv with the pinned packages, Bazel (Debian bazel-bootstrap) and g++ if
# missing, and the fused attention kernel.
# Usage: ./setup.sh            (safe to re-run; does nothing that is already done)
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x .venv/bin/python3 ]]; then
  python3 -m venv .venv
fi
# The stamp holds the requirements' hash, so changing a pin reinstalls.
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  # TFP imports tf_keras lazily; its metadata names the full `tensorflow`, hence --no-deps.
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps tf-keras==2.21.0
  echo "$want" > "$stamp"
fi

apt_install() {  # Debian packages, as root or through sudo
  local sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

command -v bazel >/dev/null 2>&1 || apt_install bazel-bootstrap

# The fused attention kernel of imagination (twm_tf/ops/kernels), rebuilt when its source, build
# flags or the pinned TensorFlow change. Without it the Transformer-XL runs its TensorFlow ops.
command -v g++ >/dev/null 2>&1 || apt_install g++
kernel=twm_tf/ops/kernels/_block_attention.so
kernel_stamp=.venv/.kernel.sha256
kernel_want=$(cat twm_tf/ops/kernels/block_attention.{cc,py} requirements.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f "$kernel" || ! -f "$kernel_stamp" || "$(cat "$kernel_stamp")" != "$kernel_want" ]]; then
  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python3 -m twm_tf.ops.kernels.block_attention >/dev/null
  echo "$kernel_want" > "$kernel_stamp"
fi
echo "setup done: $(.venv/bin/python3 --version), bazel at $(command -v bazel), kernel $kernel"
