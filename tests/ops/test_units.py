"""test_units.py - the systemd units, checked offline (no running systemd):
`systemd-analyze verify` accepts pigeond.service and pigeond.socket,
`systemd-analyze security --offline=true` scores the service no worse than
the score docs/operations.md records, and the settings the service relies
on are there (Type=notify and the watchdog when built with libsystemd,
Type=exec and no watchdog without it, reload by SIGHUP, the descriptor
limit for max_connections, a dynamic user, its directories, the
hardening).  The socket unit must agree with the sample config's listener.

Skipped when systemd-analyze is missing (Debian: the systemd package).
"""

import configparser
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from opslib import HAVE_SYSTEMD, PIGEOND, SOURCE_ROOT, main

ANALYZE = os.environ.get("SYSTEMD_ANALYZE") or shutil.which("systemd-analyze")
SERVICE = os.environ.get("PIGEON_SERVICE_UNIT",
                         os.path.join(SOURCE_ROOT, "build", "systemd", "pigeond.service"))
SOCKET = os.path.join(SOURCE_ROOT, "systemd", "pigeond.socket")
MESON = os.environ.get("MESON") or shutil.which("meson")
OPERATIONS_DOC = os.path.join(SOURCE_ROOT, "docs", "operations.md")


def recorded_exposure():
    """The score docs/operations.md records for the unit: a change that makes
    the measured score worse must update the doc too (and say why)."""
    with open(OPERATIONS_DOC) as f:
        text = f.read()
    m = re.search(r"`systemd-analyze security --offline=true pigeond\.service`[^*]*"
                  r"scores it \*\*(\d+\.\d+) [A-Z]+\*\*", text)
    assert m, "docs/operations.md no longer records the unit's security score"
    return float(m.group(1))

needs_analyze = unittest.skipUnless(ANALYZE, "systemd-analyze not installed (Debian: systemd)")


def unit_settings(path):
    """{(section, key): [values]} of a unit file (keys repeat)."""
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key), []).append(value)
    return out


