/*
 * io_safetensors.c: reading and writing the safetensors format.
 *
 * Writing goes to a temporary file beside the target, is fsynced and then
 * renamed over the target, so readers (and a crash) see either the old file
 * or the whole new one. Reading maps the file copy-on-write (MAP_PRIVATE on
 * a read-only descriptor) and validates the entire header before handing
 * out anything; tensors wrap the mapped bytes and hold a reference on the
 * mapping, so they outlive the file handle. Writing into such a tensor
 * touches private pages only; the file never changes.
 *
 * Not handled: a file truncated by another process while it is mapped
 * (reading the lost pages raises SIGBUS, as with any mapping), and
 * big-endian hosts (refused with TC_ERROR_UNSUPPORTED).
 */
#include "internal.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A header above this is corrupt (the reference implementation uses the
 * same bound). */
#define MAX_HEADER_BYTES ((uint64_t)100 << 20)
#define HEADER_JSON_DEPTH 16

/* How a dtype is stored in the file; F16 and BF16 load as float32. */
typedef enum file_dtype { FILE_F32, FILE_F64, FILE_I32, FILE_I64, FILE_U8, FILE_BOOL, FILE_F16, FILE_BF16 } file_dtype;

static const struct {
    const char *name;
    size_t size;
    tc_dtype dtype; /* what it loads as */
} file_dtypes[] = {
    [FILE_F32] = {"F32", 4, TC_FLOAT32}, [FILE_F64] = {"F64", 8, TC_FLOAT64}, [FILE_I32] = {"I32", 4, TC_INT32},
    [FILE_I64] = {"I64", 8, TC_INT64},   [FILE_U8] = {"U8", 1, TC_UINT8},     [FILE_BOOL] = {"BOOL", 1, TC_BOOL},
    [FILE_F16] = {"F16", 2, TC_FLOAT32}, [FILE_BF16] = {"BF16", 2, TC_FLOAT32},
};
#define FILE_DTYPE_COUNT ((int)(sizeof file_dtypes / sizeof file_dtypes[0]))

static const char *file_dtype_name_of(tc_dtype dtype) {
    switch (dtype) {
    case TC_FLOAT32: return "F32";
    case TC_FLOAT64: return "F64";
    case TC_INT32: return "I32";
    case TC_INT64: return "I64";
    case TC_UINT8: return "U8";
    case TC_BOOL: return "BOOL";
    default: return NULL;
    }
}

static bool host_is_little_endian(void) {
    const uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

/* ---- the mapping, shared by the handle and the tensors it gave out ---- */

typedef struct mapping {
    int refcount;
    void *base;
    size_t size;
} mapping;

static void mapping_drop(mapping *m) {
    if (!m || --m->refcount > 0) return;
    if (m->base) munmap(m->base, m->size);
    free(m);
}

static void mapping_release_tensor(void *user, void *data, size_t nbytes) {
    (void)data;
    (void)nbytes;
    mapping_drop(user);
}

typedef struct entry {
    char *name;
    file_dtype kind;
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    uint64_t begin, end; /* relative to the data section */
} entry;

struct tc_safetensors_file {
    tc_context *ctx;
    char *path;
    mapping *map;
    const unsigned char *data; /* the data section */
    uint64_t data_size;
    int count;
    entry *entries; /* sorted by name */
    char *metadata_json;
};

/* ---- writing ---- */

static tc_status write_all(tc_context *ctx, int fd, const void *data, size_t size, const char *path) {
    const char *p = data;
    while (size > 0) {
        size_t chunk = size > ((size_t)1 << 30) ? ((size_t)1 << 30) : size;
        ssize_t n = write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            return tc_fail(ctx, TC_ERROR_IO, "safetensors save: writing '%s' failed: %s", path, strerror(errno));
        }
        p += n;
        size -= (size_t)n;
    }
    return TC_OK;
}

typedef struct name_index {
    const char *name;
    int index;
} name_index;

static int compare_names(const void *a, const void *b) {
    return strcmp(((const name_index *)a)->name, ((const name_index *)b)->name);
}

/* A host, contiguous, off-tape tensor with t's values. */
static tc_status host_contiguous_copy(tc_tensor *t, tc_tensor **out) {
    if (t->storage->device == TC_CPU) {
        if (tc_tensor_is_contiguous(t)) {
            tc_tensor_retain(t);
            *out = t;
            return TC_OK;
        }
        return tc_contiguous_copy(t, out);
    }
    tc_tensor *detached;
    TC_TRY(tc_detach(t, &detached));
    tc_status status = tc_to_device(detached, TC_CPU, out);
    tc_tensor_release(detached);
    return status;
}

