"""test_cli.py - the `pigeon` command line against a real pigeond.

Every subcommand (`passwd` without a broker, on a pipe and on a pty), the JSON <-> MessagePack mapping with its '$' forms (both
ways, checked on the wire with the harness's raw protocol client), stdin
mode, raw mode, the documented exit codes, --help, and a small `bench`.

The broker comes from tests/integration/harness.py ($PIGEON_HARNESS_DIR);
the CLI from $PIGEON_CLI.  Waits are deadlines, never timing asserts.
"""

import ctypes
import ctypes.util
import datetime
import hashlib
import json
import math
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.environ.get("PIGEON_HARNESS_DIR",
                                  os.path.join(os.path.dirname(__file__), "../../../tests/integration")))
import harness  # noqa: E402
import msgpack  # noqa: E402

CLI = os.environ.get("PIGEON_CLI", os.path.join(os.path.dirname(__file__), "../../../build/clients/cli/pigeon"))
DEADLINE = harness.DEADLINE

OK, USAGE, CONNECTION, BROKER, TIMEOUT, NO_RESPONDERS, ERROR_REPLY = 0, 1, 2, 3, 4, 5, 7


def unpack(data):
    """Decodes MessagePack keeping str (even invalid UTF-8) and bin apart."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, unicode_errors="surrogateescape")


def same_value(a, b):
    """Equality that treats NaN as equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a.keys()) == list(b.keys()) and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def pub_frame(topic, payload_bytes):
    """A pub notification carrying PAYLOAD_BYTES exactly as given."""
    return b"\x93\x02\xa3pub\x92" + msgpack.packb(topic) + payload_bytes


