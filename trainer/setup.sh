#!/usr/bin/env bash
# Creates trainer/.venv with the pinned requirements (PyPI's torch wheel brings CUDA libraries: ~5 GB, ~3 min).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$here/.venv/bin/python" ] || python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
echo "trainer/.venv ready: $("$here/.venv/bin/python" -c 'import torch; print("torch", torch.__version__)')"
