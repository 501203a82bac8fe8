"""test_routing.py - which subscriptions a publication reaches, and in what order.

Patterns (exact, `*`, `>`, the `$` rule), several subscriptions on one
connection, queue groups, retained values, a random model check of all of
them together, and ordering: 100,000 messages from one publisher to one
subscriber, mixed sizes, a late reader, and fan-out to 50 subscribers.

Absence is never shown by waiting: the publisher's `pub` request answers
with the number of deliveries, and a sentinel published last (messages from
one publisher keep their order) proves nothing else was on its way.
"""

import os
import random
import struct
import subprocess
import tempfile

import harness
from harness import LIMIT, NOTIFICATION, RESPONSE, BrokerTest, pack, pub_frame_raw, raw_msg


class Patterns(BrokerTest):
    def check(self, pattern, matching, other):
        s = self.client()
        p = self.client()
        sid = s.sub(pattern)
        for topic in other:
            self.assertEqual(p.pub(topic, topic), 0, "%s matched %s" % (pattern, topic))
        for topic in matching:
            self.assertEqual(p.pub(topic, topic), 1, "%s did not match %s" % (pattern, topic))
        s.wait_messages(len(matching))
        s.sync()
        self.assertEqual(s.messages, [[sid, t, t] for t in matching])
        s.unsub(sid)  # the next check in the same test starts clean

    def test_exact(self):
        self.check("a.b", ["a.b"], ["a", "a.b.c", "a.c", "b.a", "a.bb", "A.b", "x.a.b"])

    def test_star(self):
        self.check("a.*.c", ["a.b.c", "a.x.c", "a.\u00e9.c"], ["a.c", "a.b.b.c", "a.b.c.d", "a.b", "b.b.c"])
        self.check("*", ["a", "b", "\u00e9"], ["a.b", "a.b.c"])
        self.check("*.b", ["a.b", "x.b"], ["b", "a.b.c", "a.c"])
        self.check("*.*", ["a.b"], ["a", "a.b.c"])

    def test_gt(self):
        self.check("a.>", ["a.b", "a.b.c", "a.b.c.d.e"], ["a", "b.a", "ab.c"])
        self.check(">", ["a", "a.b", "x.y.z"], [])
        self.check("a.*.>", ["a.b.c", "a.b.c.d"], ["a.b", "a"])

    def test_longest_topics(self):
        # 255 bytes, 128 tokens: the most a topic can have.
        many = ".".join(["a"] * 128)
        wide = "b" * 255
        self.check(many, [many], [many[:-2], "b." + many[2:]])
        self.check(".".join(["*"] * 128), [many], [many[:-2], wide])
        self.check("a.>", [many], [wide])
        self.check(">", [many, wide], [])
        p = self.client()
        p.pub(many, 1, retain=True)
        c = self.client()
        c.sub(".".join(["*"] * 127) + ".a")
        c.sync()
        self.assertEqual([m[1:] for m in c.messages], [[many, 1, {"retained": True}]])

    def test_system_topics_not_matched_by_wildcards(self):
        # The other half: a client cannot publish to '$' topics (code 8), so a
        # `>` or `*` subscriber never sees one from a client.
        s = self.client()
        p = self.client()
        sids = [s.sub(">"), s.sub("*"), s.sub("*.x"), s.sub("$SYS.x")]
        self.assertEqual(p.request_error("pub", "$SYS.x", 1)[0], harness.FORBIDDEN)
        self.assertEqual(p.pub("sentinel", 1), 2)
        s.wait_messages(2)
        s.sync()
        self.assertEqual(sorted(m[0] for m in s.messages), sorted(sids[:2]))


    def test_several_subscriptions_on_one_connection(self):
        s = self.client()
        p = self.client()
        sids = [s.sub("a.b.c"), s.sub("a.*.c"), s.sub("a.>"), s.sub(">"), s.sub("a.b.c"), s.sub("x.>")]
        self.assertEqual(p.pub("a.b.c", "m"), 5)
        s.wait_messages(5)
        s.sync()
        self.assertEqual(sorted(m[0] for m in s.messages), sorted(sids[:5]))
        self.assertTrue(all(m[1:] == ["a.b.c", "m"] for m in s.messages))

    def test_unsub_stops_one_subscription_only(self):
        s = self.client()
        p = self.client()
        a, b = s.sub("u.>"), s.sub("u.x")
        s.unsub(a)
        self.assertEqual(p.pub("u.x", 1), 1)
        self.assertEqual(p.pub("u.y", 2), 0)
        s.wait_messages(1)
        self.assertEqual(s.messages, [[b, "u.x", 1]])

    def test_closed_subscriber_with_many_subscriptions(self):
        s = self.client()
        p = self.client()
        batch = []
        for i in range(5000):
            pattern = ["many.%d" % i, "many.*.%d" % i, "many.%d.>" % i][i % 3]
            opts = [{"queue": "q%d" % (i % 7)}] if i % 5 == 0 else []
            batch.append(harness.request_frame(100000 + i, "sub", [pattern] + opts))
        s.send_raw(b"".join(batch))
        s.pump_until(lambda: len(s.responses) >= 5000, what="5000 sub responses")
        self.assertTrue(all(err is None for err, _ in s.responses.values()))
        self.assertEqual(p.pub("many.0", 1), 1)      # a queue group of one
        self.assertEqual(p.pub("many.x.1", 1), 1)
        self.assertEqual(p.pub("many.2.y.z", 1), 1)
        s.close()
        harness.wait_for(lambda: p.pub("many.0", 1) + p.pub("many.x.1", 1) + p.pub("many.2.y", 1) == 0,
                         what="the closed subscriber's subscriptions to go")

    def test_closed_subscriber_is_forgotten(self):
        s = self.client()
        p = self.client()
        s.sub("gone")
        s.close()
        harness.wait_for(lambda: p.pub("gone", 1) == 0, what="the closed subscriber to leave")


