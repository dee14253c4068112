/*
 * json.h: a small, strict JSON reader and writer (RFC 8259) for the engine's
 * files: the safetensors header, checkpoint metadata, configs.
 *
 * The reader takes a byte range (not a C string: NUL bytes are data), builds
 * a tree in one heap block per node array, and reports the first problem
 * with its byte offset. It rejects what RFC 8259 rejects (trailing commas,
 * comments, single quotes, leading zeros, invalid UTF-8, lone surrogates,
 * control characters in strings) and also duplicate object keys, unless a
 * caller that checks keys itself allows them. Numbers
 * without fraction or exponent that fit in int64 are integers; every other
 * number is a double. The writer appends to a growable buffer.
 *
 * No context is involved: this is plain memory, freed with tc_json_free.
 */
#ifndef TRICYCLE_JSON_H
#define TRICYCLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TC_JSON_DEFAULT_DEPTH 64

typedef enum tc_json_type {
    TC_JSON_NULL = 0,
    TC_JSON_BOOL,
    TC_JSON_INTEGER,
    TC_JSON_DOUBLE,
    TC_JSON_STRING,
    TC_JSON_ARRAY,
    TC_JSON_OBJECT
} tc_json_type;

typedef struct tc_json tc_json;
typedef struct tc_json_member tc_json_member;

struct tc_json {
    tc_json_type type;
    size_t offset; /* byte offset of the value in the parsed text */
    union {
        bool boolean;
        int64_t integer;
        double number;
        struct {
            char *data; /* NUL-terminated; may also hold NUL bytes (length says) */
            size_t length;
        } string;
        struct {
            tc_json *items;
            size_t count;
        } array;
        struct {
            tc_json_member *members; /* in the order of the text */
            size_t count;
        } object;
    } as;
};

struct tc_json_member {
    char *key; /* NUL-terminated */
    size_t key_length;
    size_t key_offset; /* byte offset of the key's opening quote in the parsed text */
    tc_json value;
};

/* Parses text[0, length) as one JSON value (surrounded by optional
 * whitespace). On success *out owns a tree (tc_json_free) and true is
 * returned; on failure *out is NULL and error holds "at byte N: ...".
 * max_depth bounds the nesting of arrays and objects (0: the default). */
bool tc_json_parse(const char *text, size_t length, int max_depth, tc_json **out, char *error, size_t error_size);

/* For readers of a file format built on JSON, which word their own messages
 * (a file name, a line and a column) and check some things themselves. */
typedef struct tc_json_options {
    int max_depth;             /* 0: TC_JSON_DEFAULT_DEPTH */
    bool allow_duplicate_keys; /* the caller checks keys itself */
} tc_json_options;

typedef enum tc_json_problem {
    TC_JSON_MALFORMED = 0, /* anything not below; the message says what */
    TC_JSON_ENDS_EARLY,    /* the text ends inside the value (truncated?) */
    TC_JSON_TRAILING_TEXT, /* something follows the value */
    TC_JSON_INVALID_UTF8,  /* a string holds bytes that are not UTF-8 */
    TC_JSON_OUT_OF_MEMORY
} tc_json_problem;

typedef struct tc_json_error {
    tc_json_problem problem;
    size_t offset;        /* byte offset of the problem */
    size_t string_offset; /* the opening quote of the string the problem is in; SIZE_MAX outside strings */
    char message[256];    /* what is wrong, without the offset */
} tc_json_error;

/* tc_json_parse with options (NULL: the defaults) and the failure, when
 * error is not NULL, in *error. */
bool tc_json_parse_with(const char *text, size_t length, const tc_json_options *options, tc_json **out,
                        tc_json_error *error);
void tc_json_free(tc_json *value);

/* The member of an object with this key, or NULL (also for non-objects). */
const tc_json *tc_json_get(const tc_json *object, const char *key);
const char *tc_json_type_name(tc_json_type type);
/* True when text[0, length) is well-formed UTF-8 (what JSON strings hold). */
bool tc_json_valid_utf8(const char *text, size_t length);

/* ---- writer ---- */

typedef struct tc_json_buffer {
    char *data; /* NUL-terminated while !failed */
    size_t length;
    size_t capacity;
    bool failed; /* an allocation failed; later appends do nothing */
} tc_json_buffer;

void tc_json_buffer_init(tc_json_buffer *buffer);
void tc_json_buffer_free(tc_json_buffer *buffer);
void tc_json_append_raw(tc_json_buffer *buffer, const char *text, size_t length);
/* A quoted, escaped string (control characters as \u00XX; bytes >= 0x80
 * are copied as they are). */
void tc_json_append_string(tc_json_buffer *buffer, const char *text, size_t length);
void tc_json_append_integer(tc_json_buffer *buffer, int64_t value);
/* The shortest "%.17g"-style text that reads back as the same double, with
 * ".0" added when it would otherwise read as an integer. Not finite values
 * have no JSON form: the caller must reject them first. */
void tc_json_append_double(tc_json_buffer *buffer, double value);
/* Writes a parsed value back as compact JSON. */
void tc_json_append_value(tc_json_buffer *buffer, const tc_json *value);

#endif
