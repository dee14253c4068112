/*
 * tokenizer_batch.c: encoding many blocks of text on several threads, for
 * preparing token shards (the batch-encoding part of tricycle.h).
 *
 * A tokenizer is used by one thread at a time (its errors go to its
 * context), so every thread gets its own context and its own copy of the
 * tokenizer, made once from its serialized form. Threads live for one
 * tc_batch_encode call and take blocks from one atomic counter; each block's
 * ids land in the block's own buffer, so the output is in block order
 * whichever thread encoded what. The caller's thread is one of the workers.
 */
#include "tricycle.h"

#include "internal.h"
#include "json.h"
#include "utf8.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENCODER_THREADS 1024
#define MESSAGE_SIZE 512
#define NO_FAILURE SIZE_MAX

typedef struct block_result {
    unsigned char *ids; /* packed little-endian ids of id_bytes each */
    size_t count, capacity;
    int64_t documents;
    tc_status status;
    char message[MESSAGE_SIZE];
} block_result;

struct tc_batch_encoder {
    tc_context *ctx; /* the caller's: errors of tc_batch_encode are reported there */
    int threads;
    tc_context **contexts; /* one per thread, each owning that thread's tokenizer copy */
    tc_tokenizer **tokenizers;
    int32_t eot;
    int id_bytes;
    uint64_t id_limit; /* ids must be below this to fit id_bytes */
    char *separator;
    size_t separator_length;
};

typedef struct batch_job {
    const tc_batch_encoder *encoder;
    const tc_text_block *blocks;
    size_t count;
    block_result *results;
    atomic_size_t next;
    atomic_size_t first_failure; /* the lowest failed block, NO_FAILURE while none */
} batch_job;

typedef struct worker {
    batch_job *job;
    int index;
} worker;

/* The 1-based line of byte `at` of a block. */
static int64_t line_of(const tc_text_block *block, size_t at) {
    int64_t line = block->line;
    const char *p = block->data, *end = block->data + at;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        line++;
        p++;
    }
    return line;
}

static const char *block_name(const tc_text_block *block) { return block->name ? block->name : "<input>"; }

static void block_fail(block_result *r, tc_status status, const tc_text_block *block, int64_t line,
                       const char *format, ...) __attribute__((format(printf, 5, 6)));

static void block_fail(block_result *r, tc_status status, const tc_text_block *block, int64_t line,
                       const char *format, ...) {
    int used = snprintf(r->message, sizeof r->message, "batch_encode: '%s' line %lld: ", block_name(block),
                        (long long)line);
    if (used < 0) used = 0;
    if ((size_t)used < sizeof r->message) {
        va_list args;
        va_start(args, format);
        vsnprintf(r->message + used, sizeof r->message - (size_t)used, format, args);
        va_end(args);
    }
    r->status = status;
}

static bool result_reserve(block_result *r, size_t more, int id_bytes) {
    if (r->capacity - r->count >= more) return true;
    size_t want = r->capacity ? r->capacity : 1024;
    while (want - r->count < more) {
        if (want > SIZE_MAX / 2 / (size_t)id_bytes) return false;
        want *= 2;
    }
    unsigned char *grown = realloc(r->ids, want * (size_t)id_bytes);
    if (!grown) return false;
    r->ids = grown;
    r->capacity = want;
    return true;
}

static inline void put_id(block_result *r, uint32_t id, int id_bytes) {
    unsigned char *p = r->ids + r->count * (size_t)id_bytes;
    p[0] = (unsigned char)id;
    p[1] = (unsigned char)(id >> 8);
    if (id_bytes == 4) {
        p[2] = (unsigned char)(id >> 16);
        p[3] = (unsigned char)(id >> 24);
    }
    r->count++;
}

/* Appends the end-of-text id (unless the document continues the previous
 * block) and the ids of text[0, length); empty documents add nothing. `at`
 * is the document's offset in the block, for messages. */
