/*
 * json.c: the strict JSON reader and the writer declared in json.h.
 *
 * A recursive-descent parser bounded by a depth limit, so hostile input
 * (a file header, a config) can cost memory proportional to its size and
 * nothing else: no stack overflow, no quadratic duplicate-key check.
 */
#include "json.h"

#include "utf8.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *text;
    size_t length;
    size_t position;
    int depth;
    int max_depth;
    bool allow_duplicate_keys;
    size_t string_start; /* the opening quote of the string being read, SIZE_MAX outside strings */
    tc_json_error *error;
    bool failed;
} parser;

/* Records the first failure (later ones are consequences of it). */
static void fail_with(parser *p, tc_json_problem problem, size_t offset, const char *format, va_list args) {
    if (p->failed) return;
    p->failed = true;
    p->error->problem = problem;
    p->error->offset = offset;
    p->error->string_offset = p->string_start;
    vsnprintf(p->error->message, sizeof p->error->message, format, args);
}

__attribute__((format(printf, 4, 5))) static bool fail_as(parser *p, tc_json_problem problem, size_t offset,
                                                          const char *format, ...) {
    va_list args;
    va_start(args, format);
    fail_with(p, problem, offset, format, args);
    va_end(args);
    return false;
}

__attribute__((format(printf, 3, 4))) static bool fail_at(parser *p, size_t offset, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fail_with(p, TC_JSON_MALFORMED, offset, format, args);
    va_end(args);
    return false;
}

static bool out_of_memory(parser *p, size_t offset) {
    return fail_as(p, TC_JSON_OUT_OF_MEMORY, offset, "out of memory");
}

static void describe_byte(const parser *p, char *out, size_t size) {
    if (p->position >= p->length) {
        snprintf(out, size, "the end of the text");
        return;
    }
    unsigned char c = p->text[p->position];
    if (c >= 0x20 && c < 0x7f) snprintf(out, size, "'%c'", c);
    else snprintf(out, size, "byte 0x%02x", c);
}

static bool unexpected(parser *p, const char *expected) {
    char seen[32];
    describe_byte(p, seen, sizeof seen);
    return fail_as(p, p->position >= p->length ? TC_JSON_ENDS_EARLY : TC_JSON_MALFORMED, p->position,
                   "expected %s, found %s", expected, seen);
}

static void skip_whitespace(parser *p) {
    while (p->position < p->length) {
        unsigned char c = p->text[p->position];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->position++;
    }
}

static void free_contents(tc_json *value) {
    switch (value->type) {
    case TC_JSON_STRING: free(value->as.string.data); break;
    case TC_JSON_ARRAY:
        for (size_t i = 0; i < value->as.array.count; i++) free_contents(&value->as.array.items[i]);
        free(value->as.array.items);
        break;
    case TC_JSON_OBJECT:
        for (size_t i = 0; i < value->as.object.count; i++) {
            free(value->as.object.members[i].key);
            free_contents(&value->as.object.members[i].value);
        }
        free(value->as.object.members);
        break;
    default: break;
    }
    value->type = TC_JSON_NULL;
}

void tc_json_free(tc_json *value) {
    if (!value) return;
    free_contents(value);
    free(value);
}

/* ---- strings ---- */

typedef struct byte_buffer {
    char *data;
    size_t length;
    size_t capacity;
} byte_buffer;

static bool bytes_reserve(byte_buffer *b, size_t extra) {
    if (b->length + extra + 1 <= b->capacity) return true;
    size_t capacity = b->capacity ? b->capacity : 32;
    while (capacity < b->length + extra + 1) {
        if (capacity > SIZE_MAX / 2) return false;
        capacity *= 2;
    }
    char *data = realloc(b->data, capacity);
    if (!data) return false;
    b->data = data;
    b->capacity = capacity;
    return true;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, unsigned *out) {
    if (p->length - p->position < 4) return fail_at(p, p->position, "\\u escape needs four hex digits");
    unsigned value = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p->text[p->position + (size_t)i]);
        if (h < 0) return fail_at(p, p->position + (size_t)i, "\\u escape needs four hex digits");
        value = value * 16 + (unsigned)h;
    }
    p->position += 4;
    *out = value;
    return true;
}