/* Checks metadata JSON (an object of strings) and appends it compactly. */
static tc_status append_metadata(tc_context *ctx, tc_json_buffer *header, const char *metadata_json,
                                 const char *path) {
    char error[256];
    tc_json *metadata;
    if (!tc_json_parse(metadata_json, strlen(metadata_json), HEADER_JSON_DEPTH, &metadata, error, sizeof error))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': metadata is not valid JSON: %s", path, error);
    tc_status status = TC_OK;
    if (metadata->type != TC_JSON_OBJECT) {
        status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': metadata must be a JSON object, got %s",
                         path, tc_json_type_name(metadata->type));
    } else {
        for (size_t i = 0; i < metadata->as.object.count; i++) {
            const tc_json_member *m = &metadata->as.object.members[i];
            if (m->value.type != TC_JSON_STRING) {
                status = tc_fail(ctx, TC_ERROR_ARGUMENT,
                                 "safetensors save '%s': metadata value of \"%s\" must be a string, got %s", path,
                                 m->key, tc_json_type_name(m->value.type));
                break;
            }
        }
    }
    if (status == TC_OK) {
        tc_json_append_string(header, "__metadata__", 12);
        tc_json_append_raw(header, ":", 1);
        tc_json_append_value(header, metadata);
    }
    tc_json_free(metadata);
    return status;
}

/* The header JSON (padded with spaces so the data section starts at a
 * multiple of 8) and the data section's size. */
static tc_status build_header(tc_context *ctx, const char *path, int count, const name_index *order,
                              tc_tensor **tensors, const char *metadata_json, tc_json_buffer *header) {
    tc_json_append_raw(header, "{", 1);
    bool first = true;
    if (metadata_json) {
        TC_TRY(append_metadata(ctx, header, metadata_json, path));
        first = false;
    }
    uint64_t offset = 0;
    for (int k = 0; k < count; k++) {
        const tc_tensor *t = tensors[order[k].index];
        const char *dtype = file_dtype_name_of(t->dtype);
        if (!dtype)
            return tc_fail(ctx, TC_ERROR_DTYPE, "safetensors save '%s': tensor '%s' has dtype %s, which has no "
                           "safetensors form", path, order[k].name, tc_dtype_name(t->dtype));
        uint64_t bytes = (uint64_t)tc_tensor_numel(t) * tc_dtype_size(t->dtype);
        if (!first) tc_json_append_raw(header, ",", 1);
        first = false;
        tc_json_append_string(header, order[k].name, strlen(order[k].name));
        tc_json_append_raw(header, ":{\"dtype\":", 10);
        tc_json_append_string(header, dtype, strlen(dtype));
        tc_json_append_raw(header, ",\"shape\":[", 10);
        for (int d = 0; d < t->ndim; d++) {
            if (d) tc_json_append_raw(header, ",", 1);
            tc_json_append_integer(header, t->shape[d]);
        }
        tc_json_append_raw(header, "],\"data_offsets\":[", 18);
        tc_json_append_integer(header, (int64_t)offset);
        tc_json_append_raw(header, ",", 1);
        tc_json_append_integer(header, (int64_t)(offset + bytes));
        tc_json_append_raw(header, "]}", 2);
        offset += bytes;
    }
    tc_json_append_raw(header, "}", 1);
    while (header->length % 8 != 0) tc_json_append_raw(header, " ", 1);
    if (header->failed) return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors save '%s': out of memory", path);
    return TC_OK;
}

/* Creates a fresh file beside path (O_EXCL, so never someone else's). */
static tc_status create_temporary(tc_context *ctx, const char *path, char **temporary, int *fd) {
    size_t size = strlen(path) + 64;
    char *name = malloc(size);
    if (!name) return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors save '%s': out of memory", path);
    for (int attempt = 0; attempt < 64; attempt++) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        snprintf(name, size, "%s.tmp-%ld-%lx-%d", path, (long)getpid(),
                 (unsigned long)now.tv_nsec ^ (unsigned long)(uintptr_t)&now, attempt);
        *fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (*fd >= 0) {
            *temporary = name;
            return TC_OK;
        }
        if (errno != EEXIST && errno != EINTR) break;
    }
    tc_status status = tc_fail(ctx, TC_ERROR_IO, "safetensors save: cannot create a temporary file next to '%s': %s",
                               path, strerror(errno));
    free(name);
    return status;
}

