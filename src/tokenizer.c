/*
 * tokenizer.c: byte-level BPE (training, encoding, the GPT-2 file format),
 * a character tokenizer, and the tokenizer text file format. The contracts
 * are in the tokenizers section of tricycle.h.
 *
 * Inside, a tokenizer is a table of tokens (byte strings, by id) and, for
 * BPE, a list of merges in rank order, each `left right -> result`. The
 * single-byte tokens are found through byte_id, the merges through a hash
 * map keyed by the (left, right) pair.
 */
#include "tricycle.h"

#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_ID (-1)
#define INVALID_CODEPOINT UINT32_MAX
#define FILE_MAGIC "tricycle-tokenizer 1"
/* Texts and token counts are indexed with int32 inside the algorithms. */
#define MAX_TEXT_BYTES ((size_t)INT32_MAX - 1)
/* Above this many distinct words the encoder stops caching new ones. */
#define WORD_CACHE_LIMIT (1u << 20)
/* Words up to this many symbols are merged by a plain scan, longer ones
 * through linked symbols and a queue of positions by rank. */
#define SMALL_WORD 32

/* Long sequences visit symbols all over the text; asking for them a few
 * steps ahead hides most of the memory latency. */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif
#define PREFETCH_AHEAD 8

/* ---- growable arrays and hash maps ------------------------------------ */

/* Makes room for `need` elements of `size` bytes in *data (capacity *cap). */
static bool reserve(void **data, size_t *cap, size_t need, size_t size) {
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

static bool u64_map_init(u64_map *m, size_t expected) {
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

static void u64_map_free(u64_map *m) {
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
static int32_t *u64_map_slot(u64_map *m, uint64_t key, bool *found) {
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

static uint64_t hash_bytes(const unsigned char *data, size_t len) {
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

static bool bytes_map_init(bytes_map *m, size_t expected) {
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

static void bytes_map_free(bytes_map *m) {
    free(m->slots);
    free(m->entries);
    m->slots = NULL;
    m->entries = NULL;
}

/* Index of the entry for the key, or NO_ID. */
static int32_t bytes_map_find(const bytes_map *m, const unsigned char *data, size_t len, uint64_t hash) {
    for (size_t i = (size_t)hash & m->mask;; i = (i + 1) & m->mask) {
        int32_t e = m->slots[i];
        if (e == NO_ID) return NO_ID;
        const bytes_entry *entry = &m->entries[e];
        if (entry->hash == hash && entry->len == len && memcmp(entry->data, data, len) == 0) return e;
    }
}

/* Adds a key known to be absent; returns its entry index or NO_ID when out
 * of memory. */
static int32_t bytes_map_add(bytes_map *m, const unsigned char *data, size_t len, uint64_t hash, int32_t value) {
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

/* ---- UTF-8 and character classes -------------------------------------- */

/* Length (1..4) of the UTF-8 character that starts s[0..n), n >= 1, with its
 * code point in *cp. A byte that does not start a complete, valid sequence
 * is a character of length 1 with code point INVALID_CODEPOINT. */
static inline size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t value;
    unsigned low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        value = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        value = c & 0x0F;
        if (c == 0xE0) low = 0xA0;
        if (c == 0xED) high = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        value = c & 0x07;
        if (c == 0xF0) low = 0x90;
        if (c == 0xF4) high = 0x8F; /* nothing past U+10FFFF */
    } else {
        *cp = INVALID_CODEPOINT;
        return 1;
    }
    if (n <= need || s[1] < low || s[1] > high) {
        *cp = INVALID_CODEPOINT;
        return 1;
    }
    value = value << 6 | (s[1] & 0x3Fu);
    for (size_t k = 2; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            *cp = INVALID_CODEPOINT;
            return 1;
        }
        value = value << 6 | (s[k] & 0x3Fu);
    }
    *cp = value;
    return need + 1;
}

/* Bytes of the maximal invalid subpart at s[0..n) (where utf8_decode found
 * no valid character): a valid lead byte and the continuation bytes that
 * still fit it. Each such subpart becomes one U+FFFD. */
static size_t utf8_invalid_span(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need;
    unsigned low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) low = 0xA0;
        if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) low = 0x90;
        if (c == 0xF4) high = 0x8F;
    } else {
        return 1;
    }
    if (n < 2 || s[1] < low || s[1] > high) return 1;
    size_t k = 2;
    while (k <= need && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

static size_t utf8_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

enum { CLASS_OTHER = 0, CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE };

/* Code points above U+007F with the Unicode properties L (letters) and N
 * (numbers), as inclusive ranges sorted by start (Unicode 17). */
/* clang-format off */
static const uint32_t letter_ranges[][2] = {
    {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1},
    {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F},
    {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F},
    {0x531, 0x556}, {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x66E, 0x66F},
    {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF}, {0x710, 0x710},
    {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5}, {0x7FA, 0x7FA}, {0x800, 0x815},
    {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858}, {0x860, 0x86A}, {0x870, 0x887}, {0x889, 0x88F},
    {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D}, {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980}, {0x985, 0x98C},
    {0x98F, 0x990}, {0x993, 0x9A8}, {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD}, {0x9CE, 0x9CE},
    {0x9DC, 0x9DD}, {0x9DF, 0x9E1}, {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28},
    {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E}, {0xA72, 0xA74},
    {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3}, {0xAB5, 0xAB9}, {0xABD, 0xABD},
    {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C}, {0xB0F, 0xB10}, {0xB13, 0xB28}, {0xB2A, 0xB30},
    {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D}, {0xB5C, 0xB5D}, {0xB5F, 0xB61}, {0xB71, 0xB71}, {0xB83, 0xB83},
    {0xB85, 0xB8A}, {0xB8E, 0xB90}, {0xB92, 0xB95}, {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4},
    {0xBA8, 0xBAA}, {0xBAE, 0xBB9}, {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28}, {0xC2A, 0xC39},
    {0xC3D, 0xC3D}, {0xC58, 0xC5A}, {0xC5C, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C}, {0xC8E, 0xC90},
    {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDC, 0xCDE}, {0xCE0, 0xCE1}, {0xCF1, 0xCF2},
    {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D}, {0xD4E, 0xD4E}, {0xD54, 0xD56}, {0xD5F, 0xD61},
    {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1}, {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6}, {0xE01, 0xE30},
    {0xE32, 0xE33}, {0xE40, 0xE46}, {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3}, {0xEA5, 0xEA5},
    {0xEA7, 0xEB0}, {0xEB2, 0xEB3}, {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF}, {0xF00, 0xF00},
    {0xF40, 0xF47}, {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F}, {0x1050, 0x1055},
    {0x105A, 0x105D}, {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070}, {0x1075, 0x1081}, {0x108E, 0x108E},
    {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x10FA}, {0x10FC, 0x1248}, {0x124A, 0x124D},
    {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0},
    {0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310},
    {0x1312, 0x1315}, {0x1318, 0x135A}, {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1401, 0x166C},
    {0x166F, 0x167F}, {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8}, {0x1700, 0x1711}, {0x171F, 0x1731},
    {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770}, {0x1780, 0x17B3}, {0x17D7, 0x17D7}, {0x17DC, 0x17DC},
    {0x1820, 0x1878}, {0x1880, 0x1884}, {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E},
    {0x1950, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x1A00, 0x1A16}, {0x1A20, 0x1A54},
    {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33}, {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF}, {0x1BBA, 0x1BE5},
    {0x1C00, 0x1C23}, {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6}, {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
    {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D},
    {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2CE4},
    {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6}, {0x2DB8, 0x2DBE},
    {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2E2F, 0x2E2F}, {0x3005, 0x3006},
    {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF},
    {0x3105, 0x312F}, {0x3131, 0x318E}, {0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF}, {0x4E00, 0xA48C},
    {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA610, 0xA61F}, {0xA62A, 0xA62B}, {0xA640, 0xA66E}, {0xA67F, 0xA69D},
    {0xA6A0, 0xA6E5}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7DC}, {0xA7F1, 0xA801}, {0xA803, 0xA805},
    {0xA807, 0xA80A}, {0xA80C, 0xA822}, {0xA840, 0xA873}, {0xA882, 0xA8B3}, {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB},
    {0xA8FD, 0xA8FE}, {0xA90A, 0xA925}, {0xA930, 0xA946}, {0xA960, 0xA97C}, {0xA984, 0xA9B2}, {0xA9CF, 0xA9CF},
    {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF}, {0xA9FA, 0xA9FE}, {0xAA00, 0xAA28}, {0xAA40, 0xAA42}, {0xAA44, 0xAA4B},
    {0xAA60, 0xAA76}, {0xAA7A, 0xAA7A}, {0xAA7E, 0xAAAF}, {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD},
    {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2}, {0xAADB, 0xAADD}, {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4}, {0xAB01, 0xAB06},
    {0xAB09, 0xAB0E}, {0xAB11, 0xAB16}, {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69},
    {0xAB70, 0xABE2}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28}, {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C},
    {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44}, {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F},
    {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB}, {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A},
    {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x10000, 0x1000B},
    {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D},
    {0x10080, 0x100FA}, {0x10280, 0x1029C}, {0x102A0, 0x102D0}, {0x10300, 0x1031F}, {0x1032D, 0x10340},
    {0x10342, 0x10349}, {0x10350, 0x10375}, {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF},
    {0x10400, 0x1049D}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527}, {0x10530, 0x10563},
    {0x10570, 0x1057A}, {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1},
    {0x105A3, 0x105B1}, {0x105B3, 0x105B9}, {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10600, 0x10736},
    {0x10740, 0x10755}, {0x10760, 0x10767}, {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
    {0x10800, 0x10805}, {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
    {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5},
    {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10940, 0x10959}, {0x10980, 0x109B7}, {0x109BE, 0x109BF},
    {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17}, {0x10A19, 0x10A35}, {0x10A60, 0x10A7C},
    {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4}, {0x10B00, 0x10B35}, {0x10B40, 0x10B55},
    {0x10B60, 0x10B72}, {0x10B80, 0x10B91}, {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x10D00, 0x10D23}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1},
    {0x10EC2, 0x10EC7}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27}, {0x10F30, 0x10F45}, {0x10F70, 0x10F81},
    {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11003, 0x11037}, {0x11071, 0x11072}, {0x11075, 0x11075},
    {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126}, {0x11144, 0x11144}, {0x11147, 0x11147},
    {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2}, {0x111C1, 0x111C4}, {0x111DA, 0x111DA},
    {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B}, {0x1123F, 0x11240}, {0x11280, 0x11286},
    {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D}, {0x1129F, 0x112A8}, {0x112B0, 0x112DE},
    {0x11305, 0x1130C}, {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333},
    {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7}, {0x113D1, 0x113D1},
    {0x113D3, 0x113D3}, {0x11400, 0x11434}, {0x11447, 0x1144A}, {0x1145F, 0x11461}, {0x11480, 0x114AF},
    {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB}, {0x11600, 0x1162F},
    {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8}, {0x11700, 0x1171A}, {0x11740, 0x11746},
    {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913},
    {0x11915, 0x11916}, {0x11918, 0x1192F}, {0x1193F, 0x1193F}, {0x11941, 0x11941}, {0x119A0, 0x119A7},
    {0x119AA, 0x119D0}, {0x119E1, 0x119E1}, {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32},
    {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89}, {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8},
    {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E}, {0x11C40, 0x11C40}, {0x11C72, 0x11C8F},
    {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30}, {0x11D46, 0x11D46}, {0x11D60, 0x11D65},
    {0x11D67, 0x11D68}, {0x11D6A, 0x11D89}, {0x11D98, 0x11D98}, {0x11DB0, 0x11DDB}, {0x11EE0, 0x11EF2},
    {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399},
    {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13441, 0x13446}, {0x13460, 0x143FA},
    {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E}, {0x16A70, 0x16ABE},
    {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F},
    {0x16D40, 0x16D6C}, {0x16E40, 0x16E7F}, {0x16EA0, 0x16EB8}, {0x16EBB, 0x16ED3}, {0x16F00, 0x16F4A},
    {0x16F50, 0x16F50}, {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x16FF2, 0x16FF3},
    {0x17000, 0x18CD5}, {0x18CFF, 0x18D1E}, {0x18D80, 0x18DF2}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB},
    {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155},
    {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88},
    {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2},
    {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3},
    {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539},
    {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
    {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734},
    {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E}, {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2},
    {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C},
    {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB}, {0x1E4D0, 0x1E4EB},
    {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0}, {0x1E6C0, 0x1E6DE}, {0x1E6E0, 0x1E6E2}, {0x1E6E4, 0x1E6E5},
    {0x1E6E7, 0x1E6ED}, {0x1E6F0, 0x1E6F4}, {0x1E6FE, 0x1E6FF}, {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB},
    {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4}, {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B},
    {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27},
    {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42},
    {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B}, {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52},
    {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D},
    {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72},
    {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B},
    {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B81D},
    {0x2B820, 0x2CEAD}, {0x2CEB0, 0x2EBE0}, {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A},
    {0x31350, 0x33479},
};

static const uint32_t number_ranges[][2] = {
    {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9}, {0x7C0, 0x7C9}, {0x966, 0x96F},
    {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF}, {0xB66, 0xB6F}, {0xB72, 0xB77}, {0xBE6, 0xBF2},
    {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF}, {0xD58, 0xD5E}, {0xD66, 0xD78}, {0xDE6, 0xDEF}, {0xE50, 0xE59},
    {0xED0, 0xED9}, {0xF20, 0xF33}, {0x1040, 0x1049}, {0x1090, 0x1099}, {0x1369, 0x137C}, {0x16EE, 0x16F0},
    {0x17E0, 0x17E9}, {0x17F0, 0x17F9}, {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA}, {0x1A80, 0x1A89},
    {0x1A90, 0x1A99}, {0x1B50, 0x1B59}, {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59}, {0x2070, 0x2070},
    {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B}, {0x24EA, 0x24FF},
    {0x2776, 0x2793}, {0x2CFD, 0x2CFD}, {0x3007, 0x3007}, {0x3021, 0x3029}, {0x3038, 0x303A}, {0x3192, 0x3195},
    {0x3220, 0x3229}, {0x3248, 0x324F}, {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF}, {0xA620, 0xA629},
    {0xA6E6, 0xA6EF}, {0xA830, 0xA835}, {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9}, {0xA9F0, 0xA9F9},
    {0xAA50, 0xAA59}, {0xABF0, 0xABF9}, {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178}, {0x1018A, 0x1018B},
    {0x102E1, 0x102FB}, {0x10320, 0x10323}, {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x103D1, 0x103D5},
    {0x104A0, 0x104A9}, {0x10858, 0x1085F}, {0x10879, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF},
    {0x10916, 0x1091B}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF}, {0x10A40, 0x10A48},
    {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F},
    {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39}, {0x10D40, 0x10D49}, {0x10E60, 0x10E7E},
    {0x10F1D, 0x10F26}, {0x10F51, 0x10F54}, {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9},
    {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3}, {0x11730, 0x1173B},
    {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9}, {0x11C50, 0x11C6C}, {0x11D50, 0x11D59},
    {0x11DA0, 0x11DA9}, {0x11DE0, 0x11DE9}, {0x11F50, 0x11F59}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E},
    {0x16130, 0x16139}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61},
    {0x16D70, 0x16D79}, {0x16E80, 0x16E96}, {0x16FF4, 0x16FF6}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3},
    {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9},
    {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB},
    {0x1ECAD, 0x1ECAF}, {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C},
    {0x1FBF0, 0x1FBF9},
};
/* clang-format on */

