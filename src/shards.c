/*
 * shards.c: token shards in llm.c's layout, memory-mapped (the token-shards
 * part of tricycle.h).
 *
 * A shard is a header of 256 little-endian int32 (magic, version, token
 * count, then zeros) followed by the ids: uint16 for magic 20240520 version
 * 1, uint32 for magic 20240801 version 7. The file is mapped read-only and
 * never copied whole: batches convert just the ids they take to int64.
 */
#include "tricycle.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_BYTES (TC_SHARD_HEADER_INTS * 4)

struct tc_token_shard {
    tc_context *ctx;
    char *path;
    unsigned char *map; /* the whole file */
    size_t map_size;
    const unsigned char *ids; /* map + HEADER_BYTES */
    int64_t count;
    int id_bytes;
    int64_t checked_below; /* every id is known to be below this; 0: not checked */
};

static int32_t read_le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static void write_le32(unsigned char *p, int32_t value) {
    uint32_t v = (uint32_t)value;
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline int64_t id_at(const tc_token_shard *shard, int64_t i) {
    const unsigned char *p = shard->ids + (size_t)i * (size_t)shard->id_bytes;
    if (shard->id_bytes == 2) return (int64_t)((uint32_t)p[0] | (uint32_t)p[1] << 8);
    return (int64_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

tc_status tc_token_shard_header(tc_context *ctx, int64_t count, int id_bytes, unsigned char header[1024]) {
    if (!ctx || !header) return TC_ERROR_ARGUMENT;
    if (id_bytes != 2 && id_bytes != 4)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "token_shard_header: id_bytes must be 2 or 4, got %d", id_bytes);
    if (count < 0 || count > INT32_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "token_shard_header: a shard holds 0 to %d tokens (its header stores an int32), got %lld",
                       INT32_MAX, (long long)count);
    memset(header, 0, HEADER_BYTES);
    write_le32(header, id_bytes == 2 ? TC_SHARD_MAGIC_UINT16 : TC_SHARD_MAGIC_UINT32);
    write_le32(header + 4, id_bytes == 2 ? TC_SHARD_VERSION_UINT16 : TC_SHARD_VERSION_UINT32);
    write_le32(header + 8, (int32_t)count);
    return TC_OK;
}

void tc_token_shard_close(tc_token_shard *shard) {
    if (!shard) return;
    if (shard->map) munmap(shard->map, shard->map_size);
    free(shard->path);
    free(shard);
}

/* Checks the header against the file's size; sets id_bytes and count. */
static tc_status check_header(tc_context *ctx, tc_token_shard *shard) {
    const char *path = shard->path;
    const unsigned char *h = shard->map;
    int32_t magic = read_le32(h), version = read_le32(h + 4), count = read_le32(h + 8);
    if (magic == TC_SHARD_MAGIC_UINT16) {
        if (version != TC_SHARD_VERSION_UINT16)
            return tc_fail(ctx, TC_ERROR_FORMAT,
                           "token_shard_open: '%s': unknown version %d for magic %d (uint16 ids are version %d)",
                           path, (int)version, (int)magic, TC_SHARD_VERSION_UINT16);
        shard->id_bytes = 2;
    } else if (magic == TC_SHARD_MAGIC_UINT32) {
        if (version != TC_SHARD_VERSION_UINT32)
            return tc_fail(ctx, TC_ERROR_FORMAT,
                           "token_shard_open: '%s': unknown version %d for magic %d (uint32 ids are version %d)",
                           path, (int)version, (int)magic, TC_SHARD_VERSION_UINT32);
        shard->id_bytes = 4;
    } else {
        return tc_fail(ctx, TC_ERROR_FORMAT,
                       "token_shard_open: '%s' is not a token shard: magic %d, expected %d (uint16 ids) or %d "
                       "(uint32 ids)",
                       path, (int)magic, TC_SHARD_MAGIC_UINT16, TC_SHARD_MAGIC_UINT32);
    }
    uint64_t after_header = (uint64_t)shard->map_size - HEADER_BYTES;
    if (count < 0 || (uint64_t)count * (uint64_t)shard->id_bytes != after_header)
        return tc_fail(ctx, TC_ERROR_FORMAT,
                       "token_shard_open: '%s': the header says %d tokens (%lld bytes of uint%d), but %llu bytes "
                       "follow the header (truncated or not a token shard)",
                       path, (int)count, (long long)count * shard->id_bytes, 8 * shard->id_bytes,
                       (unsigned long long)after_header);
    shard->count = count;
    shard->ids = shard->map + HEADER_BYTES;
    return TC_OK;
}

tc_status tc_token_shard_open(tc_context *ctx, const char *path, tc_token_shard **out) {
    if (!ctx || !out) return TC_ERROR_ARGUMENT;
    *out = NULL;
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "token_shard_open: path is empty");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tc_fail(ctx, TC_ERROR_IO, "token_shard_open: cannot open '%s': %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0) {
        tc_status status = tc_fail(ctx, TC_ERROR_IO, "token_shard_open: '%s': %s", path, strerror(errno));
        close(fd);
        return status;
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return tc_fail(ctx, TC_ERROR_IO, "token_shard_open: '%s' is not a regular file", path);
    }
    if (info.st_size < HEADER_BYTES) {
        close(fd);
        return tc_fail(ctx, TC_ERROR_FORMAT,
                       "token_shard_open: '%s' is %lld bytes, shorter than the %d-byte header of a token shard", path,
                       (long long)info.st_size, HEADER_BYTES);
    }
    tc_token_shard *shard = calloc(1, sizeof *shard);
    char *copy = strdup(path);
    if (!shard || !copy) {
        free(shard);
        free(copy);
        close(fd);
        return tc_fail(ctx, TC_ERROR_MEMORY, "token_shard_open: '%s': out of memory", path);
    }
    shard->ctx = ctx;
    shard->path = copy;
    shard->map_size = (size_t)info.st_size;
    void *base = mmap(NULL, shard->map_size, PROT_READ, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (base == MAP_FAILED) {
        tc_status status = tc_fail(ctx, TC_ERROR_IO, "token_shard_open: cannot map '%s': %s", path,
                                   strerror(map_errno));
        tc_token_shard_close(shard);
        return status;
    }
    shard->map = base;
    tc_status status = check_header(ctx, shard);
    if (status != TC_OK) {
        tc_token_shard_close(shard);
        return status;
    }
    *out = shard;
    return TC_OK;
}

int64_t tc_token_shard_count(const tc_token_shard *shard) { return shard ? shard->count : 0; }
int tc_token_shard_id_bytes(const tc_token_shard *shard) { return shard ? shard->id_bytes : 0; }
const char *tc_token_shard_path(const tc_token_shard *shard) { return shard ? shard->path : NULL; }

tc_status tc_token_shard_check_ids(tc_token_shard *shard, int64_t vocab_size) {
    if (!shard) return TC_ERROR_ARGUMENT;
    if (vocab_size <= 0)
        return tc_fail(shard->ctx, TC_ERROR_ARGUMENT, "token_shard_check_ids: vocab_size must be positive, got %lld",
                       (long long)vocab_size);
    if (shard->checked_below > 0 && shard->checked_below <= vocab_size) return TC_OK;
    /* the largest id first, in blocks a compiler can vectorise; the position only when one is too large */
    int64_t largest = -1;
    for (int64_t i = 0; i < shard->count; i++) {
        int64_t id = id_at(shard, i);
        if (id > largest) largest = id;
    }
    if (largest >= vocab_size) {
        for (int64_t i = 0; i < shard->count; i++) {
            int64_t id = id_at(shard, i);
            if (id >= vocab_size)
                return tc_fail(shard->ctx, TC_ERROR_FORMAT,
                               "token_shard_check_ids: '%s': token %lld (0-based) is id %lld, at or above the "
                               "vocabulary size %lld",
                               shard->path, (long long)i, (long long)id, (long long)vocab_size);
        }
    }
    shard->checked_below = largest + 1 > 0 ? largest + 1 : 1;
    return TC_OK;
}

/* Fails unless ids [start, start + count) lie in the shard. */
static tc_status check_range(const tc_token_shard *shard, const char *function, int64_t start, int64_t count) {
    int64_t end;
    if (start < 0 || count < 0 || !tc_add_sizes(start, count, &end) || end > shard->count)
        return tc_fail(shard->ctx, TC_ERROR_ARGUMENT,
                       "%s: '%s': %lld tokens from token %lld (0-based) are not inside its %lld tokens", function,
                       shard->path, (long long)count, (long long)start, (long long)shard->count);
    return TC_OK;
}

tc_status tc_token_shard_read(tc_token_shard *shard, int64_t start, int64_t count, tc_tensor **out) {
    if (!shard || !out) return TC_ERROR_ARGUMENT;
    *out = NULL;
    TC_TRY(check_range(shard, "token_shard_read", start, count));
    tc_tensor *t;
    TC_TRY(tc_empty(shard->ctx, TC_INT64, 1, &count, &t));
    int64_t *data = tc_tensor_data(t);
    for (int64_t i = 0; i < count; i++) data[i] = id_at(shard, start + i);
    *out = t;
    return TC_OK;
}

tc_status tc_token_shard_batch(tc_token_shard *shard, int64_t start, int64_t rows, int64_t length, tc_tensor **x,
                               tc_tensor **y) {
    if (!shard || !x || !y) return TC_ERROR_ARGUMENT;
    *x = *y = NULL;
    int64_t numel, needed;
    if (rows <= 0 || length <= 0)
        return tc_fail(shard->ctx, TC_ERROR_ARGUMENT,
                       "token_shard_batch: rows and length must be positive, got %lld and %lld", (long long)rows,
                       (long long)length);
    if (!tc_mul_sizes(rows, length, &numel) || !tc_add_sizes(numel, 1, &needed))
        return tc_fail(shard->ctx, TC_ERROR_ARGUMENT, "token_shard_batch: %lld rows of %lld tokens overflow int64",
                       (long long)rows, (long long)length);
    TC_TRY(check_range(shard, "token_shard_batch", start, needed));
    int64_t shape[2] = {rows, length};
    tc_tensor *inputs, *targets;
    TC_TRY(tc_empty(shard->ctx, TC_INT64, 2, shape, &inputs));
    tc_status status = tc_empty(shard->ctx, TC_INT64, 2, shape, &targets);
    if (status != TC_OK) {
        tc_tensor_release(inputs);
        return status;
    }
    int64_t *xs = tc_tensor_data(inputs), *ys = tc_tensor_data(targets);
    int64_t previous = id_at(shard, start);
    for (int64_t i = 0; i < numel; i++) {
        int64_t next = id_at(shard, start + i + 1);
        xs[i] = previous;
        ys[i] = next;
        previous = next;
    }
    *x = inputs;
    *y = targets;
    return TC_OK;
}
