"""test_cluster.py - nodes joined through a real Redis (docs/scale-out.md).

Each test starts its own redis-server on an ephemeral loopback port and two
or three pigeond nodes on it, and talks to them through real sockets:

  - fan-out across nodes with overlapping patterns: every subscription gets
    every message once, in each publisher's order;
  - no backplane traffic without remote interest (Redis's own command count);
  - queue groups across nodes: one member per message, local members first,
    remote turns weighted by member counts;
  - retained values and request/reply across nodes, and a node that starts
    later loading the retained values;
  - Redis killed and restarted: local delivery never stops, cross-node
    messages are dropped and counted, and the nodes heal;
  - a node killed: its interest expires on the others; a node stopped: it
    says bye and its interest goes at once;
  - /metrics, $SYS.broker.stats and /connections name the node; AUTH;
  - a stream's node holds its patterns as interest, so what any node
    publishes on them is stored there, and a reload changes that interest.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from clusterlib import ClusterTest, http_get, metrics
from harness import DEADLINE, FORBIDDEN, PIGEOND, SANITIZED, main, wait_for

SYS = "$SYS.broker.stats"


def payloads(client, sid=None):
    return [m[2] for m in client.messages if sid is None or m[0] == sid]


def retained_values(node, pattern):
    """The values a new subscription to PATTERN on NODE is replayed, sorted."""
    c = node.client()
    try:
        c.sub(pattern)
        c.sync()
        return sorted(m[2] for m in c.messages if len(m) > 3 and m[3].get("retained"))
    finally:
        c.close()


class FanOutTest(ClusterTest):
    def test_overlapping_patterns_no_duplicates_in_order(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        c = self.start_node(redis, "c1")
        on_b = self.client(b)
        s_gt, s_star = on_b.sub("orders.>"), on_b.sub("orders.*")
        on_c = self.client(c)
        s_c = on_c.sub("orders.eu")
        on_a = self.client(a)
        s_a = on_a.sub("orders.>")
        self.wait_interest(a, 3)  # b1's two patterns, c1's one
        self.wait_interest(c, 3)  # b1's two, a1's one

        n = 400
        pub_a, pub_c = self.client(a), self.client(c)
        for i in range(n):
            pub_a.pub_notify("orders.eu", ["a", i])
            pub_c.pub_notify("orders.eu", ["c", i])
        pub_a.sync()
        pub_c.sync()
        on_b.wait_messages(4 * n)
        on_c.wait_messages(2 * n)
        on_a.wait_messages(2 * n)
        for client in (on_a, on_b, on_c):
            client.pump_for(0.3)  # anything extra would show up here
        for client, sid in ((on_b, s_gt), (on_b, s_star), (on_c, s_c), (on_a, s_a)):
            got = payloads(client, sid)
            self.assertEqual(len(got), 2 * n, "sid %d got %d" % (sid, len(got)))
            for origin in ("a", "c"):
                self.assertEqual([p[1] for p in got if p[0] == origin], list(range(n)),
                                 "messages from %s out of order or duplicated" % origin)

    def test_pub_counts_remote_subscriptions(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        sub = self.client(b)
        sub.sub("t.>")
        sub.sub("t.*")
        self.wait_interest(a, 2)
        self.assertEqual(self.client(a).pub("t.x", 1), 2)
        sub.wait_messages(2)

    def test_headers_and_payload_bytes_cross_untouched(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        sub = self.client(b, raw=True)
        sub.sub("raw.>")
        self.wait_interest(a, 1)
        payload = b"\xc7\x03\x05abc"  # an ext type: bytes the broker never decodes
        from harness import pub_frame_raw, raw_msg
        self.client(a).send_raw(pub_frame_raw("raw.x", payload, {"headers": {"k": "v"}}))
        sub.wait_messages(1)
        sid, topic, body, opts = raw_msg(sub.raw_messages[0])
        self.assertEqual(body, payload)
        self.assertEqual(sub.messages[0][3], {"headers": {"k": "v"}})


class InterestTest(ClusterTest):
    def test_no_backplane_traffic_without_remote_interest(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        self.client(b).sub("elsewhere.>")  # remote interest, but not in these topics
        self.wait_interest(a, 1)
        local = self.client(a)
        local.sub("local.>")
        pub = self.client(a)
        pub.sync()
        before = redis.commands_processed()
        for i in range(10000):
            pub.pub_notify("local.x", i)
        pub.sync()
        local.wait_messages(10000)
        after = redis.commands_processed()
        self.assertLess(after - before - 1, 100,
                        "%d Redis commands for 10,000 local messages" % (after - before - 1))
        self.assertEqual(self.metric(a, "pigeon_cluster_messages_out_total"), 0)

    def test_unsubscribe_withdraws_interest(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        sub = self.client(b)
        sid = sub.sub("w.>")
        self.wait_interest(a, 1)
        sub.unsub(sid)
        self.wait_metric(a, "pigeon_cluster_remote_interest", lambda v: v == 0)
        self.client(a).pub("w.x", 1)
        self.assertEqual(self.metric(a, "pigeon_cluster_messages_out_total"), 0)

    def test_late_node_reads_the_snapshot(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        sub = self.client(a)
        sub.sub("early.>")
        sub.sub("early.*", queue="workers")
        b = self.start_node(redis, "b1")
        self.wait_interest(b, 2)  # it was not running when a1 announced them
        self.assertEqual(self.client(b).pub("early.x", 1), 2)
        sub.wait_messages(2)


class QueueGroupTest(ClusterTest):
    def test_one_member_per_message_across_nodes(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        c = self.start_node(redis, "c1")
        wa = self.client(a)
        wa.sub("jobs.*", queue="w")
        wb1, wb2 = self.client(b), self.client(b)
        wb1.sub("jobs.*", queue="w")
        wb2.sub("jobs.*", queue="w")
        watcher = self.client(b)
        watcher.sub("jobs.>")  # plain interest on b1 too: one record carries both
        self.wait_interest(c, 3)
        n = 300
        pub = self.client(c)  # no member on c1: every message takes the backplane
        for i in range(n):
            pub.pub_notify("jobs.run", i)
        pub.sync()
        watcher.wait_messages(n)
        members = (wa, wb1, wb2)
        wait_for(lambda: [m.pump_available() for m in members] and
                 sum(len(m.messages) for m in members) >= n, what="every job delivered")
        for m in members:
            m.pump_for(0.2)
        got = sorted(p for m in members for p in payloads(m))
        self.assertEqual(got, list(range(n)), "a job went to no member or to two")
        # Weighted by member counts: a1 has one member, b1 two.
        self.assertEqual(len(wa.messages), n // 3)
        self.assertEqual(len(wb1.messages) + len(wb2.messages), 2 * n // 3)

    def test_local_member_first(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        local = self.client(a)
        local.sub("jobs.*", queue="w")
        remote = self.client(b)
        remote.sub("jobs.*", queue="w")
        self.wait_interest(a, 1)
        pub = self.client(a)
        for i in range(50):
            pub.pub_notify("jobs.run", i)
        pub.sync()
        local.wait_messages(50)
        remote.pump_for(0.5)
        self.assertEqual(remote.messages, [])
        self.assertEqual(self.metric(a, "pigeon_cluster_messages_out_total"), 0)


class RetainedTest(ClusterTest):
    def test_retained_across_nodes(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        self.client(a).pub("config.x", "v1", retain=True)
        on_b = self.client(b)
        wait_for(lambda: retained_values(b, "config.>") == ["v1"], what="a1's value on b1")
        # A node that starts later loads the values.
        c = self.start_node(redis, "c1")
        self.assertEqual(retained_values(c, "config.>"), ["v1"])
        # Cleared on one node, gone on every node.
        on_b.pub("config.x", None, retain=True)
        wait_for(lambda: retained_values(a, "config.>") == [] and retained_values(c, "config.>") == [],
                 what="the clear everywhere")
        # Replaced, from the node that loaded them.
        self.client(c).pub("config.x", "v2", retain=True)
        for node in (a, b):
            wait_for(lambda: retained_values(node, "config.>") == ["v2"], what="v2 everywhere")


class RequestReplyTest(ClusterTest):
    def test_request_reply_across_nodes(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        responder = self.client(a)
        responder.sub("svc.echo")
        self.wait_interest(b, 1)
        requester = self.client(b)
        for i in range(20):
            inbox = "_INBOX.r%d" % i
            sid = requester.sub(inbox)  # and at once the request: its interest must arrive first
            requester.pub_notify("svc.echo", i, reply_to=inbox)
            responder.wait_messages(i + 1)
            req = responder.messages[i]
            responder.pub_notify(req[3]["reply_to"], ["re", req[2]])
            requester.wait_messages(i + 1)
            self.assertEqual(requester.messages[i][1:3], [inbox, ["re", i]])
            requester.unsub(sid)


class StreamAcrossNodesTest(ClusterTest):
    """A stream stays on the node that defines it, and captures what any node publishes."""

    def store_sections(self, node_dir, streams):
        text = "[store]\ndir = %s\nfsync = no\n" % os.path.join(node_dir, "store")
        for name, patterns in streams.items():
            text += "[stream %s]\npatterns = %s\n" % (name, patterns)
        return text

    def two_nodes(self):
        """Node a1 with stream orders (orders.>) and node b1, b1 knowing a1's interest."""
        redis = self.start_redis()
        a_dir = tempfile.mkdtemp(prefix="pigeon-cluster-store-")
        self.addCleanup(shutil.rmtree, a_dir, True)
        a = self.start_node(redis, "a1", sections=self.store_sections(a_dir, {"orders": "orders.>"}))
        b = self.start_node(redis, "b1")
        self.wait_interest(b, 1)  # a1 holds the stream's pattern without any subscription
        return redis, a_dir, a, b

    def test_messages_published_anywhere_are_stored_on_the_streams_node(self):
        redis, a_dir, a, b = self.two_nodes()
        pub_b = self.client(b)
        for i in range(200):
            pub_b.pub_notify("orders.eu", i, headers={"n": str(i)})
        pub_b.sync()
        on_a = self.client(a)
        wait_for(lambda: on_a.request("stream_info", "orders")["messages"] == 200,
                 what="b1's messages stored on a1")
        sid = on_a.request("consume", "orders", {"durable": "d"})
        on_a.wait_messages(200)
        got = [m for m in on_a.messages if m[0] == sid]
        self.assertEqual([m[2] for m in got], list(range(200)))
        self.assertEqual([m[3]["seq"] for m in got], list(range(1, 201)))
        self.assertEqual(got[7][3]["headers"], {"n": "7"})
        # A pub naming the stream is answered only where the stream is.
        self.assertEqual(pub_b.request_error("pub", "orders.x", 1, {"stream": "orders"})[0], 11)
        # Topics no stream captures do not cross.
        out = self.metric(b, "pigeon_cluster_messages_out_total")
        pub_b.pub("other.x", 1)
        self.assertEqual(self.metric(b, "pigeon_cluster_messages_out_total"), out)

    def test_reload_adds_a_streams_interest(self):
        redis, a_dir, a, b = self.two_nodes()
        a.write_config(None, None, self.node_text(redis, "a1") + self.store_sections(
            a_dir, {"orders": "orders.eu.>", "jobs": "jobs.*"}))
        a.reload()
        a.wait_log("stream jobs added")
        # orders.> was released for orders.eu.>, and jobs.* is new: two entries from a1.
        wait_for(lambda: self.metric(b, "pigeon_cluster_remote_interest") == 2,
                 what="a1's new stream patterns on b1")
        pub_b = self.client(b)
        pub_b.pub("jobs.build", "j")
        pub_b.pub("orders.us", "not captured any more")
        on_a = self.client(a)
        wait_for(lambda: on_a.request("stream_info", "jobs")["messages"] == 1,
                 what="b1's job stored on a1")
        self.assertEqual(on_a.request("stream_info", "orders")["messages"], 0)


