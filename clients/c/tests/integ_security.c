/*
 * integ_security.c - libpigeon against a pigeond that requires logins and
 * speaks TLS: password and token logins over TLS (the blocking and the
 * asynchronous API), the broker's certificate checked against the CA and
 * the host (a DNS name, an IP address, one the certificate does not name),
 * a wrong CA, no CA (the system's store), no-verify, a client certificate
 * whose CN is a user, a wrong password (final, not retried), a forbidden
 * publication and subscription with the broker's words, request/reply
 * through the user's own inbox, a broker restart (the client logs in
 * again), bulk and large frames through TLS, and the options refused
 * before connecting.
 *
 * The certificates are tests/integration/certs.py's ($PIGEON_HARNESS_DIR),
 * made once by main() with the openssl command; the users file has a
 * yescrypt hash from crypt(3) and a token's SHA-256, as `pigeon passwd`
 * makes them.
 */
#include <check.h>
#include <crypt.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "support.h"

#define ALICE_PW  "alice-pw"
#define SVC_TOKEN "svc-token-0123456789abcdef"

static char pki[128]; /* the certificates and the users file, made by main() */
static char users[192];

/* ------------------------------------------------------------ fixtures --- */

/* PATH of a file of the PKI into BUF (192 bytes). */
static const char *pki_file(char *buf, const char *name)
{
    snprintf(buf, 192, "%s/%s", pki, name);
    return buf;
}

/* What main() makes must work, before any test runs (no ck_assert there). */
static void fixture_check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "integ_security: %s\n", what);
        exit(EXIT_FAILURE);
    }
}

/* Runs tests/integration/certs.py's make_pki into DIR. */
static void make_pki(const char *dir)
{
    const char *harness = getenv("PIGEON_HARNESS_DIR");
    const char *code = "import sys; sys.path.insert(0, sys.argv[1]); import certs; "
                       "certs.make_pki(sys.argv[2])";
    int status = 0;

    fixture_check(harness != NULL, "PIGEON_HARNESS_DIR is not set");
    pid_t pid = fork();
    fixture_check(pid >= 0, "fork failed");
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", "-c", code, harness, dir, (char *)NULL);
        _exit(127);
    }
    fixture_check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "certs.py (the openssl command) failed");
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char d[32];
    unsigned int n = 0;

    fixture_check(EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL) == 1, "SHA-256 failed");
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* alice: a password; svc: a token; both may publish and subscribe under
 * orders (alice in her own inboxes too), but alice not publish under
 * orders.admin. */
static void write_users(const char *path)
{
    const char *salt = crypt_gensalt("$y$", 0, NULL, 0);
    char hex[65];

    fixture_check(salt != NULL, "crypt_gensalt failed");
    const char *hash = crypt(ALICE_PW, salt);
    fixture_check(hash != NULL && hash[0] == '$', "crypt failed");
    sha256_hex(SVC_TOKEN, hex);
    FILE *f = fopen(path, "w");
    fixture_check(f != NULL, "cannot write the users file");
    fprintf(f,
            "[user alice]\npassword = %s\npublish = orders.>, _INBOX.>\n"
            "publish_deny = orders.admin.>\nsubscribe = orders.>, _INBOX.%%u.>\n"
            "[user svc]\ntoken = sha256:%s\npublish = orders.>\nsubscribe = orders.>, _INBOX.%%u.>\n",
            hash, hex);
    fclose(f);
}

