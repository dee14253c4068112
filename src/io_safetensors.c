/*
 * io_safetensors.c: reading and writing the safetensors format.
 *
 * Writing goes through tc_file_write_atomic (files.c): a temporary file
 * beside the target, fsynced and renamed over it, so readers (and a crash)
 * see either the old file or the whole new one.
 *
 * Reading validates the entire header before handing out anything, every
 * size in it through the checked arithmetic of sizes.c. Tensors are read
 * with pread into memory of their own (from the context's allocator, so
 * counted against its budget), never mapped: a mapping of a file that
 * another program truncates or rewrites in place kills the reader with
 * SIGBUS when it touches the lost pages, and catching that would take a
 * process-wide signal handler. The handle keeps the file open; after each
 * tensor is read, the file's size and modification time are compared with
 * those at opening, so a file changed in place gives an error instead of
 * bytes from two versions. (A file replaced by rename, as our own saves do,
 * leaves the open one intact: the handle goes on reading the old file.)
 *
 * tc_safetensors_load_memory reads the same format from bytes in memory
 * (a copy of its own), through the same checks: what the fuzzer drives.
 *
 * Not handled: big-endian hosts (refused with TC_ERROR_UNSUPPORTED).
 */
#include "internal.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A header above this is corrupt (the reference implementation uses the
 * same bound). */
#define MAX_HEADER_BYTES ((uint64_t)100 << 20)
#define HEADER_JSON_DEPTH 16

/* How a dtype is stored in the file; each loads as the engine dtype of the same bits. */
typedef enum file_dtype { FILE_F32, FILE_F64, FILE_I32, FILE_I64, FILE_U8, FILE_BOOL, FILE_F16, FILE_BF16 } file_dtype;

static const struct {
    const char *name;
    size_t size;
    tc_dtype dtype; /* what it loads as */
} file_dtypes[] = {
    [FILE_F32] = {"F32", 4, TC_FLOAT32}, [FILE_F64] = {"F64", 8, TC_FLOAT64}, [FILE_I32] = {"I32", 4, TC_INT32},
    [FILE_I64] = {"I64", 8, TC_INT64},   [FILE_U8] = {"U8", 1, TC_UINT8},     [FILE_BOOL] = {"BOOL", 1, TC_BOOL},
    [FILE_F16] = {"F16", 2, TC_FLOAT16}, [FILE_BF16] = {"BF16", 2, TC_BFLOAT16},
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
    case TC_BFLOAT16: return "BF16";
    case TC_FLOAT16: return "F16";
    default: return NULL;
    }
}

static bool host_is_little_endian(void) {
    const uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

typedef struct entry {
    char *name;
    file_dtype kind;
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    int64_t begin, end; /* relative to the data section */
} entry;

struct tc_safetensors_file {
    tc_context *ctx;
    char *path;
    int fd;                    /* the file, or -1 when read from memory */
    unsigned char *memory;     /* the bytes read from memory (a copy), or NULL */
    tc_file_identity identity; /* at opening: size and modification time */
    int64_t data_start;         /* where the data section begins in the file */
    int64_t data_size;
    int count;
    entry *entries; /* sorted by name */
    char *metadata_json;
};

/* ---- writing ---- */

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
            /* Names and texts stay C strings for every reader. */
            size_t key_nul = strlen(m->key), value_nul = strlen(m->value.as.string.data);
            if (key_nul != m->key_length) {
                status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': metadata key starting \"%s\" has a "
                                 "NUL byte at position %zu", path, m->key, key_nul + 1);
                break;
            }
            if (value_nul != m->value.as.string.length) {
                status = tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': metadata value of \"%s\" has a "
                                 "NUL byte at position %zu", path, m->key, value_nul + 1);
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
    int64_t offset = 0;
    for (int k = 0; k < count; k++) {
        const tc_tensor *t = tensors[order[k].index];
        const char *dtype = file_dtype_name_of(t->dtype);
        if (!dtype)
            return tc_fail(ctx, TC_ERROR_DTYPE, "safetensors save '%s': tensor '%s' has dtype %s, which has no "
                           "safetensors form", path, order[k].name, tc_dtype_name(t->dtype));
        int64_t bytes, end;
        if (!tc_mul_sizes(tc_tensor_numel(t), (int64_t)tc_dtype_size(t->dtype), &bytes) ||
            !tc_add_sizes(offset, bytes, &end))
            return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors save '%s': the tensors up to '%s' hold more than "
                           "2^63 bytes", path, order[k].name);
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
        tc_json_append_integer(header, offset);
        tc_json_append_raw(header, ",", 1);
        tc_json_append_integer(header, end);
        tc_json_append_raw(header, "]}", 2);
        offset = end;
    }
    tc_json_append_raw(header, "}", 1);
    while (header->length % 8 != 0) tc_json_append_raw(header, " ", 1);
    if (header->failed) return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors save '%s': out of memory", path);
    return TC_OK;
}

