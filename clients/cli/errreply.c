/*
 * errreply.c - the error reply (see errreply.h).
 */
#include "errreply.h"

#include <string.h>

#include "mpread.h"

int errreply_pack(msgpack_sbuffer *out, const char *text, size_t len)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 1) < 0 ||
        msgpack_pack_str_with_body(&pk, ERRREPLY_KEY, strlen(ERRREPLY_KEY)) < 0 ||
        msgpack_pack_str_with_body(&pk, text, len) < 0)
        return -1;
    return 0;
}

bool errreply_find(const void *data, size_t len, const void **value, size_t *value_len)
{
    struct mpread r;
    uint32_t n, klen;
    const char *key;

    mpread_init(&r, data, len);
    if (!mpread_map(&r, &n) || n != 1 || !mpread_str(&r, &key, &klen) ||
        klen != strlen(ERRREPLY_KEY) || memcmp(key, ERRREPLY_KEY, klen) != 0)
        return false;
    const uint8_t *start = r.p;
    if (!mpread_skip(&r) || mpread_left(&r) != 0)
        return false;
    *value = start;
    *value_len = (size_t)(r.p - start);
    return true;
}
