/*
 * tokenizer_hf.c: Hugging Face's tokenizer.json, for the BPE models it
 * holds in two families:
 *
 *   byte-level  (GPT-2, Llama 3, Qwen 2/3): tokens written in GPT-2's byte
 *               alphabet, a ByteLevel pre-tokenizer, alone (GPT-2's
 *               pattern) or after a Split by Llama 3's or Qwen's pattern;
 *               normalizer null or NFC; ignore_merges honoured.
 *   SentencePiece (Llama 2): no pre-tokenizer, the normalizer Prepend "▁" +
 *               Replace " " -> "▁", byte_fallback with the 256 <0xNN> tokens,
 *               and the decoder Replace "▁" -> " ", ByteFallback, Fuse,
 *               Strip one leading space.
 *
 * Added tokens are matched in the text before anything else. Tokens are
 * kept as the bytes they decode to ("▁" as " ", <0xNN> as the byte), so
 * decoding is concatenation. What is not one of these (another model, a
 * pattern, lstrip, dropout ...) is an error naming the field.
 */
#include "tokenizer_internal.h"

#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                          "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define SPIECE_UNDERLINE "\xE2\x96\x81"

typedef struct hf_reader {
    tc_context *ctx;
    const char *fn;
    const char *path;
} hf_reader;

static tc_status hf_error(const hf_reader *r, const char *format, ...) __attribute__((format(printf, 2, 3)));

static tc_status hf_error(const hf_reader *r, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return tc_fail(r->ctx, TC_ERROR_FORMAT, "%s: '%s': %s", r->fn, r->path, message);
}

/* Every key of the object must be in the NULL-terminated list. */
static tc_status check_keys(const hf_reader *r, const tc_json *object, const char *where,
                            const char *const *known) {
    for (size_t m = 0; m < object->as.object.count; m++) {
        const char *key = object->as.object.members[m].key;
        bool found = false;
        for (size_t k = 0; known[k] && !found; k++) found = strcmp(key, known[k]) == 0;
        if (!found) {
            char list[400] = "";
            size_t at = 0;
            for (size_t k = 0; known[k] && at < sizeof list; k++)
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", known[k]);
            return hf_error(r, "%s has the unknown field \"%.60s\" (known: %s)", where, key, list);
        }
    }
    return TC_OK;
}

static tc_status need(const hf_reader *r, const tc_json *value, tc_json_type type, const char *where) {
    if (!value) return hf_error(r, "%s is missing", where);
    if (value->type != type) /* the names come with their article */
        return hf_error(r, "%s must be %s, found %s", where, tc_json_type_name(type), tc_json_type_name(value->type));
    return TC_OK;
}

/* A string field equal to `expected`. */
static tc_status need_string(const hf_reader *r, const tc_json *object, const char *key, const char *where,
                             const char *expected) {
    const tc_json *v = tc_json_get(object, key);
    char what[128];
    snprintf(what, sizeof what, "%s.%s", where, key);
    TC_TRY(need(r, v, TC_JSON_STRING, what));
    if (v->as.string.length != strlen(expected) || memcmp(v->as.string.data, expected, v->as.string.length) != 0)
        return hf_error(r, "%s is \"%.60s\"; only \"%s\" is supported", what, v->as.string.data, expected);
    return TC_OK;
}

/* An optional boolean field: absent or null is `otherwise`. */
static tc_status get_bool(const hf_reader *r, const tc_json *object, const char *key, const char *where,
                          bool otherwise, bool *out) {
    const tc_json *v = tc_json_get(object, key);
    *out = otherwise;
    if (!v || v->type == TC_JSON_NULL) return TC_OK;
    if (v->type != TC_JSON_BOOL) return hf_error(r, "%s.%s must be a boolean or null", where, key);
    *out = v->as.boolean;
    return TC_OK;
}

/* A boolean field that must be absent, null or `value`. */
static tc_status bool_must_be(const hf_reader *r, const tc_json *object, const char *key, const char *where,
                              bool value) {
    bool b;
    TC_TRY(get_bool(r, object, key, where, value, &b));
    if (b != value)
        return hf_error(r, "%s.%s = %s is not supported (only %s)", where, key, b ? "true" : "false",
                        value ? "true" : "false");
    return TC_OK;
}

static const char *type_of(const tc_json *object) {
    const tc_json *t = tc_json_get(object, "type");
    return t && t->type == TC_JSON_STRING ? t->as.string.data : NULL;
}

