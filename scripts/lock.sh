#!/usr/bin/env bash
# Refresh requirements.lock: resolve the newest versions pyproject.toml allows in a throw-away venv and freeze
# them. `make lock` calls this, then reinstalls .venv from the new lock and runs the test suite against it.
#
# Two rules shape the lock:
# - one OpenCV build: ultralytics asks for the GUI build `opencv-python`, we ship the headless one
#   (`opencv-python-headless`, no libGL); both install the same `cv2` package, so the GUI build is left out
#   of the lock and the lock is installed with --no-deps (every dependency is pinned in it).
# - the project itself is not in the lock (it is installed editable afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
EXTRAS=${EXTRAS:-dev,video,platform}
work=.cache/lock-venv
rm -rf "$work"
"$PY" -m venv "$work"
"$work/bin/pip" install -q --upgrade pip
"$work/bin/pip" install -q ".[$EXTRAS]"
tmp=$(mktemp requirements.lock.XXXXXX)
{
  echo "# Every package the project installs, pinned: the tested install (Python 3.11, Linux)."
  echo "# Installed with: pip install --no-deps -r requirements.lock && pip install --no-deps -e ."
  echo "# Refresh (newest versions allowed by pyproject.toml, then the tests): make lock"
  echo "# Left out on purpose: opencv-python (ultralytics' GUI build; opencv-python-headless provides cv2)."
  "$work/bin/pip" freeze --exclude-editable --all \
    | grep -v -i -E '^(opencv-python|energy-atlas|pip|setuptools|wheel)==' | LC_ALL=C sort -f
} > "$tmp"
mv "$tmp" requirements.lock
rm -rf "$work"
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages"