static bool in_ranges(const uint32_t (*ranges)[2], size_t count, uint32_t cp) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ranges[mid][0]) {
            hi = mid;
        } else if (cp > ranges[mid][1]) {
            lo = mid + 1;
        } else {
            return true;
        }
    }
    return false;
}

static inline int ascii_class(unsigned c) {
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CLASS_LETTER;
    if (c >= '0' && c <= '9') return CLASS_NUMBER;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return CLASS_SPACE;
    return CLASS_OTHER;
}

static int unicode_class(uint32_t cp) {
    if (cp < 0x80) return ascii_class(cp);
    if (cp == INVALID_CODEPOINT) return CLASS_OTHER;
    /* White_Space above ASCII. */
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return CLASS_SPACE;
    if (in_ranges(letter_ranges, sizeof letter_ranges / sizeof letter_ranges[0], cp)) return CLASS_LETTER;
    if (in_ranges(number_ranges, sizeof number_ranges / sizeof number_ranges[0], cp)) return CLASS_NUMBER;
    return CLASS_OTHER;
}

/* Class of the character at s[i] (i < n), its length in *len. */
static inline int class_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    unsigned c = s[i];
    if (c < 0x80) {
        *len = 1;
        return ascii_class(c);
    }
    uint32_t cp;
    *len = utf8_decode(s + i, n - i, &cp);
    return unicode_class(cp);
}

/* End of the GPT-2 piece that starts at s[i] (i < n). The alternatives of
 * the pattern are tried in order, as the regular expression does. */
static size_t gpt2_piece_end(const unsigned char *s, size_t n, size_t i) {
    unsigned c = s[i];
    if (c == '\'' && i + 1 < n) { /* 's 't 're 've 'm 'll 'd */
        unsigned c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
        }
    }
    size_t len;
    size_t start = i;
    int cls = class_at(s, n, i, &len);
    if (c == ' ' && i + 1 < n) { /* the optional leading space of the next three */
        size_t next_len;
        int next = class_at(s, n, i + 1, &next_len);
        if (next != CLASS_SPACE) {
            start = i + 1;
            cls = next;
            len = next_len;
        }
    }
    if (cls != CLASS_SPACE) { /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ */
        size_t k = start + len;
        while (k < n) {
            size_t l;
            if (class_at(s, n, k, &l) != cls) break;
            k += l;
        }
        return k;
    }
    /* \s+(?!\S) takes the whole run at the end of the text and otherwise
     * leaves the run's last character to start the next piece; a run of one
     * character before a non-space falls through to \s+. */
    size_t last = i, k = i + len;
    while (k < n) {
        size_t l;
        if (class_at(s, n, k, &l) != CLASS_SPACE) break;
        last = k;
        k += l;
    }
    if (k == n || last == i) return k;
    return last;
}

/* ---- the tokenizer object --------------------------------------------- */

struct tc_tokenizer {
    tc_context *ctx;
    tc_tokenizer_kind kind;
    bool gpt2_split;
    int32_t vocab_size;
    size_t *token_offset; /* vocab_size + 1 offsets into token_bytes */
    unsigned char *token_bytes;
    int32_t byte_id[256]; /* id of each single-byte token, NO_ID when none */
    int32_t merge_count;
    int32_t *merges;    /* merge_count triples (left, right, result) in rank order */
    u64_map merge_rank; /* pair_key(left, right) -> rank */
    u64_map char_id;    /* character tokenizers: packed multi-byte character -> id */
    bool monotone;      /* every merge using a token ranks after every merge making it */
};

static inline size_t token_length(const tc_tokenizer *tok, int32_t id) {
    return tok->token_offset[id + 1] - tok->token_offset[id];
}

static inline const unsigned char *token_data(const tc_tokenizer *tok, int32_t id) {
    return tok->token_bytes + tok->token_offset[id];
}

/* A multi-byte character packed into a map key (its bytes and length). */
static inline uint64_t char_key(const unsigned char *s, size_t len) {
    uint64_t key = (uint64_t)len << 32;
    for (size_t k = 0; k < len; k++) key |= (uint64_t)s[k] << (8 * k);
    return key;
}

void tc_tokenizer_free(tc_tokenizer *tok) {
    if (!tok) return;
    free(tok->token_offset);
    free(tok->token_bytes);
    free(tok->merges);
    u64_map_free(&tok->merge_rank);
    u64_map_free(&tok->char_id);
    free(tok);
}

static tc_tokenizer *tokenizer_new(tc_context *ctx, const char *function, tc_tokenizer_kind kind, bool split) {
    tc_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for the tokenizer", function);
        return NULL;
    }
    tok->ctx = ctx;
    tok->kind = kind;
    tok->gpt2_split = split;
    for (int b = 0; b < 256; b++) tok->byte_id[b] = NO_ID;
    return tok;
}

/* Whether every merge that uses a token ranks after every merge that makes
 * it, so that applying merges by rank never creates a pair of a lower rank
 * than the one being applied. */
static bool merges_monotone(const tc_tokenizer *tok) {
    int32_t *made_last = malloc((size_t)tok->vocab_size * sizeof *made_last);
    if (!made_last) return false;
    for (int32_t id = 0; id < tok->vocab_size; id++) made_last[id] = NO_ID;
    for (int32_t r = 0; r < tok->merge_count; r++) made_last[tok->merges[3 * r + 2]] = r;
    bool monotone = true;
    for (int32_t r = 0; r < tok->merge_count && monotone; r++)
        monotone = made_last[tok->merges[3 * r]] < r && made_last[tok->merges[3 * r + 1]] < r;
    free(made_last);
    return monotone;
}

/* Builds the lookup structures once tokens and merges are in place, and
 * checks what every tokenizer must satisfy; `where` starts messages. */
static tc_status tokenizer_index(tc_tokenizer *tok, const char *where) {
    tc_context *ctx = tok->ctx;
    if (tok->vocab_size == 0) return tc_fail(ctx, TC_ERROR_FORMAT, "%s: the vocabulary is empty", where);
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        size_t len = token_length(tok, id);
        if (len == 0) return tc_fail(ctx, TC_ERROR_FORMAT, "%s: token %d is empty", where, (int)id);
        if (len == 1 && tok->byte_id[token_data(tok, id)[0]] == NO_ID) tok->byte_id[token_data(tok, id)[0]] = id;
    }
    if (tok->kind == TC_TOKENIZER_BPE) {
        for (int b = 0; b < 256; b++) {
            if (tok->byte_id[b] == NO_ID)
                return tc_fail(ctx, TC_ERROR_FORMAT,
                               "%s: no token for the byte 0x%02x (a byte-level BPE needs all 256)", where, b);
        }
        if (!u64_map_init(&tok->merge_rank, (size_t)tok->merge_count))
            return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d merges", where, (int)tok->merge_count);
        for (int32_t r = 0; r < tok->merge_count; r++) {
            const int32_t *m = &tok->merges[3 * r];
            bool found;
            int32_t *slot = u64_map_slot(&tok->merge_rank, pair_key(m[0], m[1]), &found);
            if (!slot)
                return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d merges", where, (int)tok->merge_count);
            if (found)
                return tc_fail(ctx, TC_ERROR_FORMAT, "%s: merge %d (%d %d) repeats merge %d", where, (int)r, (int)m[0],
                               (int)m[1], (int)*slot);
            *slot = r;
        }
        tok->monotone = merges_monotone(tok);
        if (tok->merge_count > 0 && !tok->monotone) {
            tc_log(ctx, TC_LOG_DEBUG, "%s: merges are not in creation order; encoding uses the general order", where);
        }
    } else {
        if (!u64_map_init(&tok->char_id, (size_t)tok->vocab_size))
            return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d characters", where, (int)tok->vocab_size);
        for (int32_t id = 0; id < tok->vocab_size; id++) {
            const unsigned char *s = token_data(tok, id);
            size_t len = token_length(tok, id);
            uint32_t cp;
            if (utf8_decode(s, len, &cp) != len)
                return tc_fail(ctx, TC_ERROR_FORMAT, "%s: token %d is not a single character", where, (int)id);
            if (len == 1) {
                if (tok->byte_id[s[0]] != id)
                    return tc_fail(ctx, TC_ERROR_FORMAT, "%s: tokens %d and %d are the same character", where,
                                   (int)tok->byte_id[s[0]], (int)id);
                continue;
            }
            bool found;
            int32_t *slot = u64_map_slot(&tok->char_id, char_key(s, len), &found);
            if (!slot)
                return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %d characters", where,
                               (int)tok->vocab_size);
            if (found)
                return tc_fail(ctx, TC_ERROR_FORMAT, "%s: tokens %d and %d are the same character", where, (int)*slot,
                               (int)id);
            *slot = id;
        }
    }
    return TC_OK;
}

