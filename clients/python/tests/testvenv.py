"""testvenv.py - the venv the Python client's tests run in.

    testvenv.py install VENV SOURCE STAMP   make VENV if it is missing, and
                                            pip-install the package at
                                            SOURCE (clients/python) into it
    testvenv.py run VENV SCRIPT [ARG...]    run SCRIPT with VENV's python

meson runs `install` as a build step whenever the package's files change,
and every Python test through `run`, so that tests and examples import the
installed package, as a user's program does, and never the source tree.

Offline, as the build must be: the venv sees the system's site-packages
(Debian's python3-msgpack), and pip installs with --no-build-isolation
--no-deps --no-index, building with the venv's setuptools.  pip builds in
the source directory, so a copy of the package is staged beside the venv
first: the source tree stays untouched (it may be read-only, and several
build directories may share it).
"""

import os
import shutil
import subprocess
import sys

PACKAGE_FILES = ("pyproject.toml", "README.md", "pigeon")


def venv_python(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def install(venv: str, source: str, stamp: str) -> None:
    if not os.path.exists(venv_python(venv)):
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                       check=True)
    stage = venv.rstrip("/") + "-stage"
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    for name in PACKAGE_FILES:
        src, dst = os.path.join(source, name), os.path.join(stage, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    subprocess.run([venv_python(venv), "-m", "pip", "install", "--quiet", "--no-build-isolation",
                    "--no-deps", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
                    "--force-reinstall", stage], check=True)
    with open(stamp, "w") as f:
        f.write("pigeon installed into %s from %s\n" % (venv, source))


def run(venv: str, script: str, args: list) -> None:
    python = venv_python(venv)
    os.execv(python, [python, script] + args)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "install":
        install(*sys.argv[2:5])
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
