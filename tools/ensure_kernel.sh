#!/usr/bin/env bash
# Make sure a "python3" Jupyter kernelspec is installed for the interpreter that runs the
# tests (nbval runs notebooks with --nbval-kernel-name python3, and the browser test picks
# that kernel in JupyterLab). Installs ipykernel's spec into sys.prefix when it is missing.
# Usage: tools/ensure_kernel.sh [PYTHON]   (default python3)
set -eu
python=${1:-python3}

if "$python" - <<'PY'
import sys
from jupyter_client.kernelspec import KernelSpecManager

# ensure_native_kernel=False: count only specs installed on disk, not the one ipykernel
# would provide implicitly, so a fresh environment gets a real, findable spec.
sys.exit(0 if "python3" in KernelSpecManager(ensure_native_kernel=False).find_kernel_specs() else 1)
PY
then
  exit 0
fi
echo "ensure_kernel: installing the python3 kernelspec for $("$python" -c 'import sys; print(sys.executable)')" >&2
"$python" -m ipykernel install --sys-prefix --name python3 >&2