class CliBase(unittest.TestCase):
    """A broker per test, and helpers to run the CLI against it."""

    BROKER = None
    LISTENERS = None

    def setUp(self):
        self.broker = harness.Broker(self.BROKER, self.LISTENERS).start()
        self.addr = self.broker.address()
        self.procs = []
        self.clients = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdout, p.stderr, p.stdin):
                if f:
                    f.close()
        for c in self.clients:
            c.close()
        code = self.broker.stop()
        log = self.broker.log_text()
        self.broker.close()
        self.assertEqual(code, 0, "pigeond did not exit cleanly:\n" + log[-4000:])
        self.assertNotIn("AddressSanitizer", log)

    # ------------------------------------------------------------ helpers
    def env(self, **extra):
        env = dict(os.environ)
        env["PIGEON_SERVER"] = self.addr
        env.update(extra)
        return env

    def run_cli(self, *args, input=None, env=None, timeout=DEADLINE * 2):
        return subprocess.run([CLI] + list(args), input=input, capture_output=True,
                              env=env if env is not None else self.env(), timeout=timeout)

    def start_cli(self, *args, ready="subscribed to", env=None):
        """Starts a long-running command; waits for READY on its stderr."""
        p = subprocess.Popen([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env if env is not None else self.env())
        self.procs.append(p)
        self.wait_stderr(p, ready)
        return p

    def wait_stderr(self, p, text):
        """Reads P's stderr until TEXT has appeared; returns what was read."""
        seen = b""
        end = time.monotonic() + DEADLINE
        while text.encode() not in seen:
            left = end - time.monotonic()
            self.assertGreater(left, 0, "no '%s' from %s: %r" % (text, p.args, seen))
            r, _, _ = select.select([p.stderr], [], [], min(left, 0.5))
            if r:
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    self.fail("%s exited: %r" % (p.args, seen))
                seen += chunk
        return seen

    def finish(self, p, timeout=DEADLINE):
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err

    def lines(self, out):
        return [json.loads(line) for line in out.decode().splitlines()]

    def raw_client(self):
        c = harness.Client(self.addr)
        self.clients.append(c)
        return c

    def read_lines(self, procs, n):
        """Reads stdout of PROCS until they printed N lines in all; returns them parsed."""
        bufs = {p.stdout.fileno(): b"" for p in procs}
        end = time.monotonic() + DEADLINE
        while sum(b.count(b"\n") for b in bufs.values()) < n:
            left = end - time.monotonic()
            self.assertGreater(left, 0, "only %r" % bufs)
            r, _, _ = select.select(list(bufs), [], [], min(left, 0.5))
            for fd in r:
                chunk = os.read(fd, 65536)
                self.assertTrue(chunk, "a subscriber exited")
                bufs[fd] += chunk
        return [self.lines(b) for b in bufs.values()]



class CliTest(CliBase):
    # -------------------------------------------------------------- pub/sub
    def test_pub_sub_json(self):
        sub = self.start_cli("sub", "t.>", "--count", "4")
        docs = ['{"a": 1, "b": [1, 2.5, "s", null, true]}', '"text"', "-7", "[]"]
        for i, d in enumerate(docs):
            r = self.run_cli("pub", "t.%d" % i, "--", d)  # "--": "-7" is not an option
            self.assertEqual(r.returncode, OK, r.stderr)
        code, out, err = self.finish(sub)
        self.assertEqual(code, OK, err)
        got = self.lines(out)
        self.assertEqual([g["topic"] for g in got], ["t.0", "t.1", "t.2", "t.3"])
        self.assertEqual([g["payload"] for g in got], [json.loads(d) for d in docs])
        self.assertTrue(all(set(g) == {"topic", "payload"} for g in got))

    def test_pub_bytes_on_the_wire(self):
        c = self.raw_client()
        c.sub("w.>")
        cases = {
            '{"$bin": "AAEC/w=="}': b"\x00\x01\x02\xff",
            '{"$ext": [7, "aGk="]}': msgpack.ExtType(7, b"hi"),
            '{"$map": [[1, "one"], [-2, null]]}': {1: "one", -2: None},
            '{"$int": "18446744073709551615"}': 2 ** 64 - 1,
            '{"$float": "-inf"}': float("-inf"),
            '{"x": 1.5, "y": "\\u00e9"}': {"x": 1.5, "y": "\u00e9"},
            # docs/cli.md's examples: a tag as a value; two keys, an ordinary map.
            '{"kind": {"$ext": [5, "AQI="]}, "at": {"$int": "18446744073709551615"}}':
                {"kind": msgpack.ExtType(5, b"\x01\x02"), "at": 2 ** 64 - 1},
            '{"$ext": [5, "AQI="], "at": 1}': {"$ext": [5, "AQI="], "at": 1},
        }
        for doc in cases:
            self.assertEqual(self.run_cli("pub", "w.x", doc).returncode, OK)
        c.wait_messages(len(cases))
        for msg, want in zip(c.messages, cases.values()):
            self.assertEqual(msg[2], want)

    def test_round_trip_of_what_json_cannot_show(self):
        """Raw payloads -> `sub` JSON -> `pub -` -> the same values on the wire."""
        raw = self.raw_client()
        payloads = [
            msgpack.packb(b"\x00\xfe"),                         # bin
            msgpack.packb(msgpack.ExtType(5, b"\x01\x02")),     # ext
            msgpack.packb({1: 2, "a": {b"k": 3}}),              # non-string keys
            msgpack.packb(2 ** 64 - 1),                        # above int64
            msgpack.packb(float("nan")),                        # NaN
            b"\xa2\xff\xfe",                                     # str, not UTF-8
            msgpack.packb({"$bin": "not a tag"}),              # a map keyed by a tag
            b"\xca\x3f\xc0\x00\x00",                            # float32 1.5
            msgpack.packb([None, True, -3, "\u2603", [], {}]),
        ]
        sub = self.start_cli("sub", "rt.in", "--count", str(len(payloads)))
        for p in payloads:
            raw.send_raw(pub_frame("rt.in", p))
        raw.ping()
        code, out, err = self.finish(sub)
        self.assertEqual(code, OK, err)
        lines = self.lines(out)
        self.assertEqual(len(lines), len(payloads))
        self.assertEqual(lines[0]["payload"], {"$bin": "AP4="})
        self.assertEqual(lines[1]["payload"], {"$ext": [5, "AQI="]})
        self.assertEqual(lines[5]["payload"], {"$str": "//4="})
        self.assertEqual(lines[6]["payload"], {"$map": [["$bin", "not a tag"]]})
        self.assertEqual(lines[7]["payload"], 1.5)
        # ... and back: one JSON document per line on stdin.
        raw2 = harness.Client(self.addr)
        self.clients.append(raw2)
        raw2.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                         unicode_errors="surrogateescape")
        raw2.sub("rt.out")
        text = "\n".join(json.dumps(line["payload"]) for line in lines) + "\n"
        r = self.run_cli("pub", "rt.out", "-", input=text.encode())
        self.assertEqual(r.returncode, OK, r.stderr)
        raw2.wait_messages(len(payloads))
        for msg, p in zip(raw2.messages, payloads):
            self.assertTrue(same_value(msg[2], unpack(p)), (msg[2], unpack(p)))

    def test_stdin_bad_line_names_its_line(self):
        c = self.raw_client()
        c.sub("bad.lines")
        r = self.run_cli("pub", "bad.lines", "-", input=b'1\n\n{bad\n3\n')
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(b"pigeon pub: stdin line 3: invalid JSON at column", r.stderr)
        self.assertNotIn(b"line 1", r.stderr)
        # The lines before it were published; none after it.
        c.wait_messages(1)
        self.assertEqual(self.run_cli("pub", "--confirm", "bad.lines", "9").stdout, b"1\n")
        c.wait_messages(2)
        self.assertEqual([m[2] for m in c.messages], [1, 9])
        # A $ form that is wrong is named with its line as well.
        r = self.run_cli("pub", "bad.lines", "-", input=b'{"$bin": "@@"}\n')
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(b"stdin line 1: ", r.stderr)

    def test_stdin_lines_and_raw(self):
        sub = self.start_cli("sub", "in.x", "--count", "3", "--raw")
        r = self.run_cli("pub", "in.x", "-", input=b'1\n\n  \n{"a": 2}\r\n[3]')
        self.assertEqual(r.returncode, OK, r.stderr)
        code, out, _ = self.finish(sub)
        self.assertEqual(code, OK)
        self.assertEqual(out, msgpack.packb(1) + msgpack.packb({"a": 2}) + msgpack.packb([3]))
        # Raw bytes back in, exactly.
        c = self.raw_client()
        c.sub("in.y")
        blob = b"\xcf" + (1).to_bytes(8, "big") + b"\xc4\x02hi"  # 1 as uint64, bin "hi"
        r = self.run_cli("pub", "--raw", "in.y", "-", input=blob)
        self.assertEqual(r.returncode, OK, r.stderr)
        c.wait_messages(2)
        self.assertEqual([m[2] for m in c.messages], [1, b"hi"])
        r = self.run_cli("pub", "--raw", "in.y", "-", input=b"\x92\x01")
        self.assertEqual(r.returncode, USAGE)

    def write_file(self, data):
        """A temporary file holding DATA (bytes); removed after the test."""
        f = tempfile.NamedTemporaryFile(prefix="pigeon-cli-", delete=False)
        self.addCleanup(os.unlink, f.name)
        with f:
            f.write(data)
        return f.name

    def test_pub_file(self):
        c = self.raw_client()
        c.sub("f.>")
        doc = {"order": 17, "items": [{"sku": "A-1", "qty": 2}], "note": "\u00e9", "ok": None}
        pretty = json.dumps(doc, indent=4).encode()
        path = self.write_file(pretty)
        # One document of any layout: what 'pub -' (a document per line) refuses.
        self.assertEqual(self.run_cli("pub", "f.lines", "-", input=pretty).returncode, USAGE)
        r = self.run_cli("pub", "-f", path, "f.file")
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        r = self.run_cli("pub", "f.stdin", "--file", "-", input=pretty)
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        # --raw reads MessagePack objects from a file as from stdin.
        raw = self.write_file(msgpack.packb(1) + msgpack.packb({"k": b"\x00"}))
        self.assertEqual(self.run_cli("pub", "--raw", "-f", raw, "f.raw").returncode, OK)
        c.wait_messages(4)
        self.assertEqual([(m[1], m[2]) for m in c.messages],
                         [("f.file", doc), ("f.stdin", doc), ("f.raw", 1), ("f.raw", {"k": b"\x00"})])
        # What is wrong is said with the file's name and the line.
        bad = self.write_file(b'{\n  "a": 1,\n  oops\n}\n')
        r = self.run_cli("pub", "-f", bad, "f.bad")
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(("pigeon pub: %s: invalid JSON at line 3" % bad).encode(), r.stderr)
        r = self.run_cli("pub", "-f", "/nonexistent/x.json", "f.bad")
        self.assertEqual(r.returncode, USAGE)
        self.assertEqual(r.stderr, b"pigeon: cannot open /nonexistent/x.json: No such file or directory\n")

    def test_pub_text(self):
        c = self.raw_client()
        c.sub("x.>")
        cases = [
            (["x.word", "hello world"], None, "hello world"),
            (["x.json", '{"a": 1}'], None, '{"a": 1}'),      # not parsed: a string
            (["x.num", "--", "-4.5"], None, "-4.5"),
            (["x.empty", ""], None, ""),
            (["x.file", "-f", self.write_file(b"two\nlines\n")], None, "two\nlines\n"),
        ]
        for args, stdin, _ in cases:
            r = self.run_cli("pub", "--text", *args, input=stdin)
            self.assertEqual((r.returncode, r.stderr), (OK, b""), args)
        # '-': one string per line.
        r = self.run_cli("pub", "--text", "x.lines", "-", input="caf\u00e9\n\n  x y \r\n".encode())
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        c.wait_messages(len(cases) + 2)
        self.assertEqual([m[2] for m in c.messages],
                         [want for _, _, want in cases] + ["caf\u00e9", "  x y "])
        self.assertTrue(all(isinstance(m[2], str) for m in c.messages))
        r = self.run_cli("pub", "--text", "x.bad", "-", input=b"ok\n\xff\xfe\n")
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(b"pigeon pub: stdin line 2: the text is not UTF-8", r.stderr)

    def test_pub_binary(self):
        c = self.raw_client()
        c.sub("b.>")
        blob = bytes(range(256)) * 3
        r = self.run_cli("pub", "--binary", self.write_file(blob), "b.file")
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        r = self.run_cli("pub", "b.stdin", "--binary", "-", input=b"\x00\n\xff")
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        r = self.run_cli("pub", "b.empty", "--binary", self.write_file(b""))
        self.assertEqual(r.returncode, OK)
        c.wait_messages(3)
        self.assertEqual([m[2] for m in c.messages], [blob, b"\x00\n\xff", b""])
        self.assertTrue(all(isinstance(m[2], bytes) for m in c.messages))

    def test_pub_sources_that_do_not_go_together(self):
        f = self.write_file(b"1")
        for args in (["--binary", f, "t", "1"], ["--binary", f, "--text", "t"],
                     ["--binary", f, "-f", f, "t"], ["--binary", f, "--raw", "t"],
                     ["-f", f, "t", "1"], ["--text", "t"], ["--text", "--raw", "t", "-"],
                     ["--raw", "t", "1"], ["--raw", "t"]):
            with self.subTest(args=args):
                r = self.run_cli("pub", *args)
                self.assertEqual(r.returncode, USAGE)
                self.assertTrue(r.stderr.startswith(b"pigeon pub: "), r.stderr)

    def test_options_headers_reply_to_retained(self):
        r = self.run_cli("pub", "--retain", "--header", "k=v", "--header", "trace=a=b",
                         "--reply-to", "re.ply", "opt.x", '{"n": 1}')
        self.assertEqual(r.returncode, OK, r.stderr)
        sub = self.start_cli("sub", "opt.*", "--count", "2")
        self.assertEqual(self.run_cli("pub", "opt.y", "2").returncode, OK)
        code, out, _ = self.finish(sub)
        first, second = self.lines(out)
        self.assertEqual(first, {"topic": "opt.x", "payload": {"n": 1}, "reply_to": "re.ply",
                                 "headers": {"k": "v", "trace": "a=b"}, "retained": True})
        self.assertEqual(second, {"topic": "opt.y", "payload": 2})
        # No DATA is null: with --retain it clears the retained value.
        self.assertEqual(self.run_cli("pub", "--retain", "opt.x").returncode, OK)
        r = self.run_cli("sub", "opt.x", "--timeout", "0.3")
        self.assertEqual((r.returncode, r.stdout), (OK, b""))

    def test_confirm_and_queue_groups(self):
        a = self.start_cli("sub", "--queue", "g", "q.x")
        b = self.start_cli("sub", "q.x", "--queue", "g")
        r = self.run_cli("pub", "--confirm", "q.x", "1")
        self.assertEqual((r.returncode, r.stdout), (OK, b"1\n"))
        text = "".join("%d\n" % i for i in range(20)).encode()
        self.assertEqual(self.run_cli("pub", "q.x", "-", input=text).returncode, OK)
        per_member = self.read_lines([a, b], 21)
        got = sorted(x["payload"] for lines in per_member for x in lines)
        self.assertEqual(got, sorted([1] + list(range(20))))
        self.assertTrue(all(per_member), "one member got nothing")

    def test_sub_verbose(self):
        sub = self.start_cli("sub", "-v", "v.*", "--count", "3")
        for topic, doc in (("v.a", '{"x": [1, 2.5]}'), ("v.b", '"two words"'), ("v.c", "null")):
            self.assertEqual(self.run_cli("pub", topic, doc).returncode, OK)
        code, out, err = self.finish(sub)
        self.assertEqual(code, OK, err)
        self.assertEqual(out, b'v.a {"x":[1,2.5]}\nv.b "two words"\nv.c null\n')

    def test_sub_pretty(self):
        sub = self.start_cli("sub", "--pretty", "p.>", "--count", "2")
        self.assertEqual(self.run_cli("pub", "-H", "k=v", "--reply-to", "re.p", "p.x",
                                      '{"a": {"b": [1, {}], "c": []}, "\u00e9": "\u00e9"}').returncode, OK)
        self.assertEqual(self.run_cli("pub", "p.y", "7").returncode, OK)
        code, out, err = self.finish(sub)
        self.assertEqual(code, OK, err)
        first = {"topic": "p.x", "payload": {"a": {"b": [1, {}], "c": []}, "\u00e9": "\u00e9"},
                 "reply_to": "re.p", "headers": {"k": "v"}}
        want = "".join(json.dumps(o, indent=2, ensure_ascii=False) + "\n"
                       for o in (first, {"topic": "p.y", "payload": 7}))
        self.assertEqual(out.decode(), want)
        # With -v and --format, the payload (and headers) are what is indented.
        sub = self.start_cli("sub", "-v", "--pretty", "p.z", "--count", "1")
        self.assertEqual(self.run_cli("pub", "p.z", "[1]").returncode, OK)
        self.assertEqual(self.finish(sub)[1], b"p.z [\n  1\n]\n")

    def test_sub_format(self):
        self.assertEqual(self.run_cli("pub", "--retain", "f.r", '"kept"').returncode, OK)
        before = time.time()
        sub = self.start_cli("sub", "f.*", "--count", "2", "--format",
                             "{sid}|{topic}|{payload}|{headers}|{reply_to}|{retained}|{time}")
        self.assertEqual(self.run_cli("pub", "-H", "a=1", "-H", "b=x y", "--reply-to", "re.f",
                                      "f.live", '{"n": 1}').returncode, OK)
        code, out, err = self.finish(sub)
        after = time.time()
        self.assertEqual(code, OK, err)
        lines = [line.split("|") for line in out.decode().splitlines()]
        self.assertEqual([line[1:6] for line in lines],
                         [["f.r", '"kept"', "{}", "", "true"],
                          ["f.live", '{"n":1}', '{"a":"1","b":"x y"}', "re.f", "false"]])
        self.assertTrue(lines[0][0].isdigit() and int(lines[0][0]) > 0, lines)
        self.assertEqual(lines[0][0], lines[1][0])  # one subscription
        for line in lines:
            self.assertRegex(line[6], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            stamp = datetime.datetime.strptime(line[6], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            self.assertTrue(before - 1 <= stamp <= after + 1, (before, line[6], after))
        # Braces, escapes, and text alone.
        sub = self.start_cli("sub", "f.e", "--count", "1", "-F", "{{{topic}}}\\t{payload}\\n--")
        self.assertEqual(self.run_cli("pub", "f.e", "1").returncode, OK)
        self.assertEqual(self.finish(sub)[1], b"{f.e}\t1\n--\n")

    def test_sub_output_refusals(self):
        for args, why in ((["-F", "{nope}"], "no field {nope}: {topic} {payload}"),
                          (["-F", "{topic"], "'{' with no '}'"),
                          (["-F", "a}b"], "a '}' with no '{'"),
                          (["-F", ""], "an empty template"),
                          (["-v", "-F", "{topic}"], "-v and --format do not go together"),
                          (["--raw", "--pretty"], "--raw writes bytes"),
                          (["--raw", "-v"], "--raw writes bytes")):
            with self.subTest(args=args):
                r = self.run_cli("sub", *args, "a")
                self.assertEqual(r.returncode, USAGE)
                self.assertIn(why.encode(), r.stderr)

    def test_sub_timeout_and_count(self):
        r = self.run_cli("sub", "quiet", "--timeout", "0.2")
        self.assertEqual((r.returncode, r.stdout), (OK, b""))
        r = self.run_cli("sub", "quiet", "--timeout", "200ms", "--count", "1")
        self.assertEqual(r.returncode, TIMEOUT)
        r = self.run_cli("sub", "-q", "quiet", "--timeout", "0.1")
        self.assertEqual(r.stderr, b"")

    # ---------------------------------------------------------- req/reply
    def test_req_reply(self):
        rep = self.start_cli("reply", "svc.echo", "--count", "2", "cat", ready="answering")
        r = self.run_cli("req", "svc.echo", '{"a": [1, {"$bin": "AA=="}]}')
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"a": [1, {"$bin": "AA=="}]})
        r = self.run_cli("req", "--raw", "svc.echo", "-", input=b'"hi"')
        self.assertEqual((r.returncode, r.stdout), (OK, msgpack.packb("hi")))
        self.assertEqual(self.finish(rep)[0], OK)

    def test_reply_command_sees_request(self):
        script = ('import json,os,sys; r=json.loads(sys.stdin.read()); '
                  'print(json.dumps({"got": r, "topic": os.environ["PIGEON_TOPIC"], '
                  '"inbox": os.environ["PIGEON_REPLY_TO"].startswith("_INBOX.")}))')
        rep = self.start_cli("reply", "calc.*", sys.executable, "-c", script, ready="answering")
        r = self.run_cli("req", "calc.add", "[1, 2]")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"got": [1, 2], "topic": "calc.add", "inbox": True})
        rep.terminate()

    def test_reply_command_failure_sends_an_error_reply(self):
        # The requester hears at once, not after its timeout: a long one
        # here, which the test would wait out if no error reply came.
        cases = [
            (("sh", "-c", "cat >/dev/null; exit 3"), "command 'sh' exited with status 3"),
            (("echo", "{not json"), "command 'echo' printed no JSON (invalid JSON at line 1, column 4"),
            (("/nonexistent/cmd",), "command '/nonexistent/cmd' could not be run"),
        ]
        for i, (cmd, why) in enumerate(cases):
            with self.subTest(cmd=cmd):
                rep = self.start_cli("reply", "bad.%d" % i, *cmd, ready="answering")
                r = self.run_cli("req", "--timeout", "10m", "bad.%d" % i, "1")
                self.assertEqual(r.returncode, ERROR_REPLY)
                self.assertEqual(r.stdout, b"")
                err = r.stderr.decode()
                self.assertTrue(err.startswith("pigeon: error reply from 'bad.%d': %s" % (i, why)),
                                err)
                self.assertEqual(len(err.splitlines()), 1)
                rep.terminate()
                _, _, err = self.finish(rep)
                self.assertIn(b": error reply sent", err)
        # On the wire: a map whose one key is "error", for any requester to see.
        rep = self.start_cli("reply", "bad.wire", "false", ready="answering")
        c = self.raw_client()
        c.sub("my.inbox")
        self.assertEqual(c.pub("bad.wire", 1, reply_to="my.inbox"), 1)
        c.wait_messages(1)
        self.assertEqual(c.messages[0][1:3],
                         ["my.inbox", {"error": "command 'false' exited with status 1"}])
        rep.terminate()

    def test_req_recognises_error_replies(self):
        # Any responder may send one; any value is shown.  A map with other
        # keys besides "error" is an ordinary answer.
        cases = [
            ('{"error": {"code": 42}}', ERROR_REPLY, b"", 'error reply from \'e.svc\': {"code":42}'),
            ('{"error": "x", "id": 1}', OK, b'{"error":"x","id":1}\n', ""),
            ('{"errors": "x"}', OK, b'{"errors":"x"}\n', ""),
        ]
        for answer, code, out, err in cases:
            with self.subTest(answer=answer):
                rep = self.start_cli("reply", "--count", "1", "e.svc", "echo", answer,
                                     ready="answering")
                r = self.run_cli("req", "e.svc", "1")
                self.assertEqual((r.returncode, r.stdout), (code, out), r.stderr)
                self.assertIn(err, r.stderr.decode())
                self.assertEqual(self.finish(rep)[0], OK)

    # ---------------------------------------------------------- exit codes
    def test_exit_codes(self):
        self.assertEqual(self.run_cli().returncode, USAGE)
        self.assertEqual(self.run_cli("frobnicate").returncode, USAGE)
        self.assertEqual(self.run_cli("pub").returncode, USAGE)
        self.assertEqual(self.run_cli("pub", "--bogus", "a", "1").returncode, USAGE)
        r = self.run_cli("pub", "a..b", "1")
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(b"empty token", r.stderr)
        r = self.run_cli("pub", "a", "{oops")
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(b"invalid JSON", r.stderr)
        self.assertEqual(self.run_cli("sub", "a.>.b").returncode, USAGE)
        self.assertEqual(self.run_cli("req", "a", "1", "--timeout", "soon").returncode, USAGE)
        self.assertEqual(self.run_cli("reply", "a").returncode, USAGE)
        self.assertEqual(self.run_cli("bench", "--size", "3").returncode, USAGE)
        r = self.run_cli("pub", "$SYS.mine", "1")
        self.assertEqual(r.returncode, BROKER)
        self.assertIn(b"forbidden", r.stderr)
        r = self.run_cli("req", "nobody.home", "1")
        self.assertEqual(r.returncode, NO_RESPONDERS)
        port = self.broker.port()
        down = self.env(PIGEON_SERVER="127.0.0.1:1")
        r = self.run_cli("pub", "a", "1", env=down)
        self.assertEqual(r.returncode, CONNECTION)
        self.assertIn(b"refused", r.stderr)
        self.assertEqual(self.run_cli("sub", "a", env=down).returncode, CONNECTION)
        self.assertEqual(self.run_cli("pub", "-s", "not an address", "a", "1").returncode, USAGE)
        # The server from -s before the command, from -s after it, from the environment.
        env = self.env()
        del env["PIGEON_SERVER"]
        self.assertEqual(self.run_cli("-s", "127.0.0.1:%d" % port, "pub", "a", "1", env=env).returncode, OK)
        self.assertEqual(self.run_cli("pub", "--server", self.addr, "a", "1", env=down).returncode, OK)

    def test_addresses(self):
        # A bare number is a port on 127.0.0.1 (it used to be read as the
        # IPv4 address 0.0.83.152, port 7400: "the broker sent a bad frame").
        port = str(self.broker.port())
        c = self.raw_client()
        c.sub("addr.t")
        env = self.env()
        del env["PIGEON_SERVER"]
        r = self.run_cli("pub", "-s", port, "addr.t", "1", env=env)
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        r = self.run_cli("pub", "addr.t", "2", env=self.env(PIGEON_SERVER=port))
        self.assertEqual((r.returncode, r.stderr), (OK, b""))
        c.wait_messages(2)
        self.assertEqual([m[2] for m in c.messages], [1, 2])
        # What is none of the forms is refused before connecting, by name.
        for bad, why in (("127.0.0.1:99999", "the port must be a number from 1 to 65535"),
                         ("0", "the port must be a number from 1 to 65535"),
                         ("::1:7400", "an IPv6 address needs brackets: [addr]:port"),
                         ("127.1:7400", "not an IPv4 address or a host name"),
                         ("tcp://127.0.0.1:%s" % port, "unsupported scheme 'tcp://': expected "
                          "host:port, [v6addr]:port, unix:/path or tls://host:port"),
                         ("tls://unix:/tmp/x.sock", "TLS is for TCP: tls://host:port, not a unix "
                          "socket (its file mode guards it)")):
            for args in (["pub", "-s", bad, "addr.t", "1"], ["sub", "-s", bad, "addr.t"],
                         ["bench", "-s", bad, "--msgs", "1"]):
                with self.subTest(args=args):
                    r = self.run_cli(*args)
                    self.assertEqual(r.returncode, USAGE)
                    self.assertEqual(r.stderr.decode(), "pigeon: bad address '%s': %s\n" % (bad, why))

    def test_failed_first_connect_says_only_that(self):
        # sub and reply reconnect, but only a session once made: a failed
        # first attempt is one line and exit 2, no "reconnecting" note.
        down = self.env(PIGEON_SERVER="127.0.0.1:1")
        for args in (["sub", "a"], ["reply", "a", "cat"], ["pub", "a", "1"]):
            with self.subTest(args=args):
                r = self.run_cli(*args, env=down)
                self.assertEqual(r.returncode, CONNECTION)
                self.assertEqual(r.stderr.decode().splitlines(),
                                 ["pigeon: connect to 127.0.0.1:1: Connection refused"])

    def test_help(self):
        for cmd in ("pub", "sub", "req", "reply", "bench"):
            r = self.run_cli(cmd, "--help")
            self.assertEqual(r.returncode, OK)
            self.assertTrue(r.stdout.startswith(b"usage: pigeon " + cmd.encode()), r.stdout)
            self.assertEqual(self.run_cli("help", cmd).stdout, r.stdout)
        r = self.run_cli("--help")
        self.assertEqual(r.returncode, OK)
        self.assertIn(b"exit codes", r.stdout)

    # --------------------------------------------------------------- bench
    def bench(self, *args):
        r = self.run_cli("bench", "--json", "--no-progress", *args, timeout=DEADLINE * 4)
        self.assertEqual(r.returncode, OK, r.stderr)
        return json.loads(r.stdout)

    def test_bench(self):
        res = self.bench("--msgs", "20000", "--size", "64")
        self.assertEqual((res["pub"]["msgs"], res["sub"]["received"], res["sub"]["lost"]), (20000, 20000, 0))
        self.assertGreater(res["pub"]["msgs_per_sec"], 0)
        self.assertGreaterEqual(res["latency_us"]["max"], res["latency_us"]["p50"])
        res = self.bench("--msgs", "5000", "--pubs", "2", "--subs", "3", "--size", "300")
        self.assertEqual((res["sub"]["expected"], res["sub"]["received"]), (15000, 15000))
        res = self.bench("--msgs", "4000", "--subs", "2", "--queue", "workers")
        self.assertEqual((res["sub"]["expected"], res["sub"]["received"]), (4000, 4000))
        res = self.bench("--msgs", "300", "--rate", "3000", "--size", "70000")
        self.assertEqual(res["sub"]["received"], 300)
        res = self.bench("--msgs", "1000", "--subs", "0")
        self.assertEqual(res["pub"]["msgs"], 1000)
        r = self.run_cli("bench", "--msgs", "2000", "--progress")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIn(b"Latency (us): p50", r.stdout)
        self.assertIn(b"published 2000/2000", r.stderr)


