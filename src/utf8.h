/*
 * utf8.h: the engine's one UTF-8 decoder and the helpers built on it, for
 * the tokenizers, the JSON reader, batch encoding and the binding.
 *
 * Well-formed means what Unicode means: no overlong forms, no surrogates,
 * nothing past U+10FFFF. Everything here is static inline because the
 * tokenizer's inner loops decode one character at a time.
 */
#ifndef TRICYCLE_UTF8_H
#define TRICYCLE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The code point tc_utf8_decode gives a byte that starts no well-formed character. */
#define TC_UTF8_INVALID UINT32_MAX

/* Whether c can start a character; if so, how many continuation bytes it
 * asks for (0 for ASCII) and the range its first continuation byte must be
 * in (narrower after E0, ED, F0 and F4, which is what rules out overlong
 * forms, surrogates and code points past U+10FFFF). */
static inline bool tc_utf8_lead(unsigned c, size_t *more, unsigned *low, unsigned *high) {
    *low = 0x80;
    *high = 0xBF;
    if (c < 0x80) {
        *more = 0;
    } else if (c >= 0xC2 && c <= 0xDF) {
        *more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        *more = 2;
        if (c == 0xE0) *low = 0xA0;
        if (c == 0xED) *high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        *more = 3;
        if (c == 0xF0) *low = 0x90;
        if (c == 0xF4) *high = 0x8F;
    } else {
        return false;
    }
    return true;
}

/* Length (1..4) of the character that starts s[0..n), n >= 1, with its code
 * point in *cp. A byte that does not start a complete, well-formed
 * character is a character of length 1 with code point TC_UTF8_INVALID. */
static inline size_t tc_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t more;
    unsigned low, high;
    if (!tc_utf8_lead(c, &more, &low, &high) || n <= more || s[1] < low || s[1] > high) {
        *cp = TC_UTF8_INVALID;
        return 1;
    }
    uint32_t value = (c & (0x3Fu >> more)) << 6 | (s[1] & 0x3Fu);
    for (size_t k = 2; k <= more; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            *cp = TC_UTF8_INVALID;
            return 1;
        }
        value = value << 6 | (s[k] & 0x3Fu);
    }
    *cp = value;
    return more + 1;
}

/* Bytes of the maximal invalid subpart at s[0..n) (where tc_utf8_decode
 * found no character): a lead byte and the continuation bytes that still
 * fit it. Replacing each such subpart by one U+FFFD is what Unicode
 * recommends. */
static inline size_t tc_utf8_invalid_span(const unsigned char *s, size_t n) {
    size_t more;
    unsigned low, high;
    if (!tc_utf8_lead(s[0], &more, &low, &high) || more == 0 || n < 2 || s[1] < low || s[1] > high) return 1;
    size_t k = 2;
    while (k <= more && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

/* Writes code point cp (at most U+10FFFF, not a surrogate) to out; returns
 * its length. */
static inline size_t tc_utf8_encode(uint32_t cp, unsigned char *out) {
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

/* Offset of the first byte of s[0..n) that starts no well-formed character,
 * or SIZE_MAX when all of it is well-formed. ASCII goes eight bytes at a
 * time: corpora are mostly ASCII. */
static inline size_t tc_utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, sizeof word);
            if (word & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t length = tc_utf8_decode(s + i, n - i, &cp);
        if (cp == TC_UTF8_INVALID) return i;
        i += length;
    }
    return SIZE_MAX;
}

/* How many bytes at the end of s[0..n) are the start of a character cut
 * short (0 to 3): a lead byte and continuation bytes that still fit it,
 * fewer than it asks for. A stream of bytes can hold them back until the
 * rest arrives; bytes that can never become a character are not held. */
static inline size_t tc_utf8_incomplete_tail(const unsigned char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned c = s[n - back];
        if ((c & 0xC0) == 0x80) continue;
        size_t more;
        unsigned low, high;
        if (!tc_utf8_lead(c, &more, &low, &high) || back > more) return 0;
        if (back >= 2 && (s[n - back + 1] < low || s[n - back + 1] > high)) return 0;
        return back;
    }
    return 0;
}

#endif