/* Reads a string starting at the opening quote into a fresh buffer. */
static bool parse_string_raw(parser *p, char **out, size_t *out_length) {
    size_t start = p->position;
    p->string_start = start;
    p->position++; /* the quote */
    byte_buffer b = {0};
    for (;;) {
        if (p->position >= p->length) {
            free(b.data);
            return fail_as(p, TC_JSON_ENDS_EARLY, start, "unterminated string");
        }
        unsigned char c = p->text[p->position];
        if (c == '"') {
            p->position++;
            break;
        }
        if (c < 0x20) {
            free(b.data);
            return fail_at(p, p->position, "control character 0x%02x in a string (escape it)", c);
        }
        if (c == '\\') {
            size_t escape_at = p->position;
            if (p->position + 1 >= p->length) {
                free(b.data);
                return fail_as(p, TC_JSON_ENDS_EARLY, start, "unterminated string");
            }
            unsigned char e = p->text[p->position + 1];
            p->position += 2;
            char decoded[4];
            size_t n = 1;
            switch (e) {
            case '"': decoded[0] = '"'; break;
            case '\\': decoded[0] = '\\'; break;
            case '/': decoded[0] = '/'; break;
            case 'b': decoded[0] = '\b'; break;
            case 'f': decoded[0] = '\f'; break;
            case 'n': decoded[0] = '\n'; break;
            case 'r': decoded[0] = '\r'; break;
            case 't': decoded[0] = '\t'; break;
            case 'u': {
                unsigned code;
                if (!read_hex4(p, &code)) {
                    free(b.data);
                    return false;
                }
                if (code >= 0xDC00 && code <= 0xDFFF) {
                    free(b.data);
                    return fail_at(p, escape_at, "lone low surrogate \\u%04X", code);
                }
                if (code >= 0xD800 && code <= 0xDBFF) {
                    unsigned low;
                    if (p->length - p->position < 2 || p->text[p->position] != '\\' ||
                        p->text[p->position + 1] != 'u') {
                        free(b.data);
                        return fail_at(p, escape_at,
                                       "\\u%04X is a high surrogate without a low surrogate: it is not followed by a "
                                       "low one",
                                       code);
                    }
                    p->position += 2;
                    if (!read_hex4(p, &low)) {
                        free(b.data);
                        return false;
                    }
                    if (low < 0xDC00 || low > 0xDFFF) {
                        free(b.data);
                        return fail_at(p, escape_at,
                                       "\\u%04X is a high surrogate without a low surrogate: it is followed by "
                                       "\\u%04X, not a low one",
                                       code, low);
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                }
                n = tc_utf8_encode(code, (unsigned char *)decoded);
                break;
            }
            default:
                free(b.data);
                p->position = escape_at;
                return fail_at(p, escape_at, "invalid escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
            }
            if (!bytes_reserve(&b, n)) {
                free(b.data);
                return out_of_memory(p, start);
            }
            memcpy(b.data + b.length, decoded, n);
            b.length += n;
            continue;
        }
        /* A run of plain bytes, validated as UTF-8. */
        size_t run_start = p->position;
        while (p->position < p->length) {
            unsigned char d = p->text[p->position];
            if (d == '"' || d == '\\' || d < 0x20) break;
            uint32_t code;
            size_t n = tc_utf8_decode(p->text + p->position, p->length - p->position, &code);
            if (code == TC_UTF8_INVALID) {
                free(b.data);
                return fail_as(p, TC_JSON_INVALID_UTF8, p->position, "invalid UTF-8 in a string");
            }
            p->position += n;
        }
        size_t run = p->position - run_start;
        if (!bytes_reserve(&b, run)) {
            free(b.data);
            return out_of_memory(p, start);
        }
        memcpy(b.data + b.length, p->text + run_start, run);
        b.length += run;
    }
    if (!bytes_reserve(&b, 0)) {
        free(b.data);
        return out_of_memory(p, start);
    }
    b.data[b.length] = '\0';
    *out = b.data;
    *out_length = b.length;
    p->string_start = SIZE_MAX;
    return true;
}

/* ---- numbers ---- */

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool parse_number(parser *p, tc_json *value) {
    size_t start = p->position;
    size_t i = p->position;
    bool negative = false, integral = true;
    if (i < p->length && p->text[i] == '-') {
        negative = true;
        i++;
    }
    if (i >= p->length || !is_digit(p->text[i])) {
        p->position = i;
        return unexpected(p, "a digit");
    }
    if (p->text[i] == '0') {
        i++;
        if (i < p->length && is_digit(p->text[i])) return fail_at(p, start, "leading zeros are not allowed in numbers");
    } else {
        while (i < p->length && is_digit(p->text[i])) i++;
    }
    if (i < p->length && p->text[i] == '.') {
        integral = false;
        i++;
        if (i >= p->length || !is_digit(p->text[i])) {
            p->position = i;
            return unexpected(p, "a digit after the decimal point");
        }
        while (i < p->length && is_digit(p->text[i])) i++;
    }
    if (i < p->length && (p->text[i] == 'e' || p->text[i] == 'E')) {
        integral = false;
        i++;
        if (i < p->length && (p->text[i] == '+' || p->text[i] == '-')) i++;
        if (i >= p->length || !is_digit(p->text[i])) {
            p->position = i;
            return unexpected(p, "a digit in the exponent");
        }
        while (i < p->length && is_digit(p->text[i])) i++;
    }
    p->position = i;
    value->offset = start;
    if (integral) {
        /* Accumulate as a negative number: its range is one larger. */
        int64_t acc = 0;
        bool overflow = false;
        for (size_t k = start + (negative ? 1 : 0); k < i; k++) {
            int digit = p->text[k] - '0';
            if (acc < (INT64_MIN + digit) / 10) {
                overflow = true;
                break;
            }
            acc = acc * 10 - digit;
        }
        if (!overflow && (negative || acc != INT64_MIN)) {
            value->type = TC_JSON_INTEGER;
            value->as.integer = negative ? acc : -acc;
            return true;
        }
    }
    /* strtod follows the locale's decimal point; hand it one it reads. */
    size_t n = i - start;
    char small[64];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy) return out_of_memory(p, start);
    memcpy(copy, p->text + start, n);
    copy[n] = '\0';
    const struct lconv *locale = localeconv();
    char point = locale && locale->decimal_point && locale->decimal_point[0] ? locale->decimal_point[0] : '.';
    if (point != '.') {
        char *dot = strchr(copy, '.');
        if (dot) *dot = point;
    }
    value->type = TC_JSON_DOUBLE;
    value->as.number = strtod(copy, NULL);
    if (copy != small) free(copy);
    return true;
}

/* ---- values ---- */

static bool parse_value(parser *p, tc_json *value);

static int compare_keys(const tc_json_member *x, const tc_json_member *y) {
    size_t n = x->key_length < y->key_length ? x->key_length : y->key_length;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->key_length < y->key_length ? -1 : x->key_length > y->key_length;
}

static int compare_member_keys(const void *a, const void *b) {
    return compare_keys(*(tc_json_member *const *)a, *(tc_json_member *const *)b);
}

static bool check_duplicate_keys(parser *p, const tc_json *object) {
    size_t count = object->as.object.count;
    if (count < 2) return true;
    if (count <= 8) {
        for (size_t i = 0; i < count; i++)
            for (size_t j = i + 1; j < count; j++)
                if (!compare_keys(&object->as.object.members[i], &object->as.object.members[j]))
                    return fail_at(p, object->as.object.members[j].value.offset, "duplicate key \"%s\" in an object",
                                   object->as.object.members[j].key);
        return true;
    }
    tc_json_member **sorted = malloc(count * sizeof *sorted);
    if (!sorted) return out_of_memory(p, object->offset);
    for (size_t i = 0; i < count; i++) sorted[i] = &object->as.object.members[i];
    qsort(sorted, count, sizeof *sorted, compare_member_keys);
    for (size_t i = 1; i < count; i++) {
        if (!compare_member_keys(&sorted[i - 1], &sorted[i])) {
            const tc_json_member *later =
                sorted[i]->value.offset > sorted[i - 1]->value.offset ? sorted[i] : sorted[i - 1];
            bool ok = fail_at(p, later->value.offset, "duplicate key \"%s\" in an object", later->key);
            free(sorted);
            return ok;
        }
    }
    free(sorted);
    return true;
}

static bool parse_array(parser *p, tc_json *value) {
    value->type = TC_JSON_ARRAY;
    value->as.array.items = NULL;
    value->as.array.count = 0;
    if (++p->depth > p->max_depth) return fail_at(p, p->position, "nesting deeper than %d levels", p->max_depth);
    p->position++; /* [ */
    size_t capacity = 0;
    skip_whitespace(p);
    if (p->position < p->length && p->text[p->position] == ']') {
        p->position++;
        p->depth--;
        return true;
    }
    for (;;) {
        if (value->as.array.count == capacity) {
            size_t grown = capacity ? capacity * 2 : 4;
            tc_json *items = realloc(value->as.array.items, grown * sizeof *items);
            if (!items) return out_of_memory(p, p->position);
            value->as.array.items = items;
            capacity = grown;
        }
        tc_json *item = &value->as.array.items[value->as.array.count];
        item->type = TC_JSON_NULL;
        skip_whitespace(p);
        bool ok = parse_value(p, item);
        value->as.array.count++; /* counted even on failure, so it is freed */
        if (!ok) return false;
        skip_whitespace(p);
        if (p->position < p->length && p->text[p->position] == ',') {
            p->position++;
            continue;
        }
        if (p->position < p->length && p->text[p->position] == ']') {
            p->position++;
            break;
        }
        return unexpected(p, "',' or ']' in an array");
    }
    p->depth--;
    return true;
}

static bool parse_object(parser *p, tc_json *value) {
    value->type = TC_JSON_OBJECT;
    value->as.object.members = NULL;
    value->as.object.count = 0;
    if (++p->depth > p->max_depth) return fail_at(p, p->position, "nesting deeper than %d levels", p->max_depth);
    p->position++; /* { */
    size_t capacity = 0;
    skip_whitespace(p);
    if (p->position < p->length && p->text[p->position] == '}') {
        p->position++;
        p->depth--;
        return true;
    }
    for (;;) {
        skip_whitespace(p);
        if (p->position >= p->length || p->text[p->position] != '"') return unexpected(p, "a string key in an object");
        if (value->as.object.count == capacity) {
            size_t grown = capacity ? capacity * 2 : 4;
            tc_json_member *members = realloc(value->as.object.members, grown * sizeof *members);
            if (!members) return out_of_memory(p, p->position);
            value->as.object.members = members;
            capacity = grown;
        }
        tc_json_member *member = &value->as.object.members[value->as.object.count];
        member->key = NULL;
        member->key_length = 0;
        member->key_offset = p->position;
        member->value.type = TC_JSON_NULL;
        member->value.offset = p->position;
        if (!parse_string_raw(p, &member->key, &member->key_length)) return false;
        value->as.object.count++;
        skip_whitespace(p);
        if (p->position >= p->length || p->text[p->position] != ':') return unexpected(p, "':' after an object key");
        p->position++;
        skip_whitespace(p);
        if (!parse_value(p, &member->value)) return false;
        skip_whitespace(p);
        if (p->position < p->length && p->text[p->position] == ',') {
            p->position++;
            continue;
        }
        if (p->position < p->length && p->text[p->position] == '}') {
            p->position++;
            break;
        }
        return unexpected(p, "',' or '}' in an object");
    }
    p->depth--;
    return p->allow_duplicate_keys || check_duplicate_keys(p, value);
}

static bool match_word(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->length - p->position >= n && memcmp(p->text + p->position, word, n) == 0) {
        p->position += n;
        return true;
    }
    return false;
}