static void encode_document(const tc_batch_encoder *enc, int thread, const tc_text_block *block, block_result *r,
                            const char *text, size_t length, size_t at, bool continues) {
    if (length == 0) return;
    tc_tokenizer *tok = enc->tokenizers[thread];
    int32_t *ids;
    size_t count;
    if (tc_tokenizer_encode(tok, text, length, &ids, &count) != TC_OK) {
        block_fail(r, tc_last_status(enc->contexts[thread]), block, line_of(block, at), "%s",
                   tc_last_error(enc->contexts[thread]));
        return;
    }
    bool starts = !continues && enc->eot >= 0;
    if (!result_reserve(r, count + (starts ? 1 : 0), enc->id_bytes)) {
        tc_tokenizer_free_ids(ids);
        block_fail(r, TC_ERROR_MEMORY, block, line_of(block, at), "out of memory for %zu ids", count);
        return;
    }
    if (starts) put_id(r, (uint32_t)enc->eot, enc->id_bytes);
    for (size_t i = 0; i < count; i++) {
        if ((uint64_t)ids[i] >= enc->id_limit) {
            block_fail(r, TC_ERROR_ARGUMENT, block, line_of(block, at), "token id %d does not fit in %d bytes",
                       (int)ids[i], enc->id_bytes);
            tc_tokenizer_free_ids(ids);
            return;
        }
        put_id(r, (uint32_t)ids[i], enc->id_bytes);
    }
    tc_tokenizer_free_ids(ids);
    if (!continues) r->documents++;
}

/* A text block: documents end after each separator (the separator stays
 * with the document it ends), or the block is one document. */
static void encode_text_block(const tc_batch_encoder *enc, int thread, const tc_text_block *block,
                              block_result *r) {
    const unsigned char *s = (const unsigned char *)block->data;
    size_t bad = tc_utf8_invalid_at(s, block->length);
    if (bad != SIZE_MAX) {
        block_fail(r, TC_ERROR_FORMAT, block, line_of(block, bad), "invalid UTF-8 (byte 0x%02X at byte offset %lld)",
                   s[bad], (long long)(block->offset + (int64_t)bad));
        return;
    }
    size_t start = 0;
    bool continues = block->continues;
    if (enc->separator_length > 0) {
        for (;;) {
            const char *found = memmem(block->data + start, block->length - start, enc->separator,
                                       enc->separator_length);
            if (!found) break;
            size_t end = (size_t)(found - block->data) + enc->separator_length;
            encode_document(enc, thread, block, r, block->data + start, end - start, start, continues);
            if (r->status != TC_OK) return;
            continues = false;
            start = end;
        }
    }
    encode_document(enc, thread, block, r, block->data + start, block->length - start, start, continues);
}

/* A JSON Lines block: each line that is not blank is an object whose
 * string "text" is one document. */
static void encode_jsonl_block(const tc_batch_encoder *enc, int thread, const tc_text_block *block,
                               block_result *r) {
    size_t start = 0;
    int64_t line = block->line;
    while (start < block->length && r->status == TC_OK) {
        const char *newline = memchr(block->data + start, '\n', block->length - start);
        size_t end = newline ? (size_t)(newline - block->data) : block->length;
        size_t stop = end;
        if (stop > start && block->data[stop - 1] == '\r') stop--;
        bool blank = true;
        for (size_t i = start; i < stop && blank; i++) blank = block->data[i] == ' ' || block->data[i] == '\t';
        if (!blank) {
            tc_json *record = NULL;
            char error[256];
            if (!tc_json_parse(block->data + start, stop - start, 0, &record, error, sizeof error)) {
                block_fail(r, TC_ERROR_FORMAT, block, line, "not valid JSON: %s", error);
            } else if (record->type != TC_JSON_OBJECT) {
                block_fail(r, TC_ERROR_FORMAT, block, line, "expected an object with a \"text\" string, got %s",
                           tc_json_type_name(record->type));
            } else {
                const tc_json *text = tc_json_get(record, "text");
                if (!text) {
                    block_fail(r, TC_ERROR_FORMAT, block, line, "the record has no \"text\" field");
                } else if (text->type != TC_JSON_STRING) {
                    block_fail(r, TC_ERROR_FORMAT, block, line, "\"text\" is %s, not a string",
                               tc_json_type_name(text->type));
                } else {
                    encode_document(enc, thread, block, r, text->as.string.data, text->as.string.length, start,
                                    false);
                }
            }
            tc_json_free(record);
        }
        start = end + 1;
        line++;
    }
}