/* fsync of the directory makes the rename itself durable; some file
 * systems refuse it, which costs durability only, so it is best effort. */
static void sync_directory_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

static tc_status write_file(tc_context *ctx, const char *path, int fd, const char *temporary, int count,
                            const name_index *order, tc_tensor **tensors, const tc_json_buffer *header) {
    unsigned char length[8];
    uint64_t n = header->length;
    for (int i = 0; i < 8; i++) length[i] = (unsigned char)(n >> (8 * i));
    TC_TRY(write_all(ctx, fd, length, 8, temporary));
    TC_TRY(write_all(ctx, fd, header->data, header->length, temporary));
    for (int k = 0; k < count; k++) {
        tc_tensor *host;
        TC_TRY(host_contiguous_copy(tensors[order[k].index], &host));
        size_t bytes = (size_t)tc_tensor_numel(host) * tc_dtype_size(host->dtype);
        tc_status status = bytes ? write_all(ctx, fd, tc_tensor_data(host), bytes, temporary) : TC_OK;
        tc_tensor_release(host);
        TC_TRY(status);
    }
    if (fsync(fd) != 0)
        return tc_fail(ctx, TC_ERROR_IO, "safetensors save: fsync of '%s' failed: %s", temporary, strerror(errno));
    (void)path;
    return TC_OK;
}

tc_status tc_safetensors_save(tc_context *ctx, const char *path, int count, const char **names, tc_tensor **tensors,
                              const char *metadata_json) {
    if (!ctx) return TC_ERROR_ARGUMENT;
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save: path is empty");
    if (count < 0 || (count > 0 && (!names || !tensors)))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': %d tensors but no names or tensors", path,
                       count);
    if (!host_is_little_endian())
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "safetensors save '%s': big-endian hosts are not supported", path);
    name_index *order = malloc(sizeof *order * (size_t)(count ? count : 1));
    if (!order) return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors save '%s': out of memory", path);
    tc_status status = TC_OK;
    for (int i = 0; i < count && status == TC_OK; i++) {
        if (!names[i] || !names[i][0])
            status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': tensor %d has an empty name", path, i + 1);
        else if (strcmp(names[i], "__metadata__") == 0)
            status = tc_fail(ctx, TC_ERROR_ARGUMENT,
                             "safetensors save '%s': \"__metadata__\" is reserved and cannot name a tensor", path);
        else if (!tensors[i])
            status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': tensor '%s' is NULL", path, names[i]);
        else if (tensors[i]->ctx != ctx)
            status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': tensor '%s' belongs to another context",
                             path, names[i]);
        order[i].name = names[i];
        order[i].index = i;
    }
    if (status == TC_OK && count > 1) {
        qsort(order, (size_t)count, sizeof *order, compare_names);
        for (int k = 1; k < count && status == TC_OK; k++)
            if (strcmp(order[k - 1].name, order[k].name) == 0)
                status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': the name '%s' is used twice", path,
                                 order[k].name);
    }
    tc_json_buffer header;
    tc_json_buffer_init(&header);
    if (status == TC_OK) status = build_header(ctx, path, count, order, tensors, metadata_json, &header);
    char *temporary = NULL;
    int fd = -1;
    if (status == TC_OK) status = create_temporary(ctx, path, &temporary, &fd);
    if (status == TC_OK) {
        status = write_file(ctx, path, fd, temporary, count, order, tensors, &header);
        if (close(fd) != 0 && status == TC_OK)
            status = tc_fail(ctx, TC_ERROR_IO, "safetensors save: closing '%s' failed: %s", temporary,
                             strerror(errno));
        if (status == TC_OK && rename(temporary, path) != 0)
            status = tc_fail(ctx, TC_ERROR_IO, "safetensors save: cannot rename '%s' to '%s': %s", temporary, path,
                             strerror(errno));
        if (status != TC_OK) unlink(temporary);
        else sync_directory_of(path);
    }
    free(temporary);
    tc_json_buffer_free(&header);
    free(order);
    return status;
}

/* ---- reading ---- */