static bool parse_value(parser *p, tc_json *value) {
    value->type = TC_JSON_NULL;
    value->offset = p->position;
    if (p->position >= p->length) return unexpected(p, "a value");
    unsigned char c = p->text[p->position];
    switch (c) {
    case '{': return parse_object(p, value);
    case '[': return parse_array(p, value);
    case '"': {
        char *data;
        size_t length;
        if (!parse_string_raw(p, &data, &length)) return false;
        value->type = TC_JSON_STRING;
        value->as.string.data = data;
        value->as.string.length = length;
        return true;
    }
    case 't':
        if (match_word(p, "true")) {
            value->type = TC_JSON_BOOL;
            value->as.boolean = true;
            return true;
        }
        break;
    case 'f':
        if (match_word(p, "false")) {
            value->type = TC_JSON_BOOL;
            value->as.boolean = false;
            return true;
        }
        break;
    case 'n':
        if (match_word(p, "null")) return true;
        break;
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, value);
        break;
    }
    return unexpected(p, "a value (object, array, string, number, true, false or null)");
}

bool tc_json_parse_with(const char *text, size_t length, const tc_json_options *options, tc_json **out,
                        tc_json_error *error) {
    *out = NULL;
    tc_json_error ignored;
    parser p = {(const unsigned char *)text, length, 0, 0, TC_JSON_DEFAULT_DEPTH, false, SIZE_MAX,
                error ? error : &ignored, false};
    if (options) {
        if (options->max_depth > 0) p.max_depth = options->max_depth;
        p.allow_duplicate_keys = options->allow_duplicate_keys;
    }
    if (!text && length) return fail_at(&p, 0, "no text");
    tc_json *root = calloc(1, sizeof *root);
    if (!root) return out_of_memory(&p, 0);
    skip_whitespace(&p);
    bool ok = parse_value(&p, root);
    if (ok) {
        skip_whitespace(&p);
        if (p.position != p.length) {
            char seen[32];
            describe_byte(&p, seen, sizeof seen);
            ok = fail_as(&p, TC_JSON_TRAILING_TEXT, p.position,
                         "expected the end of the text after the value, found %s", seen);
        }
    }
    if (!ok) {
        tc_json_free(root);
        return false;
    }
    *out = root;
    return true;
}

