/*
 * tokenizer_sections.c: the steps of Hugging Face's pipeline before BPE.
 * The added tokens are found first (the longest one starting at each
 * place, left to right); the text between them is a section, normalized
 * on its own (NFC; SentencePiece's space in front and "▁" for spaces, here
 * both written as " ", the bytes its tokens hold) and then encoded.
 */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* The id of the longest added token at s[i], or NO_ID; its length in *len. */
static int32_t added_token_at(const tc_tokenizer *tok, const unsigned char *s, size_t n, size_t i, size_t *len) {
    for (int32_t k = tok->special_first[s[i]]; k < tok->special_first[s[i] + 1]; k++) {
        int32_t id = tok->special_ids[k];
        size_t l = token_length(tok, id);
        if (l <= n - i && memcmp(token_data(tok, id), s + i, l) == 0) {
            *len = l;
            return id;
        }
    }
    return NO_ID;
}

/* " " + s with U+2581 written as " ", in a fresh buffer. */
static unsigned char *sentencepiece_text(const unsigned char *s, size_t n, size_t *out_len) {
    unsigned char *b = n < SIZE_MAX ? malloc(n + 1) : NULL;
    if (!b) return NULL;
    size_t o = 0;
    b[o++] = ' ';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0xE2 && i + 2 < n && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
            b[o++] = ' ';
            i += 2;
        } else {
            b[o++] = s[i];
        }
    }
    *out_len = o;
    return b;
}

/* The normalized sections of one text: the word cache keeps pointers into
 * them, so they live until the whole text is encoded. */
typedef struct kept_buffers {
    unsigned char **items;
    size_t count, capacity;
} kept_buffers;

static bool encode_one_section(const tc_tokenizer *tok, encode_state *st, kept_buffers *kept,
                               const unsigned char *s, size_t n, id_buffer *out) {
    if (n == 0) return true;
    for (int step = 0; step < 2; step++) {
        if (!(step == 0 ? tok->nfc : tok->sentencepiece)) continue;
        if (!reserve((void **)&kept->items, &kept->capacity, kept->count + 1, sizeof *kept->items)) return false;
        unsigned char *normal = NULL;
        if (step == 0 ? !tc_nfc(s, n, &normal, &n) : !(normal = sentencepiece_text(s, n, &n))) return false;
        kept->items[kept->count++] = normal;
        s = normal;
    }
    return tc_encode_section(tok, st, s, n, out);
}

tc_status tc_encode_sections(const tc_tokenizer *tok, const unsigned char *s, size_t len, id_buffer *out) {
    encode_state *st = tc_encode_state_new();
    kept_buffers kept = {NULL, 0, 0};
    bool ok = st != NULL;
    size_t start = 0;
    for (size_t i = 0; i < len && ok;) {
        size_t l;
        int32_t id = tok->special_count > 0 ? added_token_at(tok, s, len, i, &l) : NO_ID;
        if (id == NO_ID) {
            i++;
            continue;
        }
        ok = encode_one_section(tok, st, &kept, s + start, i - start, out) && id_buffer_reserve(out, 1);
        if (ok) out->ids[out->count++] = id;
        i += l;
        start = i;
    }
    ok = ok && encode_one_section(tok, st, &kept, s + start, len - start, out);
    for (size_t k = 0; k < kept.count; k++) free(kept.items[k]);
    free(kept.items);
    tc_encode_state_free(st);
    if (!ok) return tc_fail(tok->ctx, TC_ERROR_MEMORY, "encode: out of memory encoding %zu bytes", len);
    return TC_OK;
}
