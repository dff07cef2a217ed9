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
  [schedules]=torch_schedules  # lr_scheduler values for ms.schedule
  [optim_classics]=optim_classics  # SGD/Adam/AdamW/NAdam/RMSprop/Adagrad, MLP + quadratic, f64 + f32
  [autograd_fixtures]=autograd_fixtures  # ms.autograd: random op programs, loss and gradients (f64)
)
for gen in "${!out[@]}"; do
  dest="tests/fixtures/${out[$gen]}.lua"
  "$py" "scripts/fixtures/$gen.py" > "$dest.tmp" && mv "$dest.tmp" "$dest"
  echo "gen_fixtures: $dest"
done
# AutoSGM (tests/fixtures/autosgm.lua) runs the authors' reference, which is not in this repository: set
# AUTOSGM_REF=/path/to/asgm.py (`git show 07b5e79:asgm.py` of github.com/somefunAgba/autosgm); skipped when unset.
if [ -n "${AUTOSGM_REF:-}" ]; then
  "$py" scripts/fixtures/autosgm.py > tests/fixtures/autosgm.lua.tmp && mv tests/fixtures/autosgm.lua.tmp tests/fixtures/autosgm.lua
  echo "gen_fixtures: tests/fixtures/autosgm.lua"
fi
