/*
 * tokenizer_maps.h: the growable arrays and open-addressing hash maps the
 * tokenizer's phases share (a private header of tokenizer*.c).
 *
 * They are static inline because encoding and training probe them in their
 * innermost loops.
 */
#ifndef TRICYCLE_TOKENIZER_MAPS_H
#define TRICYCLE_TOKENIZER_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The id of nothing: an absent map entry, a merged-away symbol, a missing token. */
#define NO_ID (-1)

/* Makes room for `need` elements of `size` bytes in *data (capacity *cap). */
static inline bool reserve(void **data, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return true;
    size_t grown = *cap < 16 ? 16 : *cap;
    while (grown < need) grown += grown / 2;
    if (grown > SIZE_MAX / size) return false;
    void *p = realloc(*data, grown * size);
    if (!p) return false;
    *data = p;
    *cap = grown;
    return true;
}

/* uint64 key -> int32 value, open addressing with linear probing. The key
 * UINT64_MAX marks an empty slot (pairs of int32 ids never reach it). */
typedef struct u64_map {
    uint64_t *keys;
    int32_t *values;
    size_t mask;
    int shift;
    size_t count;
} u64_map;

#define MAP_EMPTY UINT64_MAX

static inline size_t u64_slot(const u64_map *m, uint64_t key) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift);
}

static inline bool u64_map_init(u64_map *m, size_t expected) {
    size_t capacity = 16;
    int bits = 4;
    while (capacity < expected * 2) {
        capacity *= 2;
        bits++;
    }
    m->keys = malloc(capacity * sizeof *m->keys);
    m->values = malloc(capacity * sizeof *m->values);
    if (!m->keys || !m->values) {
        free(m->keys);
        free(m->values);
        m->keys = NULL;
        m->values = NULL;
        return false;
    }
    for (size_t i = 0; i < capacity; i++) m->keys[i] = MAP_EMPTY;
    m->mask = capacity - 1;
    m->shift = 64 - bits;
    m->count = 0;
    return true;
}

static inline void u64_map_free(u64_map *m) {
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
}

static inline int32_t u64_map_get(const u64_map *m, uint64_t key) {
    if (!m->keys) return NO_ID;
    for (size_t i = u64_slot(m, key);; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) return m->values[i];
        if (m->keys[i] == MAP_EMPTY) return NO_ID;
    }
}

/* The value slot of key, inserted with value NO_ID when absent (*found
 * tells which); NULL when out of memory. */
static inline int32_t *u64_map_slot(u64_map *m, uint64_t key, bool *found) {
    if ((m->count + 1) * 2 > m->mask + 1) {
        u64_map bigger;
        if (!u64_map_init(&bigger, m->mask + 1)) return NULL;
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->keys[i] == MAP_EMPTY) continue;
            size_t j = u64_slot(&bigger, m->keys[i]);
            while (bigger.keys[j] != MAP_EMPTY) j = (j + 1) & bigger.mask;
            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
        }
        bigger.count = m->count;
        u64_map_free(m);
        *m = bigger;
    }
    size_t i = u64_slot(m, key);
    while (m->keys[i] != key && m->keys[i] != MAP_EMPTY) i = (i + 1) & m->mask;
    *found = m->keys[i] == key;
    if (!*found) {
        m->keys[i] = key;
        m->values[i] = NO_ID;
        m->count++;
    }
    return &m->values[i];
}

static inline uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

/* Byte string -> int32 value. The key bytes are not copied: they must stay
 * alive and unchanged while the map is used. */
typedef struct bytes_entry {
    const unsigned char *data;
    uint64_t hash;
    uint32_t len;
    int32_t value;
} bytes_entry;

typedef struct bytes_map {
    int32_t *slots; /* index into entries, NO_ID when empty */
    size_t mask;
    bytes_entry *entries;
    size_t count, capacity;
} bytes_map;

static inline uint64_t hash_bytes(const unsigned char *data, size_t len) {
    uint64_t h = 0xCBF29CE484222325ull ^ (uint64_t)len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, data + i, 8);
        h = (h ^ word) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    for (; i < len; i++) h = (h ^ data[i]) * 0x100000001B3ull;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

static inline bool bytes_map_init(bytes_map *m, size_t expected) {
    size_t capacity = 64;
    while (capacity < expected * 2) capacity *= 2;
    m->slots = malloc(capacity * sizeof *m->slots);
    if (!m->slots) return false;
    for (size_t i = 0; i < capacity; i++) m->slots[i] = NO_ID;
    m->mask = capacity - 1;
    m->entries = NULL;
    m->count = m->capacity = 0;
    return true;
}

static inline void bytes_map_free(bytes_map *m) {
    free(m->slots);
    free(m->entries);
    m->slots = NULL;
    m->entries = NULL;
}

/* Index of the entry for the key, or NO_ID. */
static inline int32_t bytes_map_find(const bytes_map *m, const unsigned char *data, size_t len, uint64_t hash) {
    for (size_t i = (size_t)hash & m->mask;; i = (i + 1) & m->mask) {
        int32_t e = m->slots[i];
        if (e == NO_ID) return NO_ID;
        const bytes_entry *entry = &m->entries[e];
        if (entry->hash == hash && entry->len == len && memcmp(entry->data, data, len) == 0) return e;
    }
}

/* Adds a key known to be absent; returns its entry index or NO_ID when out
 * of memory. */
static inline int32_t bytes_map_add(bytes_map *m, const unsigned char *data, size_t len, uint64_t hash, int32_t value) {
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t capacity = (m->mask + 1) * 2;
        int32_t *slots = malloc(capacity * sizeof *slots);
        if (!slots) return NO_ID;
        for (size_t i = 0; i < capacity; i++) slots[i] = NO_ID;
        for (size_t e = 0; e < m->count; e++) {
            size_t i = (size_t)m->entries[e].hash & (capacity - 1);
            while (slots[i] != NO_ID) i = (i + 1) & (capacity - 1);
            slots[i] = (int32_t)e;
        }
        free(m->slots);
        m->slots = slots;
        m->mask = capacity - 1;
    }
    if (!reserve((void **)&m->entries, &m->capacity, m->count + 1, sizeof *m->entries)) return NO_ID;
    size_t i = (size_t)hash & m->mask;
    while (m->slots[i] != NO_ID) i = (i + 1) & m->mask;
    int32_t e = (int32_t)m->count++;
    m->slots[i] = e;
    m->entries[e] = (bytes_entry){data, hash, (uint32_t)len, value};
    return e;
}

#endif
