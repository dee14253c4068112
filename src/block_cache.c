/*
 * block_cache.c: per-context free lists of storage blocks by size class.
 * A cached block holds the link to the next one of its class in its first
 * word, the decay period it was cached in in its second and the time in its
 * third (it is free memory the cache owns, at least 64 bytes), so the cache
 * needs no other memory.
 */
#include "block_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define SMALL_LIMIT 4096 /* classes of 64 bytes up to here */
#define SMALL_CLASSES (SMALL_LIMIT / 64)
#define STEPS_PER_DOUBLING 8
#define LARGEST_EXPONENT 45 /* blocks over 64 TiB are not cached */
#define CLASS_COUNT (SMALL_CLASSES + (LARGEST_EXPONENT - 11) * STEPS_PER_DOUBLING)

struct tc_block_cache {
    void *heads[CLASS_COUNT];
    size_t bytes;
    uint64_t period;        /* the current decay period, counted from 1 */
    int64_t period_start;   /* when it began, CLOCK_MONOTONIC seconds */
    int64_t period_seconds; /* how long it lasts */
    int64_t now;            /* the time at the last decay call */
    int64_t longest_reuse;  /* the longest a block sat before being taken, this period */
};

typedef struct block_header {
    void *next;
    uint64_t period;
    int64_t cached_at; /* seconds, from the last decay call */
} block_header;

/* The class of a request and its rounded size; -1 when it is not cached. */
static int class_of(size_t bytes, size_t *rounded) {
    size_t b = bytes ? bytes : 1;
    if (b <= SMALL_LIMIT) {
        int index = (int)((b + 63) / 64) - 1;
        *rounded = (size_t)(index + 1) * 64;
        return index;
    }
    int exponent = 63 - __builtin_clzll((unsigned long long)(b - 1)); /* 2^e < b <= 2^(e+1) */
    if (exponent > LARGEST_EXPONENT) {
        *rounded = (b + 63) / 64 * 64;
        return -1;
    }
    size_t step = (size_t)1 << (exponent - 3);
    size_t steps = (b + step - 1) / step; /* 9 .. 16 */
    *rounded = steps * step;
    return SMALL_CLASSES + (exponent - 12) * STEPS_PER_DOUBLING + (int)(steps - 9);
}

tc_block_cache *tc_block_cache_new(void) { return calloc(1, sizeof(tc_block_cache)); }

void tc_block_cache_free(tc_block_cache *cache, const tc_allocator *allocator) {
    if (!cache) return;
    tc_block_cache_flush(cache, allocator);
    free(cache);
}

size_t tc_block_cache_rounded(size_t bytes) {
    size_t rounded;
    class_of(bytes, &rounded);
    return rounded;
}

void *tc_block_cache_take(tc_block_cache *cache, size_t bytes) {
    size_t rounded;
    int index = class_of(bytes, &rounded);
    if (index < 0 || !cache->heads[index]) return NULL;
    void *block = cache->heads[index];
    block_header header;
    memcpy(&header, block, sizeof header);
    cache->heads[index] = header.next;
    cache->bytes -= rounded;
    if (cache->now - header.cached_at > cache->longest_reuse) cache->longest_reuse = cache->now - header.cached_at;
    return block;
}

bool tc_block_cache_put(tc_block_cache *cache, void *block, size_t bytes, size_t limit) {
    size_t rounded;
    int index = class_of(bytes, &rounded);
    if (index < 0 || cache->bytes + rounded > limit) return false;
    block_header header = {cache->heads[index], cache->period, cache->now};
    memcpy(block, &header, sizeof header);
    cache->heads[index] = block;
    cache->bytes += rounded;
    return true;
}

static size_t class_bytes(int index) {
    if (index < SMALL_CLASSES) return (size_t)(index + 1) * 64;
    int k = index - SMALL_CLASSES;
    return (size_t)(9 + k % STEPS_PER_DOUBLING) << (12 + k / STEPS_PER_DOUBLING - 3);
}

/* Releases the blocks cached in a period before `before` (all when it is
 * UINT64_MAX). Lists are newest first, so the old blocks are a tail. */
static void release_older(tc_block_cache *cache, const tc_allocator *allocator, uint64_t before) {
    for (int index = 0; index < CLASS_COUNT; index++) {
        void **link = &cache->heads[index];
        while (*link) {
            block_header header;
            memcpy(&header, *link, sizeof header);
            if (header.period >= before) {
                link = (void **)*link; /* the next field is the block's first word */
                continue;
            }
            void *block = *link;
            *link = header.next;
            cache->bytes -= class_bytes(index);
            allocator->release(allocator->user, block, class_bytes(index));
        }
    }
}

void tc_block_cache_flush(tc_block_cache *cache, const tc_allocator *allocator) {
    release_older(cache, allocator, UINT64_MAX);
}

void tc_block_cache_decay(tc_block_cache *cache, const tc_allocator *allocator) {
    if (!cache) return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    cache->now = now.tv_sec;
    if (cache->period == 0) {
        cache->period = 1;
        cache->period_start = now.tv_sec;
        cache->period_seconds = TC_BLOCK_CACHE_DECAY_SECONDS;
        return;
    }
    if (now.tv_sec - cache->period_start < cache->period_seconds) return;
    /* Blocks cached before the period that is ending sat unused through it. */
    release_older(cache, allocator, cache->period);
    cache->period++;
    cache->period_start = now.tv_sec;
    int64_t seconds = 2 * cache->longest_reuse;
    cache->period_seconds = seconds < TC_BLOCK_CACHE_DECAY_SECONDS   ? TC_BLOCK_CACHE_DECAY_SECONDS
                            : seconds > TC_BLOCK_CACHE_LONGEST_SECONDS ? TC_BLOCK_CACHE_LONGEST_SECONDS
                                                                     : seconds;
    cache->longest_reuse = 0;
}

int64_t tc_block_cache_period_seconds(const tc_block_cache *cache) {
    return cache && cache->period ? cache->period_seconds : TC_BLOCK_CACHE_DECAY_SECONDS;
}

#define CACHE_FLOOR_BYTES ((size_t)64 << 20)

size_t tc_block_cache_limit(size_t peak_in_use) {
#ifdef __SANITIZE_ADDRESS__
    (void)peak_in_use;
    return 0;
#else
    return peak_in_use > CACHE_FLOOR_BYTES ? peak_in_use : CACHE_FLOOR_BYTES;
#endif
}

size_t tc_block_cache_bytes(const tc_block_cache *cache) { return cache ? cache->bytes : 0; }
