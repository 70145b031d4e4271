#!/usr/bin/env bash
# Run the HEAR 2021 validator (PyPI `hearvalidator`, command `hear-validator`) on dymn_cli.hear.
#
#   bash benchmarks/hear_validate.sh [CHECKPOINT]      (default: tests/golden/dymn04_seed0.pt)
#
# The validator imports tensorflow, which the project does not need: it lives in a virtual environment
# of its own ($HEAR_VENV, default ~/.cache/dymn-cli/hearvenv), built on the first run with the
# validator, tensorflow-cpu, the CPU torch the project pins, and this checkout.
#
# PyPI's only release of the validator (2021.0.2) accepts the sample rates 16000, 22050, 44100 and
# 48000 only; the validator's later versions (not on PyPI) added 32000, the rate of these models
# and of the authors' own HEAR submissions. So it runs twice: as released (it stops at the sample
# rate check), then with 32000 added to that one list and nothing else changed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
checkpoint="$(realpath "${1:-$repo/tests/golden/dymn04_seed0.pt}")"
venv="${HEAR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dymn-cli/hearvenv}"

if [ ! -x "$venv/bin/hear-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet hearvalidator tensorflow-cpu "torch==2.13.0"
fi
"$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$repo" >/dev/null
"$venv/bin/python" -m pip install --quiet "$repo" "torch==2.13.0" >/dev/null  # (the project's own dependencies)
"$venv/bin/python" -m pip show hearvalidator tensorflow-cpu torch dymn-cli 2>/dev/null | grep -E '^(Name|Version)'

cd "$(mktemp -d)"  # (not the checkout: the installed dymn_cli is the one validated)
export TF_CPP_MIN_LOG_LEVEL=2
echo "== hear-validator dymn_cli.hear --model $checkpoint --device cpu  (as released)"
"$venv/bin/hear-validator" dymn_cli.hear --model "$checkpoint" --device cpu && status=0 || status=$?
echo "== exit status $status"
echo "== the same, with 32000 among the validator's accepted sample rates"
set +e
"$venv/bin/python" - "$checkpoint" <<'EOF'
import sys

from hearvalidator import validate

validate.ValidateModel.ACCEPTABLE_SAMPLE_RATE.append(32000)
sys.argv = ["hear-validator", "dymn_cli.hear", "--model", sys.argv[1], "--device", "cpu"]
validate.main()
EOF
status=$?
echo "== exit status $status"
exit "$status"