static void encode_block(const tc_batch_encoder *enc, int thread, const tc_text_block *block, block_result *r) {
    r->status = TC_OK;
    if (block->length > 0 && !block->data) {
        block_fail(r, TC_ERROR_ARGUMENT, block, block->line, "data is NULL with length %zu", block->length);
        return;
    }
    if (block->format == TC_BLOCK_JSONL)
        encode_jsonl_block(enc, thread, block, r);
    else
        encode_text_block(enc, thread, block, r);
}

static void note_failure(batch_job *job, size_t index) {
    size_t seen = atomic_load(&job->first_failure);
    while (index < seen && !atomic_compare_exchange_weak(&job->first_failure, &seen, index)) {
    }
}

static void *work(void *argument) {
    worker *w = argument;
    batch_job *job = w->job;
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        /* blocks after a failed one are not needed */
        if (i >= job->count || i > atomic_load(&job->first_failure)) break;
        encode_block(job->encoder, w->index, &job->blocks[i], &job->results[i]);
        if (job->results[i].status != TC_OK) note_failure(job, i);
    }
    return NULL;
}

void tc_batch_encoder_free(tc_batch_encoder *enc) {
    if (!enc) return;
    for (int t = 0; t < enc->threads; t++) {
        if (enc->tokenizers) tc_tokenizer_free(enc->tokenizers[t]);
        if (enc->contexts) tc_context_free(enc->contexts[t]);
    }
    free(enc->tokenizers);
    free(enc->contexts);
    free(enc->separator);
    free(enc);
}

tc_status tc_batch_encoder_new(const tc_tokenizer *tok, const tc_batch_encoder_options *options,
                               tc_batch_encoder **out) {
    if (!tok) return TC_ERROR_ARGUMENT;
    tc_context *ctx = tc_tokenizer_context(tok);
    if (!out || !options) return tc_fail(ctx, TC_ERROR_ARGUMENT, "batch_encoder: options and out must not be NULL");
    *out = NULL;
    if (options->threads < 1 || options->threads > MAX_ENCODER_THREADS)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "batch_encoder: threads must be from 1 to %d, got %d",
                       MAX_ENCODER_THREADS, options->threads);
    if (options->id_bytes != 2 && options->id_bytes != 4)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "batch_encoder: id_bytes must be 2 or 4, got %d", options->id_bytes);
    uint64_t limit = options->id_bytes == 2 ? (uint64_t)1 << 16 : (uint64_t)1 << 32;
    int vocab = tc_tokenizer_vocab_size(tok);
    if ((uint64_t)vocab > limit)
        return tc_fail(ctx, TC_ERROR_ARGUMENT,
                       "batch_encoder: the tokenizer has %d tokens, whose ids do not fit in %d bytes", vocab,
                       options->id_bytes);
    if (options->eot < -1 || (uint64_t)(int64_t)options->eot >= limit)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "batch_encoder: eot %d is neither -1 (none) nor an id below %llu",
                       (int)options->eot, (unsigned long long)limit);
    if (options->separator_length > 0 && !options->separator)
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "batch_encoder: separator is NULL with length %zu",
                       options->separator_length);

    tc_batch_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return tc_fail(ctx, TC_ERROR_MEMORY, "batch_encoder: out of memory");
    enc->ctx = ctx;
    enc->eot = options->eot;
    enc->id_bytes = options->id_bytes;
    enc->id_limit = limit;
    enc->threads = options->threads;
    enc->contexts = calloc((size_t)enc->threads, sizeof *enc->contexts);
    enc->tokenizers = calloc((size_t)enc->threads, sizeof *enc->tokenizers);
    if (options->separator_length > 0) {
        enc->separator = malloc(options->separator_length);
        if (enc->separator) memcpy(enc->separator, options->separator, options->separator_length);
        enc->separator_length = options->separator_length;
    }
    if (!enc->contexts || !enc->tokenizers || (options->separator_length > 0 && !enc->separator)) {
        tc_batch_encoder_free(enc);
        return tc_fail(ctx, TC_ERROR_MEMORY, "batch_encoder: out of memory");
    }
    char *text;
    size_t length;
    if (tc_tokenizer_serialize(tok, &text, &length) != TC_OK) {
        tc_batch_encoder_free(enc);
        return tc_last_status(ctx);
    }
    tc_status status = TC_OK;
    for (int t = 0; t < enc->threads && status == TC_OK; t++) {
        enc->contexts[t] = tc_context_new();
        if (!enc->contexts[t]) {
            status = tc_fail(ctx, TC_ERROR_MEMORY, "batch_encoder: out of memory for the context of thread %d", t);
        } else if (tc_tokenizer_deserialize(enc->contexts[t], text, length, &enc->tokenizers[t]) != TC_OK) {
            status = tc_fail(ctx, tc_last_status(enc->contexts[t]), "batch_encoder: copying the tokenizer: %s",
                             tc_last_error(enc->contexts[t]));
        }
    }
    tc_tokenizer_free_text(text);
    if (status != TC_OK) {
        tc_batch_encoder_free(enc);
        return status;
    }
    *out = enc;
    return TC_OK;
}