class AuthAcrossNodesTest(ClusterTest):
    SVC, BOB = "svc-token-3f9a", "bob-token-81c2"

    def test_allow_responses_across_nodes(self):
        import hashlib
        import os
        users = os.path.join(self.start_redis().dir.name, "users.conf")
        redis = self.redises[0]
        with open(users, "w") as f:
            f.write("[user svc]\ntoken = sha256:%s\nsubscribe = svc.requests\n"
                    "allow_responses = yes\n"
                    "[user bob]\ntoken = sha256:%s\npublish = >\nsubscribe = >\n"
                    % (hashlib.sha256(self.SVC.encode()).hexdigest(),
                       hashlib.sha256(self.BOB.encode()).hexdigest()))
        auth = "[auth]\nusers_file = %s\n" % users
        a = self.start_node(redis, "a1", sections=auth)
        b = self.start_node(redis, "b1", sections=auth)
        svc = self.client(a, creds={"token": self.SVC})
        bob = self.client(b, creds={"token": self.BOB})
        svc.sub("svc.requests")
        inbox = bob.sub("_INBOX.bob.1")
        self.wait_interest(b, 1)
        self.wait_interest(a, 1)
        # svc may not publish anywhere, but may answer a request it received, from any node.
        self.assertEqual(svc.request_error("pub", "_INBOX.bob.1", "unasked")[0], FORBIDDEN)
        bob.pub("svc.requests", "q", reply_to="_INBOX.bob.1")
        svc.wait_messages(1)
        self.assertEqual(svc.pub("_INBOX.bob.1", "answer"), 1)  # the remote inbox counts
        bob.wait_messages(1)
        self.assertEqual(bob.messages, [[inbox, "_INBOX.bob.1", "answer"]])


