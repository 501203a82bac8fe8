"""test_cmdline.py - pigeond's command line as an operator uses it.

 - -p PORT listens on 127.0.0.1:PORT and -b ADDR on ADDR, replacing the
   config's listeners, also across a reload; a file name given to -p (the
   old meaning) is refused with a pointer to --ports-file.
 - --ports-file and --pid-file are written safely: a symlink planted at
   the old temporary name (FILE.tmp) or at FILE itself is never followed,
   so the file it points to is left alone.  The pid file holds pigeond's
   pid once it listens and is removed at exit.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import unittest

from opslib import PIGEOND, SOURCE_ROOT, Broker, BrokerTest, main, wait_for


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*args):
    return subprocess.run([PIGEOND] + list(args), capture_output=True, text=True, timeout=60)


class Listeners(BrokerTest):
    AUTO_START = False

    def test_port_replaces_the_config_listeners(self):
        port = free_port()
        b = self.start_broker(listeners={"main": {"bind": "127.0.0.1:0"}}, args=["-p", str(port)])
        self.assertEqual(b.ports(), {"cmdline1": "127.0.0.1:%d" % port})
        self.assertIn("listeners cmdline1=127.0.0.1:%d," % port, b.log_text())
        self.client(broker=b).ping()
        # A reload keeps the command line's listeners, whatever the file says.
        b.write_config({"max_outbound": "8mb"}, {"other": {"bind": "127.0.0.1:0"}})
        b.reload()
        b.wait_log(r"SIGHUP: configuration reloaded from .* \(1 setting changed; listeners "
                   r"from the command line kept\)")
        self.assertEqual(b.ports(), {"cmdline1": "127.0.0.1:%d" % port})
        self.assertNotIn("listener other", b.log_text())
        self.client(broker=b).ping()

    def test_bind_and_port_together(self):
        d = tempfile.TemporaryDirectory(prefix="pigeon-cmdline-")
        self.addCleanup(d.cleanup)
        path = os.path.join(d.name, "p.sock")
        b = self.start_broker(args=["-b", "unix:" + path, "-p", "0", "--bind", "127.0.0.1:0"])
        ports = b.ports()
        self.assertEqual(list(ports), ["cmdline1", "cmdline2", "cmdline3"])
        self.assertEqual(ports["cmdline1"], "unix:" + path)
        self.assertRegex(ports["cmdline2"], r"^127\.0\.0\.1:\d+$")
        for name in ports:
            self.client(broker=b, name=name).ping()

    def test_bad_values(self):
        r = run("-p", "/tmp/ports")  # the old meaning of -p
        self.assertEqual(r.returncode, 2)
        self.assertIn("pigeond: -p '/tmp/ports': expected a port number from 0 to 65535 "
                      "(the ports file is --ports-file FILE)", r.stderr)
        r = run("-p", "65536")
        self.assertEqual(r.returncode, 2)
        r = run("-b", "::1:7400")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'::1:7400': an IPv6 address needs brackets", r.stderr)
        r = run("-b", "127.0.0.1:7400", "-p", "7400")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'127.0.0.1:7400' is given twice", r.stderr)
        r = run("-t", "-b", "nowhere")  # -t checks them too
        self.assertEqual(r.returncode, 2)
        self.assertIn("'nowhere':", r.stderr)

    def test_help_and_man_page_name_them(self):
        out = run("-h").stdout
        for opt in ("-p, --port PORT", "-b, --bind ADDR", "--ports-file FILE", "--pid-file FILE"):
            self.assertIn(opt, out)
        with open(os.path.join(SOURCE_ROOT, "man", "pigeond.8")) as f:
            man = f.read()
        opts = re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z-]+)", out)
        self.assertGreaterEqual(len(opts), 8)
        for opt in opts:  # pigeond(8) has each, as .TP "\-\-name"
            self.assertRegex(man, r"\n\.B[IR]? .*" + re.escape(opt.replace("-", "\\-")) + r"(?![a-z])",
                             "pigeond(8) does not document " + opt)


class RunFiles(BrokerTest):
    """The ports and pid files, with symlinks planted around them."""
    AUTO_START = False

    def setUp(self):
        super().setUp()
        d = tempfile.TemporaryDirectory(prefix="pigeon-runfiles-")
        self.addCleanup(d.cleanup)
        self.dir = d.name
        self.victim = os.path.join(self.dir, "victim")
        with open(self.victim, "w") as f:
            f.write("precious\n")

    def plant(self, name):
        path = os.path.join(self.dir, name)
        os.symlink(self.victim, path)
        return path

    def assertVictimIntact(self):
        with open(self.victim) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_ports_file_symlinks(self):
        ports = os.path.join(self.dir, "ports")
        tmp = self.plant("ports.tmp")  # where pigeond used to write, with fopen
        b = Broker()
        b.ports_path = ports
        self.brokers.append(b)
        b.start()
        self.assertVictimIntact()
        self.assertTrue(os.path.islink(tmp))  # left as it was
        self.assertFalse(os.path.islink(ports))
        self.assertIn("main", b.ports())
        # FILE itself a symlink: replaced by the file, not followed.
        os.unlink(ports)
        self.plant("ports")
        b.write_config({"log_level": "info"})
        b.reload()
        wait_for(lambda: not os.path.islink(ports), what="the ports file to be rewritten")
        self.assertVictimIntact()
        self.assertIn("main", b.ports())
        self.assertEqual(len(os.listdir(self.dir)), 3)  # victim, ports, ports.tmp: no leftovers
        self.assertEqual(oct(os.stat(ports).st_mode & 0o777), oct(0o666 & ~current_umask()))

    def test_pid_file(self):
        pid_path = os.path.join(self.dir, "pigeond.pid")
        self.plant("pigeond.pid.tmp")
        self.plant("pigeond.pid")
        b = self.start_broker(args=["--pid-file", pid_path])
        wait_for(lambda: not os.path.islink(pid_path), what="the pid file")
        with open(pid_path) as f:
            self.assertEqual(f.read(), "%d\n" % b.pid)
        self.assertVictimIntact()
        self.assertEqual(b.stop(), 0)
        self.assertFalse(os.path.exists(pid_path))  # removed at exit

    def test_pid_file_unwritable(self):
        b = self.start_broker(args=["--pid-file", os.path.join(self.dir, "no", "such", "pid")],
                              check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertRegex(b.log_text(), r"pid file: cannot write .*/no/such/pid\.\w{6}: "
                                       r"No such file or directory")


def current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


if __name__ == "__main__":
    main()
