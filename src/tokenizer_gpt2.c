/*
 * tokenizer_gpt2.c: GPT-2's tokenizer files, vocab.json and merges.txt.
 */
#include "tokenizer_internal.h"

#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2 writes each byte as one character: the printable bytes ! to ~,
 * U+00A1 to U+00AC and U+00AE to U+00FF as themselves, the other 68 bytes
 * as U+0100 onwards in byte order. */
void tc_gpt2_alphabet(int16_t byte_of[GPT2_ALPHABET_END]) {
    for (int cp = 0; cp < GPT2_ALPHABET_END; cp++) byte_of[cp] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_of[printable ? b : 256 + extra++] = (int16_t)b;
    }
}

/* Turns a GPT-2 token string (UTF-8) into its bytes in out (which may be s:
 * it is never longer), or only counts them when out is NULL; fails with
 * the offending character in *bad. */
bool tc_gpt2_token_bytes(const int16_t byte_of[GPT2_ALPHABET_END], const unsigned char *s, size_t len,
                             unsigned char *out, size_t *out_len, uint32_t *bad) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = tc_utf8_decode(s + i, len - i, &cp);
        if (cp >= GPT2_ALPHABET_END || byte_of[cp] < 0) {
            *bad = cp;
            return false;
        }
        if (out) out[n] = (unsigned char)byte_of[cp];
        n++;
        i += l;
    }
    *out_len = n;
    return true;
}

static void describe_character(uint32_t cp, char *out, size_t size) {
    if (cp == TC_UTF8_INVALID)
        snprintf(out, size, "a byte that is not valid UTF-8");
    else
        snprintf(out, size, "U+%04X", (unsigned)cp);
}

/* vocab.json's text (after a byte order mark), for messages that name a
 * place in it as line:column. */
typedef struct vocab_text {
    tc_context *ctx;
    const char *fn;
    const char *path;
    const unsigned char *s;
    size_t n;
} vocab_text;

/* Line and column (in bytes), both from 1, of byte `offset`. */
static void line_column(const vocab_text *v, size_t offset, int *line, size_t *column) {
    int l = 1;
    size_t line_start = 0;
    const unsigned char *p = v->s, *end = v->s + offset;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        l++;
        line_start = (size_t)(++p - v->s);
    }
    *line = l;
    *column = offset - line_start + 1;
}

