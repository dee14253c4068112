/*
 * utf8_test.c: src/utf8.h against definitions written here from scratch: a
 * character is well-formed when it is the shortest encoding of a code point
 * up to U+10FFFF that is not a surrogate. Every input of up to three bytes
 * is checked, and every input of four bytes over the bytes where the rules
 * change; those of up to two bytes and the four-byte ones also after eight
 * ASCII bytes (the word-at-a-time path).
 */
#include "utf8.h"

#include "check.h"

#include <stdlib.h>
#include <string.h>

/* The proper prefixes of every well-formed character: bit (k, bytes) is set
 * when the k bytes (1..3) begin a character longer than k. */
static unsigned char *prefixes[4];

static size_t reference_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    static const unsigned lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    size_t length = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t k = length - 1; k > 0; k--) {
        out[k] = (unsigned char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (unsigned char)(lead[length] | cp);
    return length;
}

static size_t prefix_index(const unsigned char *s, size_t k) {
    size_t index = 0;
    for (size_t i = 0; i < k; i++) index = index << 8 | s[i];
    return index;
}

static bool is_prefix(const unsigned char *s, size_t k) {
    size_t index = prefix_index(s, k);
    return prefixes[k][index / 8] >> (index % 8) & 1;
}

static void build_prefixes(void) {
    for (size_t k = 1; k <= 3; k++) prefixes[k] = calloc((size_t)1 << (8 * k - 3), 1);
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        unsigned char bytes[4];
        size_t length = reference_encode(cp, bytes);
        for (size_t k = 1; k < length; k++) {
            size_t index = prefix_index(bytes, k);
            prefixes[k][index / 8] |= (unsigned char)(1u << (index % 8));
        }
    }
}

/* The character at s[0..n): its length, or 0 when it is not well-formed. */
static size_t reference_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t length = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
    if (length == 0 || n < length) return 0;
    uint32_t value = length == 1 ? c : c & (0x7Fu >> length);
    for (size_t k = 1; k < length; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        value = value << 6 | (s[k] & 0x3Fu);
    }
    unsigned char shortest[4];
    if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF) || reference_encode(value, shortest) != length)
        return 0;
    *cp = value;
    return length;
}

static int mismatches;

static void check_input(const unsigned char *s, size_t n) {
    size_t invalid_at = SIZE_MAX;
    for (size_t i = 0; i < n;) {
        uint32_t want = 0, got;
        size_t length = reference_decode(s + i, n - i, &want);
        size_t got_length = tc_utf8_decode(s + i, n - i, &got);
        if (length ? got_length != length || got != want : got_length != 1 || got != TC_UTF8_INVALID) {
            if (mismatches++ < 10) CHECK(false, "decode at %zu of %zu bytes %02x..", i, n, s[i]);
        }
        if (length == 0) {
            size_t span = 1;
            for (size_t k = 1; k <= 3 && k <= n - i; k++)
                if (is_prefix(s + i, k)) span = k;
            if (tc_utf8_invalid_span(s + i, n - i) != span && mismatches++ < 10)
                CHECK(false, "invalid span at %zu of %zu bytes %02x..", i, n, s[i]);
            if (invalid_at == SIZE_MAX) invalid_at = i;
        }
        i += length ? length : 1;
    }
    if (tc_utf8_invalid_at(s, n) != invalid_at && mismatches++ < 10)
        CHECK(false, "invalid_at of %zu bytes %02x..", n, n ? s[0] : 0);
    size_t tail = 0;
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        if ((s[n - k] & 0xC0) == 0x80) continue;
        tail = is_prefix(s + n - k, k) ? k : 0;
        break;
    }
    if (tc_utf8_incomplete_tail(s, n) != tail && mismatches++ < 10)
        CHECK(false, "incomplete tail of %zu bytes ..%02x", n, n ? s[n - 1] : 0);
}

/* s and the same bytes after eight ASCII ones. */
static void check_both(const unsigned char *s, size_t n) {
    unsigned char shifted[12] = "abcdefgh";
    for (size_t i = 0; i < n; i++) shifted[8 + i] = s[i];
    check_input(s, n);
    check_input(shifted, n + 8);
}

int main(void) {
    build_prefixes();
    static const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                          0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    size_t e = sizeof edges;
    for (size_t a = 0; a < e; a++)
        for (size_t b = 0; b < e; b++)
            for (size_t c = 0; c < e; c++)
                for (size_t d = 0; d < e; d++) {
                    const unsigned char s[4] = {edges[a], edges[b], edges[c], edges[d]};
                    check_both(s, 4);
                }
    for (uint32_t x = 0; x < 1u << 24; x++) {
        const unsigned char s[3] = {(unsigned char)(x >> 16), (unsigned char)(x >> 8), (unsigned char)x};
        check_input(s, 3);
        if ((x & 0xFFFF) == 0) check_both(s, 1);
        if ((x & 0xFF) == 0) check_both(s, 2);
    }
    check_input(NULL, 0);
    CHECK(mismatches == 0, "%d mismatches", mismatches);
    /* Every code point goes there and back. */
    int round_trip_failures = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        unsigned char bytes[4], want[4];
        uint32_t back;
        size_t length = tc_utf8_encode(cp, bytes);
        if (length != reference_encode(cp, want) || memcmp(bytes, want, length) != 0 ||
            tc_utf8_decode(bytes, length, &back) != length || back != cp)
            round_trip_failures++;
    }
    CHECK(round_trip_failures == 0, "%d code points do not round-trip", round_trip_failures);
    /* What a stream holds back: the start of a character, never bytes that cannot become one. */
    CHECK(tc_utf8_incomplete_tail((const unsigned char *)"ab\xE2\x82", 4) == 2, "cut euro sign");
    CHECK(tc_utf8_incomplete_tail((const unsigned char *)"ab\xE2\x82\xAC", 5) == 0, "whole euro sign");
    CHECK(tc_utf8_incomplete_tail((const unsigned char *)"\xF0\x9F\x98", 3) == 3, "cut emoji");
    CHECK(tc_utf8_incomplete_tail((const unsigned char *)"a\xC0", 2) == 0, "a byte that starts nothing");
    CHECK(tc_utf8_incomplete_tail((const unsigned char *)"\xED\xA0", 2) == 0, "the start of a surrogate");
    for (size_t k = 1; k <= 3; k++) free(prefixes[k]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
