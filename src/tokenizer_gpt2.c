/*
 * tokenizer_gpt2.c: GPT-2's tokenizer files, vocab.json and merges.txt.
 */
#include "tokenizer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        *len += tc_utf8_encode(cp, *buffer + *len);
    }
}

/* Turns a GPT-2 token string (UTF-8) into its bytes, in place; fails with
 * the offending character in *bad. */
static bool gpt2_token_bytes(const int16_t byte_of[GPT2_ALPHABET_END], unsigned char *s, size_t *len, uint32_t *bad) {
    size_t out = 0;
    for (size_t i = 0; i < *len;) {
        uint32_t cp;
        size_t l = tc_utf8_decode(s + i, *len - i, &cp);
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
    if (cp == TC_UTF8_INVALID)
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