static tc_status vocab_error(const vocab_text *v, size_t offset, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static tc_status vocab_error(const vocab_text *v, size_t offset, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    int line;
    size_t column;
    line_column(v, offset, &line, &column);
    return tc_fail(v->ctx, TC_ERROR_FORMAT, "%s: %s:%d:%zu: %s", v->fn, v->path, line, column, message);
}

static char printable(unsigned c) { return c >= 0x20 && c < 0x7F ? (char)c : '?'; }

/* The JSON reader's failure, in the words of this format. */
static tc_status vocab_json_failure(const vocab_text *v, const tc_json_error *e) {
    switch (e->problem) {
    case TC_JSON_OUT_OF_MEMORY:
        return tc_fail(v->ctx, TC_ERROR_MEMORY, "%s: out of memory reading '%s'", v->fn, v->path);
    case TC_JSON_ENDS_EARLY:
        if (e->string_offset != SIZE_MAX)
            return vocab_error(v, e->string_offset, "string not closed before the end of the file (truncated?)");
        return vocab_error(v, e->offset, "the file ends inside the object (truncated?)");
    case TC_JSON_TRAILING_TEXT: return vocab_error(v, e->offset, "unexpected text after the closing '}'");
    case TC_JSON_INVALID_UTF8: {
        int line;
        size_t column;
        line_column(v, e->offset, &line, &column);
        return vocab_error(v, e->string_offset, "a string holds a byte that is not valid UTF-8 (0x%02x at column %zu)",
                           v->s[e->offset], column);
    }
    case TC_JSON_MALFORMED: break;
    }
    return vocab_error(v, e->offset, "%s", e->message);
}

/* The id a member gives its token: a JSON integer from 0 to 2^31 - 1. */
static tc_status vocab_id(const vocab_text *v, const tc_json *value, int32_t *id) {
    if (v->s[value->offset] == '-') return vocab_error(v, value->offset, "token ids must not be negative");
    if (value->type == TC_JSON_DOUBLE) {
        size_t end = value->offset;
        while (end < v->n && v->s[end] >= '0' && v->s[end] <= '9') end++;
        bool fraction = end < v->n && (v->s[end] == '.' || v->s[end] == 'e' || v->s[end] == 'E');
        if (fraction) return vocab_error(v, value->offset, "token id is not an integer");
    }
    if (value->type != TC_JSON_INTEGER || value->as.integer > INT32_MAX)
        return vocab_error(v, value->offset, "expected a token id (an integer below 2^31)");
    *id = (int32_t)value->as.integer;
    return TC_OK;
}

/* Checks vocab.json's members (in file order: the first problem in the file
 * is the one reported), and gives each member's id and its token's length
 * in bytes. */
static tc_status vocab_members(const vocab_text *v, const tc_json *root, const int16_t byte_of[GPT2_ALPHABET_END],
                               int32_t *ids, size_t *lengths) {
    for (size_t m = 0; m < root->as.object.count; m++) {
        const tc_json_member *member = &root->as.object.members[m];
        const unsigned char *key = (const unsigned char *)member->key;
        uint32_t bad;
        if (!tc_gpt2_token_bytes(byte_of, key, member->key_length, NULL, &lengths[m], &bad)) {
            char what[64];
            describe_character(bad, what, sizeof what);
            return vocab_error(v, member->key_offset, "token \"%.*s\" holds %s, which is not in GPT-2's byte alphabet",
                               (int)(member->key_length > 40 ? 40 : member->key_length), member->key, what);
        }
        if (lengths[m] == 0) return vocab_error(v, member->key_offset, "the empty string is not a token");
        TC_TRY(vocab_id(v, &member->value, &ids[m]));
    }
    return TC_OK;
}

/* Ids must run from 0 to count - 1, each once. The first id (in id order)
 * that is used twice or missing is reported, as a sort by id would find it;
 * the members of ids 0..count-1 in id order land in *member_of. */
static tc_status vocab_ids_complete(const vocab_text *v, const tc_json *root, const int32_t *ids,
                                    int32_t *member_of) {
    size_t count = root->as.object.count;
    int32_t *second = malloc(count * sizeof *second);
    if (!second) return tc_fail(v->ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu tokens", v->fn, count);
    for (size_t i = 0; i < count; i++) member_of[i] = second[i] = NO_ID;
    for (size_t m = 0; m < count; m++) {
        size_t id = (size_t)ids[m];
        if (id >= count) continue; /* then some id below count is missing */
        if (member_of[id] == NO_ID) {
            member_of[id] = (int32_t)m;
        } else if (second[id] == NO_ID) {
            second[id] = (int32_t)m;
        }
    }
    tc_status status = TC_OK;
    for (size_t id = 0; id < count && status == TC_OK; id++) {
        if (member_of[id] == NO_ID) {
            status = tc_fail(v->ctx, TC_ERROR_FORMAT,
                             "%s: '%s': ids must run from 0 to %zu without gaps, but id %zu is missing", v->fn,
                             v->path, count - 1, id);
        } else if (second[id] != NO_ID) {
            int line;
            size_t column;
            line_column(v, root->as.object.members[member_of[id]].key_offset, &line, &column);
            status = vocab_error(v, root->as.object.members[second[id]].key_offset,
                                 "id %zu is used twice (also at line %d, column %zu)", id, line, column);
        }
    }
    free(second);
    return status;
}

/* Fills tok's tokens from the text of vocab.json (read by json.c, each
 * token's id checked here) and indexes them by bytes in *by_bytes. */
static tc_status gpt2_load_vocab(tc_tokenizer *tok, const char *fn, const char *path, const unsigned char *data,
                                 size_t len, const int16_t byte_of[GPT2_ALPHABET_END], bytes_map *by_bytes) {
    tc_context *ctx = tok->ctx;
    if (!data) data = (const unsigned char *)""; /* an empty text from memory */
    size_t bom = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    vocab_text v = {ctx, fn, path, data + bom, len - bom};
    size_t first = 0;
    while (first < v.n && (v.s[first] == ' ' || v.s[first] == '\t' || v.s[first] == '\n' || v.s[first] == '\r'))
        first++;
    if (first == v.n)
        return vocab_error(&v, first, "the file ends where '{' (vocab.json holds one object of token: id) should be "
                                      "(truncated?)");
    if (v.s[first] != '{')
        return vocab_error(&v, first, "expected '{' (vocab.json holds one object of token: id), found '%c'",
                           printable(v.s[first]));
    /* Keys repeated are tokens repeated, reported below with both ids. */
    const tc_json_options options = {0, true};
    tc_json *root;
    tc_json_error error;
    if (!tc_json_parse_with((const char *)v.s, v.n, &options, &root, &error)) return vocab_json_failure(&v, &error);
    size_t count = root->as.object.count;
    if (count == 0) {
        tc_json_free(root);
        return vocab_error(&v, v.n, "the vocabulary is empty");
    }
    int32_t *ids = malloc(count * sizeof *ids), *member_of = malloc(count * sizeof *member_of);
    size_t *lengths = malloc(count * sizeof *lengths);
    tc_status status = TC_OK;
    if (!ids || !member_of || !lengths)
        status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu tokens", fn, count);
    if (status == TC_OK) status = vocab_members(&v, root, byte_of, ids, lengths);
    if (status == TC_OK) status = vocab_ids_complete(&v, root, ids, member_of);
    if (status == TC_OK) {
        tok->vocab_size = (int32_t)count;
        tok->token_offset = malloc((count + 1) * sizeof *tok->token_offset);
        size_t total = 0;
        for (size_t m = 0; m < count; m++) total += lengths[m];
        tok->token_bytes = malloc(total ? total : 1);
        if (!tok->token_offset || !tok->token_bytes || !bytes_map_init(by_bytes, count))
            status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu tokens", fn, count);
    }
    if (status == TC_OK) {
        size_t at = 0;
        for (size_t id = 0; id < count; id++) {
            const tc_json_member *member = &root->as.object.members[member_of[id]];
            uint32_t bad;
            size_t l;
            tok->token_offset[id] = at;
            tc_gpt2_token_bytes(byte_of, (const unsigned char *)member->key, member->key_length, tok->token_bytes + at,
                             &l, &bad);
            at += l;
        }
        tok->token_offset[count] = at;
        for (size_t id = 0; id < count && status == TC_OK; id++) {
            const unsigned char *s = token_data(tok, (int32_t)id);
            size_t l = token_length(tok, (int32_t)id);
            uint64_t hash = hash_bytes(s, l);
            int32_t e = bytes_map_find(by_bytes, s, l, hash);
            if (e != NO_ID) {
                int32_t first_id = by_bytes->entries[e].value;
                int line;
                size_t column;
                line_column(&v, root->as.object.members[member_of[first_id]].key_offset, &line, &column);
                status = vocab_error(&v, root->as.object.members[member_of[id]].key_offset,
                                     "token with id %zu repeats the token with id %d (line %d, column %zu)", id,
                                     (int)first_id, line, column);
            } else if (bytes_map_add(by_bytes, s, l, hash, (int32_t)id) == NO_ID) {
                status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory for %zu tokens", fn, count);
            }
        }
    }
    free(ids);
    free(member_of);
    free(lengths);
    tc_json_free(root);
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
        if (!reserve((void **)&scratch, &scratch_capacity, line_len, 1)) {
            status = tc_fail(ctx, TC_ERROR_MEMORY, "%s: out of memory", fn);
            break;
        }
        int32_t ids[3];
        const unsigned char *parts[2] = {line, space + 1};
        size_t part_len[2] = {left_len, right_len};
        size_t joined = 0; /* the two tokens' bytes, one after the other, in scratch */
        for (int k = 0; k < 2 && status == TC_OK; k++) {
            unsigned char *bytes = scratch + joined;
            size_t l;
            uint32_t bad;
            if (!tc_gpt2_token_bytes(byte_of, parts[k], part_len[k], bytes, &l, &bad)) {
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
    tc_gpt2_alphabet(byte_of);
    tc_tokenizer *tok = tc_tokenizer_create(ctx, fn, TC_TOKENIZER_BPE, true);
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
        status = tc_tokenizer_index(tok, where);
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
    TC_TRY(tc_tokenizer_read_file(ctx, fn, vocab_json_path, &vocab, &vocab_len));
    tc_status status = tc_tokenizer_read_file(ctx, fn, merges_txt_path, &merges, &merges_len);
    if (status == TC_OK) {
        status = tc_tokenizer_load_gpt2_memory(ctx, (const char *)vocab, vocab_len, vocab_json_path,
                                               (const char *)merges, merges_len, merges_txt_path, out);
        free(merges);
    }
    free(vocab);
    return status;
}