def broker_publishes_sys_stats():
    """True when this pigeond has stats_interval (it publishes $SYS.broker.stats)."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write("[broker]\nstats_interval = 1s\n")
        f.flush()
        return subprocess.run([harness.PIGEOND, "-t", "-c", f.name], capture_output=True).returncode == 0


class SystemTopics(BrokerTest):
    BROKER = {"stats_interval": "200ms"}

    def setUp(self):
        if not broker_publishes_sys_stats():
            self.skipTest("`$SYS.>` matching a `$` topic needs the broker to publish to $SYS "
                          "(stats_interval, a later issue); clients may not publish there (code 8)")
        super().setUp()

    def test_only_explicit_patterns_match_system_topics(self):
        wild = self.client()
        for pattern in (">", "*", "*.>", "*.broker.stats", "*.*.*"):
            wild.sub(pattern)
        sys_ = self.client()
        a = sys_.sub("$SYS.>")
        b = sys_.sub("$SYS.broker.stats")
        sys_.pump_until(lambda: {m[0] for m in sys_.messages} >= {a, b}, what="$SYS.broker.stats")
        self.assertTrue(all(m[1] == "$SYS.broker.stats" and isinstance(m[2], dict) for m in sys_.messages))
        wild.sync()  # a copy for it would have been queued before this pong
        self.assertEqual([m for m in wild.messages if m[1].startswith("$")], [])


class QueueGroups(BrokerTest):
    def test_round_robin_balance(self):
        members = [self.client() for _ in range(3)]
        sids = [m.request("sub", "work.*", {"queue": "workers"}) for m in members]
        p = self.client()
        for i in range(300):
            self.assertEqual(p.pub("work.%d" % (i % 7), i), 1)
        for m in members:
            m.wait_messages(100)
        for m, sid in zip(members, sids):
            m.sync()
            self.assertEqual(len(m.messages), 100)
            self.assertTrue(all(msg[0] == sid for msg in m.messages))
            seq = [msg[2] for msg in m.messages]
            self.assertEqual(seq, sorted(seq), "a member got its share out of order")
        got = sorted(msg[2] for m in members for msg in m.messages)
        self.assertEqual(got, list(range(300)), "each message goes to exactly one member")

    def test_members_on_one_connection(self):
        c = self.client()
        sids = [c.request("sub", "w", {"queue": "g"}) for _ in range(2)]
        p = self.client()
        for i in range(10):
            self.assertEqual(p.pub("w", i), 1)
        c.wait_messages(10)
        c.sync()
        self.assertEqual(sorted(m[2] for m in c.messages), list(range(10)))
        for sid in sids:
            self.assertEqual(sum(1 for m in c.messages if m[0] == sid), 5)

    def test_group_keyed_by_pattern_and_name(self):
        a = self.client()
        b = self.client()
        c = self.client()
        sa = a.request("sub", "k.*", {"queue": "q"})
        sb = b.request("sub", "k.x", {"queue": "q"})
        sc = c.request("sub", "k.x", {"queue": "other"})
        p = self.client()
        self.assertEqual(p.pub("k.x", 1), 3)
        self.assertEqual(p.pub("k.y", 2), 1)
        a.wait_messages(2)
        b.wait_messages(1)
        c.wait_messages(1)
        self.assertEqual(a.messages, [[sa, "k.x", 1], [sa, "k.y", 2]])
        self.assertEqual(b.messages, [[sb, "k.x", 1]])
        self.assertEqual(c.messages, [[sc, "k.x", 1]])

    def test_group_and_plain_subscribers(self):
        members = [self.client() for _ in range(3)]
        for m in members:
            m.request("sub", "mix", {"queue": "g"})
        plain = self.client()
        psid = plain.sub("mix")
        p = self.client()
        for i in range(30):
            # The group counts once, the plain subscriber once.
            self.assertEqual(p.pub("mix", i), 2)
        plain.wait_messages(30)
        self.assertEqual(plain.messages, [[psid, "mix", i] for i in range(30)])
        for m in members:
            m.wait_messages(10)
            m.sync()
        self.assertEqual(sorted(msg[2] for m in members for msg in m.messages), list(range(30)))

    def test_unsubscribed_member_leaves_the_group(self):
        a = self.client()
        b = self.client()
        sa = a.request("sub", "lv", {"queue": "g"})
        sb = b.request("sub", "lv", {"queue": "g"})
        b.unsub(sb)
        p = self.client()
        for i in range(6):
            self.assertEqual(p.pub("lv", i), 1)
        a.wait_messages(6)
        self.assertEqual(a.messages, [[sa, "lv", i] for i in range(6)])

    def test_members_leave_mid_rotation(self):
        members = [self.client() for _ in range(4)]
        sids = [m.request("sub", "rot", {"queue": "g"}) for m in members]
        p = self.client()
        n = 0
        for leaving in range(3):
            for _ in range(7):
                self.assertEqual(p.pub("rot", n), 1)
                n += 1
            members[leaving].unsub(sids[leaving])
        for _ in range(7):
            self.assertEqual(p.pub("rot", n), 1)
            n += 1
        for m in members:
            m.sync()
        got = sorted(msg[2] for m in members for msg in m.messages)
        self.assertEqual(got, list(range(n)))
        self.assertEqual(len(members[3].messages), n - sum(len(m.messages) for m in members[:3]))

    def test_empty_group_delivers_nothing(self):
        a = self.client()
        sid = a.request("sub", "em", {"queue": "g"})
        a.unsub(sid)
        p = self.client()
        self.assertEqual(p.pub("em", 1), 0)


class Retained(BrokerTest):
    def replay(self, pattern, raw=False, **opts):
        """Subscribes a new client to PATTERN; returns (client, sid, frames after the response)."""
        c = self.client(raw=raw)
        start = len(c.frames)
        sid = c.request("sub", pattern, opts) if opts else c.sub(pattern)
        c.sync()
        frames = c.frames[start:]
        # The sub response comes first, then the replays, then the pong.
        self.assertEqual(frames[0][0], RESPONSE)
        self.assertEqual(frames[-1][0], RESPONSE)
        return c, sid, frames[1:-1]

    def test_replay_after_sub_response(self):
        p = self.client()
        self.assertEqual(p.pub("r.a", {"v": 1}, retain=True), 0)
        c, sid, replays = self.replay("r.a")
        self.assertEqual(replays, [[NOTIFICATION, "msg", [sid, "r.a", {"v": 1}, {"retained": True}]]])

    def test_replay_keeps_reply_to_and_headers(self):
        p = self.client()
        p.pub("r.h", 5, retain=True, reply_to="_INBOX.z", headers={"k": "v", "\u00e9": "\u2603"})
        c, sid, replays = self.replay("r.h")
        self.assertEqual(len(replays), 1)
        self.assertEqual(replays[0][2], [sid, "r.h", 5,
                                         {"reply_to": "_INBOX.z", "headers": {"k": "v", "\u00e9": "\u2603"},
                                          "retained": True}])

    def test_replay_payload_bytes(self):
        p = self.client()
        payload = b"\xde\x00\x01\xd9\x01k\xcc\x05"  # a map16 of a str8 and a uint8: not canonical
        p.send_raw(pub_frame_raw("r.bytes", payload, {"retain": True}, msgid=9))
        self.assertEqual(p.wait_response(9), (None, 0))
        c, sid, replays = self.replay("r.bytes", raw=True)
        self.assertEqual(len(replays), 1)
        got_sid, topic, got, opts = raw_msg(c.raw_messages[0])
        self.assertEqual(got.hex(), payload.hex())
        self.assertEqual(harness.unpack(opts), {"retained": True})

    def test_live_delivery_never_carries_retained(self):
        s = self.client()
        sid = s.sub("r.live")
        p = self.client()
        self.assertEqual(p.pub("r.live", 1, retain=True), 1)
        self.assertEqual(p.pub("r.live", 2, retain=True, reply_to="x.y"), 1)
        s.wait_messages(2)
        self.assertEqual(s.messages, [[sid, "r.live", 1], [sid, "r.live", 2, {"reply_to": "x.y"}]])

    def test_wildcards_get_every_matching_topic(self):
        p = self.client()
        topics = ["w.a", "w.b", "w.a.b", "w.a.b.c", "x.a"]
        for t in topics:
            p.pub(t, t, retain=True)
        cases = {"w.>": {"w.a", "w.b", "w.a.b", "w.a.b.c"}, "w.*": {"w.a", "w.b"},
                 "*.a": {"w.a", "x.a"}, ">": set(topics), "w.*.b": {"w.a.b"}, "nope.>": set()}
        for pattern, want in cases.items():
            with self.subTest(pattern=pattern):
                _, sid, replays = self.replay(pattern)
                self.assertEqual(len(replays), len(want))
                self.assertEqual({m[2][1] for m in replays}, want)
                for m in replays:
                    self.assertEqual(m[2], [sid, m[2][1], m[2][1], {"retained": True}])

    def test_plain_pub_leaves_retained_value(self):
        p = self.client()
        p.pub("r.keep", "v1", retain=True)
        p.pub("r.keep", "v2")
        p.pub("r.keep", "v3", retain=False)
        _, sid, replays = self.replay("r.keep")
        self.assertEqual([m[2] for m in replays], [[sid, "r.keep", "v1", {"retained": True}]])

    def test_retain_replaces(self):
        p = self.client()
        p.pub("r.rep", "v1", retain=True, reply_to="a.b")
        p.pub("r.rep", "v2", retain=True)
        _, sid, replays = self.replay("r.rep")
        self.assertEqual([m[2] for m in replays], [[sid, "r.rep", "v2", {"retained": True}]])

    def test_nil_payload_clears_and_is_delivered(self):
        s = self.client()
        sid = s.sub("r.clr")
        p = self.client()
        p.pub("r.clr", "v1", retain=True)
        self.assertEqual(p.pub("r.clr", None, retain=True), 1)
        s.wait_messages(2)
        self.assertEqual(s.messages, [[sid, "r.clr", "v1"], [sid, "r.clr", None]])
        _, _, replays = self.replay("r.clr")
        self.assertEqual(replays, [])
        _, _, replays = self.replay("r.>")
        self.assertEqual(replays, [])
        # Clearing a topic that has nothing retained is fine too.
        self.assertEqual(p.pub("z.none", None, retain=True), 0)

    def test_queue_subscriptions_get_no_replay(self):
        # A documented choice (router.h): the group shares work, so a replay
        # would hand the value to every member that joins.
        p = self.client()
        p.pub("r.q", 1, retain=True)
        _, _, replays = self.replay("r.q", queue="g")
        self.assertEqual(replays, [])
        _, sid, replays = self.replay("r.q")
        self.assertEqual(len(replays), 1)

    def test_retained_opts_bad(self):
        p = self.client()
        self.assertEqual(p.request_error("pub", "$SYS.r", 1, {"retain": True})[0], harness.FORBIDDEN)
        _, _, replays = self.replay(">")
        self.assertEqual(replays, [])


class RetainedLimit(BrokerTest):
    BROKER = {"max_retained": "2k"}

    def test_over_max_retained(self):
        s = self.client()
        sid = s.sub("big.>")
        p = self.client()
        code, _ = p.request_error("pub", "big.a", b"x" * 4096, {"retain": True})
        self.assertEqual(code, LIMIT)
        p.notify("pub", "big.b", b"x" * 4096, {"retain": True})
        self.assertEqual(p.wait_error()[0], LIMIT)
        # Nothing was delivered for either: the sentinel comes first.
        self.assertEqual(p.pub("big.sentinel", 1), 1)
        s.wait_messages(1)
        self.assertEqual(s.messages, [[sid, "big.sentinel", 1]])
        # Small values fit, and one may be replaced within the limit.
        self.assertEqual(p.pub("big.c", b"y" * 700, retain=True), 1)
        self.assertEqual(p.pub("big.c", b"z" * 700, retain=True), 1)
        c = self.client()
        c.sub("big.>")
        c.sync()
        self.assertEqual([m[1:3] for m in c.messages], [["big.c", b"z" * 700]])
        # Clearing frees room for another.
        self.assertEqual(p.request_error("pub", "big.d", b"w" * 1500, {"retain": True})[0], LIMIT)
        p.pub("big.c", None, retain=True)
        self.assertEqual(p.pub("big.d", b"w" * 1500, retain=True), 2)


    def test_accounting_survives_replace_and_clear(self):
        # A value replaced or cleared gives its bytes back: 1.5 KiB values
        # under a 2 KiB limit, replaced and cleared over and over.
        p = self.client()
        for i in range(100):
            self.assertEqual(p.pub("acct.a", bytes([i]) * 1500, retain=True), 0, "replacement %d" % i)
        for i in range(50):
            p.pub("acct.a", None, retain=True)
            self.assertEqual(p.pub("acct.%d" % i, b"v" * 1500, retain=True), 0, "after %d clears" % i)
            p.pub("acct.%d" % i, None, retain=True)
        p.pub("acct.a", b"last", retain=True)
        c = self.client()
        c.sub("acct.>")
        c.sync()
        self.assertEqual([m[1:3] for m in c.messages], [["acct.a", b"last"]])


class RetainedOff(BrokerTest):
    BROKER = {"max_retained": 0}

    def test_retain_refused(self):
        p = self.client()
        self.assertEqual(p.request_error("pub", "t", 1, {"retain": True})[0], LIMIT)
        self.assertEqual(p.pub("t", 1), 0)


# ------------------------------------------------------------- model check

def model_matches(pattern, topic):
    """The reference matcher, from the protocol's words."""
    p, t = pattern.split("."), topic.split(".")
    if topic.startswith("$") and p[0] in ("*", ">"):
        return False
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t) or (tok != "*" and tok != t[i]):
            return False
    return len(p) == len(t)