/* Fills token_offset/token_bytes of a BPE whose ids 0..255 are the bytes and
 * whose merges produce ids 256, 257, ... in order. */
static tc_status bpe_tokens_from_merges(tc_tokenizer *tok, const char *where) {
    int32_t n = 256 + tok->merge_count;
    tok->vocab_size = n;
    tok->token_offset = malloc(((size_t)n + 1) * sizeof *tok->token_offset);
    size_t *length = malloc((size_t)n * sizeof *length);
    if (!tok->token_offset || !length) {
        free(length);
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %d tokens", where, (int)n);
    }
    size_t total = 256;
    for (int32_t id = 0; id < n; id++) {
        length[id] = id < 256 ? 1 : length[tok->merges[3 * (id - 256)]] + length[tok->merges[3 * (id - 256) + 1]];
        if (id >= 256) total += length[id];
    }
    tok->token_bytes = malloc(total);
    if (!tok->token_bytes) {
        free(length);
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu bytes of tokens", where, total);
    }
    size_t at = 0;
    for (int32_t id = 0; id < n; id++) {
        tok->token_offset[id] = at;
        if (id < 256) {
            tok->token_bytes[at] = (unsigned char)id;
        } else {
            int32_t left = tok->merges[3 * (id - 256)], right = tok->merges[3 * (id - 256) + 1];
            memcpy(tok->token_bytes + at, token_data(tok, left), length[left]);
            memcpy(tok->token_bytes + at + length[left], token_data(tok, right), length[right]);
        }
        at += length[id];
    }
    tok->token_offset[n] = at;
    free(length);
    return TC_OK;
}

int tc_tokenizer_vocab_size(const tc_tokenizer *tok) { return tok ? (int)tok->vocab_size : 0; }
tc_tokenizer_kind tc_tokenizer_get_kind(const tc_tokenizer *tok) { return tok->kind; }
bool tc_tokenizer_gpt2_split(const tc_tokenizer *tok) { return tok->gpt2_split; }
int tc_tokenizer_merge_count(const tc_tokenizer *tok) { return (int)tok->merge_count; }
tc_context *tc_tokenizer_context(const tc_tokenizer *tok) { return tok->ctx; }

const char *tc_tokenizer_kind_name(tc_tokenizer_kind kind) {
    switch (kind) {
    case TC_TOKENIZER_BPE: return "bpe";
    case TC_TOKENIZER_CHAR: return "char";
    default: return "unknown";
    }
}

tc_status tc_tokenizer_token_bytes(const tc_tokenizer *tok, int32_t id, const char **bytes, size_t *len) {
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!bytes || !len)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "token: bytes and len must not be NULL");
    if (id < 0 || id >= tok->vocab_size)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                       "token: id %d is out of range for a vocabulary of %d tokens", (int)id,
                       (int)tok->vocab_size);
    *bytes = (const char *)token_data(tok, id);
    *len = token_length(tok, id);
    return TC_OK;
}

/* ---- BPE training -------------------------------------------------------
 *
 * The text becomes one array of symbols (token ids) with next/prev links;
 * with pre-splitting, each distinct word appears once and its symbols carry
 * the word's count as their weight. Every adjacent pair has a record with
 * its weighted count and the positions where it was seen (some of which
 * may since have changed: they are checked when used). A max-heap orders
 * (count, pair) with lazy deletion: whenever a pair's count changes during
 * a step, an entry with the new count is pushed once the step ends, and
 * entries whose count no longer matches are dropped when they surface.
 * Applying a merge visits only the positions of the merged pair and adjusts
 * the counts of the neighbouring pairs, so a step costs what it changes.
 */

typedef struct train_pair {
    int32_t left, right;
    int64_t count;
    int32_t *positions;
    size_t n_positions, capacity;
    int32_t dirty_step; /* the last step that changed count */
} train_pair;

typedef struct heap_item {
    int64_t count;
    uint64_t pair; /* pair_key(left, right): smaller wins ties */
} heap_item;

typedef struct trainer {
    int32_t *symbol; /* NO_ID once merged into the symbol on its left */
    int32_t *next, *prev;
    int32_t *weight; /* NULL: every symbol weighs 1 */
    size_t n;
    train_pair *pairs;
    size_t n_pairs, pairs_capacity;
    u64_map pair_index;
    heap_item *heap;
    size_t n_heap, heap_capacity;
    int32_t *dirty;
    size_t n_dirty, dirty_capacity;
} trainer;

static void trainer_free(trainer *t) {
    free(t->symbol);
    free(t->next);
    free(t->prev);
    free(t->weight);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].positions);
    free(t->pairs);
    u64_map_free(&t->pair_index);
    free(t->heap);
    free(t->dirty);
}

static inline bool heap_before(const heap_item *a, const heap_item *b) {
    return a->count > b->count || (a->count == b->count && a->pair < b->pair);
}

static bool heap_push(trainer *t, heap_item item) {
    if (!reserve((void **)&t->heap, &t->heap_capacity, t->n_heap + 1, sizeof *t->heap)) return false;
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(&item, &t->heap[parent])) break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = item;
    return true;
}

static void heap_pop(trainer *t) {
    heap_item last = t->heap[--t->n_heap];
    size_t n = t->n_heap, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_before(&t->heap[child + 1], &t->heap[child])) child++;
        if (!heap_before(&t->heap[child], &last)) break;
        t->heap[i] = t->heap[child];
        i = child;
    }
    if (n > 0) t->heap[i] = last;
}

/* count(left, right) += delta, remembering `position` (unless NO_ID) as a
 * place where the pair now occurs. */
static bool trainer_add(trainer *t, int32_t left, int32_t right, int64_t delta, int32_t position, int32_t step) {
    bool found;
    int32_t *slot = u64_map_slot(&t->pair_index, pair_key(left, right), &found);
    if (!slot) return false;
    if (!found) {
        if (!reserve((void **)&t->pairs, &t->pairs_capacity, t->n_pairs + 1, sizeof *t->pairs)) return false;
        *slot = (int32_t)t->n_pairs;
        t->pairs[t->n_pairs++] = (train_pair){left, right, 0, NULL, 0, 0, -2};
    }
    int32_t index = *slot;
    train_pair *p = &t->pairs[index];
    p->count += delta;
    if (position != NO_ID) {
        if (!reserve((void **)&p->positions, &p->capacity, p->n_positions + 1, sizeof *p->positions)) return false;
        p->positions[p->n_positions++] = position;
    }
    if (p->dirty_step != step) {
        p->dirty_step = step;
        if (!reserve((void **)&t->dirty, &t->dirty_capacity, t->n_dirty + 1, sizeof *t->dirty)) return false;
        t->dirty[t->n_dirty++] = index;
    }
    return true;
}

/* Pushes the new counts of the pairs changed by the step. */
static bool trainer_flush(trainer *t) {
    for (size_t i = 0; i < t->n_dirty; i++) {
        const train_pair *p = &t->pairs[t->dirty[i]];
        if (p->count > 0 && !heap_push(t, (heap_item){p->count, pair_key(p->left, p->right)})) return false;
    }
    t->n_dirty = 0;
    return true;
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Applies merge `step` (left, right) -> id at every position where the
 * pair still occurs, left to right. */
static bool trainer_merge(trainer *t, int32_t index, int32_t id, int32_t step) {
    train_pair *best = &t->pairs[index];
    int32_t left = best->left, right = best->right;
    /* No position is added to this pair while it merges (every new pair
     * holds `id`), so its list can be taken over. */
    int32_t *positions = best->positions;
    size_t n_positions = best->n_positions;
    best->positions = NULL;
    best->n_positions = best->capacity = 0;
    bool sorted = true;
    for (size_t k = 1; k < n_positions && sorted; k++) sorted = positions[k - 1] < positions[k];
    if (!sorted) qsort(positions, n_positions, sizeof *positions, compare_int32);
    bool ok = true;
    for (size_t k = 0; k < n_positions && ok; k++) {
        if (k + PREFETCH_AHEAD < n_positions) {
            PREFETCH(&t->symbol[positions[k + PREFETCH_AHEAD]]);
            PREFETCH(&t->next[positions[k + PREFETCH_AHEAD]]);
        }
        int32_t p = positions[k];
        if (t->symbol[p] != left) continue;
        int32_t q = t->next[p];
        if (q == NO_ID || t->symbol[q] != right) continue;
        int64_t w = t->weight ? t->weight[p] : 1;
        int32_t before = t->prev[p], after = t->next[q];
        if (before != NO_ID) {
            ok = ok && trainer_add(t, t->symbol[before], left, -w, NO_ID, step);
            ok = ok && trainer_add(t, t->symbol[before], id, w, before, step);
        }
        if (after != NO_ID) {
            ok = ok && trainer_add(t, right, t->symbol[after], -w, NO_ID, step);
            ok = ok && trainer_add(t, id, t->symbol[after], w, p, step);
        }
        ok = ok && trainer_add(t, left, right, -w, NO_ID, step);
        t->symbol[p] = id;
        t->symbol[q] = NO_ID;
        t->next[p] = after;
        if (after != NO_ID) t->prev[after] = p;
    }
    free(positions);
    return ok;
}

/* Lays out the symbols: the whole text as one sequence, or each distinct
 * GPT-2 piece once with its count as weight (pieces of one byte have no
 * pairs and are left out). */
static bool trainer_layout(trainer *t, const unsigned char *s, size_t len, bool split) {
    if (!split) {
        t->n = len;
        t->symbol = malloc((len ? len : 1) * sizeof *t->symbol);
        t->next = malloc((len ? len : 1) * sizeof *t->next);
        t->prev = malloc((len ? len : 1) * sizeof *t->prev);
        if (!t->symbol || !t->next || !t->prev) return false;
        for (size_t i = 0; i < len; i++) {
            t->symbol[i] = s[i];
            t->next[i] = i + 1 < len ? (int32_t)(i + 1) : NO_ID;
            t->prev[i] = i > 0 ? (int32_t)(i - 1) : NO_ID;
        }
        return true;
    }
    bytes_map words;
    if (!bytes_map_init(&words, 1024)) return false;
    int32_t *counts = NULL;
    size_t counts_capacity = 0, total = 0;
    bool ok = true;
    for (size_t i = 0; i < len && ok;) {
        size_t end = gpt2_piece_end(s, len, i);
        size_t piece = end - i;
        if (piece >= 2) {
            uint64_t hash = hash_bytes(s + i, piece);
            int32_t e = bytes_map_find(&words, s + i, piece, hash);
            if (e == NO_ID) {
                e = bytes_map_add(&words, s + i, piece, hash, 0);
                ok = e != NO_ID && reserve((void **)&counts, &counts_capacity, words.count, sizeof *counts);
                if (ok) counts[e] = 0;
                total += piece;
            }
            if (ok) counts[e]++;
        }
        i = end;
    }
    if (ok) {
        t->n = total;
        t->symbol = malloc((total ? total : 1) * sizeof *t->symbol);
        t->next = malloc((total ? total : 1) * sizeof *t->next);
        t->prev = malloc((total ? total : 1) * sizeof *t->prev);
        t->weight = malloc((total ? total : 1) * sizeof *t->weight);
        ok = t->symbol && t->next && t->prev && t->weight;
    }
    if (ok) {
        size_t at = 0;
        for (size_t e = 0; e < words.count; e++) {
            const bytes_entry *word = &words.entries[e];
            for (size_t k = 0; k < word->len; k++, at++) {
                t->symbol[at] = word->data[k];
                t->weight[at] = counts[e];
                t->next[at] = k + 1 < word->len ? (int32_t)(at + 1) : NO_ID;
                t->prev[at] = k > 0 ? (int32_t)(at - 1) : NO_ID;
            }
        }
    }
    free(counts);
    bytes_map_free(&words);
    return ok;
}

tc_status tc_bpe_train(tc_context *ctx, const char *text, size_t len, int vocab_size, bool gpt2_split,
                       tc_tokenizer **out) {
    static const char *const fn = "BPETokenizer.train";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!text && len > 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is NULL with len %zu", fn, len);
    if (len > MAX_TEXT_BYTES)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text of %zu bytes is over the limit of %zu bytes", fn, len,
                       MAX_TEXT_BYTES);
    if (vocab_size < 256)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: vocab_size is %d, must be at least 256 (the byte tokens)", fn,
                       vocab_size);
    tc_tokenizer *tok = tokenizer_new(ctx, fn, TC_TOKENIZER_BPE, gpt2_split);
    if (!tok) return TC_ERROR_MEMORY;
    trainer t;
    memset(&t, 0, sizeof t);
    const unsigned char *s = (const unsigned char *)text;
    bool ok = trainer_layout(&t, s, len, gpt2_split) && u64_map_init(&t.pair_index, 4096);
    for (size_t p = 0; p < t.n && ok; p++) {
        if (t.next[p] != NO_ID)
            ok = trainer_add(&t, t.symbol[p], t.symbol[t.next[p]], t.weight ? t.weight[p] : 1, (int32_t)p, -1);
    }
    ok = ok && trainer_flush(&t);
    size_t merges_capacity = 0;
    int32_t wanted = vocab_size - 256;
    for (int32_t step = 0; step < wanted && ok; step++) {
        int32_t best = NO_ID;
        while (t.n_heap > 0) {
            heap_item top = t.heap[0];
            heap_pop(&t);
            int32_t index = u64_map_get(&t.pair_index, top.pair);
            if (t.pairs[index].count == top.count) {
                best = index;
                break;
            }
        }
        if (best == NO_ID) break; /* no adjacent pair left */
        ok = reserve((void **)&tok->merges, &merges_capacity, 3 * ((size_t)step + 1), sizeof *tok->merges);
        if (!ok) break;
        int32_t id = 256 + step;
        tok->merges[3 * step] = t.pairs[best].left;
        tok->merges[3 * step + 1] = t.pairs[best].right;
        tok->merges[3 * step + 2] = id;
        tok->merge_count = step + 1;
        ok = trainer_merge(&t, best, id, step) && trainer_flush(&t);
    }
    trainer_free(&t);
    tc_status status = TC_OK;
    if (!ok) {
        status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory training on %zu bytes", fn, len);
    } else {
        status = bpe_tokens_from_merges(tok, fn);
        if (status == TC_OK) status = tokenizer_index(tok, fn);
    }
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
}

