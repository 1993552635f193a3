#!/usr/bin/env bash
# Create or update .venv-labelstudio: Label Studio in its own venv, because its large dependency tree (Django,
# cloud SDKs, numpy 2.2, ...) must not disturb the training venv .venv. Idempotent: a no-op when the pinned
# version was installed against the current scripts/labelstudio-constraints.txt (its sha256 is kept in the venv),
# so a venv made before a constraint changed is brought in line. Used by `make test` (tests/test_labelstudio.py)
# and by users who annotate.
#   usage: scripts/labelstudio_env.sh            (PYTHON=python3.11 scripts/labelstudio_env.sh to pick Python)
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL_STUDIO_VERSION=1.23.2
PYTHON=${PYTHON:-python3}
VENV=.venv-labelstudio
PY=$VENV/bin/python
CONSTRAINTS=scripts/labelstudio-constraints.txt
STAMP=$VENV/.constraints.sha256  # which constraints the venv was installed with

installed() {
  "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("label-studio") != sys.argv[1])' \
    "$LABEL_STUDIO_VERSION" 2>/dev/null
}

if [[ -x $PY ]] && installed && [[ -x $VENV/bin/label-studio ]] \
  && [[ "$(cat "$STAMP" 2>/dev/null)" == "$(sha256sum < "$CONSTRAINTS")" ]]; then
  echo "label-studio $LABEL_STUDIO_VERSION already in $VENV"
  exit 0
fi
[[ -x $PY ]] || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -c "$CONSTRAINTS" "label-studio==$LABEL_STUDIO_VERSION"
installed || { echo "error: label-studio $LABEL_STUDIO_VERSION did not install into $VENV" >&2; exit 1; }
sha256sum < "$CONSTRAINTS" > "$STAMP"
echo "label-studio $LABEL_STUDIO_VERSION installed in $VENV (start it with: $VENV/bin/label-studio start)"
