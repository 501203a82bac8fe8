"""test_http.py - the monitoring endpoint, scraped for real while traffic
flows: / (the list of endpoints), /healthz, /metrics (the figures must move
as messages pass, as clients come and go, as limits bite), /connections and
/subscriptions (JSON with paging), and the endpoint's own bounds
(max_clients, timeout, methods, header size, and against slow clients
max_clients_per_address and header_timeout), plus turning it on, off and
elsewhere by reload.
"""

import http.client
import os
import select
import signal
import socket
import time
import threading

import msgpack

from opslib import (LIMIT, BrokerTest, Broker, OpsTest, http_get, http_json, main, metrics,
                    wait_for, DEADLINE)
from slowloris import Drip, healthz

HTTP = "[http]\nbind = 127.0.0.1:0\n"


def raw_http(address):
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=DEADLINE)
    return s


def readable_within(sock, seconds):
    r, _, _ = select.select([sock], [], [], seconds)
    return bool(r)


def recv_all(sock):
    """Reads until EOF; returns the bytes."""
    chunks = []
    sock.settimeout(DEADLINE)
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class HttpTest(BrokerTest):
    AUTO_START = False

    def start(self, broker=None, listeners=None, http=HTTP):
        self.broker = self.start_broker(broker, listeners, extra=http)
        self.http = self.broker.address("[http]")
        return self.broker

    # ---------------------------------------------------------- basics
    def test_healthz_and_errors(self):
        self.start()
        status, headers, body = http_get(self.http, "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        self.assertEqual(headers["cache-control"], "no-store")
        status, headers, body = http_get(self.http, "/healthz", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(http_get(self.http, "/nope")[0], 404)
        self.assertEqual(http_get(self.http, "/metrics", method="POST")[0], 501)
        self.assertEqual(http_get(self.http, "/connections?limit=0")[0], 400)
        self.assertEqual(http_get(self.http, "/connections?limit=1001")[0], 400)
        self.assertEqual(http_get(self.http, "/subscriptions?offset=-1")[0], 400)
        self.assertEqual(http_get(self.http, "/subscriptions?offset=1x")[0], 400)
        # Headers past 8 KiB are refused, and the broker goes on.
        status = http_get(self.http, "/healthz", headers={"X-Big": "a" * 9000})[0]
        self.assertGreaterEqual(status, 400)
        self.assertEqual(http_get(self.http, "/healthz")[0], 200)
        self.assertRegex(self.broker.log_text(),
                         r"http monitoring on 127\.0\.0\.1:\d+ \(max_clients 16, "
                         r"max_clients_per_address 4, timeout 10000 ms, header_timeout 10000 ms\)")

    def test_index(self):
        self.start()
        status, headers, body = http_get(self.http, "/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; charset=utf-8")
        text = body.decode()
        for path in ("/healthz", "/metrics", "/connections", "/subscriptions"):
            self.assertRegex(text, r"(?m)^GET %s +\S" % path)
            self.assertEqual(http_get(self.http, path)[0], 200)  # each one it lists answers
        status, _, body = http_get(self.http, "/nope")
        self.assertEqual((status, body), (404, b"not found: GET / lists the endpoints\n"))

    def test_off_by_default(self):
        b = self.start_broker()
        self.assertNotIn("[http]", b.ports())
        self.assertIn("http off", b.log_text())

    # --------------------------------------------------------- metrics
    def test_metrics_follow_traffic(self):
        self.start(listeners={"a": {"bind": "127.0.0.1:0"}, "b": {"bind": "127.0.0.1:0"}})
        m0 = metrics(self.http)
        addr_a = self.broker.address("a")
        la = '{listener="a",address="%s"}' % addr_a
        self.assertEqual(m0["pigeon_connections"], 0)
        self.assertEqual(m0["pigeon_messages_in_total"], 0)
        self.assertEqual(m0["pigeon_listener_connections" + la], 0)
        self.assertGreater(m0["pigeon_uptime_seconds"], 0)
        self.assertTrue(any(k.startswith('pigeon_info{version="') for k in m0))

        sub = self.client(name="a")
        sub.sub("m.>")
        pub = self.client(name="b")
        n, payload = 20, b"x" * 100
        for i in range(n):
            self.assertEqual(pub.pub("m.t", payload), 1)
        sub.wait_messages(n)
        m1 = metrics(self.http)
        self.assertEqual(m1["pigeon_connections"], 2)
        self.assertEqual(m1["pigeon_connections_accepted_total"], 2)
        self.assertEqual(m1["pigeon_subscriptions"], 1)
        self.assertEqual(m1["pigeon_messages_in_total"], n)
        self.assertEqual(m1["pigeon_messages_out_total"], n)
        # Topic and payload bytes as encoded: "m.t" (4 bytes) and bin8 of 100 (102).
        self.assertEqual(m1["pigeon_messages_in_bytes_total"], n * (4 + 102))
        self.assertGreater(m1["pigeon_messages_out_bytes_total"], n * (4 + 102))
        self.assertEqual(m1["pigeon_listener_connections" + la], 1)
        self.assertEqual(m1["pigeon_listener_messages_out_total" + la], n)
        self.assertEqual(m1["pigeon_listener_messages_in_total" + la], 0)
        lb = '{listener="b",address="%s"}' % self.broker.address("b")
        self.assertEqual(m1["pigeon_listener_messages_in_total" + lb], n)
        self.assertGreater(m1["pigeon_listener_read_bytes_total" + lb], n * 106)

        # Closed connections: gone from the gauges, kept in the totals.
        sub.close()
        pub.close()
        wait_for(lambda: metrics(self.http)["pigeon_connections"] == 0, what="connections to drop")
        m2 = metrics(self.http)
        self.assertEqual(m2["pigeon_subscriptions"], 0)
        self.assertEqual(m2["pigeon_listener_connections" + la], 0)
        self.assertEqual(m2["pigeon_listener_connections_accepted_total" + la], 1)
        self.assertEqual(m2["pigeon_listener_messages_out_total" + la], n)
        self.assertEqual(m2["pigeon_listener_messages_in_total" + lb], n)
        self.assertGreater(m2["pigeon_uptime_seconds"], m0["pigeon_uptime_seconds"])

    def test_metrics_limits_and_errors(self):
        self.start(broker={"max_connections": 2, "max_retained": "1mb"})
        c1 = self.client()
        c2 = self.client()
        c3 = self.client(hello=False)
        c3.wait_closed()
        c1.pub("r.one", "v1", retain=True)
        c1.pub("r.two", "v2", retain=True)
        c2.send_raw(b"\xc1")  # never valid MessagePack: a protocol error
        c2.wait_closed()
        m = metrics(self.http)
        self.assertEqual(m["pigeon_connections_rejected_total"], 1)
        self.assertEqual(m["pigeon_protocol_errors_total"], 1)
        self.assertEqual(m["pigeon_retained_topics"], 2)
        self.assertGreater(m["pigeon_retained_bytes"], 0)
        c1.pub("r.one", None, retain=True)
        self.assertEqual(metrics(self.http)["pigeon_retained_topics"], 1)

    def slow_subscriber(self):
        """A subscriber that never reads, with small socket buffers."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = self.broker.address().rsplit(":", 1)
        s.connect((host, int(port)))
        self.addCleanup(s.close)
        import msgpack
        s.sendall(msgpack.packb([0, 1, "sub", ["slow.>"]]))
        wait_for(lambda: metrics(self.http)["pigeon_subscriptions"] == 1, what="the sub")
        return s

    def test_slow_consumer_disconnect_counted(self):
        self.start(broker={"max_outbound": "64k", "max_payload": "32k"})
        self.slow_subscriber()
        pub = self.client()
        chunk = b"z" * 16384
        def flood():
            for _ in range(16):
                pub.pub_notify("slow.x", chunk)
            pub.ping()
            return metrics(self.http)["pigeon_slow_consumer_disconnects_total"] >= 1
        wait_for(flood, what="a slow-consumer disconnect")
        self.assertEqual(metrics(self.http)["pigeon_slow_consumer_dropped_total"], 0)

    def test_slow_consumer_drops_counted(self):
        self.start(broker={"max_outbound": "64k", "max_payload": "32k", "slow_consumer": "drop"})
        self.slow_subscriber()
        pub = self.client()
        chunk = b"z" * 16384
        def flood():
            for _ in range(16):
                pub.pub_notify("slow.x", chunk)
            pub.ping()
            return metrics(self.http)["pigeon_slow_consumer_dropped_total"] >= 1
        wait_for(flood, what="dropped messages")
        m = metrics(self.http)
        self.assertEqual(m["pigeon_slow_consumer_disconnects_total"], 0)
        self.assertEqual(m["pigeon_connections"], 2)

    def test_memory_budget_exported(self):
        self.start(broker={"max_memory": "16mb", "max_retained": "64mb", "max_payload": "1mb"})
        m = metrics(self.http)
        self.assertEqual(m["pigeon_memory_budget_bytes"], 16 * 1024 * 1024)
        self.assertEqual(m["pigeon_memory_over"], 0)
        c = self.client()
        c.sub("a.>")
        m = metrics(self.http)
        self.assertGreater(m["pigeon_memory_subscriptions_bytes"], 0)
        self.assertGreaterEqual(m["pigeon_memory_used_bytes"], m["pigeon_memory_subscriptions_bytes"])
        # Retained values past the budget: over it, and a new sub is refused.
        # Notifications, from a thread: once held, c is not read any more, and
        # TCP pushes back on its send until the values are cleared.
        frames = b"".join(msgpack.packb([2, "pub", ["big.%d" % i, b"v" * (900 * 1024),
                                                    {"retain": True}]]) for i in range(24))
        sender = threading.Thread(target=c.send_raw, args=(frames,), daemon=True)
        sender.start()
        self.addCleanup(sender.join, DEADLINE)
        wait_for(lambda: metrics(self.http)["pigeon_memory_over"] == 1, what="over the budget")
        other = self.client()
        self.assertEqual(other.request_error("sub", "x")[0], LIMIT)
        m = metrics(self.http)
        self.assertGreater(m["pigeon_memory_used_bytes"], 16 * 1024 * 1024)
        self.assertEqual(m["pigeon_memory_over_total"], 1)
        self.assertEqual(m["pigeon_memory_refused_subscriptions_total"], 1)
        self.assertEqual(m["pigeon_memory_publishers_held"], 1)
        for i in range(24):
            other.pub("big.%d" % i, None, retain=True)
        wait_for(lambda: metrics(self.http)["pigeon_memory_over"] == 0, what="back under")
        wait_for(lambda: metrics(self.http)["pigeon_memory_publishers_held"] == 0,
                 what="the publisher read again")

    # ------------------------------------------------------------ JSON
    def test_connections_paged(self):
        self.start()
        clients = [self.client(client_name="c%d" % i) for i in range(5)]
        clients[1].sub("a")
        clients[1].sub("b")
        clients[3].pub("a", 1)
        page = http_json(self.http, "/connections?limit=2")
        self.assertEqual((page["total"], page["offset"], page["limit"], page["next_offset"]), (5, 0, 2, 2))
        first, second = page["connections"]
        self.assertEqual(first["client"], "c0")
        self.assertEqual(second["client"], "c1")
        self.assertEqual(second["subscriptions"], 2)
        self.assertEqual(second["state"], "open")
        self.assertEqual(second["listener"], "main")
        self.assertRegex(second["peer"], r"^127\.0\.0\.1:\d+$")
        self.assertLess(first["id"], second["id"])
        for key in ("msgs_in", "bytes_in", "msgs_out", "bytes_out", "dropped", "queued_bytes",
                    "connected_ms", "slow"):
            self.assertIn(key, first)
        page = http_json(self.http, "/connections?offset=2&limit=2")
        self.assertEqual([c["client"] for c in page["connections"]], ["c2", "c3"])
        self.assertEqual(page["connections"][1]["msgs_in"], 1)
        self.assertEqual(page["next_offset"], 4)
        page = http_json(self.http, "/connections?offset=4&limit=2")
        self.assertEqual([c["client"] for c in page["connections"]], ["c4"])
        self.assertIsNone(page["next_offset"])
        page = http_json(self.http, "/connections?offset=9")
        self.assertEqual((page["connections"], page["total"], page["next_offset"]), ([], 5, None))
        self.assertEqual(len(http_json(self.http, "/connections")["connections"]), 5)

    def test_subscriptions_paged(self):
        self.start()
        a = self.client()
        b = self.client()
        a.sub("x.>")
        a.sub("y")
        b.sub("jobs.*", queue="workers")
        page = http_json(self.http, "/subscriptions")
        self.assertEqual(page["total"], 3)
        subs = page["subscriptions"]
        self.assertEqual([s["pattern"] for s in subs], ["x.>", "y", "jobs.*"])
        self.assertEqual([s["queue"] for s in subs], [None, None, "workers"])
        self.assertEqual(subs[0]["client_id"], subs[1]["client_id"])
        self.assertNotEqual(subs[1]["client_id"], subs[2]["client_id"])
        self.assertEqual([s["sid"] for s in subs[:2]], [1, 2])
        page = http_json(self.http, "/subscriptions?offset=1&limit=1")
        self.assertEqual([s["pattern"] for s in page["subscriptions"]], ["y"])
        self.assertEqual(page["next_offset"], 2)
        page = http_json(self.http, "/subscriptions?offset=2&limit=5")
        self.assertEqual([s["pattern"] for s in page["subscriptions"]], ["jobs.*"])
        self.assertIsNone(page["next_offset"])

    def test_json_escapes_client_text(self):
        self.start()
        self.client(client_name='say "hi" <b>')
        page = http_json(self.http, "/connections")
        self.assertEqual(page["connections"][0]["client"], 'say "hi" <b>')

    # ---------------------------------------------------------- bounds
    def test_max_clients(self):
        self.start(http="[http]\nbind = 127.0.0.1:0\nmax_clients = 2\n")
        idle = [raw_http(self.http) for _ in range(2)]
        for s in idle:
            self.addCleanup(s.close)
        third = raw_http(self.http)  # the kernel accepts it; pigeond does not yet
        self.addCleanup(third.close)
        third.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertFalse(readable_within(third, 1.0), "a third connection was served past max_clients 2")
        idle[0].close()
        reply = recv_all(third)
        self.assertTrue(reply.startswith(b"HTTP/1.0 200") or reply.startswith(b"HTTP/1.1 200"), reply[:40])
        # The broker itself is unaffected throughout.
        self.client().ping()

    def test_idle_timeout(self):
        self.start(http="[http]\nbind = 127.0.0.1:0\nmax_clients = 1\ntimeout = 1s\n")
        idle = raw_http(self.http)
        self.addCleanup(idle.close)
        # Closed by the timeout, which also frees the only slot.
        self.assertEqual(recv_all(idle), b"")
        self.assertEqual(http_get(self.http, "/healthz")[0], 200)

    def test_keepalive_serves_many(self):
        import http.client
        self.start(http="[http]\nbind = 127.0.0.1:0\nmax_clients = 1\n")
        host, port = self.http.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
        try:
            for _ in range(5):
                conn.request("GET", "/metrics")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            conn.close()
        self.assertEqual(http_get(self.http, "/healthz")[0], 200)

    # ---------------------------------------------------------- drain
    def test_healthz_while_draining(self):
        self.start(broker={"drain_timeout": "3s"})
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = self.broker.address().rsplit(":", 1)
        s.connect((host, int(port)))
        self.addCleanup(s.close)
        import msgpack
        s.sendall(msgpack.packb([0, 1, "sub", ["d"]]))
        wait_for(lambda: metrics(self.http)["pigeon_subscriptions"] == 1, what="the sub")
        pub = self.client()
        for _ in range(64):
            pub.pub_notify("d", b"q" * 65536)
        pub.ping()
        self.broker.send_signal(signal.SIGTERM)
        # The endpoint keeps answering while clients drain, and says so.
        wait_for(lambda: http_get(self.http, "/healthz")[0] == 503, what="/healthz 503")
        self.assertEqual(http_get(self.http, "/healthz")[2], b"draining\n")
        self.assertEqual(self.broker.wait_exit(), 0)


class HttpSlowClientTest(BrokerTest):
    """Clients that send their request a byte at a time (slowloris)."""
    AUTO_START = False

    def start_drip(self, http_keys, n):
        """A broker with [http] HTTP_KEYS, and N connections dripping to it from 127.0.0.1."""
        b = self.start_broker(extra="[http]\nbind = 127.0.0.1:0\n" + http_keys)
        addr = b.address("[http]")
        d = Drip(addr, n)
        self.addCleanup(d.close)
        return b, addr, d

    def test_dripping_address_capped_and_healthz_answered(self):
        # The case: 32 connections from 127.0.0.1 sending a header byte
        # at a time.  timeout and header_timeout are 1h, so only the cap acts
        # here: 4 (max_clients_per_address) are let in and keep dripping, 28 are
        # refused with a 503, and /healthz from another address is answered.
        b, addr, d = self.start_drip("timeout = 1h\nheader_timeout = 1h\n", 32)

        def refused_all():
            d.drip()
            d.poll(0.1)
            return len(d.refused()) >= 28
        wait_for(refused_all, what="28 connections refused")
        self.assertEqual(len(d.refused()), 28)
        self.assertEqual(d.open_count(), 4)
        for _ in range(3):
            status = healthz(addr, source="127.0.0.2", timeout=DEADLINE)
            self.assertRegex(status, r"^HTTP/1\.\d 200 ")
            d.drip()
        d.poll(0.5)
        self.assertEqual(d.open_count(), 4)  # the 4 let in were not disturbed
        self.assertGreaterEqual(b.log_count(r"http: closed a connection from 127\.0\.0\.1: "
                                            r"max_clients_per_address 4 reached"), 1)
        self.client(broker=b).ping()

    def test_per_address_cap_and_reload(self):
        b, addr, d = self.start_drip("timeout = 1h\nheader_timeout = 1h\n"
                                     "max_clients_per_address = 2\n", 3)
        wait_for(lambda: d.poll(0.1) or len(d.refused()) == 1, what="the third refused")
        reply = d.replies[d.refused()[0]]
        self.assertIn(b"\r\n\r\ntoo many connections from your address\n", reply)
        # Another address is not affected.
        self.assertRegex(healthz(addr, source="127.0.0.2", timeout=DEADLINE), r" 200 ")
        # One of the two closes: 127.0.0.1 may connect again.
        kept = [s for s in d.socks if s not in d.closed]
        kept[0].close()
        d.socks.remove(kept[0])
        wait_for(lambda: " 200 " in healthz(addr, source="127.0.0.1", timeout=DEADLINE),
                 what="/healthz from 127.0.0.1 once a slot is free")
        # A higher cap by reload applies at once (same bind: same socket).
        b.write_config(extra="[http]\nbind = 127.0.0.1:0\ntimeout = 1h\nheader_timeout = 1h\n"
                             "max_clients_per_address = 3\n")
        b.reload()
        self.assertEqual(b.address("[http]"), addr)
        more = Drip(addr, 1)
        self.addCleanup(more.close)
        more.poll(1.0)
        self.assertEqual(more.open_count(), 1)
        self.assertRegex(b.log_text(), r"SIGHUP: \[http\] max_clients_per_address 2 -> 3")

    def test_header_timeout_bounds_a_drip(self):
        # evhttp's read timeout (1h here) restarts with every byte; header_timeout
        # bounds the whole request, so connections that keep dripping are closed.
        b, addr, d = self.start_drip("timeout = 1h\nheader_timeout = 2s\n", 3)

        def all_cut():
            d.drip()
            d.poll(0.3)
            return d.open_count() == 0
        wait_for(all_cut, what="the dripping connections to be closed")
        self.assertEqual(len(d.cut()), 3)  # closed without a reply
        b.wait_log(r"http: closed a connection from 127\.0\.0\.1: no complete request within "
                   r"header_timeout 2000 ms")
        self.assertEqual(http_get(addr, "/healthz")[0], 200)

    def test_header_timeout_after_a_response(self):
        # A keep-alive connection has header_timeout for its next request too.
        b = self.start_broker(extra="[http]\nbind = 127.0.0.1:0\ntimeout = 1h\n"
                                    "header_timeout = 1s\n")
        host, port = b.address("[http]").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
        self.addCleanup(conn.close)
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().read(), b"ok\n")
        self.assertEqual(recv_all(conn.sock), b"")  # then idle: closed after 1s, not 1h


class HttpReloadTest(BrokerTest):
    AUTO_START = False

    def test_turn_on_move_and_off(self):
        b = self.start_broker()
        self.assertNotIn("[http]", b.ports())
        b.write_config(extra=HTTP)
        b.reload()
        first = b.address("[http]")
        self.assertEqual(http_get(first, "/healthz")[0], 200)

        # Another address: the old one closes, the new one serves.
        b.write_config(extra="[http]\nbind = 127.0.0.2:0\n")
        b.reload()
        second = b.address("[http]")
        self.assertTrue(second.startswith("127.0.0.2:"), second)
        self.assertEqual(http_get(second, "/healthz")[0], 200)
        self.assertRaises(OSError, http_get, first, "/healthz")

        b.write_config()
        b.reload()
        self.assertNotIn("[http]", b.ports())
        self.assertRaises(OSError, http_get, second, "/healthz")
        self.assertIn("http monitoring on %s closed" % second, b.log_text())
        self.client(broker=b).ping()

    def test_max_clients_live(self):
        b = self.start_broker(extra="[http]\nbind = 127.0.0.1:0\nmax_clients = 1\n")
        addr = b.address("[http]")
        idle = raw_http(addr)
        self.addCleanup(idle.close)
        waiting = raw_http(addr)
        self.addCleanup(waiting.close)
        waiting.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertFalse(readable_within(waiting, 1.0), "served past max_clients 1")
        # Raising the cap by reload lets the waiting connection in (same bind: same socket).
        b.write_config(extra="[http]\nbind = 127.0.0.1:0\nmax_clients = 4\n")
        b.reload()
        self.assertEqual(b.address("[http]"), addr)
        self.assertIn(b" 200 ", recv_all(waiting)[:20])

    def test_timeout_live(self):
        # A shorter timeout on reload reaches connections already open.
        b = self.start_broker(extra="[http]\nbind = 127.0.0.1:0\ntimeout = 1h\n")
        addr = b.address("[http]")
        idle = raw_http(addr)
        self.addCleanup(idle.close)
        self.assertEqual(http_get(addr, "/healthz")[0], 200)  # accepted before the reload
        b.write_config(extra="[http]\nbind = 127.0.0.1:0\ntimeout = 1s\n")
        b.reload()
        self.assertEqual(recv_all(idle), b"")  # closed by the 1s timeout, not the 1h one
        # A keep-alive connection opened before the reload keeps the new value too.
        b.write_config(extra="[http]\nbind = 127.0.0.1:0\ntimeout = 1h\n")
        b.reload()
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
        self.addCleanup(conn.close)
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().read(), b"ok\n")
        b.write_config(extra="[http]\nbind = 127.0.0.1:0\ntimeout = 1s\n")
        b.reload()
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().read(), b"ok\n")
        self.assertEqual(recv_all(conn.sock), b"")  # then idle: closed after 1s

    def test_bind_failure_at_start(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        b = self.start_broker(extra="[http]\nbind = 127.0.0.1:%d\n" % blocker.getsockname()[1], check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("[http] cannot bind 127.0.0.1:%d" % blocker.getsockname()[1], b.log_text())


if __name__ == "__main__":
    main()