/* ---- BPE encoding -------------------------------------------------------
 *
 * Within one sequence the merges apply by rank: the lowest-ranked pair
 * present merges at all its occurrences, left to right, then the next (as
 * GPT-2's tokenizer does). Short words do this with a plain scan. Long
 * sequences become linked symbols, and the positions of their pairs wait in
 * one list per rank, visited in rank order (a merge only creates pairs of
 * higher ranks in a table where tokens are made before they are used, as in
 * every trained one); other tables use a min-heap keyed by (rank, position).
 * Positions are checked when visited, since the pair there may have changed.
 */

typedef struct bpe_symbol {
    int32_t id; /* NO_ID once merged into the symbol on its left */
    int32_t next, prev;
} bpe_symbol;

/* A block of positions waiting in one rank's list (one cache line). */
#define BLOCK_POSITIONS 14
typedef struct bpe_block {
    int32_t next; /* the block after this one in its list, NO_ID at the end */
    int32_t count;
    int32_t position[BLOCK_POSITIONS];
} bpe_block;

typedef struct bpe_work {
    bpe_symbol *symbols;
    size_t symbols_capacity;
    uint32_t *round;
    size_t round_capacity;
    /* General order: a min-heap of (rank << 32 | position). */
    uint64_t *heap;
    size_t heap_capacity;
    /* Monotone order: one list of blocks per rank, first and last block by
     * rank (NO_ID when empty; emptied again before a call returns). */
    int32_t *first_block, *last_block;
    bpe_block *blocks;
    size_t blocks_capacity, n_blocks;
} bpe_work;

static void bpe_work_free(bpe_work *w) {
    free(w->symbols);
    free(w->round);
    free(w->heap);
    free(w->first_block);
    free(w->last_block);
    free(w->blocks);
}

static inline int32_t merge_rank(const tc_tokenizer *tok, int32_t left, int32_t right) {
    return u64_map_get(&tok->merge_rank, pair_key(left, right));
}

static size_t bpe_merge_small(const tc_tokenizer *tok, int32_t *ids, size_t n) {
    int32_t ranks[SMALL_WORD];
    for (size_t i = 0; i + 1 < n; i++) ranks[i] = merge_rank(tok, ids[i], ids[i + 1]);
    while (n >= 2) {
        int32_t best = INT32_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            if (ranks[i] != NO_ID && ranks[i] < best) best = ranks[i];
        }
        if (best == INT32_MAX) break;
        int32_t id = tok->merges[3 * best + 2];
        size_t out = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && ranks[i] == best) {
                ids[out++] = id;
                i += 2;
            } else {
                ids[out++] = ids[i++];
            }
        }
        n = out;
        for (size_t i = 0; i + 1 < n; i++) ranks[i] = merge_rank(tok, ids[i], ids[i + 1]);
    }
    return n;
}

static inline void min_heap_push(uint64_t *heap, size_t *n, uint64_t key) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent] <= key) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = key;
}

static inline void min_heap_sift_down(uint64_t *heap, size_t n, size_t i) {
    uint64_t key = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= key) break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = key;
}

static inline uint64_t min_heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0];
    heap[0] = heap[--(*n)];
    if (*n > 0) min_heap_sift_down(heap, *n, 0);
    return top;
}

/* Merges the pair at p, if (left, right) is still there, into id; returns
 * whether it did. */
static inline bool bpe_merge_at(bpe_symbol *sym, int32_t p, int32_t left, int32_t right, int32_t id) {
    if (sym[p].id != left) return false;
    int32_t q = sym[p].next;
    if (q == NO_ID || sym[q].id != right) return false;
    int32_t after = sym[q].next;
    sym[p].id = id;
    sym[q].id = NO_ID;
    sym[p].next = after;
    if (after != NO_ID) sym[after].prev = p;
    return true;
}

/* Heap order, for any merge table. */
static bool bpe_merge_heap(const tc_tokenizer *tok, size_t n, bpe_work *w) {
    /* Each merge pushes at most two entries and removes a symbol, so 3n bounds the heap. */
    if (!reserve((void **)&w->heap, &w->heap_capacity, 3 * n, sizeof *w->heap)) return false;
    bpe_symbol *sym = w->symbols;
    uint64_t *heap = w->heap;
    uint32_t *round = w->round;
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = merge_rank(tok, sym[i].id, sym[i + 1].id);
        if (r != NO_ID) heap[n_heap++] = (uint64_t)r << 32 | i;
    }
    for (size_t i = n_heap / 2; i-- > 0;) min_heap_sift_down(heap, n_heap, i);
    while (n_heap > 0) {
        /* A whole rank at once, so pairs it creates wait for the next round. */
        uint32_t rank = (uint32_t)(heap[0] >> 32);
        size_t n_round = 0;
        while (n_heap > 0 && (uint32_t)(heap[0] >> 32) == rank)
            round[n_round++] = (uint32_t)min_heap_pop(heap, &n_heap);
        int32_t left = tok->merges[3 * rank], right = tok->merges[3 * rank + 1], id = tok->merges[3 * rank + 2];
        for (size_t k = 0; k < n_round; k++) {
            int32_t p = (int32_t)round[k];
            if (!bpe_merge_at(sym, p, left, right, id)) continue;
            int32_t before = sym[p].prev, after = sym[p].next;
            if (before != NO_ID) {
                int32_t r = merge_rank(tok, sym[before].id, id);
                if (r != NO_ID) min_heap_push(heap, &n_heap, (uint64_t)r << 32 | (uint32_t)before);
            }
            if (after != NO_ID) {
                int32_t r = merge_rank(tok, id, sym[after].id);
                if (r != NO_ID) min_heap_push(heap, &n_heap, (uint64_t)r << 32 | (uint32_t)p);
            }
        }
    }
    return true;
}

static inline bool bucket_push(bpe_work *w, int32_t rank, int32_t position) {
    int32_t last = w->last_block[rank];
    if (last == NO_ID || w->blocks[last].count == BLOCK_POSITIONS) {
        if (!reserve((void **)&w->blocks, &w->blocks_capacity, w->n_blocks + 1, sizeof *w->blocks)) return false;
        int32_t fresh = (int32_t)w->n_blocks++;
        w->blocks[fresh].next = NO_ID;
        w->blocks[fresh].count = 0;
        if (last == NO_ID) {
            w->first_block[rank] = fresh;
        } else {
            w->blocks[last].next = fresh;
        }
        w->last_block[rank] = last = fresh;
    }
    bpe_block *b = &w->blocks[last];
    b->position[b->count++] = position;
    return true;
}

static int compare_uint32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Rank order through one list per rank, for merge tables where every pair a
 * merge creates has a higher rank than the merge (tok->monotone): ranks then
 * come up in increasing order and each list is complete when reached. The
 * occurrences of a pair of two different tokens cannot overlap, so only
 * pairs like (x, x) need their positions in increasing order. */
static bool bpe_merge_buckets(const tc_tokenizer *tok, size_t n, bpe_work *w) {
    if (!w->first_block) {
        w->first_block = malloc((size_t)tok->merge_count * sizeof *w->first_block);
        w->last_block = malloc((size_t)tok->merge_count * sizeof *w->last_block);
        if (!w->first_block || !w->last_block) return false;
        for (int32_t r = 0; r < tok->merge_count; r++) w->first_block[r] = w->last_block[r] = NO_ID;
    }
    bpe_symbol *sym = w->symbols;
    uint32_t *round = w->round;
    int32_t low = INT32_MAX, high = -1;
    w->n_blocks = 0;
    bool ok = reserve((void **)&w->blocks, &w->blocks_capacity, n / 4 + 16, sizeof *w->blocks);
    for (size_t i = 0; i + 1 < n && ok; i++) {
        int32_t r = merge_rank(tok, sym[i].id, sym[i + 1].id);
        if (r == NO_ID) continue;
        ok = bucket_push(w, r, (int32_t)i);
        if (r < low) low = r;
        if (r > high) high = r;
    }
    for (int32_t rank = low; rank <= high && ok; rank++) {
        if (w->first_block[rank] == NO_ID) continue;
        size_t n_round = 0;
        for (int32_t b = w->first_block[rank]; b != NO_ID; b = w->blocks[b].next) {
            memcpy(round + n_round, w->blocks[b].position, (size_t)w->blocks[b].count * sizeof *round);
            n_round += (size_t)w->blocks[b].count;
        }
        w->first_block[rank] = w->last_block[rank] = NO_ID;
        int32_t left = tok->merges[3 * rank], right = tok->merges[3 * rank + 1], id = tok->merges[3 * rank + 2];
        if (left == right) {
            bool sorted = true;
            for (size_t k = 1; k < n_round && sorted; k++) sorted = round[k - 1] < round[k];
            if (!sorted) qsort(round, n_round, sizeof *round, compare_uint32);
        }
        for (size_t k = 0; k < n_round && ok; k++) {
            if (k + PREFETCH_AHEAD < n_round) PREFETCH(&sym[round[k + PREFETCH_AHEAD]]);
            int32_t p = (int32_t)round[k];
            if (!bpe_merge_at(sym, p, left, right, id)) continue;
            int32_t before = sym[p].prev, after = sym[p].next;
            if (before != NO_ID) {
                int32_t r = merge_rank(tok, sym[before].id, id);
                if (r != NO_ID) {
                    ok = bucket_push(w, r, before);
                    if (r > high) high = r;
                }
            }
            if (after != NO_ID && ok) {
                int32_t r = merge_rank(tok, id, sym[after].id);
                if (r != NO_ID) {
                    ok = bucket_push(w, r, p);
                    if (r > high) high = r;
                }
            }
        }
    }
    if (!ok) { /* leave the lists empty for the next call */
        for (int32_t r = 0; r < tok->merge_count; r++) w->first_block[r] = w->last_block[r] = NO_ID;
    }
    return ok;
}

