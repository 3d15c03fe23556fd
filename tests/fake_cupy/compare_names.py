"""Check the stand-in against a real CuPy: every public name it has must exist in CuPy.

    python3 tests/fake_cupy/compare_names.py      # on a machine with CuPy installed (gpu_check.sh step 08)

Each side is read in its own subprocess (the stand-in registers ``cupy.*`` modules of its own).
Prints the names the stand-in has and CuPy lacks (module, ``ndarray``, ``random``, ``random.Generator``,
``random.RandomState``, ``cuda``, ``cuda.runtime``), and exits 1 when there are any.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The stand-in's own imports, module attributes of no interest.
OWN_IMPORTS = {"annotations", "Any", "builtins", "fakegpu", "numpy", "sys", "types"}

PROBE = r"""
import json, cupy
def public(obj):
    return sorted(n for n in dir(obj) if not n.startswith("_"))
print(json.dumps({
    "version": cupy.__version__,
    "cupy": public(cupy), "ndarray": public(cupy.ndarray), "random": public(cupy.random),
    "random.Generator": public(cupy.random.Generator), "random.RandomState": public(cupy.random.RandomState),
    "cuda": public(cupy.cuda), "cuda.runtime": public(cupy.cuda.runtime),
    "lib.stride_tricks": public(cupy.lib.stride_tricks),
}))
"""


def names(with_stand_in: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if with_stand_in:
        env["PYTHONPATH"] = HERE
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=HERE if with_stand_in else "/")
    if done.returncode != 0:
        sys.exit(f"compare_names: could not read {'the stand-in' if with_stand_in else 'CuPy'}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    fake, real = names(True), names(False)
    if real["version"].endswith("+fakegpu"):
        sys.exit("compare_names: the real CuPy is not installed here (only the stand-in was found)")
    fake["cupy"] = sorted(set(fake["cupy"]) - OWN_IMPORTS)
    missing = {part: sorted(set(fake[part]) - set(real[part])) for part in fake if part != "version"}
    missing = {part: m for part, m in missing.items() if m}
    print(f"stand-in {fake['version']} against CuPy {real['version']}")
    for part, m in missing.items():
        print(f"  {part}: in the stand-in but not in CuPy: {', '.join(m)}")
    if not missing:
        print("  every public name of the stand-in exists in CuPy")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
