/* coord_artifact: SHA-256 and the tar.gz writer (see coord_artifact.h); the store calls are in
 * store.c. */
#include "coord_artifact.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "co_alloc.h"

void
coord_sha256_init(struct coord_sha256 *h)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
        abort();
    h->ctx = c;
}

void
coord_sha256_update(struct coord_sha256 *h, const void *data, size_t len)
{
    if (len > 0 && EVP_DigestUpdate(h->ctx, data, len) != 1)
        abort();
}

void
coord_sha256_hex(struct coord_sha256 *h, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
        abort();
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void
coord_artifact_list_release(struct coord_artifact_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i].path);
    free(l->items);
    free(l->notes);
    memset(l, 0, sizeof(*l));
}

/* ---- tar.gz ---- */

static void
gz_write(struct coord_targz *t, const void *data, size_t len, int flush)
{
    z_stream *z = t->z;
    unsigned char buf[64 * 1024];
    z->next_in = (unsigned char *)data;
    z->avail_in = (uInt)len;
    do {
        z->next_out = buf;
        z->avail_out = sizeof(buf);
        if (deflate(z, flush) == Z_STREAM_ERROR)
            abort();
        co_buf_append(&t->out, buf, sizeof(buf) - z->avail_out);
    } while (z->avail_out == 0 || (flush == Z_FINISH && z->avail_in > 0));
}

void
coord_targz_init(struct coord_targz *t, int64_t mtime_s)
{
    memset(t, 0, sizeof(*t));
    co_buf_init(&t->out);
    t->mtime = mtime_s;
    z_stream *z = co_xcalloc(1, sizeof(*z));
    /* 15 + 16: a gzip wrapper around the deflate stream. */
    if (deflateInit2(z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    t->z = z;
}

static void
octal(char *field, size_t width, uint64_t v)
{
    /* width - 1 octal digits, zero-padded, then a NUL */
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = (char)('0' + (v & 7));
}

int
coord_targz_add(struct coord_targz *t, const char *path, const void *data, size_t len, co_err *err)
{
    unsigned char h[512];
    size_t n = strlen(path);
    memset(h, 0, sizeof(h));
    if (n == 0 || n > 255)
        return co_err_set(err, CO_E_INVAL, "tar: bad path length %zu", n);
    const char *name = path;
    size_t prefix = 0;
    if (n > 100) {
        /* Split at a '/' so that the name part fits 100 bytes and the prefix 155. */
        const char *cut = NULL;
        for (const char *p = path + n - 101; p < path + n; p++) {
            if (*p == '/' && p > path && (size_t)(p - path) <= 155) {
                cut = p;
                break;
            }
        }
        if (cut == NULL)
            return co_err_set(err, CO_E_INVAL, "tar: path '%.60s...' cannot be split", path);
        prefix = (size_t)(cut - path);
        name = cut + 1;
    }
    memcpy(h, name, strlen(name));
    memcpy(h + 345, path, prefix);
    octal((char *)h + 100, 8, 0644);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, len);
    octal((char *)h + 136, 12, (uint64_t)(t->mtime > 0 ? t->mtime : 0));
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    gz_write(t, h, sizeof(h), Z_NO_FLUSH);
    gz_write(t, data, len, Z_NO_FLUSH);
    static const unsigned char zero[512];
    if (len % 512)
        gz_write(t, zero, 512 - len % 512, Z_NO_FLUSH);
    return 0;
}

char *
coord_targz_finish(struct coord_targz *t, size_t *out_len)
{
    static const unsigned char zero[1024];
    gz_write(t, zero, sizeof(zero), Z_FINISH);
    return co_buf_steal(&t->out, out_len);
}

void
coord_targz_release(struct coord_targz *t)
{
    if (t->z) {
        deflateEnd(t->z);
        free(t->z);
    }
    co_buf_release(&t->out);
    memset(t, 0, sizeof(*t));
}