class FailureTest(ClusterTest):
    def test_redis_killed_and_restarted(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        remote = self.client(b)
        remote.sub("orders.>")
        local = self.client(a)
        local.sub("orders.>")
        self.wait_interest(a, 1)
        pub = self.client(a)
        pub.pub("orders.x", "before")
        pub.pub("config.kept", "v1", retain=True)
        remote.wait_messages(1)
        wait_for(lambda: retained_values(b, "config.>") == ["v1"], what="v1 on b1")

        redis.kill()
        a.wait_log("backplane down")
        pub.pub("config.new", "v2", retain=True)  # while Redis is away
        for i in range(100):  # local delivery goes on, untouched
            pub.pub_notify("orders.x", i)
        pub.sync()
        local.wait_messages(101)
        self.assertEqual(payloads(local)[1:], list(range(100)))
        self.assertEqual(self.metric(a, "pigeon_cluster_up"), 0)
        self.assertGreaterEqual(self.metric(a, "pigeon_cluster_dropped_total"), 100)

        redis.restart()
        back = time.monotonic()
        n = len(remote.messages)

        def heard():
            pub.pub_notify("orders.x", "after")
            remote.pump_for(0.05)
            return len(remote.messages) > n
        wait_for(heard, what="messages across nodes after Redis came back")
        took = time.monotonic() - back
        print("\nsubscriptions made before the restart heard again %.2f s after Redis was back"
              % took)
        self.assertLess(took, 12.0 if SANITIZED else 3.0)
        a.wait_log("backplane back after")
        self.assertGreaterEqual(self.metric(a, "pigeon_cluster_reconnects_total"), 1)
        self.assertEqual(self.metric(a, "pigeon_cluster_up"), 1)
        # Redis came back empty: the nodes stored their retained values again,
        # the one set while it was away included, so a node that starts now has both.
        c = self.start_node(redis, "c1")
        wait_for(lambda: retained_values(c, "config.>") == ["v1", "v2"],
                 what="the retained values on a node started after the restart")

    def test_slow_redis_holds_publishers_and_bounds_memory(self):
        redis = self.start_redis()
        self.NODE_TIMEOUT = "3s"
        a = self.start_node(redis, "a1", cluster="max_pending = 1mb\n")
        b = self.start_node(redis, "b1")
        remote = self.client(b)
        remote.sub("bulk.>")
        local = self.client(a)
        local.sub("bulk.>")
        self.wait_interest(a, 1)
        pub = self.client(a)
        pub.pub("bulk.first", 0)
        remote.wait_messages(1)
        redis.proc.send_signal(signal.SIGSTOP)  # Redis alive, connected, and not reading
        try:
            n, blob = 400, b"x" * 10000
            sender = threading.Thread(
                target=lambda: [pub.pub_notify("bulk.x", [i, blob]) for i in range(n)])
            sender.start()
            # Past half of max_pending the publisher is held: what the node holds stays bounded.
            self.wait_metric(a, "pigeon_cluster_publishers_held_total", lambda v: v >= 1)
            for _ in range(10):
                self.assertLessEqual(self.metric(a, "pigeon_cluster_pending_bytes"),
                                     1024 * 1024 + 20000)
                time.sleep(0.05)
            # Redis answers nothing for node_timeout: the link is reset, and local delivery
            # goes on with the rest dropped for the other node.
            a.wait_log("backplane down: Redis .*(no reply within|heartbeats stopped)")
            sender.join(DEADLINE)
            pub.sync()
            local.wait_messages(n + 1)
            self.assertEqual([p[0] for p in payloads(local)[1:]], list(range(n)))
            self.assertGreater(self.metric(a, "pigeon_cluster_dropped_total"), 0)
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        a.wait_log("backplane back after")

    def test_node_killed_interest_expires(self):
        redis = self.start_redis()
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        self.client(b).sub("orders.>")
        self.wait_interest(a, 1)
        b.stop(signal.SIGKILL)
        self.forget_broker(b)
        a.wait_log(r"node b1 silent for \d+ ms; its 1 interest entries expire")
        self.assertEqual(self.metric(a, "pigeon_cluster_remote_interest"), 0)
        out = self.metric(a, "pigeon_cluster_messages_out_total")
        self.client(a).pub("orders.x", 1)
        self.assertEqual(self.metric(a, "pigeon_cluster_messages_out_total"), out)
        # Its snapshot expires in Redis too: a node that starts now finds no ghost.
        wait_for(lambda: redis.command("EXISTS", "{pigeon}:node:b1") == 0, what="b1's key to expire")
        c = self.start_node(redis, "c1")
        self.client(c).sync()
        self.assertEqual(self.metric(c, "pigeon_cluster_remote_interest"), 0)

    def test_node_stopped_says_bye(self):
        redis = self.start_redis()
        self.NODE_TIMEOUT = "60s"  # what drops the interest here is the bye
        a = self.start_node(redis, "a1")
        b = self.start_node(redis, "b1")
        self.client(b).sub("orders.>")
        self.wait_interest(a, 1)
        self.assertEqual(b.stop(), 0)
        a.wait_log("node b1 left; 1 interest entries dropped", timeout=10)
        self.assertEqual(self.metric(a, "pigeon_cluster_remote_interest"), 0)
        time.sleep(0.5)  # nothing that b1 did on its way out announced it again
        self.assertEqual(redis.command("SISMEMBER", "{pigeon}:nodes", "b1"), 0)
        self.assertEqual(redis.command("EXISTS", "{pigeon}:node:b1"), 0)
        self.assertEqual(self.metric(a, "pigeon_cluster_nodes"), 0)


class OperationsTest(ClusterTest):
    def test_node_named_in_metrics_sys_and_connections(self):
        redis = self.start_redis(unix=True)  # a unix socket, for once
        a = self.start_node(redis, "a1", broker={"stats_interval": "200ms"})
        m = metrics(self.http(a))
        info = [k for k in m if k.startswith("pigeon_info{")]
        self.assertEqual(len(info), 1)
        self.assertTrue(info[0].endswith(',node="a1"}'), info[0])
        self.assertEqual(m["pigeon_cluster_up"], 1)
        for name in ("pigeon_cluster_messages_out_total", "pigeon_cluster_out_bytes_total",
                     "pigeon_cluster_messages_in_total", "pigeon_cluster_in_bytes_total",
                     "pigeon_cluster_remote_interest", "pigeon_cluster_dropped_total",
                     "pigeon_cluster_reconnects_total"):
            self.assertIn(name, m)
        c = self.client(a)
        c.sub(SYS)
        c.wait_messages(1)
        stats = c.messages[0][2]
        self.assertEqual(stats["node"], "a1")
        self.assertEqual(stats["cluster"]["up"], 1)
        status, body = http_get(self.http(a), "/connections")
        self.assertEqual(json.loads(body)["node"], "a1")

    def test_standalone_has_no_cluster_figures(self):
        b = self.start_broker({"stats_interval": "200ms"}, extra="[http]\nbind = 127.0.0.1:0\n")
        b.node = "-"
        m = metrics(b.address("[http]"))
        self.assertFalse([k for k in m if k.startswith("pigeon_cluster_")])
        status, body = http_get(b.address("[http]"), "/connections")
        self.assertNotIn("node", json.loads(body))

    def test_auth(self):
        redis = self.start_redis(password="s3cret-pw")
        a = self.start_node(redis, "a1", cluster="redis_password = s3cret-pw\n")
        b = self.start_node(redis, "b1", cluster="redis_password = wrong\n", wait_up=False)
        b.wait_log("cannot use Redis at .*WRONGPASS")
        self.assertEqual(self.metric(b, "pigeon_cluster_up"), 0)
        local = self.client(b)  # a node without its backplane still serves its clients
        local.sub("x")
        self.client(b).pub("x", 1)
        local.wait_messages(1)
        for node in (a, b):
            self.assertNotIn("s3cret", node.log_text())
            self.assertNotIn("wrong", node.log_text().replace("WRONGPASS", ""))

    def test_acl_user(self):
        redis = self.start_redis(password="admin-pw")
        # The least a node needs (docs/scale-out.md gives the same line).
        redis.command("ACL", "SETUSER", "pigeon", "on", ">node-pw", "resetkeys", "~{pigeon}:*",
                      "resetchannels", "&{pigeon}:*", "&pigeon:msg:*", "-@all", "+ping",
                      "+publish", "+subscribe", "+eval", "+multi", "+exec", "+del", "+exists",
                      "+get", "+incr", "+hset", "+hdel", "+hgetall", "+hvals", "+pexpire", "+sadd",
                      "+srem", "+smembers")
        a = self.start_node(redis, "a1", cluster="redis_user = pigeon\nredis_password = node-pw\n")
        b = self.start_node(redis, "b1", cluster="redis_user = pigeon\nredis_password = node-pw\n")
        sub = self.client(b)
        sub.sub("acl.x")
        self.wait_interest(a, 1)
        self.client(a).pub("acl.x", 1)
        sub.wait_messages(1)
        self.client(a).pub("acl.kept", 2, retain=True)
        wait_for(lambda: retained_values(b, "acl.>") == [2], what="a retained value through the ACL")
        for node in (a, b):
            self.assertNotIn("NOPERM", node.log_text())

    def test_config_errors(self):
        cases = [
            ("[cluster]\nredis = 127.0.0.1:99999\n", "bad redis"),
            ("[cluster]\nredis = 127.0.0.1:6379\nnode = a{1}\n", "bad node"),
            ("[cluster]\nredis = 127.0.0.1:6379\nheartbeat = 3s\n",
             "less than twice heartbeat"),
            ("[cluster]\nredis = 127.0.0.1:6379\nmax_pending = 1mb\n[broker]\nmax_payload = 2mb\n",
             "smaller than max_payload"),
            ("[cluster]\nredis = 127.0.0.1:6379\nredis_user = a b\n", "bad redis_user"),
        ]
        import os
        import tempfile
        for text, want in cases:
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
                f.write(text)
            try:
                r = subprocess.run([PIGEOND, "-t", "-c", f.name], capture_output=True, text=True)
            finally:
                os.unlink(f.name)
            self.assertNotEqual(r.returncode, 0, text)
            self.assertIn(want, r.stdout + r.stderr, text)


if __name__ == "__main__":
    main()