typedef struct file_contents {
    tc_context *ctx;
    int count;
    const name_index *order;
    tc_tensor **tensors;
    const tc_json_buffer *header;
} file_contents;

/* The length, the header, then each tensor's bytes in name order. */
static tc_status write_contents(void *user, int fd, const char *temporary) {
    const file_contents *c = user;
    tc_context *ctx = c->ctx;
    unsigned char length[8];
    uint64_t n = c->header->length;
    for (int i = 0; i < 8; i++) length[i] = (unsigned char)(n >> (8 * i));
    TC_TRY(tc_file_write_all(ctx, "safetensors save", fd, length, 8, temporary));
    TC_TRY(tc_file_write_all(ctx, "safetensors save", fd, c->header->data, c->header->length, temporary));
    for (int k = 0; k < c->count; k++) {
        tc_tensor *host;
        TC_TRY(host_contiguous_copy(c->tensors[c->order[k].index], &host));
        size_t bytes = (size_t)tc_tensor_numel(host) * tc_dtype_size(host->dtype);
        tc_status status = bytes ? tc_file_write_all(ctx, "safetensors save", fd, tc_tensor_data(host), bytes,
                                                     temporary)
                                 : TC_OK;
        tc_tensor_release(host);
        TC_TRY(status);
    }
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
    if (status == TC_OK) {
        file_contents contents = {ctx, count, order, tensors, &header};
        status = tc_file_write_atomic(ctx, "safetensors save", path, write_contents, &contents);
    }
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
    if (file->fd >= 0) close(file->fd);
    free(file->memory);
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

/* The context's last error again, as a fault of the file. */
static tc_status as_format_error(tc_context *ctx) {
    char message[TC_ERROR_CAPACITY];
    snprintf(message, sizeof message, "%s", tc_last_error(ctx));
    return tc_fail(ctx, TC_ERROR_FORMAT, "%s", message);
}

/* Reads one header entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static tc_status read_entry(tc_context *ctx, const char *path, const tc_json_member *member, int64_t data_size,
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
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': field \"dtype\" is %s, expected a string",
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
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': field \"shape\" is %s, expected an array",
                         path, name, shape ? tc_json_type_name(shape->type) : "missing");
    if (shape->as.array.count > TC_MAX_DIMS)
        return LOAD_FAIL(TC_ERROR_UNSUPPORTED, "safetensors load '%s': tensor '%s': %zu dims, at most %d are supported",
                         path, name, shape->as.array.count, TC_MAX_DIMS);
    e->kind = (file_dtype)kind;
    e->ndim = (int)shape->as.array.count;
    for (int d = 0; d < e->ndim; d++) {
        const tc_json *size = &shape->as.array.items[d];
        if (size->type != TC_JSON_INTEGER || size->as.integer < 0)
            return LOAD_FAIL(TC_ERROR_FORMAT,
                             "safetensors load '%s': tensor '%s': shape entry %d must be a non-negative integer", path,
                             name, d + 1);
        e->shape[d] = size->as.integer;
    }
    if (!offsets || offsets->type != TC_JSON_ARRAY || offsets->as.array.count != 2 ||
        offsets->as.array.items[0].type != TC_JSON_INTEGER || offsets->as.array.items[1].type != TC_JSON_INTEGER ||
        offsets->as.array.items[0].as.integer < 0 || offsets->as.array.items[1].as.integer < 0)
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': field \"data_offsets\" must be two non-negative integers "
                         "[begin, end]", path, name);
    e->begin = offsets->as.array.items[0].as.integer;
    e->end = offsets->as.array.items[1].as.integer;
    if (e->begin > e->end)
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': data_offsets [%lld, %lld] end before they begin", path,
                         name, (long long)e->begin, (long long)e->end);
    if (e->end > data_size)
        return LOAD_FAIL(TC_ERROR_FORMAT,
                         "safetensors load '%s': tensor '%s': data_offsets [%lld, %lld] lie outside the data section"
                         " (%lld bytes; the file is truncated or corrupt)", path, name,
                         (long long)e->begin, (long long)e->end, (long long)data_size);
    /* The shape must make a valid tensor of the dtype it loads as, and its
     * bytes in the file must be exactly the offsets' span. */
    char op[400];
    snprintf(op, sizeof op, "safetensors load '%.200s': tensor '%.100s'", path, name);
    int64_t numel, bytes;
    if (tc_check_shape(ctx, op, e->ndim, e->shape, file_dtypes[kind].dtype) != TC_OK ||
        tc_checked_numel(ctx, op, e->ndim, e->shape, &numel) != TC_OK)
        return as_format_error(ctx);
    char shape_text[TC_SHAPE_STRING_SIZE];
    tc_shape_string(e->ndim, e->shape, shape_text, sizeof shape_text);
    if (!tc_mul_sizes(numel, (int64_t)file_dtypes[kind].size, &bytes))
        return LOAD_FAIL(TC_ERROR_FORMAT, "%s: shape %s of %s needs more than 2^63 bytes", op, shape_text,
                         file_dtypes[kind].name);
    if (bytes != e->end - e->begin)
        return LOAD_FAIL(TC_ERROR_FORMAT, "%s: shape %s of %s needs %lld bytes but data_offsets [%lld, %lld] hold "
                         "%lld", op, shape_text, file_dtypes[kind].name, (long long)bytes, (long long)e->begin,
                         (long long)e->end, (long long)(e->end - e->begin));
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
            status = LOAD_FAIL(TC_ERROR_FORMAT,
                               "safetensors load '%s': tensors '%s' [%lld, %lld] and '%s' [%lld, %lld] overlap in the "
                               "data section", file->path, sorted[k - 1]->name,
                               (long long)sorted[k - 1]->begin, (long long)sorted[k - 1]->end, sorted[k]->name,
                               (long long)sorted[k]->begin, (long long)sorted[k]->end);
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

/* size bytes at offset of the file (or of the bytes in memory). */
static tc_status read_source(tc_safetensors_file *file, const char *fn, void *data, size_t size, int64_t offset) {
    if (file->fd >= 0) return tc_file_read_at(file->ctx, fn, file->path, file->fd, data, size, offset);
    if (offset < 0 || offset > file->identity.size || (int64_t)size > file->identity.size - offset)
        return tc_fail(file->ctx, TC_ERROR_FORMAT, "%s: '%s' ends before byte %lld", fn, file->path,
                       (long long)offset + (long long)size);
    if (size) memcpy(data, file->memory + offset, size);
    return TC_OK;
}

/* A file read from disk must not have changed since it was opened. */
static tc_status check_source_unchanged(tc_safetensors_file *file, const char *fn) {
    if (file->fd < 0) return TC_OK;
    return tc_file_check_unchanged(file->ctx, fn, file->path, file->fd, &file->identity);
}

/* Reads and checks the header of a handle whose source (fd or memory) and
 * identity.size are set; the handle is freed on failure. */
static tc_status load_handle(tc_safetensors_file *file, tc_safetensors_file **out) {
    tc_context *ctx = file->ctx;
    const char *path = file->path;
    tc_status status = TC_OK;
    unsigned char length_bytes[8];
    uint64_t header_length = 0;
    if (file->identity.size < 8)
        status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': the file is %lld bytes, too short to hold the "
                         "8-byte header length (truncated or not a safetensors file)", path,
                         (long long)file->identity.size);
    if (status == TC_OK) status = read_source(file, "safetensors load", length_bytes, 8, 0);
    if (status == TC_OK) {
        for (int i = 7; i >= 0; i--) header_length = (header_length << 8) | length_bytes[i];
        int64_t available = file->identity.size - 8;
        if (header_length > (uint64_t)available)
            status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': header length %llu exceeds the %lld bytes "
                             "after it (truncated or not a safetensors file)", path,
                             (unsigned long long)header_length, (long long)available);
        else if (header_length > MAX_HEADER_BYTES)
            status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': header length %llu is above the %llu-byte "
                             "limit", path, (unsigned long long)header_length, (unsigned long long)MAX_HEADER_BYTES);
        else if (header_length < 2)
            status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': header length %llu is too short for a JSON "
                             "object (not a safetensors file)", path, (unsigned long long)header_length);
    }
    char *header = NULL;
    if (status == TC_OK) {
        /* Both fit int64: header_length <= available = size - 8. */
        file->data_start = 8 + (int64_t)header_length;
        file->data_size = file->identity.size - file->data_start;
        header = malloc((size_t)header_length);
        if (!header) status = tc_fail(ctx, TC_ERROR_MEMORY, "safetensors load '%s': out of memory for a header of "
                                      "%llu bytes", path, (unsigned long long)header_length);
    }
    if (status == TC_OK) status = read_source(file, "safetensors load", header, (size_t)header_length, 8);
    if (status == TC_OK && header[0] != '{')
        status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors load '%s': the header does not start with '{' (not a "
                         "safetensors file)", path);
    if (status == TC_OK) status = parse_header(ctx, file, header, (size_t)header_length);
    if (status == TC_OK) status = check_source_unchanged(file, "safetensors load");
    free(header);
    if (status != TC_OK) {
        file_free(file);
        return status;
    }
    *out = file;
    return TC_OK;
}