static bool string_is(const tc_json *v, const char *s) {
    return v && v->type == TC_JSON_STRING && v->as.string.length == strlen(s) &&
           memcmp(v->as.string.data, s, v->as.string.length) == 0;
}

/* What the pipeline fields ask for. */
typedef struct hf_plan {
    bool byte_level, sentencepiece, nfc, ignore_merges;
    split_pattern pattern;
} hf_plan;

static tc_status read_byte_level(const hf_reader *r, const tc_json *p, const char *where, bool use_regex) {
    static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
    TC_TRY(check_keys(r, p, where, keys));
    TC_TRY(bool_must_be(r, p, "add_prefix_space", where, false));
    return bool_must_be(r, p, "use_regex", where, use_regex);
}

static tc_status read_pre_tokenizer(const hf_reader *r, const tc_json *p, hf_plan *plan) {
    if (!p || p->type == TC_JSON_NULL) return TC_OK;
    TC_TRY(need(r, p, TC_JSON_OBJECT, "pre_tokenizer"));
    const char *type = type_of(p);
    if (!type) return hf_error(r, "pre_tokenizer.type is missing");
    plan->byte_level = true;
    if (strcmp(type, "ByteLevel") == 0) {
        plan->pattern = SPLIT_GPT2;
        return read_byte_level(r, p, "pre_tokenizer", true);
    }
    if (strcmp(type, "Sequence") != 0)
        return hf_error(r, "pre_tokenizer.type \"%.60s\" is not supported (ByteLevel, or a Sequence of Split and "
                           "ByteLevel)", type);
    static const char *const keys[] = {"type", "pretokenizers", NULL};
    TC_TRY(check_keys(r, p, "pre_tokenizer", keys));
    const tc_json *list = tc_json_get(p, "pretokenizers");
    TC_TRY(need(r, list, TC_JSON_ARRAY, "pre_tokenizer.pretokenizers"));
    const tc_json *items = list->as.array.items;
    if (list->as.array.count != 2 || items[0].type != TC_JSON_OBJECT || items[1].type != TC_JSON_OBJECT ||
        !string_is(tc_json_get(&items[0], "type"), "Split") || !string_is(tc_json_get(&items[1], "type"), "ByteLevel"))
        return hf_error(r, "pre_tokenizer.pretokenizers must be [Split, ByteLevel] (%zu items found)",
                        list->as.array.count);
    const tc_json *split = &list->as.array.items[0];
    static const char *const split_keys[] = {"type", "pattern", "behavior", "invert", NULL};
    TC_TRY(check_keys(r, split, "pre_tokenizer.pretokenizers[0]", split_keys));
    TC_TRY(need_string(r, split, "behavior", "pre_tokenizer.pretokenizers[0]", "Isolated"));
    TC_TRY(bool_must_be(r, split, "invert", "pre_tokenizer.pretokenizers[0]", false));
    const tc_json *pattern = tc_json_get(split, "pattern");
    TC_TRY(need(r, pattern, TC_JSON_OBJECT, "pre_tokenizer.pretokenizers[0].pattern"));
    const tc_json *regex = tc_json_get(pattern, "Regex");
    TC_TRY(need(r, regex, TC_JSON_STRING, "pre_tokenizer.pretokenizers[0].pattern.Regex"));
    if (string_is(regex, LLAMA3_PATTERN)) {
        plan->pattern = SPLIT_LLAMA3;
    } else if (string_is(regex, QWEN2_PATTERN)) {
        plan->pattern = SPLIT_QWEN2;
    } else if (string_is(regex, GPT2_PATTERN)) {
        plan->pattern = SPLIT_GPT2;
    } else {
        return hf_error(r, "pre_tokenizer.pretokenizers[0].pattern.Regex \"%.80s\" is not a supported pattern "
                           "(GPT-2's, Llama 3's or Qwen's)", regex->as.string.data);
    }
    return read_byte_level(r, &list->as.array.items[1], "pre_tokenizer.pretokenizers[1]", false);
}

