#!/usr/bin/env bash
# Regenerates every PyTorch fixture under tests/fixtures/ from scripts/fixtures/*.py.
# Needs Debian's python3-torch (an independent reference, never a dependency of moonstep:
# the fixtures are committed). Each generator writes Lua source on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
declare -A out=(
  [nn_optim]=torch            # layers, losses, SGD/Adam/AdamW trajectories (float64)
  [conv_pool]=torch_conv_pool # Conv2d / MaxPool2d / AvgPool2d options
  [layers]=torch_layers       # options of the other layers and the losses
  [optim_float32]=optim_float32  # float32 optimizer trajectories, bit for bit
  [tensor_ops]=tensor_ops     # tensor-core ops (GELU tanh, lerp)
)
for gen in "${!out[@]}"; do
  dest="tests/fixtures/${out[$gen]}.lua"
  "$py" "scripts/fixtures/$gen.py" > "$dest.tmp" && mv "$dest.tmp" "$dest"
  echo "gen_fixtures: $dest"
done