/* Merges ids[0..n) in place; returns the new count, or SIZE_MAX when out of
 * memory. n < 2^31. */
static size_t bpe_merge(const tc_tokenizer *tok, int32_t *ids, size_t n, bpe_work *w) {
    if (n <= SMALL_WORD) return bpe_merge_small(tok, ids, n);
    /* Every round holds distinct positions (a pair, once changed, never
     * comes back at the same place), so n bounds it. */
    if (!reserve((void **)&w->symbols, &w->symbols_capacity, n, sizeof *w->symbols) ||
        !reserve((void **)&w->round, &w->round_capacity, n, sizeof *w->round))
        return SIZE_MAX;
    bpe_symbol *sym = w->symbols;
    for (size_t i = 0; i < n; i++) {
        sym[i].id = ids[i];
        sym[i].next = i + 1 < n ? (int32_t)(i + 1) : NO_ID;
        sym[i].prev = i > 0 ? (int32_t)(i - 1) : NO_ID;
    }
    bool ok = tok->monotone ? bpe_merge_buckets(tok, n, w) : bpe_merge_heap(tok, n, w);
    if (!ok) return SIZE_MAX;
    size_t out = 0;
    for (int32_t p = 0; p != NO_ID; p = sym[p].next) ids[out++] = sym[p].id;
    return out;
}

typedef struct id_buffer {
    int32_t *ids;
    size_t count, capacity;
} id_buffer;

static inline bool id_buffer_reserve(id_buffer *b, size_t more) {
    return reserve((void **)&b->ids, &b->capacity, b->count + more, sizeof *b->ids);
}

static tc_status encode_bpe_whole(const tc_tokenizer *tok, const unsigned char *s, size_t len, id_buffer *out) {
    if (!id_buffer_reserve(out, len))
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory for %zu ids", len);
    for (size_t i = 0; i < len; i++) out->ids[i] = tok->byte_id[s[i]];
    bpe_work w;
    memset(&w, 0, sizeof w);
    size_t n = bpe_merge(tok, out->ids, len, &w);
    bpe_work_free(&w);
    if (n == SIZE_MAX)
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory encoding %zu bytes", len);
    out->count = n;
    return TC_OK;
}

/* Pre-split encoding: each piece is merged once and its ids cached (the
 * cache lives for one call, keyed by the bytes of the text itself). */
static tc_status encode_bpe_split(const tc_tokenizer *tok, const unsigned char *s, size_t len, id_buffer *out) {
    bytes_map cache;
    if (!bytes_map_init(&cache, 4096))
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory for the word cache");
    id_buffer pool = {NULL, 0, 0}; /* per cached word: count, then ids */
    id_buffer word = {NULL, 0, 0};
    bpe_work w;
    memset(&w, 0, sizeof w);
    bool ok = id_buffer_reserve(out, len / 3 + 16);
    for (size_t i = 0; i < len && ok;) {
        size_t end = gpt2_piece_end(s, len, i);
        size_t piece = end - i;
        if (piece == 1) {
            ok = id_buffer_reserve(out, 1);
            if (ok) out->ids[out->count++] = tok->byte_id[s[i]];
            i = end;
            continue;
        }
        uint64_t hash = hash_bytes(s + i, piece);
        int32_t e = bytes_map_find(&cache, s + i, piece, hash);
        if (e != NO_ID) {
            const int32_t *cached = pool.ids + cache.entries[e].value;
            size_t n = (size_t)cached[0];
            ok = id_buffer_reserve(out, n);
            if (ok) {
                memcpy(out->ids + out->count, cached + 1, n * sizeof *cached);
                out->count += n;
            }
            i = end;
            continue;
        }
        word.count = 0;
        ok = id_buffer_reserve(&word, piece);
        if (!ok) break;
        for (size_t k = 0; k < piece; k++) word.ids[k] = tok->byte_id[s[i + k]];
        size_t n = bpe_merge(tok, word.ids, piece, &w);
        ok = n != SIZE_MAX && id_buffer_reserve(out, n);
        if (!ok) break;
        memcpy(out->ids + out->count, word.ids, n * sizeof *word.ids);
        out->count += n;
        if (cache.count < WORD_CACHE_LIMIT && pool.count + n + 1 <= (size_t)INT32_MAX) {
            ok = id_buffer_reserve(&pool, n + 1) &&
                 bytes_map_add(&cache, s + i, piece, hash, (int32_t)pool.count) != NO_ID;
            if (ok) {
                pool.ids[pool.count] = (int32_t)n;
                memcpy(pool.ids + pool.count + 1, word.ids, n * sizeof *word.ids);
                pool.count += n + 1;
            }
        }
        i = end;
    }
    bpe_work_free(&w);
    free(word.ids);
    free(pool.ids);
    bytes_map_free(&cache);
    if (!ok) return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory encoding %zu bytes", len);
    return TC_OK;
}

static tc_status encode_chars(const tc_tokenizer *tok, const unsigned char *s, size_t len, id_buffer *out) {
    if (!id_buffer_reserve(out, len))
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory for %zu ids", len);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t id;
        size_t l = 1;
        uint32_t cp = s[i];
        if (s[i] < 0x80) {
            id = tok->byte_id[s[i]];
        } else {
            l = utf8_decode(s + i, len - i, &cp);
            id = l == 1 ? tok->byte_id[s[i]] : u64_map_get(&tok->char_id, char_key(s + i, l));
        }
        if (id == NO_ID) {
            if (cp == INVALID_CODEPOINT)
                return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                               "encode: byte 0x%02x at byte offset %zu is not in the vocabulary", s[i], i);
            if (cp >= 0x20 && cp != 0x7F)
                return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                               "encode: character '%.*s' (U+%04X) at byte offset %zu is not in the "
                               "vocabulary",
                               (int)l, (const char *)s + i, (unsigned)cp, i);
            return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                           "encode: character U+%04X at byte offset %zu is not in the vocabulary",
                           (unsigned)cp, i);
        }
        out->ids[n++] = id;
        i += l;
    }
    out->count = n;
    return TC_OK;
}

tc_status tc_tokenizer_encode(const tc_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *count) {
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!ids || !count)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "encode: ids and count must not be NULL");
    *ids = NULL;
    *count = 0;
    if (!text && len > 0)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "encode: text is NULL with len %zu", len);
    if (len > MAX_TEXT_BYTES)
        return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                       "encode: text of %zu bytes is over the limit of %zu bytes", len, MAX_TEXT_BYTES);
    const unsigned char *s = (const unsigned char *)text;
    id_buffer out = {NULL, 0, 0};
    tc_status status;
    if (tok->kind == TC_TOKENIZER_CHAR) {
        status = encode_chars(tok, s, len, &out);
    } else if (tok->gpt2_split) {
        status = encode_bpe_split(tok, s, len, &out);
    } else {
        status = encode_bpe_whole(tok, s, len, &out);
    }
    if (status == TC_OK && !out.ids) {
        out.ids = malloc(sizeof *out.ids);
        if (!out.ids) status = tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory");
    }
    if (status != TC_OK) {
        free(out.ids);
        return status;
    }
    if (out.count > 0 && out.capacity > out.count + out.count / 4) {
        int32_t *smaller = realloc(out.ids, out.count * sizeof *out.ids);
        if (smaller) out.ids = smaller;
    }
    *ids = out.ids;
    *count = out.count;
    return TC_OK;
}

void tc_tokenizer_free_ids(int32_t *ids) { free(ids); }

/* ---- decoding ----------------------------------------------------------- */

static tc_status decode_common(const tc_tokenizer *tok, const char *fn, const int32_t *ids, size_t count, bool repair,
                               char **text, size_t *len) {
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!text || !len) return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "%s: text and len must not be NULL", fn);
    *text = NULL;
    *len = 0;
    if (!ids && count > 0) return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "%s: ids is NULL with count %zu", fn, count);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return tc_fail(tok->ctx, TC_ERROR_ARGUMENT,
                           "%s: ids[%zu] = %d is out of range for a vocabulary of %d tokens (0..%d)", fn, i,
                           (int)ids[i], (int)tok->vocab_size, (int)tok->vocab_size - 1);
        total += token_length(tok, ids[i]);
    }
    unsigned char *bytes = malloc(total + 1);
    if (!bytes) return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu bytes", fn, total + 1);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        size_t l = token_length(tok, ids[i]);
        memcpy(bytes + at, token_data(tok, ids[i]), l);
        at += l;
    }
    bytes[total] = 0;
    size_t bad = total;
    if (repair) {
        for (size_t i = 0; i < total;) {
            if (bytes[i] < 0x80) {
                i++;
                continue;
            }
            uint32_t cp;
            size_t l = utf8_decode(bytes + i, total - i, &cp);
            if (cp == INVALID_CODEPOINT) {
                bad = i;
                break;
            }
            i += l;
        }
    }
    if (bad < total) {
        /* Each invalid subpart (at least one byte) becomes three bytes. */
        if (total > (SIZE_MAX - 1) / 3) {
            free(bytes);
            return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
        }
        unsigned char *fixed = malloc(3 * total + 1);
        if (!fixed) {
            free(bytes);
            return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu bytes", fn, 3 * total + 1);
        }
        memcpy(fixed, bytes, bad);
        size_t o = bad;
        for (size_t i = bad; i < total;) {
            uint32_t cp;
            size_t l = utf8_decode(bytes + i, total - i, &cp);
            if (cp == INVALID_CODEPOINT) {
                l = utf8_invalid_span(bytes + i, total - i);
                o += utf8_encode(0xFFFD, fixed + o);
            } else {
                memcpy(fixed + o, bytes + i, l);
                o += l;
            }
            i += l;
        }
        fixed[o] = 0;
        free(bytes);
        bytes = fixed;
        total = o;
    }
    *text = (char *)bytes;
    *len = total;
    return TC_OK;
}

tc_status tc_tokenizer_decode(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **text, size_t *len) {
    return decode_common(tok, "decode", ids, count, true, text, len);
}

tc_status tc_tokenizer_decode_bytes(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **bytes,
                                    size_t *len) {
    return decode_common(tok, "decode_bytes", ids, count, false, bytes, len);
}

void tc_tokenizer_free_text(char *text) { free(text); }

/* ---- character tokenizer ------------------------------------------------ */

typedef struct char_unit {
    unsigned char bytes[4];
    uint32_t len;
} char_unit;

