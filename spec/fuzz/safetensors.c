/*
 * safetensors.c (fuzz target): the safetensors reader (src/io_safetensors.c)
 * through tc_safetensors_load_memory, which runs the same header checks as
 * tc_safetensors_load on a copy of the input.
 *
 * A file that loads must list its tensors in strictly increasing name order,
 * each found again by name; its metadata, when present, must be JSON (an
 * object of strings). Every tensor is then taken (BOOL bytes other than 0 or
 * 1 may be refused, with a message) and kept past the close of the handle,
 * and every byte of its elements is read, so a shape, offset or length that
 * lies outside the data section shows as a heap overflow. Failures must
 * come with a status and a message (naming the file, for the load).
 */
#include "fuzz.h"
#include "internal.h"
#include "json.h"

#define NAME "fuzz.safetensors"
#define MEMORY_BUDGET ((size_t)64 << 20)

static void expect_failure(tc_context *ctx, tc_status status, const char *call) {
    FUZZ_REQUIRE(strstr(tc_last_error(ctx), NAME), "%s: the message does not name the file: %s", call,
                 tc_last_error(ctx));
    fuzz_expect_reported(ctx, status, call);
}

static void check_metadata(const char *metadata) {
    if (!metadata) return;
    tc_json *tree;
    char error[256];
    FUZZ_REQUIRE(tc_json_parse(metadata, strlen(metadata), 0, &tree, error, sizeof error),
                 "the metadata given back is not JSON: %s: %s", error, metadata);
    FUZZ_REQUIRE(tree->type == TC_JSON_OBJECT, "the metadata is %s", tc_json_type_name(tree->type));
    for (size_t i = 0; i < tree->as.object.count; i++)
        FUZZ_REQUIRE(tree->as.object.members[i].value.type == TC_JSON_STRING, "a metadata value is not a string");
    tc_json_free(tree);
}

/* Reads every byte of t's elements (a fresh tensor from the file is
 * contiguous); returns their sum so the reads are not optimised away. */
static unsigned touch(const tc_tensor *t) {
    /* tc_tensor_is_contiguous says no for some empty shapes ({2, 0, 3}):
     * a finding of the shapes target, not of the reader. */
    FUZZ_REQUIRE(tc_tensor_numel(t) == 0 || tc_tensor_is_contiguous(t), "a loaded tensor is not contiguous");
    int64_t numel = 1;
    for (int d = 0; d < tc_tensor_ndim(t); d++) {
        FUZZ_REQUIRE(tc_tensor_shape(t)[d] >= 0, "negative size");
        FUZZ_REQUIRE(tc_mul_sizes(numel, tc_tensor_shape(t)[d], &numel), "the shape overflows");
    }
    FUZZ_REQUIRE(numel == tc_tensor_numel(t), "numel %lld, shape product %lld", (long long)tc_tensor_numel(t),
                 (long long)numel);
    size_t bytes = (size_t)numel * tc_dtype_size(tc_tensor_dtype(t));
    FUZZ_REQUIRE(bytes <= tc_tensor_storage_bytes(t) || numel == 0, "%zu bytes of elements in %zu of storage", bytes,
                 tc_tensor_storage_bytes(t));
    const unsigned char *p = tc_tensor_data(t);
    unsigned sum = 0;
    for (size_t i = 0; i < bytes; i++) sum += p[i];
    if (tc_tensor_dtype(t) == TC_BOOL)
        for (size_t i = 0; i < bytes; i++) FUZZ_REQUIRE(p[i] <= 1, "a loaded bool is %u", p[i]);
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tc_context *ctx = fuzz_context(MEMORY_BUDGET);
    tc_safetensors_file *file;
    tc_status status = tc_safetensors_load_memory(ctx, NAME, data, size, &file);
    if (status != TC_OK) {
        FUZZ_REQUIRE(file == NULL, "a failed load left a handle");
        expect_failure(ctx, status, "tc_safetensors_load_memory");
        tc_context_free(ctx);
        return 0;
    }
    check_metadata(tc_safetensors_metadata(file));
    int count = tc_safetensors_count(file);
    FUZZ_REQUIRE(count >= 0, "count %d", count);
    tc_tensor **tensors = calloc((size_t)count + 1, sizeof *tensors);
    FUZZ_REQUIRE(tensors, "out of memory");
    for (int i = 0; i < count; i++) {
        const char *name = tc_safetensors_name(file, i);
        FUZZ_REQUIRE(name && name[0], "tensor %d has no name", i);
        FUZZ_REQUIRE(i == 0 || strcmp(tc_safetensors_name(file, i - 1), name) < 0, "names out of order at %d", i);
        FUZZ_REQUIRE(tc_safetensors_find(file, name) == i, "'%s' is not found at %d", name, i);
        status = tc_safetensors_get(file, i, &tensors[i]);
        if (status != TC_OK) {
            tensors[i] = NULL;
            fuzz_expect_reported(ctx, status, "tc_safetensors_get");
        }
    }
    FUZZ_REQUIRE(tc_safetensors_name(file, count) == NULL && tc_safetensors_name(file, -1) == NULL,
                 "names outside the range");
    tc_tensor *missing;
    status = tc_safetensors_get(file, count, &missing);
    FUZZ_REQUIRE(status != TC_OK, "tensor %d of %d was given", count, count);
    expect_failure(ctx, status, "tc_safetensors_get past the end");
    status = tc_safetensors_get_by_name(file, "", &missing);
    FUZZ_REQUIRE(status != TC_OK, "a tensor with an empty name was given");
    expect_failure(ctx, status, "tc_safetensors_get_by_name");
    /* The tensors hold the bytes alive after the handle is gone. */
    tc_safetensors_close(file);
    volatile unsigned sum = 0;
    for (int i = 0; i < count; i++) {
        if (!tensors[i]) continue;
        sum += touch(tensors[i]);
        tc_tensor_release(tensors[i]);
    }
    (void)sum;
    free(tensors);
    tc_context_free(ctx);
    return 0;
}
