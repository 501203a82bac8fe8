"""test_configcheck.py - `pigeond -t` as an operator uses it: the sample
file with every option uncommented is valid; every mistake in a file is
reported, each as FILE:LINE: REASON in line order, with exit 1; each kind
of mistake in the options this issue added ([http], stats_interval) names
its line (integration/test_lifecycle.py covers the [broker] and [listener]
mistakes); -t binds nothing; and a FIFO or device given as the file is
refused at once, by -t and at start-up, instead of blocking on it.
"""

import os
import re
import subprocess
import tempfile
import unittest

from opslib import PIGEOND, SOURCE_ROOT, main


def run(*args):
    return subprocess.run([PIGEOND] + list(args), capture_output=True, text=True, timeout=60)


class ConfigCheck(unittest.TestCase):

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="pigeon-check-")
        self.addCleanup(d.cleanup)
        self.dir = d.name

    def write(self, text, name="p.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_sample_with_everything_uncommented(self):
        with open(os.path.join(SOURCE_ROOT, "conf", "pigeond.conf")) as f:
            sample = f.read()
        # Uncomment each "#key = value" line and each "#[section]" header.
        text = re.sub(r"(?m)^#(\[[a-z]+( [A-Za-z0-9_.-]+)?\]|[a-z_]+ = \S+)$", r"\1", sample)
        # The commented listeners would clash with the active one; keep the sample's [listener default].
        text = re.sub(r"(?ms)^\[listener (?!default\]).*?(?=^\[|\Z)", "", text)
        self.assertIn("\n[http]\n", text)
        self.assertIn("\nstats_interval = 10s\n", text)
        # -t checks the users file too: point it at a real one.
        users = self.write("[user svc]\ntoken = sha256:" + "ab" * 32 + "\npublish = metrics.>\n",
                           "users.conf")
        self.assertIn("\nusers_file = /etc/pigeon/users.conf\n", text)
        text = text.replace("users_file = /etc/pigeon/users.conf", "users_file = " + users)
        r = run("-t", "-c", self.write(text))
        self.assertEqual(r.returncode, 0, r.stderr + "\n" + text)
        self.assertIn("is valid", r.stdout)
        self.assertIn("%s is valid" % users, r.stdout)

    def test_errors_name_their_line(self):
        cases = [
            ("[broker]\nstats_interval = soon\n", 2, "bad stats_interval 'soon'"),
            ("[broker]\nstats_interval = 2h\n", 2, "must be from 0 to 1h"),
            ("[http]\n# no bind\nmax_clients = 3\n", 1, "[http] has no bind"),
            ("[broker]\n\n[http]\nbind = localhost\n", 4, "bad bind 'localhost'"),
            ("[http]\nbind = unix:/run/x.sock\n", 2, "TCP only"),
            ("[http]\nbind = 127.0.0.1:80\nmax_clients = 0\n", 3, "must be from 1 to 10000"),
            ("[http]\nbind = 127.0.0.1:80\ntimeout = 0\n", 3, "must be from 1s to 1h"),
            ("[http]\nbind = 127.0.0.1:80\n\n[http]\n", 4, "duplicate section [http] (first at line 1)"),
            ("[http]\nbind = 127.0.0.1:80\nidle_timeout = 5s\n", 3, "it belongs in [broker]"),
            ("[listener a]\nbind = 127.0.0.1:0\nmax_clients = 2\n", 3, "it belongs in [http]"),
        ]
        for text, line, why in cases:
            with self.subTest(text=text):
                path = self.write(text)
                r = run("-t", "-c", path)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertEqual(r.stdout, "")
                first = r.stderr.splitlines()[0]
                self.assertTrue(first.startswith("pigeond: %s:%d: " % (path, line)), first)
                self.assertIn(why, first)

    def test_every_error_is_named(self):
        text = ("[broker]\n"
                "max_payload = lots\n"          # 2
                "stats_interval = -1\n"         # 3
                "junk\n"                        # 4
                "[listener a]\n"
                "bind = 127.0.0.1:99999\n"      # 6
                "[http]\n"
                "bind = 127.0.0.1:0\n"
                "max_clients = many\n"          # 9
                "[listener b]\n")               # 10: no bind
        path = self.write(text)
        r = run("-t", "-c", path)
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.splitlines()
        got = [int(re.match(r"pigeond: %s:(\d+): " % re.escape(path), l).group(1)) for l in lines]
        self.assertEqual(got, [2, 3, 4, 6, 9, 10], r.stderr)
        for l, word in zip(lines, ["max_payload", "stats_interval", "syntax error", "bind",
                                   "max_clients", "listener 'b' has no bind"]):
            self.assertIn(word, l)
        # Starting on it reports the first and does not start.
        r = subprocess.run([PIGEOND, "-c", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines(), lines[:1])

    def test_valid_http_section(self):
        r = run("-t", "-c", self.write("[http]\nbind = [::1]:7480\nmax_clients = 4\ntimeout = 30s\n"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_does_not_bind(self):
        # -t only reads: a file whose addresses are taken is still valid.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        text = "[listener a]\nbind = 127.0.0.1:%d\n[http]\nbind = 127.0.0.1:%d\n" % (port, port)
        r = run("-t", "-c", self.write(text))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_fifo_and_device_refused_at_once(self):
        # Opening a FIFO for reading blocks until a writer comes: pigeond must
        # not wait (run() would time out), and says what is wrong.
        fifo = os.path.join(self.dir, "fifo.conf")
        os.mkfifo(fifo)
        for args in (["-t", "-c", fifo], ["-c", fifo], ["-t", "-c", "/dev/zero"]):
            r = run(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertEqual(r.stderr, "pigeond: %s: not a regular file\n" % args[-1])


if __name__ == "__main__":
    main()