static int compare_units(const void *a, const void *b) {
    const char_unit *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->bytes, y->bytes, n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

tc_status tc_char_tokenizer_new(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out) {
    static const char *const fn = "CharTokenizer.new";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!text && len > 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is NULL with len %zu", fn, len);
    if (len == 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is empty, so there are no characters", fn);
    const unsigned char *s = (const unsigned char *)text;
    bool seen_byte[256] = {false};
    u64_map seen;
    if (!u64_map_init(&seen, 256)) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    char_unit *units = NULL;
    size_t n_units = 0, capacity = 0;
    bool ok = true;
    for (size_t i = 0; i < len && ok;) {
        uint32_t cp;
        size_t l = s[i] < 0x80 ? 1 : utf8_decode(s + i, len - i, &cp);
        bool fresh;
        if (l == 1) {
            fresh = !seen_byte[s[i]];
            seen_byte[s[i]] = true;
        } else {
            bool found;
            int32_t *slot = u64_map_slot(&seen, char_key(s + i, l), &found);
            ok = slot != NULL;
            fresh = ok && !found;
        }
        if (ok && fresh) {
            ok = reserve((void **)&units, &capacity, n_units + 1, sizeof *units);
            if (ok) {
                memset(&units[n_units], 0, sizeof units[n_units]);
                memcpy(units[n_units].bytes, s + i, l);
                units[n_units++].len = (uint32_t)l;
            }
        }
        i += l;
    }
    u64_map_free(&seen);
    tc_tokenizer *tok = ok ? tokenizer_new(ctx, fn, TC_TOKENIZER_CHAR, false) : NULL;
    if (!tok) {
        free(units);
        return ok ? TC_ERROR_MEMORY : tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    }
    qsort(units, n_units, sizeof *units, compare_units);
    tok->vocab_size = (int32_t)n_units;
    tok->token_offset = malloc((n_units + 1) * sizeof *tok->token_offset);
    tok->token_bytes = malloc(4 * n_units);
    tc_status status = TC_OK;
    if (!tok->token_offset || !tok->token_bytes) {
        status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu characters", fn, n_units);
    } else {
        size_t at = 0;
        for (size_t u = 0; u < n_units; u++) {
            tok->token_offset[u] = at;
            memcpy(tok->token_bytes + at, units[u].bytes, units[u].len);
            at += units[u].len;
        }
        tok->token_offset[n_units] = at;
        status = tokenizer_index(tok, fn);
    }
    free(units);
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
}

/* ---- files -------------------------------------------------------------- */

/* Reads a whole regular file (no FIFO, device or directory; at most
 * MAX_TEXT_BYTES); the buffer gets a NUL after the data. */
static tc_status read_file(tc_context *ctx, const char *fn, const char *path, unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (!path) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: path must not be NULL", fn);
    return tc_file_read_all(ctx, fn, path, MAX_TEXT_BYTES, (char **)data, len);
}

/* Lines of a buffer, numbered from 1, without the line break ("\n" or
 * "\r\n"). */
typedef struct line_reader {
    const unsigned char *data;
    size_t len, at;
    int line;
} line_reader;

static bool next_line(line_reader *r, const unsigned char **start, size_t *len) {
    if (r->at >= r->len) return false;
    const unsigned char *s = r->data + r->at;
    const unsigned char *nl = memchr(s, '\n', r->len - r->at);
    size_t l = nl ? (size_t)(nl - s) : r->len - r->at;
    r->at += l + (nl ? 1 : 0);
    r->line++;
    if (l > 0 && s[l - 1] == '\r') l--;
    *start = s;
    *len = l;
    return true;
}

/* Writes bytes as a double-quoted string: printable ASCII and complete UTF-8
 * characters as they are, `"` and `\` escaped, other bytes as \xHH. */
static void write_quoted(FILE *f, const unsigned char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c >= 0x20 && c < 0x7F) {
            fputc((int)c, f);
            i++;
        } else {
            uint32_t cp;
            size_t l = c < 0x80 ? 1 : utf8_decode(s + i, len - i, &cp);
            if (l > 1 && cp != 0x85 && !(cp >= 0x2028 && cp <= 0x2029)) {
                fwrite(s + i, 1, l, f);
            } else {
                fprintf(f, "\\x%02x", c);
                l = 1;
            }
            i += l;
        }
    }
    fputc('"', f);
}

static int hex_digit(unsigned c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* Writes the text form:
 *   tricycle-tokenizer 1
 *   kind bpe|char
 *   split none|gpt2
 *   tokens N          then N lines `id "bytes"`, ids 0..N-1 in order
 *   merges M          then M lines `left right result`, in rank order
 *   end */
static void write_tokenizer(FILE *f, const tc_tokenizer *tok) {
    fprintf(f, "%s\n", FILE_MAGIC);
    fprintf(f, "kind %s\n", tc_tokenizer_kind_name(tok->kind));
    fprintf(f, "split %s\n", tok->gpt2_split ? "gpt2" : "none");
    fprintf(f, "tokens %d\n", (int)tok->vocab_size);
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        fprintf(f, "%d ", (int)id);
        write_quoted(f, token_data(tok, id), token_length(tok, id));
        fputc('\n', f);
    }
    fprintf(f, "merges %d\n", (int)tok->merge_count);
    for (int32_t r = 0; r < tok->merge_count; r++)
        fprintf(f, "%d %d %d\n", (int)tok->merges[3 * r], (int)tok->merges[3 * r + 1], (int)tok->merges[3 * r + 2]);
    fprintf(f, "end\n");
}

tc_status tc_tokenizer_save(const tc_tokenizer *tok, const char *path) {
    static const char *const fn = "save";
    if (!tok) return TC_ERROR_ARGUMENT;
    tc_context *ctx = tok->ctx;
    if (!path || !*path) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: path must not be NULL or empty", fn);
    char *text;
    size_t len;
    TC_TRY(tc_tokenizer_serialize(tok, &text, &len));
    tc_status status = tc_file_write_bytes_atomic(ctx, fn, path, text, len);
    free(text);
    return status;
}

tc_status tc_tokenizer_serialize(const tc_tokenizer *tok, char **text, size_t *len) {
    static const char *const fn = "serialize";
    if (!tok) return TC_ERROR_ARGUMENT;
    if (!text || !len) return tc_fail(tok->ctx, TC_ERROR_ARGUMENT, "%s: text and len must not be NULL", fn);
    *text = NULL;
    *len = 0;
    char *buffer = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buffer, &size);
    if (!f) return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    write_tokenizer(f, tok);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0) failed = true;
    if (failed) {
        free(buffer);
        return tc_fail(tok->ctx, TC_ERROR_MEMORY, "%s: out of memory writing %d tokens", fn, (int)tok->vocab_size);
    }
    *text = buffer;
    *len = size;
    return TC_OK;
}

typedef struct load_state {
    tc_context *ctx;
    const char *fn;
    const char *path;
    line_reader lines;
    const unsigned char *line;
    size_t line_len;
} load_state;

static tc_status load_error(load_state *st, const char *format, ...) __attribute__((format(printf, 2, 3)));

static tc_status load_error(load_state *st, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return tc_fail(st->ctx, TC_ERROR_FORMAT, "%s: %s:%d: %s", st->fn, st->path, st->lines.line, message);
}

static bool load_next(load_state *st) { return next_line(&st->lines, &st->line, &st->line_len); }

/* Parses a decimal int32 at s[*at] (no sign), advancing *at. */
static bool parse_int(const unsigned char *s, size_t len, size_t *at, int32_t *value) {
    size_t i = *at;
    int64_t v = 0;
    if (i >= len || s[i] < '0' || s[i] > '9') return false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i] - '0');
        if (v > INT32_MAX) return false;
        i++;
    }
    *value = (int32_t)v;
    *at = i;
    return true;
}

/* The line must be `keyword N`. */
static tc_status load_count(load_state *st, const char *keyword, int32_t *count) {
    size_t k = strlen(keyword);
    if (!load_next(st)) return load_error(st, "the file ends where `%s N` should be", keyword);
    size_t at = k + 1;
    if (st->line_len <= k + 1 || memcmp(st->line, keyword, k) != 0 || st->line[k] != ' ' ||
        !parse_int(st->line, st->line_len, &at, count) || at != st->line_len)
        return load_error(st, "expected `%s N`, found '%.*s'", keyword, (int)(st->line_len > 60 ? 60 : st->line_len),
                          (const char *)st->line);
    return TC_OK;
}

/* The line must be `keyword value` with value one of a, b; *which gets 0 or 1. */
static tc_status load_choice(load_state *st, const char *keyword, const char *a, const char *b, int *which) {
    if (!load_next(st)) return load_error(st, "the file ends where `%s` should be", keyword);
    size_t k = strlen(keyword);
    const char *options[2] = {a, b};
    for (int o = 0; o < 2; o++) {
        size_t l = strlen(options[o]);
        if (st->line_len == k + 1 + l && memcmp(st->line, keyword, k) == 0 && st->line[k] == ' ' &&
            memcmp(st->line + k + 1, options[o], l) == 0) {
            *which = o;
            return TC_OK;
        }
    }
    return load_error(st, "expected `%s %s` or `%s %s`, found '%.*s'", keyword, a, keyword, b,
                      (int)(st->line_len > 60 ? 60 : st->line_len), (const char *)st->line);
}