int tc_batch_encoder_threads(const tc_batch_encoder *enc) { return enc ? enc->threads : 0; }
int tc_batch_encoder_id_bytes(const tc_batch_encoder *enc) { return enc ? enc->id_bytes : 0; }

tc_status tc_batch_encode(tc_batch_encoder *enc, const tc_text_block *blocks, size_t count, unsigned char **ids,
                          size_t *id_count, int64_t *documents) {
    if (!enc) return TC_ERROR_ARGUMENT;
    tc_context *ctx = enc->ctx;
    if (!ids || !id_count || (count > 0 && !blocks))
        return tc_fail(ctx, TC_ERROR_ARGUMENT, "batch_encode: blocks, ids and id_count must not be NULL");
    *ids = NULL;
    *id_count = 0;
    block_result *results = calloc(count ? count : 1, sizeof *results);
    if (!results) return tc_fail(ctx, TC_ERROR_MEMORY, "batch_encode: out of memory for %zu blocks", count);
    batch_job job = {.encoder = enc, .blocks = blocks, .count = count, .results = results};
    atomic_init(&job.next, 0);
    atomic_init(&job.first_failure, NO_FAILURE);

    int threads = enc->threads;
    if ((size_t)threads > count) threads = count > 0 ? (int)count : 1;
    worker workers[MAX_ENCODER_THREADS];
    pthread_t handles[MAX_ENCODER_THREADS];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        workers[t] = (worker){&job, t};
        if (pthread_create(&handles[started + 1], NULL, work, &workers[t]) != 0) break; /* fewer threads do */
        started++;
    }
    workers[0] = (worker){&job, 0};
    work(&workers[0]);
    for (int t = 1; t <= started; t++) pthread_join(handles[t], NULL);

    tc_status status = TC_OK;
    size_t failure = atomic_load(&job.first_failure);
    size_t total = 0;
    if (failure != NO_FAILURE) {
        status = tc_fail(ctx, results[failure].status, "%s", results[failure].message);
    } else {
        for (size_t i = 0; i < count; i++) total += results[i].count;
        unsigned char *packed = malloc(total ? total * (size_t)enc->id_bytes : 1);
        if (!packed) {
            status = tc_fail(ctx, TC_ERROR_MEMORY, "batch_encode: out of memory for %zu ids", total);
        } else {
            size_t at = 0;
            for (size_t i = 0; i < count; i++) {
                size_t bytes = results[i].count * (size_t)enc->id_bytes;
                if (bytes) memcpy(packed + at, results[i].ids, bytes);
                at += bytes;
                if (documents) documents[i] = results[i].documents;
            }
            *ids = packed;
            *id_count = total;
        }
    }
    for (size_t i = 0; i < count; i++) free(results[i].ids);
    free(results);
    return status;
}

void tc_batch_encode_free(unsigned char *ids) { free(ids); }
