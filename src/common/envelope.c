/*
 * envelope.c - checks the MessagePack-RPC shape of a frame (see envelope.h).
 */
#include "envelope.h"

#include "proto.h"

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

static int parse_msgid(struct mpread *r, struct envelope *env, const char **why)
{
    uint64_t id;
    if (!mpread_uint(r, &id) || id > UINT32_MAX)
        return fail(why, "msgid is not an unsigned 32-bit integer");
    env->msgid = (uint32_t)id;
    return 0;
}

/* method, params: the tail shared by requests and notifications. */
static int parse_call(struct mpread *r, struct envelope *env, const char **why)
{
    if (!mpread_str(r, &env->method, &env->method_len))
        return fail(why, "method is not a string");
    if (!mpread_array(r, &env->n_params))
        return fail(why, "params is not an array");
    env->params = *r;
    return 0;
}

int envelope_parse(const uint8_t *frame, size_t len, struct envelope *env, const char **why)
{
    struct mpread r;
    uint32_t n;
    uint64_t kind;

    mpread_init(&r, frame, len);
    if (!mpread_array(&r, &n))
        return fail(why, "frame is not an array");
    if (!mpread_uint(&r, &kind))
        return fail(why, "message kind is not 0, 1 or 2");
    env->kind = (int)kind;
    switch (kind) {
    case PROTO_REQUEST:
        if (n != 4)
            return fail(why, "a request is [0, msgid, method, params]");
        if (parse_msgid(&r, env, why) < 0)
            return -1;
        return parse_call(&r, env, why);
    case PROTO_NOTIFICATION:
        if (n != 3)
            return fail(why, "a notification is [2, method, params]");
        env->msgid = 0;
        return parse_call(&r, env, why);
    case PROTO_RESPONSE:
        if (n != 4)
            return fail(why, "a response is [1, msgid, error, result]");
        if (parse_msgid(&r, env, why) < 0)
            return -1;
        env->error = r;
        if (!mpread_skip(&r))
            return fail(why, "truncated response");
        env->result = r;
        env->error.end = r.p;
        return 0;
    default:
        return fail(why, "message kind is not 0, 1 or 2");
    }
}