/* Only SentencePiece's pair: Prepend "▁", Replace " " -> "▁". */
static bool is_sentencepiece_normalizer(const tc_json *n) {
    const tc_json *list = tc_json_get(n, "normalizers");
    if (!string_is(tc_json_get(n, "type"), "Sequence") || !list || list->type != TC_JSON_ARRAY ||
        list->as.array.count != 2)
        return false;
    const tc_json *prepend = &list->as.array.items[0], *replace = &list->as.array.items[1];
    const tc_json *pattern = tc_json_get(replace, "pattern");
    return prepend->type == TC_JSON_OBJECT && replace->type == TC_JSON_OBJECT &&
           prepend->as.object.count == 2 && replace->as.object.count == 3 &&
           string_is(tc_json_get(prepend, "type"), "Prepend") &&
           string_is(tc_json_get(prepend, "prepend"), SPIECE_UNDERLINE) &&
           string_is(tc_json_get(replace, "type"), "Replace") && pattern && pattern->type == TC_JSON_OBJECT &&
           pattern->as.object.count == 1 && string_is(tc_json_get(pattern, "String"), " ") &&
           string_is(tc_json_get(replace, "content"), SPIECE_UNDERLINE);
}

static tc_status read_normalizer(const hf_reader *r, const tc_json *n, hf_plan *plan) {
    if (!n || n->type == TC_JSON_NULL) return TC_OK;
    TC_TRY(need(r, n, TC_JSON_OBJECT, "normalizer"));
    const char *type = type_of(n);
    if (!type) return hf_error(r, "normalizer.type is missing");
    if (strcmp(type, "NFC") == 0 && n->as.object.count == 1) {
        plan->nfc = true;
        return TC_OK;
    }
    if (is_sentencepiece_normalizer(n)) {
        plan->sentencepiece = true;
        return TC_OK;
    }
    return hf_error(r, "normalizer of type \"%.60s\" is not supported (null, NFC, or the Sequence Prepend \"▁\", "
                       "Replace \" \" -> \"▁\")", type);
}

static bool is_decoder_step(const tc_json *d, const char *type, size_t members) {
    return d->type == TC_JSON_OBJECT && d->as.object.count == members && string_is(tc_json_get(d, "type"), type);
}

/* The decoder must undo what the plan does: ByteLevel for byte-level
 * models, SentencePiece's four steps for those (then *strip is set). */
static tc_status read_decoder(const hf_reader *r, const tc_json *d, const hf_plan *plan, bool *strip) {
    *strip = false;
    if (!d || d->type == TC_JSON_NULL) return hf_error(r, "decoder is missing (null)");
    TC_TRY(need(r, d, TC_JSON_OBJECT, "decoder"));
    const char *type = type_of(d);
    if (!type) return hf_error(r, "decoder.type is missing");
    if (plan->byte_level) {
        if (strcmp(type, "ByteLevel") != 0)
            return hf_error(r, "decoder.type \"%.60s\" does not undo a ByteLevel pre-tokenizer (ByteLevel expected)",
                            type);
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        return check_keys(r, d, "decoder", keys);
    }
    const tc_json *list = tc_json_get(d, "decoders");
    bool ok = strcmp(type, "Sequence") == 0 && list && list->type == TC_JSON_ARRAY && list->as.array.count == 4;
    if (ok) {
        const tc_json *s = list->as.array.items;
        const tc_json *pattern = tc_json_get(&s[0], "pattern");
        const tc_json *start = tc_json_get(&s[3], "start"), *stop = tc_json_get(&s[3], "stop");
        ok = is_decoder_step(&s[0], "Replace", 3) && pattern && pattern->type == TC_JSON_OBJECT &&
             string_is(tc_json_get(pattern, "String"), SPIECE_UNDERLINE) &&
             string_is(tc_json_get(&s[0], "content"), " ") && is_decoder_step(&s[1], "ByteFallback", 1) &&
             is_decoder_step(&s[2], "Fuse", 1) && is_decoder_step(&s[3], "Strip", 4) &&
             string_is(tc_json_get(&s[3], "content"), " ") && start && start->type == TC_JSON_INTEGER &&
             start->as.integer == 1 && stop && stop->type == TC_JSON_INTEGER && stop->as.integer == 0;
    }
    if (!ok)
        return hf_error(r, "decoder of type \"%.60s\" is not supported for a SentencePiece model (the Sequence "
                           "Replace \"▁\" -> \" \", ByteFallback, Fuse, Strip 1 space)", type);
    *strip = true;
    return TC_OK;
}