static void file_free(tc_safetensors_file *file) {
    if (!file) return;
    for (int i = 0; i < file->count; i++) free(file->entries[i].name);
    free(file->entries);
    free(file->metadata_json);
    free(file->path);
    mapping_drop(file->map);
    free(file);
}

void tc_safetensors_close(tc_safetensors_file *file) { file_free(file); }

static int compare_entry_names(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int compare_entry_offsets(const void *a, const void *b) {
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

#define LOAD_FAIL(status, ...) tc_fail(ctx, status, __VA_ARGS__)

/* Reads one header entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static tc_status read_entry(tc_context *ctx, const char *path, const tc_json_member *member, uint64_t data_size,
                            entry *e) {
    const char *name = member->key;
    const tc_json *info = &member->value;
    if (strlen(name) != member->key_length)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': a tensor name contains a NUL byte", path);
    if (!name[0]) return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': a tensor has an empty name", path);
    if (info->type != TC_JSON_OBJECT)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensor '%s': expected an object, got %s", path, name,
                         tc_json_type_name(info->type));
    const tc_json *dtype = tc_json_get(info, "dtype");
    const tc_json *shape = tc_json_get(info, "shape");
    const tc_json *offsets = tc_json_get(info, "data_offsets");
    if (!dtype || dtype->type != TC_JSON_STRING)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensor '%s': field \"dtype\" is %s, expected a string",
                         path, name, dtype ? tc_json_type_name(dtype->type) : "missing");
    int kind = -1;
    for (int k = 0; k < FILE_DTYPE_COUNT; k++)
        if (strcmp(dtype->as.string.data, file_dtypes[k].name) == 0 && strlen(file_dtypes[k].name) ==
                                                                           dtype->as.string.length)
            kind = k;
    if (kind < 0)
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': dtype \"%.32s\" is not supported (F32, F64, I32, I64, "
                         "U8, BOOL, F16, BF16)", path, name, dtype->as.string.data);
    if (!shape || shape->type != TC_JSON_ARRAY)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensor '%s': field \"shape\" is %s, expected an array",
                         path, name, shape ? tc_json_type_name(shape->type) : "missing");
    if (shape->as.array.count > TC_MAX_DIMS)
        return LOAD_FAIL(TC_ERROR_UNSUPPORTED, "safetensors load '%s': tensor '%s': %zu dims, at most %d are supported",
                         path, name, shape->as.array.count, TC_MAX_DIMS);
    e->kind = (file_dtype)kind;
    e->ndim = (int)shape->as.array.count;
    uint64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < e->ndim; d++) {
        const tc_json *size = &shape->as.array.items[d];
        if (size->type != TC_JSON_INTEGER || size->as.integer < 0)
            return LOAD_FAIL(TC_ERROR_FORMAT,
                             "safetensors load '%s': tensor '%s': shape entry %d must be a non-negative integer", path,
                             name, d + 1);
        e->shape[d] = size->as.integer;
        uint64_t s = (uint64_t)size->as.integer;
        if (s && numel > UINT64_MAX / s) overflow = true;
        else numel *= s;
    }
    if (!offsets || offsets->type != TC_JSON_ARRAY || offsets->as.array.count != 2 ||
        offsets->as.array.items[0].type != TC_JSON_INTEGER || offsets->as.array.items[1].type != TC_JSON_INTEGER ||
        offsets->as.array.items[0].as.integer < 0 || offsets->as.array.items[1].as.integer < 0)
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': field \"data_offsets\" must be two non-negative integers "
                         "[begin, end]", path, name);
    e->begin = (uint64_t)offsets->as.array.items[0].as.integer;
    e->end = (uint64_t)offsets->as.array.items[1].as.integer;
    if (e->begin > e->end)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensor '%s': data_offsets [%llu, %llu] end before they "
                         "begin", path, name, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_size)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensor '%s': data_offsets [%llu, %llu] lie outside the "
                         "data section (%llu bytes; the file is truncated or corrupt)", path, name,
                         (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_size);
    size_t element = file_dtypes[kind].size;
    if (overflow || numel > UINT64_MAX / element || numel * element != e->end - e->begin) {
        char shape_text[TC_SHAPE_STRING_SIZE], need[32];
        tc_shape_string(e->ndim, e->shape, shape_text, sizeof shape_text);
        if (overflow || numel > UINT64_MAX / element) snprintf(need, sizeof need, "more than 2^64");
        else snprintf(need, sizeof need, "%llu", (unsigned long long)(numel * element));
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensor '%s': shape %s of %s needs %s bytes but "
                         "data_offsets [%llu, %llu] hold %llu", path, name, shape_text, file_dtypes[kind].name, need,
                         (unsigned long long)e->begin, (unsigned long long)e->end,
                         (unsigned long long)(e->end - e->begin));
    }
    e->name = strdup(name);
    if (!e->name) return LOAD_FAIL(TC_ERROR_MEMORY, "safetensors load '%s': out of memory", path);
    return TC_OK;
}

static tc_status read_metadata(tc_context *ctx, const char *path, const tc_json *metadata, char **out) {
    if (metadata->type != TC_JSON_OBJECT)
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': \"__metadata__\" must be an object, got %s", path,
                         tc_json_type_name(metadata->type));
    for (size_t i = 0; i < metadata->as.object.count; i++) {
        const tc_json_member *m = &metadata->as.object.members[i];
        if (m->value.type != TC_JSON_STRING)
            return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': \"__metadata__\" value of \"%.64s\" must be a "
                             "string, got %s", path, m->key, tc_json_type_name(m->value.type));
    }
    tc_json_buffer buffer;
    tc_json_buffer_init(&buffer);
    tc_json_append_value(&buffer, metadata);
    if (buffer.failed) {
        tc_json_buffer_free(&buffer);
        return LOAD_FAIL(TC_ERROR_MEMORY, "safetensors load '%s': out of memory", path);
    }
    *out = buffer.data;
    return TC_OK;
}

static tc_status check_overlaps(tc_context *ctx, tc_safetensors_file *file) {
    if (file->count < 2) return TC_OK;
    entry **sorted = malloc(sizeof *sorted * (size_t)file->count);
    if (!sorted) return LOAD_FAIL(TC_ERROR_MEMORY, "safetensors load '%s': out of memory", file->path);
    int n = 0;
    for (int i = 0; i < file->count; i++)
        if (file->entries[i].end > file->entries[i].begin) sorted[n++] = &file->entries[i];
    qsort(sorted, (size_t)n, sizeof *sorted, compare_entry_offsets);
    tc_status status = TC_OK;
    for (int k = 1; k < n; k++) {
        if (sorted[k]->begin < sorted[k - 1]->end) {
            status = LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] "
                               "overlap in the data section", file->path, sorted[k - 1]->name,
                               (unsigned long long)sorted[k - 1]->begin, (unsigned long long)sorted[k - 1]->end,
                               sorted[k]->name, (unsigned long long)sorted[k]->begin,
                               (unsigned long long)sorted[k]->end);
            break;
        }
    }
    free(sorted);
    return status;
}

static tc_status parse_header(tc_context *ctx, tc_safetensors_file *file, const char *text, size_t length) {
    const char *path = file->path;
    char error[256];
    tc_json *root;
    if (!tc_json_parse(text, length, HEADER_JSON_DEPTH, &root, error, sizeof error))
        return LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': the header is not valid JSON: %s (offsets count from "
                         "the header's start, byte 8 of the file)", path, error);
    tc_status status = TC_OK;
    if (root->type != TC_JSON_OBJECT) {
        status = LOAD_FAIL(TC_ERROR_FORMAT, "safetensors load '%s': the header must be a JSON object, got %s", path,
                           tc_json_type_name(root->type));
        goto done;
    }
    size_t members = root->as.object.count;
    file->entries = calloc(members ? members : 1, sizeof *file->entries);
    if (!file->entries) {
        status = LOAD_FAIL(TC_ERROR_MEMORY, "safetensors load '%s': out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < members && status == TC_OK; i++) {
        const tc_json_member *m = &root->as.object.members[i];
        if (m->key_length == 12 && memcmp(m->key, "__metadata__", 12) == 0) {
            status = read_metadata(ctx, path, &m->value, &file->metadata_json);
            continue;
        }
        status = read_entry(ctx, path, m, file->data_size, &file->entries[file->count]);
        if (status == TC_OK) file->count++;
    }
    if (status == TC_OK) status = check_overlaps(ctx, file);
    if (status == TC_OK) qsort(file->entries, (size_t)file->count, sizeof *file->entries, compare_entry_names);
done:
    tc_json_free(root);
    return status;
}

/* Validates the header of the `size` bytes at `bytes` and makes the handle.
 * The handle takes over the caller's reference on map (what keeps the bytes
 * alive; NULL when there are fewer than 8 bytes), dropping it on failure.
 * path names the file in messages. */
static tc_status load_bytes(tc_context *ctx, const char *path, mapping *map, const unsigned char *bytes, size_t size,
                            tc_safetensors_file **out) {
    if (size < 8) {
        mapping_drop(map);
        return tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': the file is %zu bytes, too short to hold the "
                       "8-byte header length (truncated or not a safetensors file)", path, size);
    }
    tc_safetensors_file *file = calloc(1, sizeof *file);
    char *path_copy = strdup(path);
    if (!file || !path_copy) {
        free(file);
        free(path_copy);
        mapping_drop(map);
        return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors load '%s': out of memory", path);
    }
    file->ctx = ctx;
    file->path = path_copy;
    file->map = map;
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = (header_length << 8) | bytes[i];
    uint64_t available = (uint64_t)size - 8;
    tc_status status = TC_OK;
    if (header_length > available)
        status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': header length %llu exceeds the %llu bytes after "
                         "it (truncated or not a safetensors file)", path, (unsigned long long)header_length,
                         (unsigned long long)available);
    else if (header_length > MAX_HEADER_BYTES)
        status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': header length %llu is above the %llu-byte limit",
                         path, (unsigned long long)header_length, (unsigned long long)MAX_HEADER_BYTES);
    else if (header_length < 2 || bytes[8] != '{')
        status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': the header does not start with '{' (not a "
                         "safetensors file)", path);
    if (status == TC_OK) {
        file->data = bytes + 8 + header_length;
        file->data_size = available - header_length;
        status = parse_header(ctx, file, (const char *)bytes + 8, (size_t)header_length);
    }
    if (status != TC_OK) {
        file_free(file);
        return status;
    }
    *out = file;
    return TC_OK;
}