static tc_status load_tokenizer_text(load_state *st, tc_tokenizer **out) {
    if (!load_next(st) || st->line_len != strlen(FILE_MAGIC) || memcmp(st->line, FILE_MAGIC, st->line_len) != 0)
        return load_error(st, "not a tokenizer file: the first line should be `%s`", FILE_MAGIC);
    int kind, split;
    TC_TRY(load_choice(st, "kind", "bpe", "char", &kind));
    TC_TRY(load_choice(st, "split", "none", "gpt2", &split));
    int32_t n_tokens;
    TC_TRY(load_count(st, "tokens", &n_tokens));
    if ((size_t)n_tokens > st->lines.len / 4)
        return load_error(st, "%d tokens cannot fit in a file of %zu bytes", (int)n_tokens, st->lines.len);
    tc_tokenizer *tok = tokenizer_new(st->ctx, st->fn, kind ? TC_TOKENIZER_CHAR : TC_TOKENIZER_BPE, split == 1);
    if (!tok) return TC_ERROR_MEMORY;
    tc_status status = TC_OK;
    tok->token_offset = malloc(((size_t)n_tokens + 1) * sizeof *tok->token_offset);
    tok->token_bytes = malloc(st->lines.len + 1); /* the tokens' bytes cannot outnumber the file's */
    if (!tok->token_offset || !tok->token_bytes)
        status = tc_fail(st->ctx, TC_ERROR_MEMORY, "%s: out of memory for %d tokens", st->fn, (int)n_tokens);
    size_t at_bytes = 0;
    for (int32_t id = 0; id < n_tokens && status == TC_OK; id++) {
        if (!load_next(st)) {
            status = load_error(st, "the file ends after %d of %d tokens", (int)id, (int)n_tokens);
            break;
        }
        const unsigned char *s = st->line;
        size_t len = st->line_len, at = 0;
        int32_t number;
        if (!parse_int(s, len, &at, &number) || number != id || at + 1 >= len || s[at] != ' ' || s[at + 1] != '"') {
            status = load_error(st, "expected token %d as `%d \"bytes\"`, found '%.*s'", (int)id, (int)id,
                                (int)(len > 60 ? 60 : len), (const char *)s);
            break;
        }
        tok->token_offset[id] = at_bytes;
        at += 2;
        bool closed = false;
        while (at < len && status == TC_OK) {
            unsigned c = s[at++];
            if (c == '"') {
                closed = true;
                break;
            }
            if (c == '\\') {
                if (at < len && (s[at] == '"' || s[at] == '\\')) {
                    tok->token_bytes[at_bytes++] = s[at++];
                } else if (at + 2 < len && s[at] == 'x' && hex_digit(s[at + 1]) >= 0 && hex_digit(s[at + 2]) >= 0) {
                    tok->token_bytes[at_bytes++] = (unsigned char)(hex_digit(s[at + 1]) * 16 + hex_digit(s[at + 2]));
                    at += 3;
                } else {
                    status =
                        load_error(st, "bad escape in token %d at column %zu (use \\\", \\\\ or \\xHH)", (int)id, at);
                }
            } else if (c < 0x20 || c == 0x7F) {
                status = load_error(st, "control byte 0x%02x in token %d at column %zu (write it as \\x%02x)", c,
                                    (int)id, at, c);
            } else {
                tok->token_bytes[at_bytes++] = (unsigned char)c;
            }
        }
        if (status == TC_OK && (!closed || at != len))
            status = load_error(
                st, closed ? "unexpected text after the closing quote of token %d" : "token %d lacks its closing quote",
                (int)id);
        if (status == TC_OK && tok->token_offset[id] == at_bytes) status = load_error(st, "token %d is empty", (int)id);
    }
    if (status == TC_OK) {
        tok->vocab_size = n_tokens;
        tok->token_offset[n_tokens] = at_bytes;
        status = load_count(st, "merges", &tok->merge_count);
    }
    if (status == TC_OK && kind == 1 && tok->merge_count != 0)
        status = load_error(st, "a character tokenizer has no merges, found %d", (int)tok->merge_count);
    if (status == TC_OK && (size_t)tok->merge_count > st->lines.len / 6)
        status = load_error(st, "%d merges cannot fit in a file of %zu bytes", (int)tok->merge_count, st->lines.len);
    if (status == TC_OK && tok->merge_count > 0) {
        tok->merges = malloc(3 * (size_t)tok->merge_count * sizeof *tok->merges);
        if (!tok->merges)
            status =
                tc_fail(st->ctx, TC_ERROR_MEMORY, "%s: out of memory for %d merges", st->fn, (int)tok->merge_count);
    }
    for (int32_t r = 0; r < tok->merge_count && status == TC_OK; r++) {
        if (!load_next(st)) {
            status = load_error(st, "the file ends after %d of %d merges", (int)r, (int)tok->merge_count);
            break;
        }
        int32_t *m = &tok->merges[3 * r];
        size_t at = 0;
        bool ok = parse_int(st->line, st->line_len, &at, &m[0]);
        for (int k = 1; k < 3 && ok; k++) {
            ok = at < st->line_len && st->line[at] == ' ';
            at++;
            ok = ok && parse_int(st->line, st->line_len, &at, &m[k]);
        }
        if (!ok || at != st->line_len) {
            status = load_error(st, "expected merge %d as `LEFT RIGHT RESULT`, found '%.*s'", (int)r,
                                (int)(st->line_len > 60 ? 60 : st->line_len), (const char *)st->line);
            break;
        }
        for (int k = 0; k < 3 && status == TC_OK; k++) {
            if (m[k] >= n_tokens)
                status =
                    load_error(st, "merge %d names token %d, past the %d tokens", (int)r, (int)m[k], (int)n_tokens);
        }
        if (status != TC_OK) break;
        size_t l0 = token_length(tok, m[0]), l1 = token_length(tok, m[1]);
        if (token_length(tok, m[2]) != l0 + l1 || memcmp(token_data(tok, m[2]), token_data(tok, m[0]), l0) != 0 ||
            memcmp(token_data(tok, m[2]) + l0, token_data(tok, m[1]), l1) != 0)
            status = load_error(st, "merge %d: token %d is not token %d followed by token %d", (int)r, (int)m[2],
                                (int)m[0], (int)m[1]);
    }
    if (status == TC_OK && (!load_next(st) || st->line_len != 3 || memcmp(st->line, "end", 3) != 0))
        status = load_error(st, "expected `end` after the merges");
    while (status == TC_OK && load_next(st)) {
        if (st->line_len != 0) status = load_error(st, "unexpected text after `end`");
    }
    if (status == TC_OK) {
        char where[600];
        snprintf(where, sizeof where, "%s: '%s'", st->fn, st->path);
        status = tokenizer_index(tok, where);
    }
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
}

tc_status tc_tokenizer_load(tc_context *ctx, const char *path, tc_tokenizer **out) {
    static const char *const fn = "tokenizer.load";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    unsigned char *data;
    size_t len;
    TC_TRY(read_file(ctx, fn, path, &data, &len));
    load_state st = {ctx, fn, path, {data, len, 0, 0}, NULL, 0};
    tc_status status = load_tokenizer_text(&st, out);
    free(data);
    return status;
}

tc_status tc_tokenizer_deserialize(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out) {
    static const char *const fn = "tokenizer.deserialize";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!text && len > 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is NULL with len %zu", fn, len);
    load_state st = {ctx, fn, "<text>", {(const unsigned char *)text, len, 0, 0}, NULL, 0};
    return load_tokenizer_text(&st, out);
}

/* ---- GPT-2 files -------------------------------------------------------- */

/* GPT-2 writes each byte as one character: the printable bytes ! to ~,
 * U+00A1 to U+00AC and U+00AE to U+00FF as themselves, the other 68 bytes
 * as U+0100 onwards in byte order. */
#define GPT2_ALPHABET_END 0x144

static void gpt2_alphabet(int16_t byte_of[GPT2_ALPHABET_END]) {
    for (int cp = 0; cp < GPT2_ALPHABET_END; cp++) byte_of[cp] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_of[printable ? b : 256 + extra++] = (int16_t)b;
    }
}

typedef struct json_reader {
    tc_context *ctx;
    const char *fn;
    const char *path;
    const unsigned char *s;
    size_t n, at;
    int line;
    size_t line_start;
} json_reader;

