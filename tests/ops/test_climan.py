"""test_climan.py - pigeon(1) matches the CLI it documents: every option each
subcommand's --help lists is in that subcommand's section of man/pigeon.1
(or under COMMON OPTIONS), every option the page lists is real, and the
page names every subcommand `pigeon --help` lists.  Skipped until the CLI
(clients/cli) is part of the build.  The common options are for commands
that talk to a broker: `pigeon passwd` does not, and has none of them.
"""

import os
import re
import subprocess
import unittest

from opslib import SOURCE_ROOT, main

BUILD = os.environ.get("PIGEON_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
CLI = os.path.join(BUILD, "clients", "cli", "pigeon")
MAN = os.path.join(SOURCE_ROOT, "man", "pigeon.1")
LOCAL_COMMANDS = {"passwd"}  # no broker: no --server, --name, --quiet


def help_text(*args):
    r = subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def help_options(text):
    """The long options of a --help text's option list."""
    return set(re.findall(r"(?m)^\s+(?:-\w, )?--([a-z][a-z-]*)", text))


def man_sections():
    """{section heading: text} of the man page."""
    with open(MAN) as f:
        page = f.read()
    parts = re.split(r"(?m)^\.SH (.+)$", page)
    return {parts[i].strip('"'): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def man_options(text):
    """The long options of the .TP entries in a man page section."""
    out = set()
    for tag in re.findall(r"(?m)^\.TP\n(.+)$", text):
        out.update(re.findall(r"\\-\\-([a-z][a-z\\-]*)", tag))
    return {o.replace("\\-", "-") for o in out}


@unittest.skipUnless(os.path.exists(CLI), "the pigeon CLI is not built yet")
class CliManPage(unittest.TestCase):

    def test_commands(self):
        commands = re.findall(r"(?m)^  ([a-z]+) ", help_text("--help").split("commands:")[1])
        self.assertTrue(commands)
        sections = man_sections()
        for cmd in commands:
            self.assertIn(cmd.upper(), sections, "pigeon %s has no section in pigeon(1)" % cmd)
            self.assertIn(".B pigeon %s\n" % cmd, sections["SYNOPSIS"])

    def test_options_match(self):
        sections = man_sections()
        common = man_options(sections["COMMON OPTIONS"])
        commands = re.findall(r"(?m)^  ([a-z]+) ", help_text("--help").split("commands:")[1])
        for cmd in commands:
            with self.subTest(command=cmd):
                real = help_options(help_text(cmd, "--help"))
                self.assertTrue(real, "no options parsed from pigeon %s --help" % cmd)
                documented = man_options(sections[cmd.upper()]) | common
                self.assertEqual(real - documented, set(), "undocumented options of pigeon %s" % cmd)
                self.assertEqual(man_options(sections[cmd.upper()]) - real, set(),
                                 "pigeon(1) documents options pigeon %s does not have" % cmd)
                if cmd in LOCAL_COMMANDS:
                    self.assertEqual(real - {"help"} - man_options(sections[cmd.upper()]), set())
                    continue
                self.assertEqual(common - real, set(), "a common option pigeon %s lacks" % cmd)


if __name__ == "__main__":
    main()
