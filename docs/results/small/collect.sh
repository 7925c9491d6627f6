#!/usr/bin/env bash
# Collects one finished small-preset run into docs/results/small/<game>/ (small files only):
#   docs/results/small/collect.sh <run_dir> <game_dir_name>
# Run from the repository root with the setup's .venv.
set -euo pipefail
run_dir=$1
out=docs/results/small/$2
mkdir -p "$out"
cp "$run_dir"/{config.json,eval.json,episodes.csv,evals.csv} "$out"/
.venv/bin/python -m launch.plot_run --run_dir="$run_dir" --out="$out/curves.png"
.venv/bin/python -m launch.world_model_eval --run_dir="$run_dir" --steps=2000 --horizon=15 \
  --out="$out"
.venv/bin/python -m launch.imagine --run_dir="$run_dir" --steps=15 --out="$out/dream"
{
  echo "commit_of_the_run: ${RUN_COMMIT:-unknown}"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "started: $(date -u -r "$run_dir/config.json" +%FT%TZ)"
  echo "finished: $(date -u -r "$run_dir/eval.json" +%FT%TZ)"
  echo "packages:"
  .venv/bin/pip freeze | grep -iE '^(tensorflow|tensorflow[-_]cpu|keras|tensorflow[-_]probability|gymnasium|ale[-_]py|numpy)==' \
    | sed 's/^/  /'
} > "$out/environment.txt"
