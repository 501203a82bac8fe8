"""test_package.py - the client as an installed package.

meson installs clients/python with pip into a venv and runs every test with
that venv's python (testvenv.py): check that what the tests import is that
installed package, current with the source, with its metadata and its one
dependency, and that nothing puts the source tree on the path.
"""

import filecmp
import importlib.metadata
import os
import sys
import sysconfig
import unittest

import support

import pigeon

SOURCE = os.environ.get("PIGEON_PACKAGE_SOURCE", os.path.join(support.HERE, ".."))
DIST = "pigeon-client"


class Installed(unittest.TestCase):
    def test_imported_from_the_venv(self):
        site = os.path.realpath(sysconfig.get_paths()["purelib"])
        here = os.path.realpath(os.path.dirname(pigeon.__file__))
        self.assertEqual(here, os.path.join(site, "pigeon"))
        self.assertNotEqual(sys.prefix, sys.base_prefix, "not running in a venv")
        self.assertFalse(here.startswith(os.path.realpath(SOURCE) + os.sep), here)

    def test_nothing_on_the_path_points_at_the_source(self):
        source = os.path.realpath(SOURCE)
        for entry in sys.path:
            self.assertFalse(os.path.realpath(entry or ".") == source, sys.path)
        self.assertNotIn("PYTHONPATH", os.environ)

    def test_current_with_the_source(self):
        installed = os.path.dirname(pigeon.__file__)
        mods = sorted(f for f in os.listdir(os.path.join(SOURCE, "pigeon")) if f.endswith(".py"))
        self.assertEqual(sorted(f for f in os.listdir(installed) if f.endswith(".py")), mods)
        _, mismatch, errors = filecmp.cmpfiles(os.path.join(SOURCE, "pigeon"), installed, mods,
                                               shallow=False)
        self.assertEqual((mismatch, errors), ([], []),
                         "the venv is stale: is every module in clients/python/meson.build?")

    def test_metadata(self):
        self.assertEqual(importlib.metadata.version(DIST), pigeon.__version__)
        self.assertEqual(pigeon.__version__, os.environ.get("PIGEON_VERSION", pigeon.__version__),
                         "pigeon.__version__ differs from the project's version (meson.build)")
        meta = importlib.metadata.metadata(DIST)
        self.assertEqual(meta["Name"], DIST)
        self.assertTrue(meta["Summary"])
        self.assertEqual(meta["License"], "MIT")
        requires = importlib.metadata.requires(DIST)
        self.assertEqual([r.split()[0].split(">")[0] for r in requires], ["msgpack"], requires)
        files = {str(f) for f in importlib.metadata.files(DIST)}
        self.assertIn("pigeon/client.py", files)
        self.assertFalse([f for f in files if f.startswith(("tests/", "examples/"))], files)


if __name__ == "__main__":
    support.main()
