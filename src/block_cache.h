/*
 * block_cache.h: freed tensor storage kept for reuse, by size class. A
 * training step frees and asks for the same sizes every iteration; handing
 * back a block that is already mapped and touched spares it the allocator
 * calls and the page faults of fresh memory. Sizes are rounded up to a class
 * (multiples of 64 bytes up to 4 KiB, then 8 classes per doubling, so at
 * most 12.5% is wasted); the rounded size is what the underlying allocator
 * sees, so any block of a class can serve any request of that class.
 */
#ifndef TRICYCLE_BLOCK_CACHE_H
#define TRICYCLE_BLOCK_CACHE_H

#include "tricycle.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tc_block_cache tc_block_cache;

tc_block_cache *tc_block_cache_new(void);
/* Hands every cached block back to allocator, then frees the cache. */
void tc_block_cache_free(tc_block_cache *cache, const tc_allocator *allocator);

/* The size a request of `bytes` is allocated with (its class). */
size_t tc_block_cache_rounded(size_t bytes);
/* A cached block for a request of `bytes`, or NULL. */
void *tc_block_cache_take(tc_block_cache *cache, size_t bytes);
/* Keeps a freed block of a request of `bytes` when the cache then holds at
 * most `limit` bytes; false when the caller must release it itself. */
bool tc_block_cache_put(tc_block_cache *cache, void *block, size_t bytes, size_t limit);
/* Hands every cached block back to allocator. */
void tc_block_cache_flush(tc_block_cache *cache, const tc_allocator *allocator);
/* How much a cache may hold when the peak of storage in use was
 * peak_in_use: the larger of that and 64 MiB, so a steady loop reuses all
 * its blocks while a one-off peak cannot pin more than it once needed; 0
 * under AddressSanitizer, which must see every free to catch a use after it. */
size_t tc_block_cache_limit(size_t peak_in_use);
/* Blocks unused for a whole period are released (so a block sits between
 * one and two periods unused before it goes). A period lasts twice the
 * longest time a block sat in the cache before being taken during the
 * previous one, within TC_BLOCK_CACHE_DECAY_SECONDS ..
 * TC_BLOCK_CACHE_LONGEST_SECONDS: a loop keeps every block it reuses once
 * per step however long a step takes (under a fixed 5 s period, a
 * GPT-2-sized step of 7-13 s on one core lost 40% of its time to page
 * faults), while blocks cached at an old peak go back to the system once the
 * program has moved on. */
#define TC_BLOCK_CACHE_DECAY_SECONDS 5
#define TC_BLOCK_CACHE_LONGEST_SECONDS 600

/* Ends the current period when it has lasted its time, handing back to
 * allocator the blocks that sat unused through it. Call it on each
 * allocation (it also reads the clock for the blocks taken and put next). */
void tc_block_cache_decay(tc_block_cache *cache, const tc_allocator *allocator);
/* The current period's length in seconds. */
int64_t tc_block_cache_period_seconds(const tc_block_cache *cache);
/* Bytes held (rounded sizes). */
size_t tc_block_cache_bytes(const tc_block_cache *cache);

#endif