class CliLimits(CliBase):
    BROKER = {"max_payload": "1k"}

    def test_too_large_is_refused(self):
        r = self.run_cli("pub", "big", json.dumps("x" * 2000))
        self.assertEqual(r.returncode, BROKER)
        self.assertIn(b"max_payload", r.stderr)
        r = self.run_cli("pub", "big", json.dumps("x" * 500))
        self.assertEqual(r.returncode, OK)


class CliRestart(CliBase):
    """The broker restarts under a running `sub` and `reply` (docs/cli.md
    promises they reconnect): it is bound to an explicit free port, so that
    the restarted broker listens where the first one did."""

    def setUp(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.LISTENERS = {"main": {"bind": "127.0.0.1:%d" % port}}
        super().setUp()

    def restart_broker(self):
        self.broker.stop(signal.SIGKILL)
        self.broker.log.close()
        self.broker.start()
        self.assertEqual(self.broker.address(), self.addr)

    def until_ok(self, *args, stdout=None):
        """Runs the CLI with ARGS until it exits 0 (and prints STDOUT, if
        given): the command's subscription is made again asynchronously
        after the reconnect."""
        end = time.monotonic() + DEADLINE
        while True:
            r = self.run_cli(*args)
            if r.returncode == OK and (stdout is None or r.stdout == stdout):
                return r
            self.assertLess(time.monotonic(), end, "never succeeded: %r" % (r,))
            time.sleep(0.05)

    def test_sub_reconnects_and_subscribes_again(self):
        sub = self.start_cli("sub", "r.x", "--count", "2")
        r = self.run_cli("pub", "--confirm", "r.x", "1")
        self.assertEqual((r.returncode, r.stdout), (OK, b"1\n"))
        self.restart_broker()
        err = self.wait_stderr(sub, "reconnected")
        self.assertIn(b"disconnected:", err)
        self.until_ok("pub", "--confirm", "r.x", "2", stdout=b"1\n")
        code, out, _ = self.finish(sub)
        self.assertEqual(code, OK)
        self.assertEqual([x["payload"] for x in self.lines(out)], [1, 2])

    def test_one_note_per_outage(self):
        # While the broker is away, every attempt fails: here a stand-in
        # accepts each connection and closes it at once, so the attempts
        # are counted.  The outage is still one "reconnecting" line.
        sub = self.start_cli("sub", "r.y", "--count", "1")
        port = self.broker.port()
        self.broker.stop(signal.SIGKILL)
        self.broker.log.close()
        seen = self.wait_stderr(sub, "reconnecting")
        with socket.socket() as standin:
            standin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            standin.bind(("127.0.0.1", port))
            standin.listen(16)
            standin.settimeout(DEADLINE)
            for _ in range(3):
                conn, _ = standin.accept()
                conn.close()
        self.broker.start()
        seen += self.wait_stderr(sub, "reconnected")
        self.until_ok("pub", "--confirm", "r.y", "1", stdout=b"1\n")
        code, _, rest = self.finish(sub)
        self.assertEqual(code, OK)
        # (start_cli read up to "subscribed to": the rest of that line may come first.)
        notes = [n for n in (seen + rest).decode().splitlines() if "connected" in n]
        self.assertEqual(len(notes), 2, notes)
        self.assertTrue(notes[0].startswith("pigeon: disconnected: "), notes)
        self.assertTrue(notes[0].endswith("; reconnecting"), notes)
        self.assertEqual(notes[1], "pigeon: reconnected")

    def test_reply_reconnects_and_answers_again(self):
        rep = self.start_cli("reply", "r.svc", "--count", "2", "cat", ready="answering")
        r = self.run_cli("req", "r.svc", "1")
        self.assertEqual((r.returncode, r.stdout), (OK, b"1\n"), r.stderr)
        self.restart_broker()
        self.wait_stderr(rep, "reconnected")
        r = self.until_ok("req", "r.svc", "2")  # "no responders" (5) until resubscribed
        self.assertEqual(r.stdout, b"2\n")
        self.assertEqual(self.finish(rep)[0], OK)


class CliUnixSocket(CliBase):
    def setUp(self):
        self.sockdir = tempfile.TemporaryDirectory(prefix="pigeon-cli-")
        self.LISTENERS = {"main": {"bind": "unix:%s/p.sock" % self.sockdir.name}}
        super().setUp()

    def tearDown(self):
        super().tearDown()
        self.sockdir.cleanup()

    def test_unix_address(self):
        self.assertTrue(self.addr.startswith("unix:"))
        sub = self.start_cli("sub", "u", "--count", "1")
        self.assertEqual(self.run_cli("pub", "u", '"over unix"').returncode, OK)
        code, out, _ = self.finish(sub)
        self.assertEqual(self.lines(out), [{"topic": "u", "payload": "over unix"}])


def crypt_check(password, hashed):
    """True when libxcrypt's crypt(PASSWORD, HASHED) gives HASHED back."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(password, hashed) == hashed


class CliPasswd(unittest.TestCase):
    """`pigeon passwd`: no broker; pipe mode, terminal mode on a pty, --token."""

    def passwd(self, *args, input=None):
        return subprocess.run([CLI, "passwd"] + list(args), input=input, capture_output=True,
                              timeout=DEADLINE)

    def test_pipe_one_line(self):
        r = self.passwd(input=b"correct horse\n")
        self.assertEqual(r.returncode, OK, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith(b"$y$"), lines)
        self.assertTrue(crypt_check(b"correct horse", lines[0]))
        self.assertFalse(crypt_check(b"correct horse\n", lines[0]))
        self.assertFalse(crypt_check(b"wrong horse", lines[0]))
        # A new salt each time.
        self.assertNotEqual(self.passwd(input=b"correct horse\n").stdout, r.stdout)

    def test_pipe_variants(self):
        # Only the first line counts; CRLF and a missing final newline are fine.
        for data, pw in [(b"pw one\nsecond line\n", b"pw one"), (b"pw-crlf\r\n", b"pw-crlf"),
                         (b"no-newline", b"no-newline"), (b" spaces kept ", b" spaces kept ")]:
            r = self.passwd(input=data)
            self.assertEqual(r.returncode, OK, r.stderr)
            self.assertTrue(crypt_check(pw, r.stdout.strip()), data)

    def test_pipe_refusals(self):
        for data, why in [(b"", b"no password given"), (b"\n", b"empty"),
                          (b"a\x00b\n", b"NUL byte"), (b"x" * 512 + b"\n", b"longer than 511")]:
            r = self.passwd(input=data)
            self.assertEqual(r.returncode, USAGE, data)
            self.assertEqual(r.stdout, b"")
            self.assertIn(why, r.stderr)
        self.assertEqual(self.passwd(input=b"x" * 511 + b"\n").returncode, OK)
        r = self.passwd("hunter2", input=b"x\n")
        self.assertEqual(r.returncode, USAGE)
        self.assertIn(b"never taken from the command line", r.stderr)
        self.assertEqual(self.passwd("--bogus").returncode, USAGE)

    def test_token(self):
        r = self.passwd("--token")
        self.assertEqual(r.returncode, OK, r.stderr)
        token, line = r.stdout.decode().splitlines()
        self.assertRegex(token, r"^[0-9a-f]{64}$")
        self.assertEqual(line, "token = sha256:" + hashlib.sha256(token.encode()).hexdigest())
        self.assertNotEqual(self.passwd("--token").stdout.splitlines()[0], token.encode())

    def test_help(self):
        r = self.passwd("--help")
        self.assertEqual(r.returncode, OK)
        self.assertIn(b"usage: pigeon passwd", r.stdout)
        r = subprocess.run([CLI, "--help"], capture_output=True, timeout=DEADLINE)
        self.assertIn(b"passwd", r.stdout)

    # -- the terminal: a pty from Python's pty module --

    def spawn_tty(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(CLI, [CLI, "passwd"])
        self.addCleanup(os.close, fd)
        return pid, fd

    def read_until(self, fd, text):
        seen = b""
        end = time.monotonic() + DEADLINE
        while text not in seen:
            left = end - time.monotonic()
            self.assertGreater(left, 0, "no %r on the terminal: %r" % (text, seen))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    self.fail("terminal closed: %r" % seen)
                seen += chunk
        return seen

    def read_rest(self, fd, pid):
        out = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        return out, status

    def test_tty_asks_twice_without_echo(self):
        pid, fd = self.spawn_tty()
        self.read_until(fd, b"Password: ")
        os.write(fd, b"tty secret\n")
        self.read_until(fd, b"Again: ")
        os.write(fd, b"tty secret\n")
        out, status = self.read_rest(fd, pid)
        self.assertEqual(os.waitstatus_to_exitcode(status), OK, out)
        self.assertNotIn(b"tty secret", out)  # never echoed
        hashed = [w for w in out.split() if w.startswith(b"$y$")]
        self.assertEqual(len(hashed), 1, out)
        self.assertTrue(crypt_check(b"tty secret", hashed[0]))
        self.assertTrue(termios.tcgetattr(fd)[3] & termios.ECHO)  # echo is back

    def test_tty_mismatch(self):
        pid, fd = self.spawn_tty()
        self.read_until(fd, b"Password: ")
        os.write(fd, b"one\n")
        self.read_until(fd, b"Again: ")
        os.write(fd, b"two\n")
        out, status = self.read_rest(fd, pid)
        self.assertEqual(os.waitstatus_to_exitcode(status), USAGE)
        self.assertIn(b"the passwords differ", out)
        self.assertNotIn(b"$y$", out)

    def test_tty_interrupt_restores_echo(self):
        pid, fd = self.spawn_tty()
        self.read_until(fd, b"Password: ")
        self.assertFalse(termios.tcgetattr(fd)[3] & termios.ECHO)  # off while it asks
        os.kill(pid, signal.SIGINT)
        _, status = self.read_rest(fd, pid)
        self.assertEqual(os.waitstatus_to_exitcode(status), -signal.SIGINT)
        self.assertTrue(termios.tcgetattr(fd)[3] & termios.ECHO)


if __name__ == "__main__":
    unittest.main(verbosity=2)
