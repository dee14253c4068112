/*
 * fuzz.h: what the libFuzzer targets in spec/fuzz/ share. A broken
 * invariant is reported like a crash (message, then abort), so libFuzzer
 * keeps the input; a failing call must leave a status and a message.
 * Included by one target file per program.
 */
#ifndef TRICYCLE_SPEC_FUZZ_H
#define TRICYCLE_SPEC_FUZZ_H

#include "tricycle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_REQUIRE(condition, ...)                                                                               \
    do {                                                                                                           \
        if (!(condition)) {                                                                                        \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__, __LINE__, #condition);              \
            fprintf(stderr, __VA_ARGS__);                                                                          \
            fputc('\n', stderr);                                                                                   \
            abort();                                                                                               \
        }                                                                                                          \
    } while (0)

/* A failed call must say why: the status it returned is the context's, and
 * the message is not empty. The error is cleared for the next call. */
static inline void fuzz_expect_reported(tc_context *ctx, tc_status status, const char *call) {
    FUZZ_REQUIRE(status != TC_OK, "%s", call);
    FUZZ_REQUIRE(tc_last_status(ctx) == status, "%s returned %d but the context holds %d (%s)", call, (int)status,
                 (int)tc_last_status(ctx), tc_last_error(ctx));
    const char *message = tc_last_error(ctx);
    FUZZ_REQUIRE(message && message[0], "%s failed with status %d and no message", call, (int)status);
    tc_clear_error(ctx);
}

/* A heap copy of exactly size bytes (NULL-safe for size 0), so that a read
 * past the end of one part of an input is caught by AddressSanitizer. */
static inline char *fuzz_copy(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    FUZZ_REQUIRE(copy, "out of memory copying %zu bytes", size);
    if (size) memcpy(copy, data, size);
    return copy;
}

/* Tensor storage of exactly the size asked, from malloc: AddressSanitizer
 * then sees a kernel reading past a tensor's bytes, which the default
 * allocator's cache of rounded-up blocks would hide. */
static inline void *fuzz_allocate(void *user, size_t bytes, size_t alignment) {
    (void)user;
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, bytes ? bytes : 1) != 0) return NULL;
    return p;
}

static inline void fuzz_release(void *user, void *pointer, size_t bytes) {
    (void)user;
    (void)bytes;
    free(pointer);
}

/* A fresh context on one thread (the fuzzers run one job each, and thread
 * pools only slow every input down) with exact-size storage. */
static inline tc_context *fuzz_context(size_t memory_budget) {
    static const tc_allocator exact = {fuzz_allocate, fuzz_release, NULL};
    tc_context *ctx = tc_context_new_with_allocator(&exact);
    FUZZ_REQUIRE(ctx, "tc_context_new failed");
    tc_set_num_threads(ctx, 1);
    tc_set_memory_budget(ctx, memory_budget);
    return ctx;
}

#endif