class ModelCheck(BrokerTest):
    """Random subscribe, unsubscribe, publish and retain against a model.

    Every pub is a request, so each step is complete when its response is
    back; the pub result, every connection's messages and every retained
    replay are then compared with what a plain Python model says.
    """

    BROKER = {"log_level": "notice"}
    SEED = int(os.environ.get("PIGEON_MODEL_SEED", "0")) or random.SystemRandom().randrange(1, 2 ** 31)

    def random_pattern(self, rng):
        toks = [rng.choice("abc*") for _ in range(rng.randrange(1, 4))]
        if rng.random() < 0.3:
            toks[-1] = ">"
        return ".".join(toks)

    def test_random_operations(self):
        rng = random.Random(self.SEED)
        note = " (PIGEON_MODEL_SEED=%d reproduces it)" % self.SEED
        conns = [self.client() for _ in range(4)]
        pub = self.client()
        subs = {}        # (conn index, sid) -> (pattern, queue or None), while subscribed
        all_subs = {}    # the same, never forgotten
        expect = {}      # (conn index, sid) -> [replay set, live list]
        group_got = {}   # (pattern, queue) -> payloads the model sent to the group
        retained = {}    # topic -> payload
        for step in range(4000):
            roll = rng.random()
            if roll < 0.25 or not subs:
                ci = rng.randrange(len(conns))
                pattern = self.random_pattern(rng)
                queue = rng.choice([None, None, "q1", "q2"])
                sid = conns[ci].request("sub", pattern, {"queue": queue}) if queue else conns[ci].sub(pattern)
                subs[(ci, sid)] = all_subs[(ci, sid)] = (pattern, queue)
                replay = set() if queue else {(t, v) for t, v in retained.items() if model_matches(pattern, t)}
                expect[(ci, sid)] = [replay, []]
            elif roll < 0.35:
                ci, sid = rng.choice(sorted(subs))
                self.assertIs(conns[ci].unsub(sid), True)
                del subs[(ci, sid)]
            else:
                topic = ".".join(rng.choice("abc") for _ in range(rng.randrange(1, 4)))
                retain = roll > 0.9
                payload = None if retain and rng.random() < 0.3 else step
                n = pub.pub(topic, payload, retain=True) if retain else pub.pub(topic, payload)
                want = 0
                groups = set()
                for key, (pattern, queue) in subs.items():
                    if not model_matches(pattern, topic):
                        continue
                    if queue is None:
                        expect[key][1].append((topic, payload))
                        want += 1
                    else:
                        groups.add((pattern, queue))
                for g in groups:
                    group_got.setdefault(g, []).append(payload)
                self.assertEqual(n, want + len(groups), "pub %s at step %d%s" % (topic, step, note))
                if retain:
                    if payload is None:
                        retained.pop(topic, None)
                    else:
                        retained[topic] = payload
        for c in conns:
            c.sync()
        got_groups = {}
        for ci, c in enumerate(conns):
            per_sid = {}
            for m in c.messages:
                per_sid.setdefault(m[0], []).append(m)
            for (cj, sid), (pattern, queue) in all_subs.items():
                if cj != ci:
                    continue
                msgs = per_sid.pop(sid, [])
                if queue is not None:
                    self.assertTrue(all(len(m) == 3 for m in msgs))
                    got_groups.setdefault((pattern, queue), []).extend(m[2] for m in msgs)
                    continue
                replay, live = expect[(ci, sid)]
                head = msgs[:len(replay)]
                self.assertEqual({(m[1], m[2]) for m in head}, replay, "replay for %s%s" % (pattern, note))
                self.assertTrue(all(m[3:] == [{"retained": True}] for m in head))
                self.assertEqual([(m[1], m[2]) for m in msgs[len(replay):]], live,
                                 "messages for %s%s" % (pattern, note))
            self.assertEqual(per_sid, {}, "messages for sids never given%s" % note)
        for g in set(got_groups) | set(group_got):
            self.assertEqual(sorted(got_groups.get(g, []), key=repr), sorted(group_got.get(g, []), key=repr),
                             "queue group %s%s" % (g, note))