bool tc_json_parse(const char *text, size_t length, int max_depth, tc_json **out, char *error, size_t error_size) {
    tc_json_options options = {max_depth, false};
    tc_json_error detail;
    bool ok = tc_json_parse_with(text, length, &options, out, &detail);
    if (error && error_size) {
        if (ok) error[0] = '\0';
        else snprintf(error, error_size, "at byte %zu: %s", detail.offset, detail.message);
    }
    return ok;
}

const tc_json *tc_json_get(const tc_json *object, const char *key) {
    if (!object || object->type != TC_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < object->as.object.count; i++) {
        const tc_json_member *m = &object->as.object.members[i];
        if (m->key_length == n && memcmp(m->key, key, n) == 0) return &m->value;
    }
    return NULL;
}

const char *tc_json_type_name(tc_json_type type) {
    switch (type) {
    case TC_JSON_NULL: return "null";
    case TC_JSON_BOOL: return "a boolean";
    case TC_JSON_INTEGER: return "an integer";
    case TC_JSON_DOUBLE: return "a number";
    case TC_JSON_STRING: return "a string";
    case TC_JSON_ARRAY: return "an array";
    case TC_JSON_OBJECT: return "an object";
    }
    return "unknown";
}

bool tc_json_valid_utf8(const char *text, size_t length) {
    return tc_utf8_invalid_at((const unsigned char *)text, length) == SIZE_MAX;
}