/* "<0xNN>" -> NN, else -1. */
static int byte_token(const char *s, size_t len) {
    static const char digits[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(digits, s[3], 16), *lo = memchr(digits, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4]) return -1;
    return (int)((hi - digits) * 16 + (lo - digits));
}

/* The bytes a model token stands for, into out (never longer than the
 * string: "▁" is 3 bytes for 1, GPT-2's characters 1-2 bytes for 1). */
static tc_status token_bytes_of(const hf_reader *r, const hf_plan *plan, const int16_t *byte_of,
                                const tc_json_member *m, unsigned char *out, size_t *len, int *byte) {
    const unsigned char *s = (const unsigned char *)m->key;
    *byte = -1;
    if (plan->byte_level) {
        uint32_t bad;
        if (!tc_gpt2_token_bytes(byte_of, s, m->key_length, out, len, &bad))
            return hf_error(r, "model.vocab: token \"%.40s\" holds U+%04X, which is not in the byte-level alphabet",
                            m->key, (unsigned)bad);
        return TC_OK;
    }
    *byte = byte_token(m->key, m->key_length);
    if (*byte >= 0) {
        out[0] = (unsigned char)*byte;
        *len = 1;
        return TC_OK;
    }
    size_t o = 0;
    for (size_t i = 0; i < m->key_length; i++) {
        if (i + 2 < m->key_length && memcmp(s + i, SPIECE_UNDERLINE, 3) == 0) {
            out[o++] = ' ';
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    *len = o;
    return TC_OK;
}

/* An id field: an integer in 0 .. 2^31 - 2. */
static tc_status read_id(const hf_reader *r, const tc_json *v, const char *where, const char *name, int32_t *id) {
    if (!v || v->type != TC_JSON_INTEGER || v->as.integer < 0 || v->as.integer >= INT32_MAX)
        return hf_error(r, "%s: %s must be an integer id from 0 to %d", where, name, INT32_MAX - 1);
    *id = (int32_t)v->as.integer;
    return TC_OK;
}

typedef struct hf_tokens {
    const char **text; /* by id: the string in the file, NULL while unset */
    size_t *text_len;
    bool *added;
    int32_t count;
} hf_tokens;

static tc_status read_added_tokens(const hf_reader *r, const tc_json *list, int32_t *max_id) {
    if (!list) return TC_OK;
    TC_TRY(need(r, list, TC_JSON_ARRAY, "added_tokens"));
    static const char *const keys[] = {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special",
                                       NULL};
    for (size_t k = 0; k < list->as.array.count; k++) {
        const tc_json *a = &list->as.array.items[k];
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", k);
        TC_TRY(need(r, a, TC_JSON_OBJECT, where));
        TC_TRY(check_keys(r, a, where, keys));
        int32_t id = 0;
        TC_TRY(read_id(r, tc_json_get(a, "id"), where, "id", &id));
        const tc_json *content = tc_json_get(a, "content");
        char what[80];
        snprintf(what, sizeof what, "%s.content", where);
        TC_TRY(need(r, content, TC_JSON_STRING, what));
        if (content->as.string.length == 0) return hf_error(r, "%s.content is empty", where);
        TC_TRY(bool_must_be(r, a, "single_word", where, false));
        TC_TRY(bool_must_be(r, a, "lstrip", where, false));
        TC_TRY(bool_must_be(r, a, "rstrip", where, false));
        if (id > *max_id) *max_id = id;
    }
    return TC_OK;
}

static tc_status read_model_fields(const hf_reader *r, const tc_json *model, hf_plan *plan) {
    TC_TRY(need(r, model, TC_JSON_OBJECT, "model"));
    const char *type = type_of(model);
    if (!type) return hf_error(r, "model.type is missing");
    if (strcmp(type, "BPE") != 0) return hf_error(r, "model.type \"%.60s\" is not supported (only BPE)", type);
    static const char *const keys[] = {"type", "dropout", "unk_token", "continuing_subword_prefix",
                                       "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges",
                                       "vocab", "merges", NULL};
    TC_TRY(check_keys(r, model, "model", keys));
    const tc_json *dropout = tc_json_get(model, "dropout");
    if (dropout && dropout->type != TC_JSON_NULL) return hf_error(r, "model.dropout is not supported (null only)");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const tc_json *v = tc_json_get(model, affixes[k]);
        if (v && v->type != TC_JSON_NULL && !(v->type == TC_JSON_STRING && v->as.string.length == 0))
            return hf_error(r, "model.%s is not supported (null or \"\" only)", affixes[k]);
    }
    bool fallback;
    TC_TRY(get_bool(r, model, "byte_fallback", "model", false, &fallback));
    TC_TRY(get_bool(r, model, "ignore_merges", "model", false, &plan->ignore_merges));
    if (plan->sentencepiece && !fallback)
        return hf_error(r, "model.byte_fallback must be true for a SentencePiece model (unknown tokens are not "
                           "supported)");
    if (plan->byte_level && fallback) return hf_error(r, "model.byte_fallback = true with a ByteLevel pre-tokenizer");
    return TC_OK;
}

/* Fills tok from the parsed file. */
static tc_status build(const hf_reader *r, const tc_json *root, tc_tokenizer *tok) {
    static const char *const keys[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                                       "pre_tokenizer", "post_processor", "decoder", "model", NULL};
    TC_TRY(need(r, root, TC_JSON_OBJECT, "the file (one JSON object)"));
    TC_TRY(check_keys(r, root, "the top level", keys));
    static const char *const unused[] = {"truncation", "padding"};
    for (int k = 0; k < 2; k++) {
        const tc_json *v = tc_json_get(root, unused[k]);
        if (v && v->type != TC_JSON_NULL) return hf_error(r, "%s is not supported (null only)", unused[k]);
    }
    hf_plan plan = {false, false, false, false, SPLIT_NONE};
    TC_TRY(read_pre_tokenizer(r, tc_json_get(root, "pre_tokenizer"), &plan));
    TC_TRY(read_normalizer(r, tc_json_get(root, "normalizer"), &plan));
    if (plan.sentencepiece && plan.byte_level)
        return hf_error(r, "normalizer: SentencePiece's spaces with a ByteLevel pre-tokenizer are not supported");
    if (!plan.sentencepiece && !plan.byte_level)
        return hf_error(r, "pre_tokenizer is null and the normalizer is not SentencePiece's: neither a byte-level "
                           "nor a SentencePiece BPE");
    const tc_json *model = tc_json_get(root, "model");
    TC_TRY(read_model_fields(r, model, &plan));
    bool strip;
    TC_TRY(read_decoder(r, tc_json_get(root, "decoder"), &plan, &strip));
    const tc_json *vocab = tc_json_get(model, "vocab"), *merges = tc_json_get(model, "merges");
    TC_TRY(need(r, vocab, TC_JSON_OBJECT, "model.vocab"));
    TC_TRY(need(r, merges, TC_JSON_ARRAY, "model.merges"));
    const tc_json *added = tc_json_get(root, "added_tokens");
    int32_t max_id = -1;
    TC_TRY(read_added_tokens(r, added, &max_id));
    size_t n_vocab = vocab->as.object.count;
    for (size_t m = 0; m < n_vocab; m++) {
        int32_t id = 0;
        char where[80];
        snprintf(where, sizeof where, "model.vocab \"%.40s\"", vocab->as.object.members[m].key);
        TC_TRY(read_id(r, &vocab->as.object.members[m].value, where, "its id", &id));
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return hf_error(r, "model.vocab is empty");
    int32_t count = max_id + 1;
    if ((size_t)count > n_vocab + (added ? added->as.array.count : 0))
        return hf_error(r, "ids run up to %d but there are only %zu tokens: some ids are missing", (int)max_id,
                        n_vocab + (added ? added->as.array.count : 0));
    const tc_json_member **by_id = calloc((size_t)count, sizeof *by_id);
    const tc_json **added_by_id = calloc((size_t)count, sizeof *added_by_id);
    tok->token_offset = malloc(((size_t)count + 1) * sizeof *tok->token_offset);
    bytes_map by_text = {NULL, 0, NULL, 0, 0};
    if (!by_id || !added_by_id || !tok->token_offset || !bytes_map_init(&by_text, n_vocab)) {
        free(by_id);
        free(added_by_id);
        bytes_map_free(&by_text);
        return tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory for %d tokens", r->fn, (int)count);
    }
    tc_status status = TC_OK;
    size_t total = 0;
    for (size_t m = 0; m < n_vocab && status == TC_OK; m++) {
        const tc_json_member *member = &vocab->as.object.members[m];
        int32_t id = (int32_t)member->value.as.integer;
        if (by_id[id])
            status = hf_error(r, "model.vocab: id %d is given to both \"%.40s\" and \"%.40s\"", (int)id,
                              by_id[id]->key, member->key);
        by_id[id] = member;
        total += member->key_length;
        if (status == TC_OK &&
            bytes_map_add(&by_text, (const unsigned char *)member->key, member->key_length,
                          hash_bytes((const unsigned char *)member->key, member->key_length), id) == NO_ID)
            status = tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory", r->fn);
    }
    int32_t n_special = 0;
    for (size_t k = 0; added && k < added->as.array.count && status == TC_OK; k++) {
        const tc_json *a = &added->as.array.items[k];
        int32_t id = (int32_t)tc_json_get(a, "id")->as.integer;
        const tc_json *content = tc_json_get(a, "content");
        if (added_by_id[id]) {
            status = hf_error(r, "added_tokens: id %d is given twice", (int)id);
        } else if (by_id[id] && (by_id[id]->key_length != content->as.string.length ||
                                 memcmp(by_id[id]->key, content->as.string.data, by_id[id]->key_length) != 0)) {
            status = hf_error(r, "added_tokens[%zu]: id %d is \"%.40s\" in model.vocab but \"%.40s\" here", k,
                              (int)id, by_id[id]->key, content->as.string.data);
        }
        added_by_id[id] = content;
        total += content->as.string.length;
        n_special++;
    }
    for (int32_t id = 0; id < count && status == TC_OK; id++) {
        if (!by_id[id] && !added_by_id[id]) status = hf_error(r, "no token has id %d (ids must run from 0 to %d)",
                                                              (int)id, (int)max_id);
    }
    int16_t byte_of[GPT2_ALPHABET_END];
    tc_gpt2_alphabet(byte_of);
    if (status == TC_OK) {
        tok->token_bytes = malloc(total + 1);
        tok->special_ids = malloc(((size_t)n_special + 1) * sizeof *tok->special_ids);
        if (!tok->token_bytes || !tok->special_ids)
            status = tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory for %d tokens", r->fn, (int)count);
    }
    size_t at = 0;
    for (int32_t id = 0; id < count && status == TC_OK; id++) {
        tok->token_offset[id] = at;
        size_t len;
        if (added_by_id[id]) {
            len = added_by_id[id]->as.string.length;
            memcpy(tok->token_bytes + at, added_by_id[id]->as.string.data, len);
            tok->special_ids[tok->special_count++] = id;
        } else {
            int byte;
            status = token_bytes_of(r, &plan, byte_of, by_id[id], tok->token_bytes + at, &len, &byte);
            if (byte >= 0) {
                if (tok->byte_id[byte] != NO_ID)
                    status = hf_error(r, "model.vocab: ids %d and %d are both the byte token <0x%02X>",
                                      (int)tok->byte_id[byte], (int)id, byte);
                tok->byte_id[byte] = id;
            }
        }
        if (status == TC_OK && len == 0) status = hf_error(r, "model.vocab: token %d is empty", (int)id);
        at += len;
    }
    if (status == TC_OK) {
        tok->token_offset[count] = at;
        tok->vocab_size = count;
        size_t n_merges = merges->as.array.count;
        if (n_merges > (size_t)INT32_MAX / 3) status = hf_error(r, "model.merges: %zu merges are too many", n_merges);
        tok->merges = status == TC_OK ? malloc((3 * n_merges + 1) * sizeof *tok->merges) : NULL;
        if (status == TC_OK && !tok->merges)
            status = tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu merges", r->fn, n_merges);
        char *joined = NULL;
        size_t joined_capacity = 0;
        for (size_t k = 0; k < n_merges && status == TC_OK; k++) {
            const tc_json *m = &merges->as.array.items[k];
            const char *parts[2] = {"", ""};
            size_t part_len[2] = {0, 0};
            if (m->type == TC_JSON_STRING) {
                const char *space = memchr(m->as.string.data, ' ', m->as.string.length);
                parts[0] = m->as.string.data;
                part_len[0] = space ? (size_t)(space - parts[0]) : 0;
                parts[1] = space ? space + 1 : "";
                part_len[1] = space ? m->as.string.length - part_len[0] - 1 : 0;
                if (!space || part_len[0] == 0 || part_len[1] == 0 || memchr(parts[1], ' ', part_len[1]))
                    status = hf_error(r, "model.merges[%zu] \"%.60s\" is not `LEFT RIGHT` (two tokens, one space)", k,
                                      m->as.string.data);
            } else if (m->type == TC_JSON_ARRAY && m->as.array.count == 2 &&
                       m->as.array.items[0].type == TC_JSON_STRING && m->as.array.items[1].type == TC_JSON_STRING) {
                for (int p = 0; p < 2; p++) {
                    parts[p] = m->as.array.items[p].as.string.data;
                    part_len[p] = m->as.array.items[p].as.string.length;
                }
            } else {
                status = hf_error(r, "model.merges[%zu] must be a string `LEFT RIGHT` or a pair of strings, found %s",
                                  k, tc_json_type_name(m->type));
            }
            if (status != TC_OK) break;
            if (!reserve((void **)&joined, &joined_capacity, part_len[0] + part_len[1] + 1, 1)) {
                status = tc_fail(r->ctx, TC_ERROR_MEMORY, "%s: out of memory", r->fn);
                break;
            }
            memcpy(joined, parts[0], part_len[0]);
            memcpy(joined + part_len[0], parts[1], part_len[1]);
            int32_t *triple = &tok->merges[3 * k];
            const unsigned char *keys3[3] = {(const unsigned char *)parts[0], (const unsigned char *)parts[1],
                                             (const unsigned char *)joined};
            size_t lens3[3] = {part_len[0], part_len[1], part_len[0] + part_len[1]};
            for (int p = 0; p < 3 && status == TC_OK; p++) {
                int32_t e = bytes_map_find(&by_text, keys3[p], lens3[p], hash_bytes(keys3[p], lens3[p]));
                if (e == NO_ID)
                    status = hf_error(r, "model.merges[%zu]: %s \"%.*s\" is not in model.vocab", k,
                                      p == 2 ? "the merged token" : "token", (int)(lens3[p] > 60 ? 60 : lens3[p]),
                                      (const char *)keys3[p]);
                else
                    triple[p] = by_text.entries[e].value;
            }
            tok->merge_count = (int32_t)k + (status == TC_OK);
        }
        free(joined);
    }
    free(by_id);
    free(added_by_id);
    bytes_map_free(&by_text);
    if (status != TC_OK) return status;
    tok->pattern = plan.pattern;
    tok->gpt2_split = plan.pattern == SPLIT_GPT2;
    tok->nfc = plan.nfc;
    tok->sentencepiece = plan.sentencepiece;
    tok->ignore_merges = plan.ignore_merges;
    tok->merge_each = true;
    tok->strip_space = strip;
    if (plan.sentencepiece) {
        for (int b = 0; b < 256; b++) {
            if (tok->byte_id[b] == NO_ID) return hf_error(r, "model.vocab has no byte token <0x%02X>", b);
        }
    }
    return TC_OK;
}

tc_status tc_tokenizer_load_hf_memory(tc_context *ctx, const char *json, size_t len, const char *name,
                                      tc_tokenizer **out) {
    static const char *const fn = "tokenizer.load_hf";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if ((!json && len > 0) || !name)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: the text (%zu bytes) or its name is NULL", fn, len);
    hf_reader r = {ctx, fn, name};
    tc_json *root;
    tc_json_error error;
    if (!tc_json_parse_with(json ? json : "", len, NULL, &root, &error)) {
        if (error.problem == TC_JSON_OUT_OF_MEMORY) return tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
        return hf_error(&r, "not valid JSON at byte %zu: %s", error.offset, error.message);
    }
    tc_tokenizer *tok = tc_tokenizer_create(ctx, fn, TC_TOKENIZER_BPE, false);
    tc_status status = tok ? build(&r, root, tok) : TC_ERROR_MEMORY;
    tc_json_free(root);
    return tc_tokenizer_finish(tok, status, fn, name, out);
}

static tc_status parse_hf(tc_context *ctx, const char *fn, const char *text, size_t len, const char *name,
                          tc_tokenizer **out) {
    (void)fn; /* tc_tokenizer_load_hf_memory's own name is the same */
    return tc_tokenizer_load_hf_memory(ctx, text, len, name, out);
}

tc_status tc_tokenizer_load_hf(tc_context *ctx, const char *path, tc_tokenizer **out) {
    return tc_tokenizer_load_file(ctx, "tokenizer.load_hf", path, parse_hf, out);
}