/* A handle named `path` for messages; NULL when out of memory. */
static tc_safetensors_file *new_handle(tc_context *ctx, const char *path) {
    tc_safetensors_file *file = calloc(1, sizeof *file);
    char *path_copy = strdup(path);
    if (!file || !path_copy) {
        free(file);
        free(path_copy);
        return NULL;
    }
    file->ctx = ctx;
    file->path = path_copy;
    file->fd = -1;
    return file;
}

tc_status tc_safetensors_load(tc_context *ctx, const char *path, tc_safetensors_file **out) {
    if (!ctx || !out) return TC_ERROR_ARGUMENT;
    *out = NULL;
    if (!path || !path[0]) return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors load: path is empty");
    if (!host_is_little_endian())
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "safetensors load '%s': big-endian hosts are not supported", path);
    int fd;
    tc_file_identity identity;
    TC_TRY(tc_file_open_regular(ctx, "safetensors load", path, &fd, &identity));
    tc_safetensors_file *file = new_handle(ctx, path);
    if (!file) {
        close(fd);
        return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors load '%s': out of memory", path);
    }
    file->fd = fd;
    file->identity = identity;
    return load_handle(file, out);
}

tc_status tc_safetensors_load_memory(tc_context *ctx, const char *name, const void *bytes, size_t size,
                                     tc_safetensors_file **out) {
    if (!ctx || !out) return TC_ERROR_ARGUMENT;
    *out = NULL;
    if (!name || (!bytes && size > 0))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors load: name or bytes is NULL (%zu bytes)", size);
    if (!host_is_little_endian())
        return tc_fail(ctx, TC_ERROR_UNSUPPORTED, "safetensors load '%s': big-endian hosts are not supported", name);
    if (size > (size_t)INT64_MAX)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors load '%s': %zu bytes are too many", name, size);
    tc_safetensors_file *file = new_handle(ctx, name);
    unsigned char *copy = malloc(size ? size : 1);
    if (!file || !copy) {
        free(copy);
        file_free(file);
        return tc_fail(ctx, TC_ERROR_MEMORY, "safetensors load '%s': out of memory for %zu bytes", name, size);
    }
    if (size) memcpy(copy, bytes, size);
    file->memory = copy;
    file->identity.size = (int64_t)size;
    return load_handle(file, out);
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

tc_status tc_safetensors_get(tc_safetensors_file *file, int index, tc_tensor **out) {
    if (!file || !out) return TC_ERROR_ARGUMENT;
    tc_context *ctx = file->ctx;
    *out = NULL;
    if (index < 0 || index >= file->count)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "safetensors '%s': tensor index %d is out of range (%d tensors)",
                       file->path, index, file->count);
    const entry *e = &file->entries[index];
    char fn[160];
    snprintf(fn, sizeof fn, "safetensors load: tensor '%.100s'", e->name);
    size_t nbytes = (size_t)(e->end - e->begin);
    tc_tensor *t;
    TC_TRY(tc_tensor_new(ctx, file_dtypes[e->kind].dtype, TC_CPU, e->ndim, e->shape, &t));
    tc_status status = TC_OK;
    if (nbytes) status = read_source(file, fn, tc_tensor_data(t), nbytes, file->data_start + e->begin);
    if (status == TC_OK && e->kind == FILE_BOOL) {
        const unsigned char *bytes = tc_tensor_data(t);
        for (size_t i = 0; i < nbytes && status == TC_OK; i++)
            if (bytes[i] > 1)
                status = tc_fail(ctx, TC_ERROR_FORMAT, "safetensors '%s': tensor '%s': BOOL element %zu is %u, not 0 "
                                 "or 1", file->path, e->name, i, bytes[i]);
    }
    /* After the read: a change made before or during it shows now. When
     * the read failed (a file cut short), a change is the better reason. */
    tc_status changed = check_source_unchanged(file, fn);
    if (status == TC_OK) status = changed;
    if (status != TC_OK) {
        tc_tensor_release(t);
        return status;
    }
    *out = t;
    return TC_OK;
}

tc_status tc_safetensors_get_by_name(tc_safetensors_file *file, const char *name, tc_tensor **out) {
    if (!file || !out) return TC_ERROR_ARGUMENT;
    int index = tc_safetensors_find(file, name);
    if (index < 0)
        return tc_fail(file->ctx, TC_ERROR_ARGUMENT, "safetensors '%s': no tensor named '%s'", file->path,
                       name ? name : "(null)");
    return tc_safetensors_get(file, index, out);
}