/* ---- writer ---- */

void tc_json_buffer_init(tc_json_buffer *buffer) { memset(buffer, 0, sizeof *buffer); }

void tc_json_buffer_free(tc_json_buffer *buffer) {
    free(buffer->data);
    memset(buffer, 0, sizeof *buffer);
}

void tc_json_append_raw(tc_json_buffer *buffer, const char *text, size_t length) {
    if (buffer->failed) return;
    if (buffer->length + length + 1 > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 64;
        while (capacity < buffer->length + length + 1) {
            if (capacity > SIZE_MAX / 2) {
                buffer->failed = true;
                return;
            }
            capacity *= 2;
        }
        char *data = realloc(buffer->data, capacity);
        if (!data) {
            buffer->failed = true;
            return;
        }
        buffer->data = data;
        buffer->capacity = capacity;
    }
    if (length) memcpy(buffer->data + buffer->length, text, length);
    buffer->length += length;
    buffer->data[buffer->length] = '\0';
}

void tc_json_append_string(tc_json_buffer *buffer, const char *text, size_t length) {
    static const char hex[] = "0123456789abcdef";
    tc_json_append_raw(buffer, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        const char *escape = NULL;
        char unicode[7];
        switch (c) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                memcpy(unicode, "\\u00", 4);
                unicode[4] = hex[c >> 4];
                unicode[5] = hex[c & 15];
                unicode[6] = '\0';
                escape = unicode;
            }
        }
        if (!escape) continue;
        tc_json_append_raw(buffer, text + run, i - run);
        tc_json_append_raw(buffer, escape, strlen(escape));
        run = i + 1;
    }
    tc_json_append_raw(buffer, text + run, length - run);
    tc_json_append_raw(buffer, "\"", 1);
}