tc_status tc_safetensors_load(tc_context *ctx, const char *path, tc_safetensors_file **out) {
    if (!ctx || !out) return TC_ERROR_ARGUMENT;
    *out = NULL;
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors load: path is empty");
    if (!host_is_little_endian())
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "safetensors load '%s': big-endian hosts are not supported", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tc_fail(ctx, TC_ERROR_IO, "safetensors load: cannot open '%s': %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0) {
        tc_status status = tc_fail(ctx, TC_ERROR_IO, "safetensors load '%s': %s", path, strerror(errno));
        close(fd);
        return status;
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return tc_fail(ctx, TC_ERROR_IO, "safetensors load '%s': not a regular file", path);
    }
    if (info.st_size < 8) { /* nothing to map: load_bytes reports the size */
        close(fd);
        return load_bytes(ctx, path, NULL, NULL, (size_t)info.st_size, out);
    }
    mapping *map = calloc(1, sizeof *map);
    if (!map) {
        close(fd);
        return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors load '%s': out of memory", path);
    }
    map->refcount = 1;
    map->size = (size_t)info.st_size;
    /* Writable but private: tensors are mutable, and their writes must
     * never reach the file. */
    void *base = mmap(NULL, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int mmap_errno = errno;
    close(fd);
    if (base == MAP_FAILED) {
        free(map);
        return tc_fail(ctx, TC_ERROR_IO, "safetensors load '%s': cannot map the file: %s", path, strerror(mmap_errno));
    }
    map->base = base;
    return load_bytes(ctx, path, map, base, map->size, out);
}

tc_status tc_safetensors_load_memory(tc_context *ctx, const char *name, const void *bytes, size_t size,
                                     tc_safetensors_file **out) {
    if (!ctx || !out) return TC_ERROR_ARGUMENT;
    *out = NULL;
    if (!name || (!bytes && size > 0))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors load: name or bytes is NULL (%zu bytes)", size);
    if (!host_is_little_endian())
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "safetensors load '%s': big-endian hosts are not supported", name);
    /* The copy lives in the mapping record's own block, with base NULL:
     * dropping the last reference frees both, and nothing is unmapped. */
    mapping *map = size <= SIZE_MAX - sizeof *map ? malloc(sizeof *map + size) : NULL;
    if (!map) return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors load '%s': out of memory for %zu bytes", name, size);
    map->refcount = 1;
    map->base = NULL;
    map->size = 0;
    unsigned char *copy = (unsigned char *)(map + 1);
    if (size) memcpy(copy, bytes, size);
    return load_bytes(ctx, name, map, copy, size, out);
}