/* alice's certificate and key in one file, for tls_key NULL. */
static void write_combined(void)
{
    char path[192], part[192], line[512];
    FILE *out = fopen(pki_file(path, "alice-both.pem"), "w");

    fixture_check(out != NULL, "cannot write alice-both.pem");
    for (int i = 0; i < 2; i++) {
        FILE *in = fopen(pki_file(part, i == 0 ? "alice.pem" : "alice.key"), "r");
        fixture_check(in != NULL, "cannot read alice's certificate");
        while (fgets(line, sizeof(line), in) != NULL)
            fputs(line, out);
        fclose(in);
    }
    fclose(out);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/*
 * A broker with listeners `plain` (TCP), `tls` (TLS on 127.0.0.1, client
 * certificates verified against ca.pem), and `other` (the same certificate
 * on 127.0.0.2, an address it does not name); logins required.  TLS_PORT
 * 0: any free port.  B->addr is the `tls` listener's.
 */
static void secure_broker_start(struct broker *b, int tls_port)
{
    char text[2048], cert[192], key[192], ca[192];

    pki_file(cert, "server.pem");
    pki_file(key, "server.key");
    pki_file(ca, "ca.pem");
    snprintf(text, sizeof(text),
             "[broker]\nlog_level = info\n"
             "[listener plain]\nbind = 127.0.0.1:0\n"
             "[listener tls]\nbind = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\ntls_ca = %s\n"
             "[listener other]\nbind = 127.0.0.2:0\ntls_cert = %s\ntls_key = %s\n"
             "[auth]\nusers_file = %s\n",
             tls_port, cert, key, ca, cert, key, users);
    broker_start_text(b, text, "tls");
}

/* "tls://" and listener NAME's address into BUF (256 bytes). */
static const char *tls_addr(const struct broker *b, const char *name, char *buf)
{
    char addr[192];
    ck_assert(broker_address(b, name, addr));
    snprintf(buf, 256, "tls://%s", addr);
    return buf;
}

/* Test options trusting ca.pem, logged in as alice. */
static void alice_options(struct pigeon_options *o, char *ca)
{
    test_options(o);
    o->tls_ca = pki_file(ca, "ca.pem");
    o->user = "alice";
    o->password = ALICE_PW;
}

/* pigeon_sync_connect must fail with WANT, saying each of the SAYS (NULL-ended). */
static void sync_refused(const char *addr, struct pigeon_options *o, int want, const char *says[])
{
    char why[512] = "";
    pigeon_sync *s = NULL;

    o->errbuf = why;
    o->errbuf_len = sizeof(why);
    int err = pigeon_sync_connect(addr, o, 0, &s);
    ck_assert_msg(err == want, "%s: %s (%s), wanted %s", addr, pigeon_strerror(err), why,
                  pigeon_strerror(want));
    ck_assert_ptr_null(s);
    for (int i = 0; says[i] != NULL; i++)
        ck_assert_msg(strstr(why, says[i]) != NULL, "'%s' does not say '%s'", why, says[i]);
    o->errbuf = NULL;
    o->errbuf_len = 0;
}

static pigeon_sync *sync_ok(const char *addr, struct pigeon_options *o)
{
    char why[512] = "";
    pigeon_sync *s = NULL;

    o->errbuf = why;
    o->errbuf_len = sizeof(why);
    int err = pigeon_sync_connect(addr, o, 0, &s);
    ck_assert_msg(err == PIGEON_OK, "%s: %s (%s)", addr, pigeon_strerror(err), why);
    o->errbuf = NULL;
    o->errbuf_len = 0;
    return s;
}

/* A round trip through the broker: publish to TOPIC, receive it on SUB_PATTERN. */
static void round_trip(pigeon_sync *s, const char *topic)
{
    uint64_t delivered = 0;
    pigeon_msg *m = NULL;
    const uint8_t one = 0x01;

    ck_assert_int_eq(pigeon_sync_subscribe(s, topic, NULL, 0, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_publish_confirm(s, topic, &one, 1, NULL, 0, &delivered),
                     PIGEON_OK);
    ck_assert_uint_eq(delivered, 1);
    ck_assert_int_eq(pigeon_sync_next(s, (int)(test_deadline() * 1000), &m), PIGEON_OK);
    ck_assert_str_eq(pigeon_msg_topic(m, NULL), topic);
    pigeon_msg_free(m);
}

/* How many lines of B's log contain WHAT. */
static int log_count(const struct broker *b, const char *what)
{
    FILE *f = fopen(b->log, "r");
    char line[1024];
    int n = 0;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

/* ---------------------------------------------------- async observers --- */

/* The bulk test's subscriber: its messages, bin32 payloads with a sequence
 * number first, must come in order. */
struct seq {
    int msgs;
    uint64_t next; /* the number the next message must carry */
    bool out_of_order;
};

static void seq_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct seq *q = arg;
    size_t len;
    const uint8_t *p = pigeon_msg_data(m, &len);
    uint64_t n = UINT64_MAX;

    q->msgs++;
    if (len >= 13 && p[0] == 0xc6)
        memcpy(&n, p + 5, sizeof(n));
    q->out_of_order |= n != q->next;
    q->next = n + 1;
}

/* A requester's answer. */
struct answer {
    int replies, err;
    char reply[64];
};

static void answer_cb(pigeon_client *c, int err, const pigeon_msg *reply, void *arg)
{
    struct answer *a = arg;
    size_t len = 0;

    a->replies++;
    a->err = err;
    if (reply != NULL) {
        const char *d = pigeon_msg_data(reply, &len);
        snprintf(a->reply, sizeof(a->reply), "%.*s", (int)len, d);
    }
}

static bool answered(void *arg)
{
    return ((struct answer *)arg)->replies > 0;
}

/* Echoes a request's payload back to its reply_to. */
static void echo_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    size_t len;
    const void *d = pigeon_msg_data(m, &len);
    ck_assert_int_eq(pigeon_reply(c, m, d, len), PIGEON_OK);
}

/* ---------------------------------------------------------- logging in --- */

START_TEST(test_password_login_tls)
{
    struct broker b;
    struct pigeon_options o;
    char ca[192], addr[256];

    secure_broker_start(&b, 0);
    alice_options(&o, ca);
    pigeon_sync *s = sync_ok(tls_addr(&b, "tls", addr), &o);
    round_trip(s, "orders.ip");
    pigeon_sync_close(s);
    /* By name: the certificate names localhost too. */
    snprintf(addr, sizeof(addr), "tls://localhost:%s", strrchr(b.addr, ':') + 1);
    s = sync_ok(addr, &o);
    round_trip(s, "orders.name");
    pigeon_sync_close(s);
    ck_assert_int_ge(log_count(&b, "is user alice"), 2);
    broker_finish(&b);
}
END_TEST

START_TEST(test_token_login_async)
{
    struct broker b;
    struct pigeon_options o;
    struct obs ob = {0};
    char ca[192], addr[256];
    const uint8_t one = 0x01;
    struct event_base *base = event_base_new();

    secure_broker_start(&b, 0);
    test_options(&o);
    o.tls_ca = pki_file(ca, "ca.pem");
    o.token = SVC_TOKEN;
    pigeon_client *c = obs_connect(base, tls_addr(&b, "tls", addr), &ob, &o);
    ck_assert(run_until(base, obs_connected, &ob));
    ck_assert_int_eq(pigeon_subscribe(c, "orders.t", NULL, obs_msg_cb, &ob, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_publish_confirm(c, "orders.t", &one, 1, NULL, obs_done_cb, &ob),
                     PIGEON_OK);
    ck_assert(run_until(base, obs_done, &ob));
    ck_assert_int_eq(ob.done_err, PIGEON_OK);
    struct at_least one_msg = {&ob.msgs, 1};
    ck_assert(run_until(base, reached, &one_msg));
    pigeon_close(c);
    event_base_free(base);
    ck_assert_int_ge(log_count(&b, "is user svc"), 1);
    broker_finish(&b);
}
END_TEST

START_TEST(test_wrong_password_is_final)
{
    struct broker b;
    struct pigeon_options o;
    struct obs ob = {0};
    char ca[192], addr[256];
    struct event_base *base = event_base_new();

    secure_broker_start(&b, 0);
    alice_options(&o, ca);
    o.password = "wrong";
    sync_refused(tls_addr(&b, "tls", addr), &o, PIGEON_ERR_AUTH_FAILED,
                 (const char *[]){"authentication failed", "as user 'alice'", NULL});
    /* Not even the password is given: the broker refuses the hello. */
    o.user = o.password = NULL;
    sync_refused(addr, &o, PIGEON_ERR_AUTH_FAILED,
                 (const char *[]){"authentication failed", "no credentials", NULL});
    /* The asynchronous client, reconnecting: closed for good, not retried. */
    alice_options(&o, ca);
    o.password = "wrong";
    o.reconnect = 1;
    pigeon_client *c = obs_connect(base, addr, &ob, &o);
    ck_assert(run_until(base, obs_closed, &ob));
    ck_assert_int_eq(ob.last_err, PIGEON_ERR_AUTH_FAILED);
    ck_assert_int_eq(ob.connected + ob.disconnected, 0);
    ck_assert_ptr_nonnull(strstr(pigeon_errmsg(c), "authentication failed"));
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_forbidden)
{
    struct broker b;
    struct pigeon_options o;
    struct obs ob = {0};
    char ca[192], addr[256];
    const uint8_t one = 0x01;
    uint64_t id = 0;

    secure_broker_start(&b, 0);
    alice_options(&o, ca);
    o.on_error = obs_error_cb;
    o.error_arg = &ob;
    pigeon_sync *s = sync_ok(tls_addr(&b, "tls", addr), &o);
    pigeon_client *c = pigeon_sync_client(s);
    /* A request: the error, with the broker's words naming the topic. */
    ck_assert_int_eq(pigeon_sync_publish_confirm(s, "orders.admin.x", &one, 1, NULL, 0, NULL),
                     PIGEON_ERR_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(pigeon_errmsg(c), "not allowed to publish to 'orders.admin.x'"));
    ck_assert_int_eq(pigeon_sync_subscribe(s, "secret.>", NULL, 0, &id), PIGEON_ERR_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(pigeon_errmsg(c), "not allowed to subscribe to 'secret.>'"));
    /* Fire and forget: through on_error. */
    ck_assert_int_eq(pigeon_sync_publish(s, "orders.admin.y", &one, 1, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_flush(s, 0), PIGEON_OK);
    ck_assert_int_eq(ob.errors, 1);
    ck_assert_int_eq(ob.last_error, PIGEON_ERR_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(ob.error_msg, "not allowed to publish to 'orders.admin.y'"));
    /* The connection stays up, with alice's other rights. */
    round_trip(s, "orders.fine");
    pigeon_sync_close(s);
    broker_finish(&b);
}
END_TEST

START_TEST(test_request_reply_in_users_inbox)
{
    struct broker b;
    struct pigeon_options o;
    struct obs ro = {0}, qo = {0}, sd = {0};
    struct answer ans = {0};
    char ca[192], addr[256];
    struct event_base *base = event_base_new();
    struct pigeon_sub_opts so = {.on_done = obs_done_cb, .done_arg = &sd};

    /* alice may subscribe to _INBOX.alice.> only: the client's inbox is there. */
    secure_broker_start(&b, 0);
    alice_options(&o, ca);
    pigeon_client *responder = obs_connect(base, tls_addr(&b, "tls", addr), &ro, &o);
    pigeon_client *requester = obs_connect(base, addr, &qo, &o);
    ck_assert_int_eq(pigeon_subscribe(responder, "orders.echo", &so, echo_cb, NULL, NULL),
                     PIGEON_OK);
    ck_assert(run_until(base, obs_done, &sd));
    ck_assert_int_eq(sd.done_err, PIGEON_OK);
    ck_assert_int_eq(pigeon_request(requester, "orders.echo", "\xa2hi", 3, NULL,
                                    (int)(test_deadline() * 1000), answer_cb, &ans),
                     PIGEON_OK);
    ck_assert(run_until(base, answered, &ans));
    ck_assert_int_eq(ans.err, PIGEON_OK);
    ck_assert_str_eq(ans.reply, "\xa2hi");

    /* svc logs in with a token, which names no user: the broker's hello
     * result does, and the client's inbox moves under _INBOX.svc. */
    struct pigeon_options to;
    struct obs tob = {0};
    struct answer tans = {0};
    test_options(&to);
    to.tls_ca = ca;
    to.token = SVC_TOKEN;
    pigeon_client *token_user = obs_connect(base, addr, &tob, &to);
    ck_assert(run_until(base, obs_connected, &tob));
    ck_assert_int_eq(pigeon_request(token_user, "orders.echo", "\xa3tok", 4, NULL,
                                    (int)(test_deadline() * 1000), answer_cb, &tans),
                     PIGEON_OK);
    ck_assert(run_until(base, answered, &tans));
    ck_assert_int_eq(tans.err, PIGEON_OK);
    ck_assert_str_eq(tans.reply, "\xa3tok");
    pigeon_close(token_user);
    pigeon_close(requester);
    pigeon_close(responder);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------------ the broker's certificate --- */

START_TEST(test_verification_failures)
{
    struct broker b;
    struct pigeon_options o;
    struct obs ob = {0};
    char ca[192], addr[256], other[256];
    struct event_base *base = event_base_new();

    secure_broker_start(&b, 0);
    tls_addr(&b, "tls", addr);
    tls_addr(&b, "other", other);
    alice_options(&o, ca);
    o.tls_ca = pki_file(ca, "other-ca.pem");
    sync_refused(addr, &o, PIGEON_ETLS,
                 (const char *[]){"TLS handshake with", "certificate verify failed", NULL});
    o.tls_ca = NULL; /* the system's store does not know the test CA */
    sync_refused(addr, &o, PIGEON_ETLS, (const char *[]){"certificate verify failed", NULL});
    /* The right CA, but an address the certificate does not name. */
    o.tls_ca = pki_file(ca, "ca.pem");
    sync_refused(other, &o, PIGEON_ETLS,
                 (const char *[]){"IP address mismatch", "not for '127.0.0.2'", NULL});
    /* A plain listener: no TLS there. */
    char plain[192], plain_tls[256];
    ck_assert(broker_address(&b, "plain", plain));
    snprintf(plain_tls, sizeof(plain_tls), "tls://%s", plain);
    sync_refused(plain_tls, &o, PIGEON_ETLS, (const char *[]){"speak TLS", NULL});
    /* Reconnecting does not retry what no retry can fix. */
    o.tls_ca = pki_file(ca, "other-ca.pem");
    o.reconnect = 1;
    pigeon_client *c = obs_connect(base, addr, &ob, &o);
    ck_assert(run_until(base, obs_closed, &ob));
    ck_assert_int_eq(ob.last_err, PIGEON_ETLS);
    ck_assert_int_eq(ob.disconnected, 0);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_no_verify)
{
    struct broker b;
    struct pigeon_options o;
    char ca[192], addr[256];

    secure_broker_start(&b, 0);
    alice_options(&o, ca);
    o.tls_ca = NULL;
    o.tls_no_verify = 1;
    pigeon_sync *s = sync_ok(tls_addr(&b, "tls", addr), &o);
    round_trip(s, "orders.nv");
    pigeon_sync_close(s);
    s = sync_ok(tls_addr(&b, "other", addr), &o); /* a name the certificate lacks */
    round_trip(s, "orders.nv2");
    pigeon_sync_close(s);
    broker_finish(&b);
}
END_TEST

START_TEST(test_client_certificate)
{
    struct broker b;
    struct pigeon_options o;
    char ca[192], cert[192], key[192], addr[256];
    const uint8_t one = 0x01;

    secure_broker_start(&b, 0);
    test_options(&o); /* no user, password or token */
    o.tls_ca = pki_file(ca, "ca.pem");
    o.tls_cert = pki_file(cert, "alice.pem");
    o.tls_key = pki_file(key, "alice.key");
    pigeon_sync *s = sync_ok(tls_addr(&b, "tls", addr), &o);
    round_trip(s, "orders.cert");
    ck_assert_int_eq(pigeon_sync_publish_confirm(s, "orders.admin.c", &one, 1, NULL, 0, NULL),
                     PIGEON_ERR_FORBIDDEN); /* alice's rights */
    pigeon_sync_close(s);
    /* The key in the certificate's file. */
    o.tls_cert = pki_file(cert, "alice-both.pem");
    o.tls_key = NULL;
    s = sync_ok(addr, &o);
    round_trip(s, "orders.cert2");
    pigeon_sync_close(s);
    ck_assert_int_ge(log_count(&b, "is user alice (client certificate)"), 2);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------------ reconnecting --- */

START_TEST(test_reconnect_logs_in_again)
{
    struct broker b;
    struct pigeon_options o, po;
    struct obs so = {0}, sd = {0}, pd = {0}, pub_o = {0};
    char ca[192], addr[256];
    const uint8_t one = 0x01;
    struct event_base *base = event_base_new();
    struct pigeon_sub_opts sopts = {.on_done = obs_done_cb, .done_arg = &sd};

    secure_broker_start(&b, free_port());
    alice_options(&o, ca);
    pigeon_client *sub = obs_connect(base, tls_addr(&b, "tls", addr), &so, &o);
    ck_assert_int_eq(pigeon_subscribe(sub, "orders.r", &sopts, obs_msg_cb, &so, NULL), PIGEON_OK);
    ck_assert(run_until(base, obs_done, &sd));
    ck_assert_int_eq(sd.done_err, PIGEON_OK);

    ck_assert_int_eq(broker_stop(&b, SIGKILL), 128 + SIGKILL);
    struct at_least down = {&so.disconnected, 1};
    ck_assert(run_until(base, reached, &down));
    broker_restart(&b);
    struct at_least up = {&so.connected, 2};
    ck_assert(run_until(base, reached, &up));

    /* Its subscription was made again, which only a logged-in client may do. */
    test_options(&po);
    po.tls_ca = ca;
    po.token = SVC_TOKEN;
    pigeon_client *pub = obs_connect(base, addr, &pub_o, &po);
    ck_assert_int_eq(pigeon_publish_confirm(pub, "orders.r", &one, 1, NULL, obs_done_cb, &pd),
                     PIGEON_OK);
    struct at_least got = {&so.msgs, 1};
    ck_assert(run_until(base, reached, &got));
    ck_assert(run_until(base, obs_done, &pd));
    ck_assert_int_eq(pd.done_err, PIGEON_OK);
    ck_assert_int_ge(log_count(&b, "is user alice"), 2); /* before and after the restart */
    pigeon_close(pub);
    pigeon_close(sub);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------------ bulk --- */

#define BULK_N    3000
#define BULK_SIZE 8192

/* Thousands of frames, records and frames cut differently, and one near max_payload. */
START_TEST(test_bulk_and_large_frames)
{
    struct broker b;
    struct pigeon_options o;
    struct obs so = {0}, sd = {0}, po = {0}, fd = {0};
    struct seq seq = {0};
    char ca[192], addr[256];
    struct event_base *base = event_base_new();
    struct pigeon_sub_opts sopts = {.on_done = obs_done_cb, .done_arg = &sd};
    static uint8_t payload[1000 * 1000];

    secure_broker_start(&b, 0);
    alice_options(&o, ca);
    o.max_outbound = 64u << 20;
    pigeon_client *sub = obs_connect(base, tls_addr(&b, "tls", addr), &so, &o);
    pigeon_client *pub = obs_connect(base, addr, &po, &o);
    ck_assert_int_eq(pigeon_subscribe(sub, "orders.bulk", &sopts, seq_msg_cb, &seq, NULL),
                     PIGEON_OK);
    ck_assert(run_until(base, obs_done, &sd));
    ck_assert(run_until(base, obs_connected, &po));
    for (uint64_t i = 0; i < BULK_N; i++) {
        payload[0] = 0xc6; /* bin32 of BULK_SIZE - 5 bytes, the sequence number first */
        uint32_t n = BULK_SIZE - 5;
        payload[1] = (uint8_t)(n >> 24);
        payload[2] = (uint8_t)(n >> 16);
        payload[3] = (uint8_t)(n >> 8);
        payload[4] = (uint8_t)n;
        memcpy(payload + 5, &i, sizeof(i));
        ck_assert_int_eq(pigeon_publish(pub, "orders.bulk", payload, BULK_SIZE, NULL), PIGEON_OK);
    }
    /* One frame of almost max_payload (1 MiB): many TLS records. */
    uint32_t n = sizeof(payload) - 5;
    uint64_t last = BULK_N;
    payload[1] = (uint8_t)(n >> 24);
    payload[2] = (uint8_t)(n >> 16);
    payload[3] = (uint8_t)(n >> 8);
    payload[4] = (uint8_t)n;
    memcpy(payload + 5, &last, sizeof(last));
    ck_assert_int_eq(pigeon_publish(pub, "orders.bulk", payload, sizeof(payload), NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_flush(pub, obs_done_cb, &fd), PIGEON_OK);
    struct at_least all = {&seq.msgs, BULK_N + 1};
    ck_assert(run_until(base, reached, &all));
    ck_assert(!seq.out_of_order);
    ck_assert_uint_eq(seq.next, BULK_N + 1);
    ck_assert(run_until(base, obs_done, &fd));
    ck_assert_int_eq(fd.done_err, PIGEON_OK);
    ck_assert_int_eq(so.errors + po.errors, 0);
    pigeon_close(pub);
    pigeon_close(sub);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------------ options --- */

START_TEST(test_options_refused)
{
    struct pigeon_options o;
    char ca[192], cert[192], key[192];

    /* Before any connection: no broker needed. */
    test_options(&o);
    o.tls_ca = pki_file(ca, "ca.pem");
    sync_refused("127.0.0.1:1", &o, PIGEON_EINVAL,
                 (const char *[]){"are for tls:// addresses", "127.0.0.1:1", NULL});
    test_options(&o);
    o.tls_no_verify = 1;
    sync_refused("unix:/tmp/none.sock", &o, PIGEON_EINVAL, (const char *[]){"tls://", NULL});
    test_options(&o);
    o.tls_key = pki_file(key, "alice.key");
    sync_refused("tls://127.0.0.1:1", &o, PIGEON_EINVAL, (const char *[]){"tls_cert", NULL});
    test_options(&o);
    o.tls_ca = "/nonexistent/ca.pem";
    sync_refused("tls://127.0.0.1:1", &o, PIGEON_ETLS,
                 (const char *[]){"CA file '/nonexistent/ca.pem'", "No such file", NULL});
    test_options(&o);
    o.tls_cert = pki_file(cert, "alice.pem");
    o.tls_key = pki_file(key, "nobody.key");
    sync_refused("tls://127.0.0.1:1", &o, PIGEON_ETLS, (const char *[]){"does not match", NULL});
    test_options(&o);
    o.tls_ca = pki_file(ca, "alice.key"); /* not a certificate */
    sync_refused("tls://127.0.0.1:1", &o, PIGEON_ETLS, (const char *[]){"CA file", NULL});
    sync_refused("tls://unix:/tmp/x.sock", &o, PIGEON_EADDRESS,
                 (const char *[]){"TLS is for TCP", NULL});
}
END_TEST

int main(void)
{
    snprintf(pki, sizeof(pki), "/tmp/libpigeon-pki-XXXXXX");
    if (mkdtemp(pki) == NULL)
        return EXIT_FAILURE;
    make_pki(pki);
    snprintf(users, sizeof(users), "%s/users.ini", pki);
    write_users(users);
    write_combined();

    Suite *s = suite_create("integration: security");
    TCase *tc = tcase_create("logins");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_password_login_tls);
    tcase_add_test(tc, test_token_login_async);
    tcase_add_test(tc, test_wrong_password_is_final);
    tcase_add_test(tc, test_forbidden);
    tcase_add_test(tc, test_request_reply_in_users_inbox);
    suite_add_tcase(s, tc);
    tc = tcase_create("certificates");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_verification_failures);
    tcase_add_test(tc, test_no_verify);
    tcase_add_test(tc, test_client_certificate);
    tcase_add_test(tc, test_options_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("connection");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reconnect_logs_in_again);
    tcase_add_test(tc, test_bulk_and_large_frames);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(pki, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
