#!/usr/bin/env bash
# Create or update .venv-labelstudio: Label Studio in its own venv, because its large dependency tree (Django,
# cloud SDKs, numpy 2.2, ...) must not disturb the training venv .venv. Idempotent: a no-op when the pinned
# version is already there. Used by `make test` (tests/test_labelstudio.py) and by users who annotate.
#   usage: scripts/labelstudio_env.sh            (PYTHON=python3.11 scripts/labelstudio_env.sh to pick Python)
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL_STUDIO_VERSION=1.23.2
PYTHON=${PYTHON:-python3}
VENV=.venv-labelstudio
PY=$VENV/bin/python

installed() {
  "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("label-studio") != sys.argv[1])' \
    "$LABEL_STUDIO_VERSION" 2>/dev/null
}

if [[ -x $PY ]] && installed && [[ -x $VENV/bin/label-studio ]]; then
  echo "label-studio $LABEL_STUDIO_VERSION already in $VENV"
  exit 0
fi
[[ -x $PY ]] || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -c scripts/labelstudio-constraints.txt "label-studio==$LABEL_STUDIO_VERSION"
installed || { echo "error: label-studio $LABEL_STUDIO_VERSION did not install into $VENV" >&2; exit 1; }
echo "label-studio $LABEL_STUDIO_VERSION installed in $VENV (start it with: $VENV/bin/label-studio start)"
