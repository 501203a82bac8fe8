/*
 * statedb.c - consumer state and retained values in LMDB (see statedb.h).
 *
 * An operation is encoded as: u8 kind (put, del), u8 table, u32 klen,
 * u32 vlen, then the key and the value bytes.  statedb_apply walks them in
 * order inside one write transaction, so a later operation on a key wins,
 * as it did in memory.
 */
#include "statedb.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "xalloc.h"

#define STATEDB_VERSION "1"
#define STATEDB_MAP_MAX ((uint64_t)1 << 40) /* 1 TiB of address space at most */
#define OP_HEADER       10

enum { OP_PUT = 1, OP_DEL = 2 };

static const char *const table_names[STATEDB_TABLES] = {
    [STATEDB_META] = "meta",
    [STATEDB_CONSUMERS] = "consumers",
    [STATEDB_PENDING] = "pending",
    [STATEDB_RETAINED] = "retained",
};

struct statedb {
    MDB_env *env;
    MDB_dbi dbi[STATEDB_TABLES];
    char *path;
    uint64_t map_size;
    struct logger *log;
};

/* ------------------------------------------------------------- opening ---- */

static uint64_t file_size(const char *path)
{
    char f[4200];
    struct stat st;

    snprintf(f, sizeof(f), "%s/data.mdb", path);
    return stat(f, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Opens the tables and checks the version.  0, -1 (WHY), or an LMDB error for "damaged". */
static int tables_open(struct statedb *db, char *why, size_t why_len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

    if (rc != 0)
        return rc;
    for (int t = 0; t < STATEDB_TABLES && rc == 0; t++)
        rc = mdb_dbi_open(txn, table_names[t], MDB_CREATE, &db->dbi[t]);
    MDB_val k = {7, "version"}, v;
    if (rc == 0) {
        rc = mdb_get(txn, db->dbi[STATEDB_META], &k, &v);
        if (rc == MDB_NOTFOUND) {
            v.mv_data = STATEDB_VERSION;
            v.mv_size = 1;
            rc = mdb_put(txn, db->dbi[STATEDB_META], &k, &v, 0);
        } else if (rc == 0 && (v.mv_size != 1 || memcmp(v.mv_data, STATEDB_VERSION, 1) != 0)) {
            snprintf(why, why_len,
                     "%s was written by another version of pigeond (format %.*s, this one reads "
                     "%s)",
                     db->path, (int)(v.mv_size > 8 ? 8 : v.mv_size), (const char *)v.mv_data,
                     STATEDB_VERSION);
            mdb_txn_abort(txn);
            return -1;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/*
 * Reads every entry of every table once: a damaged page shows up here, at
 * start, where the environment can still be set aside, rather than later.
 * The state is small (pending sets, retained values), so this is quick.
 */
static int tables_verify(struct statedb *db)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

    for (int t = 0; t < STATEDB_TABLES && rc == 0; t++) {
        if ((rc = mdb_cursor_open(txn, db->dbi[t], &cur)) != 0)
            break;
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
            ;
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

static int env_open(struct statedb *db, bool fsync)
{
    int rc = mdb_env_create(&db->env);

    if (rc != 0)
        return rc;
    uint64_t want = file_size(db->path) * 2;
    db->map_size = want > STATEDB_MAP_MIN ? want : STATEDB_MAP_MIN;
    if ((rc = mdb_env_set_mapsize(db->env, db->map_size)) != 0 ||
        (rc = mdb_env_set_maxdbs(db->env, STATEDB_TABLES)) != 0)
        return rc;
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (fsync ? 0 : MDB_NOSYNC);
    return mdb_env_open(db->env, db->path, flags, 0600);
}

static void env_close(struct statedb *db)
{
    if (db->env != NULL)
        mdb_env_close(db->env);
    db->env = NULL;
}

/* True for the errors that mean "this is not a database we can read": set it aside. */
static bool is_damage(int rc)
{
    return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH ||
           rc == MDB_PAGE_NOTFOUND || rc == MDB_PANIC || rc == MDB_BAD_TXN || rc == MDB_BAD_DBI ||
           rc == MDB_INCOMPATIBLE;
}

/* Renames the environment aside, loudly.  0, or -1 with WHY. */
static int set_aside(struct statedb *db, int rc, char *why, size_t why_len)
{
    char to[4300];

    snprintf(to, sizeof(to), "%s.broken-%lld", db->path, (long long)time(NULL) * 1000);
    if (rename(db->path, to) < 0) {
        snprintf(why, why_len, "%s cannot be opened (%s) nor renamed aside: %s", db->path,
                 mdb_strerror(rc), strerror(errno));
        return -1;
    }
    log_error(db->log,
              "store: %s cannot be opened (%s): renamed to %s, NOT deleted; starting with no "
              "durable consumers and no retained values (see docs/durability.md, Recovery)",
              db->path, mdb_strerror(rc), to);
    return 0;
}

int statedb_open(const char *path, bool fsync, struct logger *log, struct statedb **out,
                 bool *moved_aside, char *why, size_t why_len)
{
    struct statedb *db = xcalloc(1, sizeof(*db));

    db->path = xstrdup(path);
    db->log = log;
    *moved_aside = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(why, why_len, "cannot make %s: %s", path, strerror(errno));
            break;
        }
        int rc = env_open(db, fsync);
        if (rc == 0)
            rc = tables_open(db, why, why_len);
        if (rc == 0)
            rc = tables_verify(db);
        if (rc == 0) {
            *out = db;
            return 0;
        }
        env_close(db);
        if (rc == -1)
            break; /* a newer format: leave it alone */
        if (!is_damage(rc) || attempt > 0 || set_aside(db, rc, why, why_len) < 0) {
            if (!is_damage(rc) || attempt > 0)
                snprintf(why, why_len, "cannot open %s: %s", path, mdb_strerror(rc));
            break;
        }
        *moved_aside = true;
    }
    statedb_close(db);
    return -1;
}

void statedb_close(struct statedb *db)
{
    if (db == NULL)
        return;
    env_close(db);
    free(db->path);
    free(db);
}

/* --------------------------------------------------------------- reads ---- */

int statedb_foreach(struct statedb *db, enum statedb_table t, const void *prefix, size_t plen,
                    int (*fn)(void *arg, const void *key, size_t klen, const void *val,
                              size_t vlen),
                    void *arg, char *why, size_t why_len)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k = {plen, (void *)prefix}, v;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn), out = 0;

    if (rc == 0 && (rc = mdb_cursor_open(txn, db->dbi[t], &cur)) != 0)
        mdb_txn_abort(txn);
    if (rc != 0) {
        snprintf(why, why_len, "reading %s: %s", table_names[t], mdb_strerror(rc));
        return -1;
    }
    rc = mdb_cursor_get(cur, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        if ((out = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        snprintf(why, why_len, "reading %s: %s", table_names[t], mdb_strerror(rc));
        out = -1;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return out;
}

/* -------------------------------------------------------------- writes ---- */

static uint8_t *ops_room(struct statedb_ops *o, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->len + n)
            cap *= 2;
        o->buf = xrealloc(o->buf, cap);
        o->cap = cap;
    }
    uint8_t *p = o->buf + o->len;
    o->len += n;
    return p;
}

static void ops_add(struct statedb_ops *o, int kind, enum statedb_table t, const void *key,
                    size_t klen, const void *val, size_t vlen)
{
    uint8_t *p = ops_room(o, OP_HEADER + klen + vlen);
    uint32_t k32 = (uint32_t)klen, v32 = (uint32_t)vlen;

    p[0] = (uint8_t)kind;
    p[1] = (uint8_t)t;
    memcpy(p + 2, &k32, 4);
    memcpy(p + 6, &v32, 4);
    memcpy(p + OP_HEADER, key, klen);
    if (vlen > 0)
        memcpy(p + OP_HEADER + klen, val, vlen);
    o->n++;
}

void statedb_ops_put(struct statedb_ops *o, enum statedb_table t, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    ops_add(o, OP_PUT, t, key, klen, val, vlen);
}

void statedb_ops_del(struct statedb_ops *o, enum statedb_table t, const void *key, size_t klen)
{
    ops_add(o, OP_DEL, t, key, klen, NULL, 0);
}

void statedb_ops_prepend(struct statedb_ops *to, struct statedb_ops *from)
{
    if (from->n == 0)
        return;
    size_t tail = to->len;
    ops_room(to, from->len);
    memmove(to->buf + from->len, to->buf, tail);
    memcpy(to->buf, from->buf, from->len);
    to->n += from->n;
    statedb_ops_release(from);
}

void statedb_ops_release(struct statedb_ops *o)
{
    free(o->buf);
    memset(o, 0, sizeof(*o));
}

/* Applies O's operations in TXN: 0, or an LMDB error. */
static int apply_ops(struct statedb *db, MDB_txn *txn, const struct statedb_ops *o)
{
    size_t pos = 0;
    int rc = 0;

    while (rc == 0 && pos < o->len) {
        const uint8_t *p = o->buf + pos;
        uint32_t klen, vlen;
        memcpy(&klen, p + 2, 4);
        memcpy(&vlen, p + 6, 4);
        MDB_val k = {klen, (void *)(p + OP_HEADER)}, v = {vlen, (void *)(p + OP_HEADER + klen)};
        MDB_dbi dbi = db->dbi[p[1]];
        if (p[0] == OP_PUT) {
            rc = mdb_put(txn, dbi, &k, &v, 0);
        } else {
            rc = mdb_del(txn, dbi, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        pos += OP_HEADER + klen + vlen;
    }
    return rc;
}

/* One transaction over the lists: 0 committed, or an LMDB error (nothing applied). */
static int apply_once(struct statedb *db, const struct statedb_ops *const *lists, size_t n)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = apply_ops(db, txn, lists[i]);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn); /* frees TXN whatever it returns */
}

int statedb_apply(struct statedb *db, const struct statedb_ops *const *lists, size_t n,
                  uint64_t *ns, char *why, size_t why_len)
{
    uint64_t t0 = clock_now_ns();
    int rc;

    while ((rc = apply_once(db, lists, n)) == MDB_MAP_FULL && db->map_size < STATEDB_MAP_MAX) {
        /* No transaction is open in this process now: the map may grow. */
        uint64_t size = db->map_size * 2;
        if (mdb_env_set_mapsize(db->env, size) != 0)
            break;
        db->map_size = size;
    }
    *ns = clock_now_ns() - t0;
    if (rc != 0) {
        snprintf(why, why_len, "%s", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

uint64_t statedb_file_bytes(const struct statedb *db)
{
    return file_size(db->path);
}
