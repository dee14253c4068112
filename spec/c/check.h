/*
 * check.h: the CHECK of the C test programs. CHECK(condition, format, ...)
 * counts a pass, or a failure printed with its file, line and message; a
 * program ends by reporting `passed` and `failed` and exits nonzero when
 * anything failed. Included by one .c file per program.
 */
#ifndef TRICYCLE_SPEC_CHECK_H
#define TRICYCLE_SPEC_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(condition, ...)                                                                                      \
    do {                                                                                                           \
        if (condition) {                                                                                           \
            passed++;                                                                                              \
        } else {                                                                                                   \
            failed++;                                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                            \
            printf(__VA_ARGS__);                                                                                   \
            printf("\n");                                                                                          \
        }                                                                                                          \
    } while (0)

#endif
