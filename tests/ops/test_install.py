"""test_install.py - `meson install` into a DESTDIR puts everything where it
belongs under the configured prefix: pigeond in sbindir, the unit files in
the systemd unit directory (with this install's paths filled in), the
sample config as SYSCONFDIR/pigeon/pigeond.conf, the man pages in their
sections, and, once the clients are in the build, the pigeon CLI and
libpigeon with its header and pkg-config file, with which a program using
only pigeon.h compiles, links and runs against the installed tree.  The installed daemon must
run and accept the installed config; the man pages must format cleanly.
"""

import glob
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from opslib import SOURCE_ROOT, main

BUILD = os.environ.get("PIGEON_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
MESON = os.environ.get("MESON") or shutil.which("meson")


def build_options():
    with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
        return {o["name"]: o["value"] for o in json.load(f)}


def install_targets():
    """{(name, type)} of the build's targets that install something."""
    with open(os.path.join(BUILD, "meson-info", "intro-targets.json")) as f:
        return {(t["name"], t["type"]) for t in json.load(f) if t.get("installed")}


def unit_dir(opts):
    """Where systemd/meson.build puts the units: they follow the prefix."""
    if opts.get("systemdsystemunitdir"):
        return opts["systemdsystemunitdir"]
    if opts["prefix"] == "/usr":
        r = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    return os.path.join(opts["prefix"], "lib", "systemd", "system")


class Install(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="pigeon-install-")
        cls.dest = cls.tmp.name
        r = subprocess.run([MESON, "install", "-C", BUILD, "--destdir", cls.dest, "--no-rebuild",
                            "--quiet"], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise AssertionError("meson install failed:\n" + r.stdout + r.stderr)
        cls.opts = build_options()
        cls.targets = install_targets()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, *parts):
        """DESTDIR + an absolute or prefix-relative install path."""
        p = os.path.join(*parts)
        if not os.path.isabs(p):
            p = os.path.join(self.opts["prefix"], p)
        return self.dest + p

    def assertFile(self, path, executable=False):
        self.assertTrue(os.path.isfile(path), "%s was not installed; tree:\n%s" % (path, self.tree()))
        if executable:
            self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR, path + " is not executable")

    def tree(self):
        return "\n".join(sorted(os.path.relpath(os.path.join(d, f), self.dest)
                                for d, _, fs in os.walk(self.dest) for f in fs))

    # --------------------------------------------------------- daemon
    def test_pigeond(self):
        exe = self.path(self.opts["sbindir"], "pigeond")
        self.assertFile(exe, executable=True)
        r = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("pigeond "), r.stdout)

    def test_config(self):
        conf = self.path(self.opts["sysconfdir"], "pigeon", "pigeond.conf")
        self.assertFile(conf)
        with open(conf) as a, open(os.path.join(SOURCE_ROOT, "conf", "pigeond.conf")) as b:
            self.assertEqual(a.read(), b.read())
        exe = self.path(self.opts["sbindir"], "pigeond")
        r = subprocess.run([exe, "-t", "-c", conf], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_default_config_is_the_installed_one(self):
        # Without -c pigeond reads the file meson installs, wherever the
        # prefix puts sysconfdir (/usr/local/etc with meson's default prefix).
        installed = os.path.join(self.opts["prefix"], self.opts["sysconfdir"], "pigeon",
                                 "pigeond.conf")
        self.assertFile(self.dest + installed)
        exe = self.path(self.opts["sbindir"], "pigeond")
        r = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=60)
        self.assertIn("(default %s when it exists" % installed, r.stdout)
        r = subprocess.run([exe, "-t"], capture_output=True, text=True, timeout=60)
        self.assertIn(installed, r.stdout + r.stderr)  # "no config file at ..." or "... is valid"

    def test_units(self):
        udir = self.dest + unit_dir(self.opts)
        svc = os.path.join(udir, "pigeond.service")
        self.assertFile(svc)
        self.assertFile(os.path.join(udir, "pigeond.socket"))
        with open(svc) as f:
            text = f.read()
        sbin = os.path.join(self.opts["prefix"], self.opts["sbindir"], "pigeond")
        conf = os.path.join(self.opts["prefix"], self.opts["sysconfdir"], "pigeon", "pigeond.conf")
        self.assertIn("\nExecStart=%s -c %s\n" % (sbin, conf), text)
        self.assertIn("\nExecReload=%s -t -c %s\n" % (sbin, conf), text)
        self.assertNotRegex(text, r"@[a-z]+@")  # every placeholder filled in

    # ------------------------------------------------------ man pages
    def test_man_pages(self):
        mandir = self.opts["mandir"]
        pages = [("man8", "pigeond.8"), ("man5", "pigeond.conf.5"), ("man1", "pigeon.1")]
        for section, page in pages:
            path = self.path(mandir, section, page)
            self.assertFile(path)
            if shutil.which("groff"):
                r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual((r.returncode, r.stderr), (0, ""), page)

    # -------------------------------------------------------- clients
    def test_cli(self):
        if ("pigeon", "executable") not in self.targets:
            self.skipTest("the build has no pigeon CLI target yet (clients/cli)")
        self.assertFile(self.path(self.opts["bindir"], "pigeon"), executable=True)

    def test_libpigeon(self):
        libs = {n for n, t in self.targets if t in ("shared library", "static library", "both_libraries")}
        if "pigeon" not in libs:
            self.skipTest("the build has no libpigeon target yet (clients/c)")
        libdir = self.path(self.opts["libdir"])
        self.assertTrue(glob.glob(os.path.join(libdir, "libpigeon.*")), self.tree())
        headers = glob.glob(self.path(self.opts["includedir"], "**", "*.h"), recursive=True)
        self.assertTrue(any("pigeon" in os.path.basename(h) or "pigeon" in h for h in headers), self.tree())
        pcs = glob.glob(os.path.join(libdir, "pkgconfig", "*pigeon*.pc")) + \
            glob.glob(self.path(self.opts["datadir"], "pkgconfig", "*pigeon*.pc"))
        self.assertTrue(pcs, self.tree())

    def pkg_config(self, *args):
        """pkg-config on the installed pigeon.pc, its paths inside DESTDIR."""
        pcdir = os.path.dirname(glob.glob(self.path(self.opts["libdir"], "pkgconfig",
                                                    "pigeon.pc"))[0])
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=self.dest)
        r = subprocess.run(["pkg-config"] + list(args) + ["pigeon"], capture_output=True,
                           text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def test_pkg_config_links_a_client(self):
        # pigeon.h exposes neither libevent nor msgpack-c: they are
        # Requires.private, and `pkg-config --cflags --libs pigeon` alone
        # builds a program that links and runs against the installed tree.
        if ("pigeon", "shared library") not in self.targets:
            self.skipTest("the build has no libpigeon target")
        if not shutil.which("pkg-config"):
            self.skipTest("no pkg-config")
        libs = self.pkg_config("--libs")
        self.assertEqual([f for f in libs if f.startswith("-l")], ["-lpigeon"], libs)
        static = self.pkg_config("--libs", "--static")
        self.assertIn("-levent_core", static)
        self.assertTrue([f for f in static if f.startswith("-lmsgpack")], static)
        with tempfile.TemporaryDirectory(prefix="pigeon-pc-") as tmp:
            src, exe = os.path.join(tmp, "app.c"), os.path.join(tmp, "app")
            with open(src, "w") as f:
                f.write(PC_PROGRAM)
            cc = os.environ.get("CC") or "cc"
            # A library built with sanitizers wants its runtime first: a
            # program linking it builds with the same -fsanitize.
            sanitize = self.opts.get("b_sanitize", "none")
            extra = ["-fsanitize=" + sanitize] if sanitize not in ("none", "") else []
            r = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", src, "-o", exe]
                               + extra + self.pkg_config("--cflags") + libs,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            env = dict(os.environ, LD_LIBRARY_PATH=self.path(self.opts["libdir"]))
            r = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "cannot connect to the broker: connect to 127.0.0.1:1: "
                             "Connection refused\n"), r.stderr)


# A client using only pigeon.h: connects where no broker listens, and says why
# it could not (the blocking API, errbuf).
PC_PROGRAM = r"""
#include <stdio.h>
#include <pigeon.h>

int main(void)
{
    struct pigeon_options o;
    char why[256] = "";
    pigeon_sync *s = NULL;

    pigeon_options_init(&o);
    o.errbuf = why;
    o.errbuf_len = sizeof(why);
    int err = pigeon_sync_connect("127.0.0.1:1", &o, 0, &s);
    if (err != PIGEON_ECONNECT || s != NULL)
        return 1;
    printf("%s: %s\n", pigeon_strerror(err), why);
    return 0;
}
"""


if __name__ == "__main__":
    main()
