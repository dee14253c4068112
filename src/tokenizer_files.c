/*
 * tokenizer_files.c: our tokenizer file (a text format): save, load,
 * serialize, deserialize.
 */
#include "tokenizer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAGIC "tricycle-tokenizer 1"

/* Reads a whole regular file (no FIFO, device or directory; at most
 * MAX_TEXT_BYTES); the buffer gets a NUL after the data. */
tc_status tc_tokenizer_read_file(tc_context *ctx, const char *fn, const char *path, unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (!path) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: path must not be NULL", fn);
    return tc_file_read_all(ctx, fn, path, MAX_TEXT_BYTES, (char **)data, len);
}

tc_status tc_tokenizer_load_file(tc_context *ctx, const char *fn, const char *path, tc_tokenizer_parse_fn parse,
                                 tc_tokenizer **out) {
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    unsigned char *data;
    size_t len;
    TC_TRY(tc_tokenizer_read_file(ctx, fn, path, &data, &len));
    tc_status status = parse(ctx, fn, (const char *)data, len, path, out);
    free(data);
    return status;
}

tc_status tc_tokenizer_finish(tc_tokenizer *tok, tc_status status, const char *fn, const char *name,
                              tc_tokenizer **out) {
    if (status == TC_OK) {
        char where[600];
        snprintf(where, sizeof where, "%s: '%s'", fn, name);
        status = tc_tokenizer_index(tok, where);
        if (status == TC_OK) status = tc_tokenizer_index_hf(tok, where);
    }
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
    *out = tok;
    return TC_OK;
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
            size_t l = c < 0x80 ? 1 : tc_utf8_decode(s + i, len - i, &cp);
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
 *   split none|gpt2|llama3|qwen2
 *   hf FLAG ...       optional: nfc sentencepiece ignore_merges merge_each strip_space (Hugging Face's options)
 *   added N ID ...    optional: the added tokens' ids, on one line
 *   bytes ID ...      optional, with sentencepiece: the 256 byte tokens' ids
 *   tokens N          then N lines `id "bytes"`, ids 0..N-1 in order
 *   merges M          then M lines `left right result`, in rank order
 *   end */
static void write_tokenizer(FILE *f, const tc_tokenizer *tok) {
    fprintf(f, "%s\n", FILE_MAGIC);
    fprintf(f, "kind %s\n", tc_tokenizer_kind_name(tok->kind));
    fprintf(f, "split %s\n", tc_split_pattern_name(tok->pattern));
    if (tok->nfc || tok->sentencepiece || tok->ignore_merges || tok->merge_each || tok->strip_space)
        fprintf(f, "hf%s%s%s%s%s\n", tok->nfc ? " nfc" : "", tok->sentencepiece ? " sentencepiece" : "",
                tok->ignore_merges ? " ignore_merges" : "", tok->merge_each ? " merge_each" : "",
                tok->strip_space ? " strip_space" : "");
    if (tok->special_count > 0) {
        fprintf(f, "added %d", (int)tok->special_count);
        for (int32_t k = 0; k < tok->special_count; k++) fprintf(f, " %d", (int)tok->special_ids[k]);
        fputc('\n', f);
    }
    if (tok->sentencepiece) {
        fprintf(f, "bytes");
        for (int b = 0; b < 256; b++) fprintf(f, " %d", (int)tok->byte_id[b]);
        fputc('\n', f);
    }
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

static tc_status load_split(load_state *st, split_pattern *split) {
    if (!load_next(st)) return load_error(st, "the file ends where `split` should be");
    for (int p = SPLIT_NONE; p <= SPLIT_QWEN2; p++) {
        const char *name = tc_split_pattern_name((split_pattern)p);
        size_t l = strlen(name);
        if (st->line_len == 6 + l && memcmp(st->line, "split ", 6) == 0 && memcmp(st->line + 6, name, l) == 0) {
            *split = (split_pattern)p;
            return TC_OK;
        }
    }
    return load_error(st, "expected `split none`, `split gpt2`, `split llama3` or `split qwen2`, found '%.*s'",
                      (int)(st->line_len > 60 ? 60 : st->line_len), (const char *)st->line);
}

/* Whether the line starts with `word ` (or is `word`). */
static bool line_starts(const load_state *st, const char *word) {
    size_t l = strlen(word);
    return st->line_len >= l && memcmp(st->line, word, l) == 0 && (st->line_len == l || st->line[l] == ' ');
}

/* Parses ` N` numbers after the keyword into ids (count of them), or fails. */
static tc_status load_ids(load_state *st, size_t at, int32_t *ids, int32_t count, const char *keyword) {
    for (int32_t k = 0; k < count; k++) {
        if (at >= st->line_len || st->line[at] != ' ' || (at++, !parse_int(st->line, st->line_len, &at, &ids[k])))
            return load_error(st, "`%s`: expected %d ids, found %d", keyword, (int)count, (int)k);
    }
    if (at != st->line_len) return load_error(st, "`%s`: more than %d ids", keyword, (int)count);
    return TC_OK;
}

/* The optional lines of Hugging Face's options before `tokens`. */
static tc_status load_hf_lines(load_state *st, tc_tokenizer *tok) {
    for (;;) {
        line_reader saved = st->lines;
        if (!load_next(st)) return load_error(st, "the file ends where `tokens N` should be");
        if (line_starts(st, "hf")) {
            static const char *const flags[] = {"nfc", "sentencepiece", "ignore_merges", "merge_each", "strip_space"};
            bool *fields[] = {&tok->nfc, &tok->sentencepiece, &tok->ignore_merges, &tok->merge_each,
                              &tok->strip_space};
            size_t at = 2;
            while (at < st->line_len) {
                size_t start = ++at;
                while (at < st->line_len && st->line[at] != ' ') at++;
                bool known = false;
                for (int f = 0; f < 5 && !known; f++) {
                    known = at - start == strlen(flags[f]) && memcmp(st->line + start, flags[f], at - start) == 0;
                    if (known) *fields[f] = true;
                }
                if (!known)
                    return load_error(st, "`hf`: unknown option '%.*s' (nfc, sentencepiece, ignore_merges, "
                                          "merge_each, strip_space)", (int)(at - start > 40 ? 40 : at - start),
                                      (const char *)st->line + start);
            }
        } else if (line_starts(st, "added")) {
            size_t at = 6;
            int32_t count;
            if (st->line_len < 7 || !parse_int(st->line, st->line_len, &at, &count) || count == 0 ||
                (size_t)count > st->line_len / 2)
                return load_error(st, "expected `added N ID ...`");
            free(tok->special_ids);
            tok->special_ids = malloc((size_t)count * sizeof *tok->special_ids);
            if (!tok->special_ids) return tc_fail(st->ctx, TC_ERROR_MEMORY, "%s: out of memory", st->fn);
            tok->special_count = 0;
            TC_TRY(load_ids(st, at, tok->special_ids, count, "added"));
            tok->special_count = count;
        } else if (line_starts(st, "bytes")) {
            TC_TRY(load_ids(st, 5, tok->byte_id, 256, "bytes"));
        } else {
            st->lines = saved;
            break;
        }
    }
    if (tok->sentencepiece && tok->byte_id[0] == NO_ID)
        return load_error(st, "a sentencepiece tokenizer needs its `bytes` line");
    return TC_OK;
}

static tc_status load_tokenizer_text(load_state *st, tc_tokenizer **out) {
    if (!load_next(st) || st->line_len != strlen(FILE_MAGIC) || memcmp(st->line, FILE_MAGIC, st->line_len) != 0)
        return load_error(st, "not a tokenizer file: the first line should be `%s`", FILE_MAGIC);
    int kind = 0;
    split_pattern split = SPLIT_NONE;
    TC_TRY(load_choice(st, "kind", "bpe", "char", &kind));
    TC_TRY(load_split(st, &split));
    tc_tokenizer *tok = tc_tokenizer_create(st->ctx, st->fn, kind ? TC_TOKENIZER_CHAR : TC_TOKENIZER_BPE,
                                            split == SPLIT_GPT2);
    if (!tok) return TC_ERROR_MEMORY;
    tok->pattern = split;
    int32_t n_tokens = 0;
    tc_status status = load_hf_lines(st, tok);
    if (status == TC_OK && kind == 1 && (tok->pattern != SPLIT_NONE || tok->special_count > 0 || tok->nfc ||
                                         tok->sentencepiece || tok->ignore_merges || tok->strip_space))
        status = load_error(st, "a character tokenizer has no split pattern, added tokens or Hugging Face options");
    if (status == TC_OK) status = load_count(st, "tokens", &n_tokens);
    if (status == TC_OK && (size_t)n_tokens > st->lines.len / 4)
        status = load_error(st, "%d tokens cannot fit in a file of %zu bytes", (int)n_tokens, st->lines.len);
    if (status != TC_OK) {
        tc_tokenizer_free(tok);
        return status;
    }
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
    for (int32_t k = 0; k < tok->special_count && status == TC_OK; k++) {
        if (tok->special_ids[k] >= n_tokens)
            status = load_error(st, "added token id %d is past the %d tokens", (int)tok->special_ids[k], (int)n_tokens);
    }
    for (int b = 0; b < 256 && status == TC_OK; b++) { /* only the `bytes` line has set them so far */
        int32_t id = tok->byte_id[b];
        if (id != NO_ID && (id >= n_tokens || token_length(tok, id) != 1 || token_data(tok, id)[0] != b))
            status = load_error(st, "`bytes`: token %d is not the byte 0x%02x", (int)id, b);
    }
    return tc_tokenizer_finish(tok, status, st->fn, st->path, out);
}

static tc_status parse_tokenizer_text(tc_context *ctx, const char *fn, const char *text, size_t len, const char *name,
                                      tc_tokenizer **out) {
    load_state st = {ctx, fn, name, {(const unsigned char *)text, len, 0, 0}, NULL, 0};
    return load_tokenizer_text(&st, out);
}

tc_status tc_tokenizer_load(tc_context *ctx, const char *path, tc_tokenizer **out) {
    return tc_tokenizer_load_file(ctx, "tokenizer.load", path, parse_tokenizer_text, out);
}

tc_status tc_tokenizer_deserialize(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out) {
    static const char *const fn = "tokenizer.deserialize";
    if (!out) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: out must not be NULL", fn);
    *out = NULL;
    if (!text && len > 0) return tc_fail(ctx, TC_ERROR_ARGUMENT, "%s: text is NULL with len %zu", fn, len);
    return parse_tokenizer_text(ctx, fn, text, len, "<text>", out);
}