class Units(unittest.TestCase):

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="pigeon-units-")
        self.addCleanup(d.cleanup)
        self.dir = d.name
        self.svc = unit_settings(SERVICE)

    def runnable_units(self):
        """Copies of the units whose commands point at this build (verify wants them to exist)."""
        with open(SERVICE) as f:
            text = f.read()
        conf = os.path.join(SOURCE_ROOT, "conf", "pigeond.conf")
        text, n = re.subn(r"(?m)^(Exec\w+=)\S*/pigeond( -t)? -c \S+",
                          lambda m: "%s%s%s -c %s" % (m.group(1), PIGEOND, m.group(2) or "", conf), text)
        self.assertEqual(n, 2, text)  # ExecStart and the check in ExecReload
        svc = os.path.join(self.dir, "pigeond.service")
        with open(svc, "w") as f:
            f.write(text)
        sock = os.path.join(self.dir, "pigeond.socket")
        shutil.copy(SOCKET, sock)
        return svc, sock

    @needs_analyze
    def test_verify(self):
        svc, sock = self.runnable_units()
        r = subprocess.run([ANALYZE, "verify", "--man=no", svc, sock], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", r.stderr)

    @needs_analyze
    def test_verify_catches_mistakes(self):
        # The check has teeth: a misspelt setting and a missing binary both fail.
        svc, _ = self.runnable_units()
        with open(svc, "a") as f:
            f.write("[Service]\nProtectSystm=strict\n")
        r = subprocess.run([ANALYZE, "verify", "--man=no", svc], capture_output=True, text=True,
                           timeout=120)
        self.assertIn("ProtectSystm", r.stderr)
        r = subprocess.run([ANALYZE, "verify", "--man=no", SERVICE], capture_output=True,
                           text=True, timeout=120)
        if not os.path.exists(self.svc[("Service", "ExecStart")][0].split()[0]):
            self.assertNotEqual(r.returncode, 0)

    @needs_analyze
    def test_security_score(self):
        r = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", SERVICE],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for pigeond\.service: (\d+\.\d+)", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        score = float(m.group(1))
        recorded = recorded_exposure()
        print("systemd-analyze security: %.1f (docs/operations.md: %.1f)" % (score, recorded))
        self.assertLessEqual(score, recorded, "worse than docs/operations.md records:\n" + r.stdout)

    def test_recorded_exposure_parsed(self):
        self.assertTrue(0 <= recorded_exposure() <= 10)

    def assert_notify_settings(self, s, have_systemd):
        if have_systemd:
            self.assertEqual(s[("Service", "Type")], ["notify"])
            self.assertEqual(s[("Service", "NotifyAccess")], ["main"])
            self.assertRegex(s[("Service", "WatchdogSec")][0], r"^\d+s$")
        else:
            # No READY=1 would ever come, and no WATCHDOG=1: systemd would
            # fail the start, or kill pigeond after WatchdogSec.
            self.assertEqual(s[("Service", "Type")], ["exec"])
            self.assertNotIn(("Service", "WatchdogSec"), s)
            self.assertNotIn(("Service", "NotifyAccess"), s)

    def test_notify_watchdog_reload_restart(self):
        s = self.svc
        self.assert_notify_settings(s, HAVE_SYSTEMD)
        self.assertEqual(s[("Service", "Restart")], ["on-failure"])
        reload = s[("Service", "ExecReload")]
        self.assertEqual(reload[-1], "/bin/kill -HUP $MAINPID")
        self.assertRegex(reload[0], r"/pigeond -t -c \S+/pigeon/pigeond\.conf$")
        self.assertRegex(s[("Service", "ExecStart")][0], r"^/\S+/pigeond -c /\S+/pigeon/pigeond\.conf$")
        self.assertNotIn("@", s[("Service", "ExecStart")][0])  # configured, not the template

    @unittest.skipUnless(MESON, "meson not found")
    def test_unit_follows_libsystemd(self):
        # Configure (no build: the unit is made at setup) with libsystemd off,
        # and, where it is installed, on.
        variants = [("disabled", False)] + ([("enabled", True)] if HAVE_SYSTEMD else [])
        for option, have in variants:
            with self.subTest(systemd=option):
                build = os.path.join(self.dir, "build-" + option)
                r = subprocess.run([MESON, "setup", build, SOURCE_ROOT, "-Dsystemd=" + option,
                                    "-Dtests=false"], capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                unit = os.path.join(build, "systemd", "pigeond.service")
                self.assert_notify_settings(unit_settings(unit), have)
                if ANALYZE:
                    with open(unit) as f:
                        text = f.read()
                    svc = os.path.join(self.dir, "pigeond.service")
                    with open(svc, "w") as f:
                        f.write(re.sub(r"(?m)^(Exec\w+=)\S*/pigeond", r"\g<1>" + PIGEOND, text))
                    r = subprocess.run([ANALYZE, "verify", "--man=no", svc], capture_output=True,
                                       text=True, timeout=120)
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_descriptor_limit_covers_max_connections(self):
        # max_connections' default plus server.c's SERVER_FD_RESERVE.
        self.assertGreaterEqual(int(self.svc[("Service", "LimitNOFILE")][0]), 10000 + 64)

    def test_user_and_directories(self):
        s = self.svc
        self.assertEqual(s[("Service", "DynamicUser")], ["yes"])
        for key in ("RuntimeDirectory", "StateDirectory", "ConfigurationDirectory"):
            self.assertEqual(s[("Service", key)], ["pigeon"], key)

    def test_hardening(self):
        s = self.svc
        want = {
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "PrivateDevices": "yes", "MemoryDenyWriteExecute": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
            "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
            "SystemCallArchitectures": "native",
        }
        for key, value in want.items():
            self.assertEqual(s.get(("Service", key)), [value], key)
        self.assertEqual(s[("Service", "SystemCallFilter")][0], "@system-service")

    def test_socket_matches_sample_listener(self):
        sock = unit_settings(SOCKET)
        streams = sock[("Socket", "ListenStream")]
        self.assertEqual(streams, ["127.0.0.1:7400"])
        self.assertNotIn(("Socket", "FileDescriptorName"), sock)  # matched by address
        with open(os.path.join(SOURCE_ROOT, "conf", "pigeond.conf")) as f:
            sample = f.read()
        self.assertRegex(sample, r"(?m)^\[listener default\]\nbind = 127\.0\.0\.1:7400$")
        self.assertEqual(sock[("Socket", "Service")], ["pigeond.service"])


if __name__ == "__main__":
    main()
