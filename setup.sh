#!/usr/bin/env bash
# Idempotent setup: .venv with the pinned packages, and Bazel (Debian bazel-bootstrap) if missing.
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

if ! command -v bazel >/dev/null 2>&1; then
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq bazel-bootstrap >/dev/null
fi
echo "setup done: $(.venv/bin/python3 --version), bazel at $(command -v bazel)"