# ----------------------------------------------------------------- ordering

def seq_frames(topic, first, n):
    """N pub notifications whose payloads are the integers FIRST..FIRST+N-1."""
    head = b"\x93\x02\xa3pub\x92" + pack(topic)
    return b"".join(head + pack(i) for i in range(first, first + n))


class Ordering(BrokerTest):
    def test_100k_messages_in_order(self):
        n = 100000
        s = self.client()
        sid = s.sub("seq")
        p = self.client()
        batch = 2000
        for first in range(0, n, batch):
            p.send_raw(seq_frames("seq", first, batch))
            s.pump_available()  # keep up, so that its queue stays short
        self.assertEqual(p.pub("seq", n), 1)
        s.wait_messages(n + 1, timeout=harness.DEADLINE * 4)
        got = [m[2] for m in s.messages]
        self.assertEqual(len(got), n + 1)
        self.assertTrue(got == list(range(n + 1)),
                        "first out of order at %s" % next((i for i, v in enumerate(got) if v != i), None))
        self.assertTrue(all(m[0] == sid and m[1] == "seq" for m in s.messages))

    def test_mixed_sizes_keep_order(self):
        # Small messages are copied into the subscriber's output and large
        # ones shared by reference: interleaved, they must stay in order.
        sizes = [10, 9000, 20, 100 * 1024, 5, 8 * 1024, 300 * 1024, 1, 70 * 1024, 3]
        s = self.client(raw=True)
        sub2 = self.client(raw=True)
        s.sub("mix")
        sub2.sub(">")
        p = self.client()
        sent = []
        for i in range(60):
            size = sizes[i % len(sizes)]
            payload = b"\xc6" + struct.pack(">I", size + 4) + struct.pack(">I", i) + bytes([i & 0xff]) * size
            sent.append(payload)
            p.send_raw(pub_frame_raw("mix", payload))
        self.assertEqual(p.pub("mix", "end"), 2)
        for c in (s, sub2):
            c.wait_messages(61)
            got = [raw_msg(m)[2] for m in c.raw_messages[:60]]
            self.assertEqual(len(got), 60)
            for i, (a, b) in enumerate(zip(got, sent)):
                self.assertTrue(a == b, "message %d differs (%d vs %d bytes)" % (i, len(a), len(b)))

    def test_large_payloads_intact_for_a_late_reader(self):
        # Large frames are shared straight from the buffer the broker reads
        # into; a subscriber that reads late must still get the bytes that
        # were published, not what later reads put there.
        late = self.client(raw=True)
        prompt = self.client(raw=True)
        late.sub("late")
        prompt.sub("late")
        p = self.client()
        sent = []
        for i in range(200):
            size = (64 + i % 7 * 30) * 1024
            payload = b"\xc6" + struct.pack(">I", size) + bytes([i & 0xff, (i * 7) & 0xff]) * (size // 2)
            sent.append(payload)
            p.send_raw(pub_frame_raw("late", payload))
            prompt.pump_available()
        self.assertEqual(p.pub("late", "end"), 2)
        for c in (prompt, late):
            c.wait_messages(201)
            for i, m in enumerate(c.raw_messages[:200]):
                self.assertTrue(raw_msg(m)[2] == sent[i], "message %d was corrupted" % i)

    def test_fan_out_to_50(self):
        subs = [self.client() for _ in range(50)]
        sids = [c.sub("fan.>") for c in subs]
        p = self.client()
        n = 2000
        for first in range(0, n, 500):
            p.send_raw(seq_frames("fan.x", first, 500))
            for c in subs:
                c.pump_available()
        self.assertEqual(p.pub("fan.x", n), 50)
        for c, sid in zip(subs, sids):
            c.wait_messages(n + 1)
            self.assertEqual([m[2] for m in c.messages], list(range(n + 1)))
            self.assertTrue(all(m[0] == sid for m in c.messages))

    def test_order_per_publisher_with_two_publishers(self):
        s = self.client()
        s.sub("two.>")
        a = self.client()
        b = self.client()
        for first in range(0, 5000, 1000):
            a.send_raw(seq_frames("two.a", first, 1000))
            b.send_raw(seq_frames("two.b", first, 1000))
            s.pump_available()
        a.pub("two.a", 5000)
        b.pub("two.b", 5000)
        s.wait_messages(10002)
        for topic in ("two.a", "two.b"):
            self.assertEqual([m[2] for m in s.messages if m[1] == topic], list(range(5001)))


if __name__ == "__main__":
    harness.main()
