/*
 * check_calls.h: the checks of the C test programs that test engine calls
 * by their status (shards_test.c, tokenizer_test.c). CHECK(condition)
 * counts a pass or prints the condition that failed; CHECK_OK(ctx, call)
 * wants TC_OK and prints the context's message otherwise;
 * CHECK_FAILS(ctx, call, status, fragments...) wants `status` and a
 * message holding every fragment. A program ends by reporting `passed` and
 * `failed` and exits nonzero when anything failed. Included by one .c file
 * per program.
 */
#ifndef TRICYCLE_SPEC_CHECK_CALLS_H
#define TRICYCLE_SPEC_CHECK_CALLS_H

#include "tricycle.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) check((cond), __FILE__, __LINE__, #cond)

static bool check(bool ok, const char *file, int line, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}

#define CHECK_OK(ctx, call) check_ok((ctx), (call), __FILE__, __LINE__, #call)

static bool check_ok(tc_context *ctx, tc_status status, const char *file, int line, const char *what) {
    if (status == TC_OK) {
        passed++;
        return true;
    }
    failed++;
    printf("FAIL %s:%d: %s returned %d: %s\n", file, line, what, (int)status, tc_last_error(ctx));
    return false;
}

#define CHECK_FAILS(ctx, call, status, ...)                                                                            \
    check_fails((ctx), (call), (status), __FILE__, __LINE__, #call, __VA_ARGS__, (const char *)NULL)

static void check_fails(tc_context *ctx, tc_status got, tc_status want, const char *file, int line, const char *what,
                        ...) {
    const char *message = tc_last_error(ctx);
    const char *missing = NULL;
    va_list args;
    va_start(args, what);
    for (const char *fragment = va_arg(args, const char *); fragment; fragment = va_arg(args, const char *)) {
        if (!strstr(message, fragment) && !missing) missing = fragment;
    }
    va_end(args);
    if (got == want && !missing) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s:%d: %s returned %d (want %d), message \"%s\"%s%s\n", file, line, what, (int)got, (int)want,
           message, missing ? " lacks " : "", missing ? missing : "");
}

#endif
