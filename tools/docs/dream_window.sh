#!/usr/bin/env bash
# Plays a run's dream from the keyboard in a real X window under Xvfb, scripted with xdotool, and
# writes docs/dream.md's pictures: the window's screenshot and the GIF that launch.dream records.
#   tools/docs/dream_window.sh <run_dir> <screenshot.png> <video.gif>
# Needs Xvfb and xdotool (apt) and the setup's .venv; run from the repository root.
set -euo pipefail
run_dir=$1 screenshot=$2 video=$3
display=:99
Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
sleep 2
export DISPLAY=$display
.venv/bin/python -m launch.dream --run_dir="$run_dir" --zoom=3 --video="$video" &
dream=$!
window=$(xdotool search --sync --onlyvisible --class . | head -1)
sleep 8  # the dream's first step compiles
# No window manager under Xvfb: the pointer over the window gives it the keyboard focus.
xdotool mousemove --window "$window" 100 100 windowfocus --sync "$window"
press() {  # press <seconds> <key>...: holds the keys together
  local seconds=$1
  shift
  for key in "$@"; do xdotool keydown "$key"; done
  sleep "$seconds"
  for key in "$@"; do xdotool keyup "$key"; done
}
press 1 d
press 1 w d space
press 1 a
# A click on the latent grid (variable 3, class 10 at zoom 3) sets that variable's class.
xdotool mousemove --window "$window" 434 24 click 1
xdotool keydown w keydown d keydown space
sleep 0.5
.venv/bin/python - "$display" "$screenshot" <<'PY'
import sys
from PIL import ImageGrab
image = ImageGrab.grab(xdisplay=sys.argv[1])
image.crop(image.getbbox()).save(sys.argv[2])
PY
xdotool keyup w keyup d keyup space
press 1 s
xdotool key Escape
wait "$dream"
# The GIF's first seconds are NOOPs while the script waits for the first step: keep the last 100.
.venv/bin/python - "$video" <<'PY'
import sys
from PIL import Image, ImageSequence
with Image.open(sys.argv[1]) as gif:
    frames = [frame.copy() for frame in ImageSequence.Iterator(gif)][-100:]
    duration = gif.info.get("duration", 67)
frames[0].save(sys.argv[1], save_all=True, append_images=frames[1:], duration=duration, loop=0)
PY