int tc_safetensors_count(const tc_safetensors_file *file) { return file ? file->count : 0; }

const char *tc_safetensors_name(const tc_safetensors_file *file, int index) {
    return file && index >= 0 && index < file->count ? file->entries[index].name : NULL;
}

const char *tc_safetensors_metadata(const tc_safetensors_file *file) { return file ? file->metadata_json : NULL; }

int tc_safetensors_find(const tc_safetensors_file *file, const char *name) {
    if (!file || !name) return -1;
    int low = 0, high = file->count - 1;
    while (low <= high) {
        int middle = low + (high - low) / 2;
        int c = strcmp(file->entries[middle].name, name);
        if (c == 0) return middle;
        if (c < 0) low = middle + 1;
        else high = middle - 1;
    }
    return -1;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F;
    uint32_t mantissa = h & 0x3FF;
    uint32_t bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {
            /* Subnormal: normalise. */
            int shift = 0;
            while (!(mantissa & 0x400)) {
                mantissa <<= 1;
                shift++;
            }
            mantissa &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 + 1 - shift) << 23) | (mantissa << 13);
        }
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float value;
    memcpy(&value, &bits, 4);
    return value;
}

static float bfloat_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float value;
    memcpy(&value, &bits, 4);
    return value;
}

tc_status tc_safetensors_get(tc_safetensors_file *file, int index, tc_tensor **out) {
    if (!file || !out) return TC_ERROR_ARGUMENT;
    tc_context *ctx = file->ctx;
    if (index < 0 || index >= file->count)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors '%s': tensor index %d is out of range (%d tensors)",
                       file->path, index, file->count);
    const entry *e = &file->entries[index];
    const unsigned char *bytes = file->data + e->begin;
    size_t nbytes = (size_t)(e->end - e->begin);
    size_t element = file_dtypes[e->kind].size;
    tc_dtype dtype = file_dtypes[e->kind].dtype;
    int64_t numel = (int64_t)(nbytes / element);
    if (e->kind == FILE_BOOL) {
        for (size_t i = 0; i < nbytes; i++)
            if (bytes[i] > 1)
                return tc_fail(ctx, TC_ERROR_FORMAT, "safetensors '%s': tensor '%s': BOOL element %zu is %u, not 0 or 1",
                               file->path, e->name, i, bytes[i]);
    }
    if (e->kind == FILE_F16 || e->kind == FILE_BF16) {
        TC_TRY(tc_tensor_new(ctx, TC_FLOAT32, TC_CPU, e->ndim, e->shape, out));
        float *values = tc_tensor_data(*out);
        for (int64_t i = 0; i < numel; i++) {
            uint16_t h = (uint16_t)(bytes[2 * i] | (bytes[2 * i + 1] << 8));
            values[i] = e->kind == FILE_F16 ? half_to_float(h) : bfloat_to_float(h);
        }
        return TC_OK;
    }
    if (numel == 0 || (uintptr_t)bytes % element != 0) {
        /* Misaligned for its dtype (the format does not promise alignment):
         * a copy the kernels can read directly. */
        TC_TRY(tc_tensor_new(ctx, dtype, TC_CPU, e->ndim, e->shape, out));
        if (nbytes) memcpy(tc_tensor_data(*out), bytes, nbytes);
        return TC_OK;
    }
    mapping *map = file->map;
    int before = map->refcount;
    map->refcount++;
    tc_status status =
        tc_tensor_wrap(ctx, dtype, e->ndim, e->shape, (void *)bytes, nbytes, mapping_release_tensor, map, out);
    /* tc_tensor_wrap calls the release callback on some failures only. */
    if (status != TC_OK && map->refcount > before) map->refcount--;
    return status;
}

tc_status tc_safetensors_get_by_name(tc_safetensors_file *file, const char *name, tc_tensor **out) {
    if (!file || !out) return TC_ERROR_ARGUMENT;
    int index = tc_safetensors_find(file, name);
    if (index < 0)
        return tc_fail(file->ctx, TC_ERROR_ARGUMENT, "safetensors '%s': no tensor named '%s'", file->path,
                       name ? name : "(null)");
    return tc_safetensors_get(file, index, out);
}