static tc_status json_error_at(json_reader *r, size_t at, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static tc_status json_error_at(json_reader *r, size_t at, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return tc_fail(r->ctx, TC_ERROR_FORMAT, "%s: %s:%d:%zu: %s", r->fn, r->path, r->line,
                   at >= r->line_start ? at - r->line_start + 1 : 1, message);
}

static void json_skip_space(json_reader *r) {
    while (r->at < r->n) {
        unsigned c = r->s[r->at];
        if (c == '\n') {
            r->line++;
            r->line_start = r->at + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            break;
        }
        r->at++;
    }
}

static tc_status json_expect(json_reader *r, char c, const char *what) {
    json_skip_space(r);
    if (r->at >= r->n) return json_error_at(r, r->at, "the file ends where %s should be (truncated?)", what);
    if (r->s[r->at] != (unsigned char)c)
        return json_error_at(r, r->at, "expected %s, found '%c'", what,
                             r->s[r->at] >= 0x20 && r->s[r->at] < 0x7F ? r->s[r->at] : '?');
    r->at++;
    return TC_OK;
}

static int json_hex4(const unsigned char *s) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(s[k]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Reads a JSON string (the opening quote at r->at) as UTF-8 into *buffer. */
static tc_status json_string(json_reader *r, unsigned char **buffer, size_t *len, size_t *capacity) {
    size_t start = r->at;
    r->at++;
    *len = 0;
    for (;;) {
        if (r->at >= r->n) return json_error_at(r, start, "string not closed before the end of the file (truncated?)");
        if (!reserve((void **)buffer, capacity, *len + 4, 1))
            return tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory reading '%s'", r->fn, r->path);
        unsigned c = r->s[r->at];
        if (c == '"') {
            r->at++;
            return TC_OK;
        }
        if (c < 0x20) return json_error_at(r, r->at, "control byte 0x%02x inside a string (must be escaped)", c);
        if (c != '\\') {
            (*buffer)[(*len)++] = (unsigned char)c;
            r->at++;
            continue;
        }
        if (r->at + 1 >= r->n) return json_error_at(r, r->at, "the file ends inside an escape (truncated?)");
        unsigned e = r->s[r->at + 1];
        const char *simple = strchr("\"\\/bfnrt", (int)e);
        if (e != 0 && simple) {
            static const char replacement[] = "\"\\/\b\f\n\r\t";
            (*buffer)[(*len)++] = (unsigned char)replacement[simple - "\"\\/bfnrt"];
            r->at += 2;
            continue;
        }
        if (e != 'u') return json_error_at(r, r->at, "unknown escape '\\%c'", e >= 0x20 && e < 0x7F ? (int)e : '?');
        int unit = r->at + 6 <= r->n ? json_hex4(r->s + r->at + 2) : -1;
        if (unit < 0) return json_error_at(r, r->at, "\\u must be followed by four hex digits");
        uint32_t cp = (uint32_t)unit;
        size_t escape_at = r->at;
        r->at += 6;
        if (unit >= 0xDC00 && unit <= 0xDFFF)
            return json_error_at(r, escape_at, "\\u%04X is a low surrogate without a high surrogate before it", unit);
        if (unit >= 0xD800 && unit <= 0xDBFF) {
            int low =
                r->at + 6 <= r->n && r->s[r->at] == '\\' && r->s[r->at + 1] == 'u' ? json_hex4(r->s + r->at + 2) : -1;
            if (low < 0xDC00 || low > 0xDFFF)
                return json_error_at(r, escape_at, "\\u%04X is a high surrogate without a low surrogate after it",
                                     unit);
            cp = 0x10000 + (((uint32_t)unit - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
            r->at += 6;
        }
        *len += utf8_encode(cp, *buffer + *len);
    }
}

/* Turns a GPT-2 token string (UTF-8) into its bytes, in place; fails with
 * the offending character in *bad. */
static bool gpt2_token_bytes(const int16_t byte_of[GPT2_ALPHABET_END], unsigned char *s, size_t *len, uint32_t *bad) {
    size_t out = 0;
    for (size_t i = 0; i < *len;) {
        uint32_t cp;
        size_t l = utf8_decode(s + i, *len - i, &cp);
        if (cp >= GPT2_ALPHABET_END || byte_of[cp] < 0) {
            *bad = cp;
            return false;
        }
        s[out++] = (unsigned char)byte_of[cp];
        i += l;
    }
    *len = out;
    return true;
}

typedef struct vocab_entry {
    size_t offset, len; /* bytes in the pool */
    int32_t id;
    int line;
    size_t column;
} vocab_entry;

static void describe_character(uint32_t cp, char *out, size_t size) {
    if (cp == INVALID_CODEPOINT)
        snprintf(out, size, "a byte that is not valid UTF-8");
    else
        snprintf(out, size, "U+%04X", (unsigned)cp);
}

/* Parses vocab.json into entries whose bytes live in *pool. */
static tc_status parse_vocab_json(json_reader *r, const int16_t byte_of[GPT2_ALPHABET_END], vocab_entry **entries,
                                  size_t *count, unsigned char **pool) {
    size_t capacity = 0, pool_len = 0, pool_capacity = 0, key_capacity = 0, key_len = 0;
    unsigned char *key = NULL;
    tc_status status = json_expect(r, '{', "'{' (vocab.json holds one object of token: id)");
    json_skip_space(r);
    bool empty = status == TC_OK && r->at < r->n && r->s[r->at] == '}';
    if (empty) r->at++;
    while (status == TC_OK && !empty) {
        json_skip_space(r);
        if (r->at >= r->n) {
            status = json_error_at(r, r->at, "the file ends where a token string should be (truncated?)");
            break;
        }
        if (r->s[r->at] != '"') {
            status = json_error_at(r, r->at, "expected a token string in double quotes");
            break;
        }
        int line = r->line;
        size_t column = r->at - r->line_start + 1;
        status = json_string(r, &key, &key_len, &key_capacity);
        if (status != TC_OK) break;
        uint32_t bad;
        size_t text_len = key_len;
        if (!gpt2_token_bytes(byte_of, key, &key_len, &bad)) {
            char what[64];
            describe_character(bad, what, sizeof what);
            status = tc_fail(r->ctx, TC_ERROR_FORMAT,
                             "%s: %s:%d:%zu: token \"%.*s\" holds %s, which is not in GPT-2's byte alphabet", r->fn,
                             r->path, line, column, (int)(text_len > 40 ? 40 : text_len), (const char *)key, what);
            break;
        }
        if (key_len == 0) {
            status = json_error_at(r, r->at, "the empty string is not a token");
            break;
        }
        status = json_expect(r, ':', "':' after the token string");
        if (status != TC_OK) break;
        json_skip_space(r);
        size_t number_at = r->at;
        int32_t id;
        if (r->at < r->n && r->s[r->at] == '-') {
            status = json_error_at(r, number_at, "token ids must not be negative");
            break;
        }
        if (!parse_int(r->s, r->n, &r->at, &id)) {
            status = json_error_at(r, number_at,
                                   r->at < r->n ? "expected a token id (an integer below 2^31)"
                                                : "the file ends where a token id should be (truncated?)");
            break;
        }
        if (r->at < r->n && (r->s[r->at] == '.' || r->s[r->at] == 'e' || r->s[r->at] == 'E')) {
            status = json_error_at(r, number_at, "token id is not an integer");
            break;
        }
        if (!reserve((void **)entries, &capacity, *count + 1, sizeof **entries) ||
            !reserve((void **)pool, &pool_capacity, pool_len + key_len, 1)) {
            status = tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory reading '%s'", r->fn, r->path);
            break;
        }
        memcpy(*pool + pool_len, key, key_len);
        (*entries)[(*count)++] = (vocab_entry){pool_len, key_len, id, line, column};
        pool_len += key_len;
        json_skip_space(r);
        if (r->at >= r->n) {
            status = json_error_at(r, r->at, "the file ends inside the object (truncated?)");
        } else if (r->s[r->at] == ',') {
            r->at++;
        } else if (r->s[r->at] == '}') {
            r->at++;
            break;
        } else {
            status = json_error_at(r, r->at, "expected ',' or '}' after a token id");
        }
    }
    free(key);
    if (status != TC_OK) return status;
    json_skip_space(r);
    if (r->at < r->n) return json_error_at(r, r->at, "unexpected text after the closing '}'");
    if (*count == 0) return json_error_at(r, r->at, "the vocabulary is empty");
    return TC_OK;
}

static int compare_entry_ids(const void *a, const void *b) {
    const vocab_entry *x = a, *y = b;
    if (x->id != y->id) return (x->id > y->id) - (x->id < y->id);
    return (x->offset > y->offset) - (x->offset < y->offset); /* file order */
}

/* Fills tok's tokens from the text of vocab.json and indexes them by bytes
 * in *by_bytes. */
static tc_status gpt2_load_vocab(tc_tokenizer *tok, const char *fn, const char *path, const unsigned char *data,
                                 size_t len, const int16_t byte_of[GPT2_ALPHABET_END], bytes_map *by_bytes) {
    tc_context *ctx = tok->ctx;
    size_t bom = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    json_reader r = {ctx, fn, path, data, len, bom, 1, bom};
    vocab_entry *entries = NULL;
    size_t count = 0;
    unsigned char *pool = NULL;
    tc_status status = parse_vocab_json(&r, byte_of, &entries, &count, &pool);
    if (status == TC_OK) {
        qsort(entries, count, sizeof *entries, compare_entry_ids);
        for (size_t i = 0; i < count && status == TC_OK; i++) {
            if (i > 0 && entries[i].id == entries[i - 1].id)
                status = tc_fail(
                    ctx, TC_ERROR_FORMAT, "%s: %s:%d:%zu: id %d is used twice (also at line %d, column %zu)", fn, path,
                    entries[i].line, entries[i].column, (int)entries[i].id, entries[i - 1].line, entries[i - 1].column);
            else if ((size_t)entries[i].id != i)
                status = tc_fail(ctx, TC_ERROR_FORMAT,
                                 "%s: '%s': ids must run from 0 to %zu without gaps, but id %zu is missing", fn, path,
                                 count - 1, i);
        }
    }
    if (status == TC_OK) {
        tok->vocab_size = (int32_t)count;
        tok->token_offset = malloc((count + 1) * sizeof *tok->token_offset);
        size_t total = 0;
        for (size_t i = 0; i < count; i++) total += entries[i].len;
        tok->token_bytes = malloc(total ? total : 1);
        if (!tok->token_offset || !tok->token_bytes || !bytes_map_init(by_bytes, count))
            status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu tokens", fn, count);
    }
    if (status == TC_OK) {
        size_t at = 0;
        for (size_t i = 0; i < count; i++) {
            tok->token_offset[i] = at;
            memcpy(tok->token_bytes + at, pool + entries[i].offset, entries[i].len);
            at += entries[i].len;
        }
        tok->token_offset[count] = at;
        for (size_t i = 0; i < count && status == TC_OK; i++) {
            const unsigned char *s = token_data(tok, (int32_t)i);
            size_t l = token_length(tok, (int32_t)i);
            uint64_t hash = hash_bytes(s, l);
            int32_t e = bytes_map_find(by_bytes, s, l, hash);
            if (e != NO_ID) {
                const vocab_entry *first = &entries[by_bytes->entries[e].value];
                status = tc_fail(ctx, TC_ERROR_FORMAT,
                                 "%s: %s:%d:%zu: token with id %d repeats the token with id %d (line %d, column %zu)",
                                 fn, path, entries[i].line, entries[i].column, (int)i, (int)first->id, first->line,
                                 first->column);
            } else if (bytes_map_add(by_bytes, s, l, hash, (int32_t)i) == NO_ID) {
                status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu tokens", fn, count);
            }
        }
    }
    free(entries);
    free(pool);
    return status;
}

static tc_status gpt2_load_merges(tc_tokenizer *tok, const char *fn, const char *path, const unsigned char *data,
                                  size_t len, const int16_t byte_of[GPT2_ALPHABET_END], const bytes_map *by_bytes) {
    tc_context *ctx = tok->ctx;
    size_t bom = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    line_reader lines = {data, len, bom, 0};
    const unsigned char *line;
    size_t line_len;
    size_t capacity = 0, scratch_capacity = 0;
    unsigned char *scratch = NULL;
    u64_map seen = {NULL, NULL, 0, 0, 0};
    int *merge_lines = NULL;
    size_t lines_capacity = 0;
    tc_status status = TC_OK;
    if (!u64_map_init(&seen, 1024)) status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
    while (status == TC_OK && next_line(&lines, &line, &line_len)) {
        if (lines.line == 1 && line_len >= 8 && memcmp(line, "#version", 8) == 0) continue;
        if (line_len == 0) continue;
        const unsigned char *space = memchr(line, ' ', line_len);
        size_t left_len = space ? (size_t)(space - line) : 0;
        size_t right_len = space ? line_len - left_len - 1 : 0;
        if (!space || left_len == 0 || right_len == 0 || memchr(space + 1, ' ', right_len)) {
            status = tc_fail(ctx, TC_ERROR_FORMAT,
                             "%s: %s:%d: expected a merge `LEFT RIGHT` (two tokens, one space), found '%.*s'", fn, path,
                             lines.line, (int)(line_len > 60 ? 60 : line_len), (const char *)line);
            break;
        }
        if (!reserve((void **)&scratch, &scratch_capacity, 2 * line_len, 1)) {
            status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
            break;
        }
        int32_t ids[3];
        const unsigned char *parts[2] = {line, space + 1};
        size_t part_len[2] = {left_len, right_len};
        size_t joined = 0;
        for (int k = 0; k < 2 && status == TC_OK; k++) {
            unsigned char *bytes = scratch + line_len + joined;
            size_t l = part_len[k];
            memcpy(bytes, parts[k], l);
            uint32_t bad;
            if (!gpt2_token_bytes(byte_of, bytes, &l, &bad)) {
                char what[64];
                describe_character(bad, what, sizeof what);
                status = tc_fail(ctx, TC_ERROR_FORMAT,
                                 "%s: %s:%d: token \"%.*s\" holds %s, which is not in GPT-2's byte alphabet", fn, path,
                                 lines.line, (int)part_len[k], (const char *)parts[k], what);
                break;
            }
            ids[k] = bytes_map_find(by_bytes, bytes, l, hash_bytes(bytes, l));
            if (ids[k] == NO_ID)
                status = tc_fail(ctx, TC_ERROR_FORMAT, "%s: %s:%d: token \"%.*s\" is not in the vocabulary", fn, path,
                                 lines.line, (int)part_len[k], (const char *)parts[k]);
            memmove(scratch + joined, bytes, l);
            joined += l;
        }
        if (status != TC_OK) break;
        ids[2] = bytes_map_find(by_bytes, scratch, joined, hash_bytes(scratch, joined));
        if (ids[2] == NO_ID) {
            status =
                tc_fail(ctx, TC_ERROR_FORMAT, "%s: %s:%d: the merged token \"%.*s%.*s\" is not in the vocabulary", fn,
                        path, lines.line, (int)left_len, (const char *)line, (int)right_len, (const char *)space + 1);
            break;
        }
        bool found;
        int32_t *slot = u64_map_slot(&seen, pair_key(ids[0], ids[1]), &found);
        if (!slot ||
            !reserve((void **)&tok->merges, &capacity, 3 * ((size_t)tok->merge_count + 1), sizeof *tok->merges) ||
            !reserve((void **)&merge_lines, &lines_capacity, (size_t)tok->merge_count + 1, sizeof *merge_lines)) {
            status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
            break;
        }
        if (found) {
            status = tc_fail(ctx, TC_ERROR_FORMAT, "%s: %s:%d: merge '%.*s' repeats line %d", fn, path, lines.line,
                             (int)line_len, (const char *)line, merge_lines[*slot]);
            break;
        }
        *slot = tok->merge_count;
        merge_lines[tok->merge_count] = lines.line;
        memcpy(&tok->merges[3 * tok->merge_count], ids, sizeof ids);
        tok->merge_count++;
    }
    u64_map_free(&seen);
    free(merge_lines);
    free(scratch);
    return status;
}

tc_status tc_tokenizer_load_gpt2_memory(tc_context *ctx, const char *vocab_json, size_t vocab_len,
                                        const char *vocab_name, const char *merges_txt, size_t merges_len,
                                        const char *merges_name, tc_tokenizer **out) {
    static const char *const fn = "BPETokenizer.load_gpt2";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if ((!vocab_json && vocab_len) || (!merges_txt && merges_len) || !vocab_name || !merges_name)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: a text or a name is NULL (vocab %zu bytes, merges %zu bytes)", fn,
                       vocab_len, merges_len);
    int16_t byte_of[GPT2_ALPHABET_END];
    gpt2_alphabet(byte_of);
    tc_tokenizer *tok = tokenizer_new(ctx, fn, TC_TOKENIZER_BPE, true);
    if (!tok) return TC_ERROR_MEMORY;
    bytes_map by_bytes = {NULL, 0, NULL, 0, 0};
    tc_status status =
        gpt2_load_vocab(tok, fn, vocab_name, (const unsigned char *)vocab_json, vocab_len, byte_of, &by_bytes);
    if (status == TC_OK)
        status =
            gpt2_load_merges(tok, fn, merges_name, (const unsigned char *)merges_txt, merges_len, byte_of, &by_bytes);
    bytes_map_free(&by_bytes);
    if (status == TC_OK) {
        char where[600];
        snprintf(where, sizeof where, "%s: '%s'", fn, vocab_name);
        status = tokenizer_index(tok, where);
    }
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
}

tc_status tc_tokenizer_load_gpt2(tc_context *ctx, const char *vocab_json_path, const char *merges_txt_path,
                                 tc_tokenizer **out) {
    static const char *const fn = "BPETokenizer.load_gpt2";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!vocab_json_path || !merges_txt_path)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: vocab_json_path and merges_txt_path must not be NULL", fn);
    unsigned char *vocab, *merges;
    size_t vocab_len, merges_len;
    TC_TRY(read_file(ctx, fn, vocab_json_path, &vocab, &vocab_len));
    tc_status status = read_file(ctx, fn, merges_txt_path, &merges, &merges_len);
    if (status == TC_OK) {
        status = tc_tokenizer_load_gpt2_memory(ctx, (const char *)vocab, vocab_len, vocab_json_path,
                                               (const char *)merges, merges_len, merges_txt_path, out);
        free(merges);
    }
    free(vocab);
    return status;
}