void tc_json_append_integer(tc_json_buffer *buffer, int64_t value) {
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", (long long)value);
    tc_json_append_raw(buffer, text, (size_t)n);
}

void tc_json_append_double(tc_json_buffer *buffer, double value) {
    char text[40];
    const struct lconv *locale = localeconv();
    char point = locale && locale->decimal_point && locale->decimal_point[0] ? locale->decimal_point[0] : '.';
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, value);
        if (strtod(text, NULL) == value) break;
    }
    if (point != '.') {
        char *p = strchr(text, point);
        if (p) *p = '.';
    }
    tc_json_append_raw(buffer, text, strlen(text));
    if (!strpbrk(text, ".eEnN")) tc_json_append_raw(buffer, ".0", 2);
}

void tc_json_append_value(tc_json_buffer *buffer, const tc_json *value) {
    switch (value->type) {
    case TC_JSON_NULL: tc_json_append_raw(buffer, "null", 4); break;
    case TC_JSON_BOOL:
        if (value->as.boolean) tc_json_append_raw(buffer, "true", 4);
        else tc_json_append_raw(buffer, "false", 5);
        break;
    case TC_JSON_INTEGER: tc_json_append_integer(buffer, value->as.integer); break;
    case TC_JSON_DOUBLE:
        if (isfinite(value->as.number)) tc_json_append_double(buffer, value->as.number);
        else tc_json_append_raw(buffer, "null", 4);
        break;
    case TC_JSON_STRING: tc_json_append_string(buffer, value->as.string.data, value->as.string.length); break;
    case TC_JSON_ARRAY:
        tc_json_append_raw(buffer, "[", 1);
        for (size_t i = 0; i < value->as.array.count; i++) {
            if (i) tc_json_append_raw(buffer, ",", 1);
            tc_json_append_value(buffer, &value->as.array.items[i]);
        }
        tc_json_append_raw(buffer, "]", 1);
        break;
    case TC_JSON_OBJECT:
        tc_json_append_raw(buffer, "{", 1);
        for (size_t i = 0; i < value->as.object.count; i++) {
            const tc_json_member *m = &value->as.object.members[i];
            if (i) tc_json_append_raw(buffer, ",", 1);
            tc_json_append_string(buffer, m->key, m->key_length);
            tc_json_append_raw(buffer, ":", 1);
            tc_json_append_value(buffer, &m->value);
        }
        tc_json_append_raw(buffer, "}", 1);
        break;
    }
}
