/*
 * internal.h: the engine's private structures, shared by src/ and cuda/.
 * Nothing here is part of the public API.
 */
#ifndef TRICYCLE_INTERNAL_H
#define TRICYCLE_INTERNAL_H

#include "tricycle.h"

#include <stdarg.h>

#define TC_ALIGNMENT 64
#define TC_ERROR_CAPACITY 1024
#define TC_NODE_MAX_SAVED 6

/* Refcounted bytes on one device; views share it. */
typedef struct tc_storage {
    int refcount;
    tc_context *ctx;
    tc_device device;
    void *data;
    size_t nbytes;
    bool external; /* memory owned by someone else (mmap, host buffer) */
    void (*release_external)(void *user, void *data, size_t nbytes);
    void *external_user;
    uint64_t version; /* in-place writes so far (tc_inplace_begin); backward checks it */
} tc_storage;

struct tc_tensor {
    int refcount;
    tc_context *ctx;
    tc_storage *storage;
    int64_t offset; /* in elements */
    int ndim;
    int64_t shape[TC_MAX_DIMS];
    int64_t strides[TC_MAX_DIMS]; /* in elements */
    tc_dtype dtype;
    bool requires_grad;
    tc_tensor *grad;  /* leaves only */
    tc_node *grad_fn; /* the tape entry that produced this tensor */
    struct tc_grad_hook *grad_hook; /* leaves only: tc_tensor_set_grad_hook (autograd.c) */
    struct tc_tensor_hook *hooks;   /* leaves only: tc_tensor_add_hook (a non-leaf's are on its grad_fn) */
    tc_tensor *hook_grad;           /* a hooked leaf's gradient gathered during a backward, before its hooks */
};

/* Computes the gradients of a node's inputs from the gradient of its output.
 * grad_inputs[i] is NULL on entry; set it (an owned reference) for every
 * input that needs a gradient (tc_node_input_needs_grad). Runs with grad
 * mode off. */
typedef tc_status (*tc_backward_fn)(tc_node *node, tc_tensor *grad_output, tc_tensor **grad_inputs);

typedef struct tc_op {
    const char *name;
    tc_backward_fn backward;
} tc_op;

/* Every op's tape descriptor, indexed by tc_op_id (ops_table.c), and the
 * backward functions its rows name, defined beside the ops' forwards. */
extern const tc_op tc_tape_ops[TC_OP_COUNT];
typedef tc_status tc_backward_function(tc_node *node, tc_tensor *grad_output, tc_tensor **grad_inputs);
#define TC_DECLARE_BACKWARD(ID, name, arity, backward, properties, summary) tc_backward_function backward;
TC_OP_LIST(TC_DECLARE_BACKWARD)
#undef TC_DECLARE_BACKWARD

/* One entry on the tape: the op that made a tensor, its inputs (held), what
 * backward needs, and the gradient being accumulated for the output. */
struct tc_node {
    int refcount;
    const tc_op *op;
    tc_context *ctx;
    int n_inputs;
    tc_tensor **inputs;
    tc_tensor *saved[TC_NODE_MAX_SAVED];
    /* Storage versions of the saved tensors, and 1 + those of the inputs the
     * backward reads (0: not read; in the inputs' allocation), at forward
     * time; backward refuses changed ones. */
    uint64_t saved_versions[TC_NODE_MAX_SAVED];
    uint64_t *input_versions;
    int64_t ints[TC_MAX_DIMS * 2];
    double reals[4];
    int n_ints;
    /* The output's shape and dtype, for making gradients without holding it. */
    int out_ndim;
    int64_t out_shape[TC_MAX_DIMS];
    tc_dtype out_dtype;
    void *extra;
    void (*release_extra)(void *extra);
    /* Backward bookkeeping. */
    tc_tensor *pending_grad;
    uint64_t visit_mark;
    int dependencies;
    bool released; /* saved state freed after a backward without retain */
    tc_dtype autocast; /* the autocast dtype it was recorded under: its backward's GEMMs run in it too */
    struct tc_tensor_hook *hooks; /* the output's tc_tensor_add_hook hooks, run on pending_grad */
};

/* One tensor of a multi-tensor optimiser kernel: contiguous buffers of
 * numel elements on the backend's device. */
typedef struct tc_step_tensor {
    void *param; /* updated in place */
    const void *grad;
    void *state[2];      /* AdamW: m and v; SGD: the momentum buffer (or NULL) */
    int64_t numel;
    double bias1, bias2; /* AdamW: 1 - beta1^step and 1 - beta2^step */
} tc_step_tensor;

/* The windows of an im2col (ops_conv.c): x [batch, channels, height,
 * width] read through kernel-sized windows (index 0 along height, 1 along
 * width) into columns [batch, channels * kernel[0] * kernel[1], out_height *
 * out_width], row (c, i, j) holding x[c][oh * stride[0] - padding[0] + i *
 * dilation[0]][ow * stride[1] - padding[1] + j * dilation[1]] at column
 * (oh, ow). With batch_last the columns are [channels * kernel[0] *
 * kernel[1], batch * out_height * out_width] instead (image n's in columns n *
 * L to (n + 1) * L - 1): a convolution is then one GEMM over the whole batch.
 * The op checked that every product of these fits int64. */
typedef struct tc_conv_geometry {
    int64_t batch, channels, height, width;
    int64_t kernel[2], stride[2], padding[2], dilation[2];
    int64_t out_height, out_width;
    bool batch_last;
} tc_conv_geometry;

/* ---- backends (the slot list: backend_slots.h; the queries: backend.c) ---- */

#include "backend_slots.h"

#ifdef __cplusplus
#define TC_STATIC_ASSERT(condition, message) static_assert(condition, message)
#else
#define TC_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

/* Each slot's function type, tc_slot_<name>: backends declare their kernels
 * with it (`tc_slot_fill cpu_fill;`), so a signature is written once. */
#define TC_SLOT_TYPE(name, kind, result, parameters) typedef result tc_slot_##name parameters;
TC_BACKEND_SLOTS(TC_SLOT_TYPE)
#undef TC_SLOT_TYPE

/* Slot ids, TC_SLOT_<name> after the member's name, and their bits. */
#define TC_SLOT_ID(name, kind, result, parameters) TC_SLOT_##name,
typedef enum tc_backend_slot { TC_BACKEND_SLOTS(TC_SLOT_ID) TC_SLOT_COUNT } tc_backend_slot;
#undef TC_SLOT_ID
TC_STATIC_ASSERT(TC_SLOT_COUNT <= 64, "slot sets are 64-bit masks");
#define TC_SLOT_BIT(name) ((uint64_t)1 << TC_SLOT_##name)

/* The slots every backend fills. */
#define TC_SLOT_KIND_REQUIRED 1
#define TC_SLOT_KIND_OPTIONAL 0
#define TC_SLOT_IF_REQUIRED(name, kind, result, parameters) | (TC_SLOT_KIND_##kind ? TC_SLOT_BIT(name) : 0)
#define TC_REQUIRED_SLOTS (0 TC_BACKEND_SLOTS(TC_SLOT_IF_REQUIRED))

/* A backend: memory and kernels for one device, a member per slot. */
#define TC_SLOT_MEMBER(name, kind, result, parameters) tc_slot_##name *name;
typedef struct tc_backend {
    const char *name;
    tc_device device;
    /* Slots (TC_SLOT_BIT) whose kernels also take bfloat16 and float16
     * (backend_slots.h's 16-bit contract); for the others the ops widen
     * 16-bit operands to float32 (ops_half.c). */
    uint64_t half_slots;
    TC_BACKEND_SLOTS(TC_SLOT_MEMBER)
} tc_backend;
#undef TC_SLOT_MEMBER

/* Building a backend's table from LIST(X), its rows X(slot, kernel):
 * TC_BACKEND_ENTRY makes the designated initialisers (C), and
 * TC_BACKEND_CHECK fails to compile unless the rows name every required
 * slot, none twice. A kernel is taken as &kernel, so NULL or a kernel of
 * another signature does not compile either; an optional slot a backend
 * lacks is left out of its rows. */
#define TC_BACKEND_ENTRY(slot, kernel) .slot = &kernel,
#define TC_BACKEND_ROW_OR(slot, kernel) | TC_SLOT_BIT(slot)
#define TC_BACKEND_ROW_SUM(slot, kernel) +TC_SLOT_BIT(slot)
#define TC_BACKEND_CHECK(backend, LIST)                                                                            \
    TC_STATIC_ASSERT(((0 LIST(TC_BACKEND_ROW_OR)) & TC_REQUIRED_SLOTS) == TC_REQUIRED_SLOTS,                       \
                     backend " backend: a required slot (backend_slots.h) has no kernel");                         \
    TC_STATIC_ASSERT((0 LIST(TC_BACKEND_ROW_OR)) == (0 LIST(TC_BACKEND_ROW_SUM)),                                 \
                     backend " backend: a slot has two kernels")

struct tc_context {
    tc_allocator allocator;
    bool custom_allocator;
    size_t memory_budget;
    size_t memory_in_use; /* storage and scratch on every device (memory.c) */
    size_t memory_peak;
    int num_threads;
    int64_t thread_spin_microseconds; /* idle workers spin this long before they sleep (tc_set_thread_spin) */
    uint64_t rng_seed;
    uint64_t rng_offset;
    int grad_disabled_depth;
    tc_device default_device;
    tc_status last_status;
    char error[TC_ERROR_CAPACITY];
    tc_log_fn log_fn;
    void *log_user;
    uint64_t backward_mark;
    uint64_t last_hook_id; /* tc_tensor_add_hook's ids, unique in the context */
    const tc_backend *backends[TC_DEVICE_COUNT];
    char backend_unavailable_reason[256];
    void *cuda_library; /* dlopen handle of the CUDA backend, when loaded */
    char *cuda_library_path; /* where to load it from (tc_set_cuda_library); NULL: the usual places */
    bool cuda_tf32;          /* float32 matmuls on cuda may use TF32 (tc_set_cuda_tf32) */
    int cuda_device;         /* the device the CUDA backend starts on (tc_set_cuda_device) */
    void *cuda_state;   /* the CUDA backend's stream, cuBLAS handle and memory cache */
    void (*cuda_release_state)(tc_context *ctx); /* set by the CUDA backend */
    struct cpu_pool *cpu_pool;          /* worker threads, started by the first parallel kernel */
    bool native_sgemm; /* float32 GEMMs through cpu/cpu_sgemm.c (AVX-512) rather than the BLAS */
    tc_dtype autocast;  /* TC_BFLOAT16 or TC_FLOAT16: float32 GEMMs read operands rounded to it, on every
                         * backend; TC_FLOAT32: off (tc_set_autocast) */
    int bgemm_path;     /* the cpu_bgemm_path autocast and bf16 weights use, chosen when the context is made */
    struct tc_block_cache *block_cache; /* freed storage kept for reuse (context.c) */
    /* cpu_sgemm's per-chunk packing space, kept between products and grown to the largest asked
     * (cpu_matmul.c): one block instead of one cached per product shape. Counted as in use only during a
     * product, as kept for reuse (tc_memory_cached) between them; tc_memory_release_cached frees it */
    float *gemm_scratch;
    size_t gemm_scratch_bytes;
    struct tc_distributed *distributed; /* the world this context joined (distributed_world.c), or NULL */
};

/* ---- errors and logging (context.c) ---- */

/* Records a formatted message and returns status, for `return tc_fail(...)`. */
tc_status tc_fail(tc_context *ctx, tc_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
void tc_log(tc_context *ctx, tc_log_level level, const char *format, ...) __attribute__((format(printf, 3, 4)));
/* Writes "{2, 3}" into buffer; returns buffer. */
const char *tc_shape_string(int ndim, const int64_t *shape, char *buffer, size_t size);
#define TC_SHAPE_STRING_SIZE 160
/* Wraps a tensor's shape for messages: TC_SHAPE(t) gives a temporary string. */
typedef struct tc_shape_text {
    char text[TC_SHAPE_STRING_SIZE];
} tc_shape_text;
tc_shape_text tc_shape_text_of(const tc_tensor *t);
#define TC_SHAPE(t) (tc_shape_text_of(t).text)

#define TC_TRY(expression)                                                                                         \
    do {                                                                                                           \
        tc_status tc_try_status_ = (expression);                                                                   \
        if (tc_try_status_ != TC_OK) return tc_try_status_;                                                        \
    } while (0)

/* ---- size arithmetic (sizes.c) ----
 * Every tensor's shape obeys one rule, checked when a tensor or view is made:
 * sizes are >= 0 and their product (a 0 counted as 1) times the element size
 * fits int64. Within a valid tensor nothing overflows; arithmetic on sizes
 * that come from outside (arguments, files, results of several tensors)
 * goes through these. */

/* a * b or a + b of non-negative sizes; false on overflow or a negative.
 * (tc_check_shape and tc_checked_numel, in tricycle.h, are the others.) */
bool tc_mul_sizes(int64_t a, int64_t b, int64_t *out);
bool tc_add_sizes(int64_t a, int64_t b, int64_t *out);

/* ---- memory (memory.c) ----
 * Every byte of storage and scratch, on every device, is counted here: the
 * budget, memory_in_use and memory_peak are kept by these two functions,
 * which get the blocks from the device's backend (allocate / release). */

/* NULL with the context's error set when the budget is spent or the device
 * is out of memory. */
void *tc_device_allocate(tc_context *ctx, tc_device device, size_t bytes);
void tc_device_release(tc_context *ctx, tc_device device, void *data, size_t bytes);
/* The same on the CPU (kernels' scratch). */
void *tc_allocate(tc_context *ctx, size_t bytes);
void tc_release_memory(tc_context *ctx, void *data, size_t bytes);
/* The CPU backend's blocks: the context's allocator, and for the engine's
 * own allocator a cache of freed blocks by size class (block_cache.h). */
void *tc_host_allocate(tc_context *ctx, size_t bytes);
void tc_host_release(tc_context *ctx, void *data, size_t bytes);
/* tc_host_release for a block no one will ask the size of again (an
 * outgrown scratch): straight back to the allocator, not to the cache. */
void tc_host_release_uncached(tc_context *ctx, void *data, size_t bytes);
/* Counts bytes of memory the context already holds (a kept scratch) as in
 * use while a kernel uses them, under the budget like an allocation (the
 * error set when it is spent); tc_memory_discharge ends that. */
tc_status tc_memory_charge(tc_context *ctx, tc_device device, size_t bytes);
void tc_memory_discharge(tc_context *ctx, size_t bytes);
/* The engine's own allocator: large blocks mapped from the system, small
 * ones from the C heap. */
extern const tc_allocator tc_default_allocator;
/* The context's worker pool, started on first use with num_threads threads;
 * NULL when the context runs on one thread (or no worker could start). */
struct cpu_pool *tc_context_pool(tc_context *ctx);
/* Plain heap memory for engine bookkeeping (not tensor storage). */
void *tc_malloc(tc_context *ctx, size_t bytes);
void *tc_calloc(tc_context *ctx, size_t count, size_t size);
void tc_free(void *p);

const tc_backend *tc_cpu_backend(void);

/* Loads the CUDA backend into ctx->backends (cuda_loader.c); on failure
 * ctx->backend_unavailable_reason says why. */
void tc_load_cuda_backend(tc_context *ctx);
/* The backend for a device, loading it if needed; fails with the reason. */
tc_status tc_backend_for(tc_context *ctx, tc_device device, const tc_backend **backend);
const tc_backend *tc_backend_of(const tc_tensor *t);
/* Whether a backend fills a slot (required slots always do). */
bool tc_backend_supports(const tc_backend *backend, tc_backend_slot slot);
const char *tc_backend_slot_name(tc_backend_slot slot);
/* The one check before calling optional slots: t's backend when it fills
 * every slot of `slots` (TC_SLOT_BIT(name) | ...) for t's dtype (a 16-bit
 * t only where they are all in its half_slots); else fails with
 * TC_ERROR_UNSUPPORTED, "<op>: not supported on <device> (...)", the
 * missing slot named, and *backend set to NULL. */
tc_status tc_backend_kernels(const tc_tensor *t, const char *op, uint64_t slots, const tc_backend **backend);
/* Whether t's backend runs every slot of `slots` on t's 16-bit dtype (its
 * half_slots); false for other dtypes. */
bool tc_backend_takes_16bit(const tc_tensor *t, uint64_t slots);

/* ---- tensors (tensor.c) ---- */

/* A new contiguous tensor on `device` with uninitialised storage. */
tc_status tc_tensor_new(tc_context *ctx, tc_dtype dtype, tc_device device, int ndim, const int64_t *shape,
                        tc_tensor **out);
/* Same shape/dtype/device as t, uninitialised or zeroed. */
tc_status tc_empty_like(const tc_tensor *t, tc_tensor **out);
tc_status tc_zeros_like(const tc_tensor *t, tc_tensor **out);
tc_status tc_empty_shaped(const tc_tensor *like, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out);
/* A view sharing t's storage with new metadata; not on the tape. */
tc_status tc_tensor_alias(const tc_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                          int64_t offset, tc_tensor **out);
/* A tensor over existing memory owned by someone else. */
tc_status tc_tensor_wrap(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, void *data,
                         size_t nbytes, void (*release)(void *user, void *data, size_t nbytes), void *user,
                         tc_tensor **out);
void tc_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
int64_t tc_shape_numel(int ndim, const int64_t *shape);
bool tc_same_shape(const tc_tensor *a, const tc_tensor *b);
/* A dim as messages show it: counted from 1 as Lua counts, negative ones as
 * given (INT_MAX, past any tensor's dims, stays itself rather than overflow). */
static inline int tc_dim_shown(int dim) { return dim >= 0 && dim < INT32_MAX ? dim + 1 : dim; }
/* Normalises a possibly negative dim against ndim; false when out of range. */
bool tc_normalize_dim(int dim, int ndim, int *out);
/* Checks that tensors share a context and device; names the function. */
tc_status tc_check_same_device(const char *function, const tc_tensor *a, const tc_tensor *b);
/* Broadcast shape of a and b (NumPy rules); fails with a message. */
tc_status tc_broadcast_shapes(tc_context *ctx, const char *function, int ndim_a, const int64_t *shape_a,
                              int ndim_b, const int64_t *shape_b, int *ndim_out, int64_t *shape_out);
/* A view of t broadcast to shape (stride 0 on expanded dims). */
tc_status tc_broadcast_view(const tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out);
tc_dtype tc_promote_dtypes(tc_dtype a, tc_dtype b);
/* ops_half.c. tc_widen_16bit: a 16-bit t as float32 (differentiably), any
 * other t (or NULL) retained as is. tc_narrow_16bit takes `wide` (the result
 * of a widened op, or its failure) and gives it back in dtype when that is
 * 16-bit and wide is float32, else as is. tc_refuse_16bit fails naming op
 * when t is 16-bit. */
tc_status tc_widen_16bit(tc_tensor *t, tc_tensor **out);
tc_status tc_narrow_16bit(tc_status status, tc_tensor *wide, tc_dtype dtype, tc_tensor **out);
tc_status tc_refuse_16bit(const char *op, const tc_tensor *t);
/* When one of the n tensors (NULLs skipped) is 16-bit, fails naming it and
 * the first of the others that is neither 16-bit nor float32. */
tc_status tc_check_16bit_partners(const char *function, int n, const char *const *names, tc_tensor *const *tensors);
/* A copy of t converted to dtype, or t retained when it already is. */
tc_status tc_cast_if_needed(tc_tensor *t, tc_dtype dtype, tc_tensor **out);
void *tc_tensor_data_at_offset(const tc_tensor *t);
/* A fresh contiguous copy of t with the same dtype; not on the tape. */
tc_status tc_contiguous_copy(const tc_tensor *t, tc_tensor **out);

/* ---- files from memory (io_safetensors.c, tokenizer_gpt2.c, tokenizer_hf.c) ----
 * The file readers on bytes already in memory, for tests and fuzzing: the
 * same checks and messages as the path-based calls (which read the file
 * and share the code), with `name` standing for the path. */

/* tc_safetensors_load on a private copy of the size bytes at bytes. */
tc_status tc_safetensors_load_memory(tc_context *ctx, const char *name, const void *bytes, size_t size,
                                     tc_safetensors_file **out);
/* tc_tokenizer_load_hf on the text of tokenizer.json. */
tc_status tc_tokenizer_load_hf_memory(tc_context *ctx, const char *json, size_t len, const char *name,
                                      tc_tokenizer **out);
/* tc_tokenizer_load_gpt2 on the texts of vocab.json and merges.txt. */
tc_status tc_tokenizer_load_gpt2_memory(tc_context *ctx, const char *vocab_json, size_t vocab_len,
                                        const char *vocab_name, const char *merges_txt, size_t merges_len,
                                        const char *merges_name, tc_tokenizer **out);

/* ---- autograd (autograd.c) ---- */

/* True when grad mode is on and any of the tensors requires grad. */
bool tc_should_record(tc_context *ctx, int n, tc_tensor *const *inputs);
/* Puts a node for op on the tape with the given inputs (retained) and makes
 * it out's grad_fn. The node is returned (borrowed) to attach saved state. */
tc_status tc_record(const tc_op *op, int n, tc_tensor *const *inputs, tc_tensor *out, tc_node **node);
/* What an op's node keeps for its backward: integers, a real, the tensors
 * saved in slots 0.. (NULL: none in that slot), and which inputs' values
 * the backward reads (TC_READS(i) for input i). */
typedef struct tc_node_state {
    int n_ints;
    int64_t ints[4];
    double real;
    const tc_tensor *saved[3];
    unsigned reads;
} tc_node_state;
#define TC_READS(i) (1u << (i))
/* Records op `id` on the tape with that state when grad mode is on and an
 * input requires grad; does nothing otherwise. */
tc_status tc_record_op(tc_op_id id, int n, tc_tensor *const *inputs, tc_tensor *out, const tc_node_state *state);
/* Holds t (a detached alias, so saving an op's output makes no cycle). */
tc_status tc_node_save(tc_node *node, int slot, const tc_tensor *t);
bool tc_node_input_needs_grad(const tc_node *node, int index);
/* Declares that the backward reads the values of input `index` (not only
 * its shape): the backward then fails if it was written in place since. */
void tc_node_reads_input(tc_node *node, int index);
/* Call before op writes into t in place. Fails when t requires grad while
 * grad mode is on (the write is not recorded, so its gradient would be
 * wrong); otherwise bumps the version of t's storage, so that a backward
 * that saved t fails instead of using the new values. */
tc_status tc_inplace_begin(tc_tensor *t, const char *op);
/* Sums grad over broadcast dims so it has `shape`; owned result. */
tc_status tc_sum_to_shape(tc_tensor *grad, int ndim, const int64_t *shape, tc_tensor **out);
/* Adds grad into *accumulator (creating it if NULL). */
tc_status tc_accumulate(tc_tensor **accumulator, tc_tensor *grad);
/* Releases a tensor's gradient hook (tc_tensor_release). */
void tc_grad_hook_free(struct tc_grad_hook *hook);
void tc_tensor_hooks_free(struct tc_tensor_hook *hooks);

/* ---- distributed (distributed_world.c, distributed.c) ---- */

/* Leaves the world and frees the context's distributed state (tc_context_free). */
void tc_distributed_release(tc_context *ctx);

/* ---- files (files.c) ----
 * Every file the engine reads or writes goes through these; `fn` names the
 * calling function in messages, which also name the path. Loaders accept
 * regular files only (never blocking on a FIFO or reading a device without
 * end); writers replace files atomically. */

/* What a file was when opened, to notice a change made while it is read. */
typedef struct tc_file_identity {
    int64_t size;
    int64_t mtime_ns;
} tc_file_identity;
/* Opens a regular file for reading (*fd, blocking reads, close-on-exec);
 * anything else (directory, FIFO, device, socket) is an error, found
 * without blocking. identity may be NULL. */
tc_status tc_file_open_regular(tc_context *ctx, const char *fn, const char *path, int *fd,
                               tc_file_identity *identity);
/* Fails when the open file's size or modification time differs from
 * identity (it was truncated or rewritten in place). */
tc_status tc_file_check_unchanged(tc_context *ctx, const char *fn, const char *path, int fd,
                                  const tc_file_identity *identity);
/* Reads exactly size bytes at offset; a file that ends first is an error. */
tc_status tc_file_read_at(tc_context *ctx, const char *fn, const char *path, int fd, void *data, size_t size,
                          int64_t offset);
/* A whole regular file of at most max_bytes (more is an error) into a
 * malloc'd buffer followed by a NUL (not counted in *size). */
tc_status tc_file_read_all(tc_context *ctx, const char *fn, const char *path, size_t max_bytes, char **data,
                           size_t *size);
/* write() until done, or an error naming path. */
tc_status tc_file_write_all(tc_context *ctx, const char *fn, int fd, const void *data, size_t size,
                            const char *path);
/* Writes a file's contents into fd (a fresh temporary named `temporary`). */
typedef tc_status (*tc_file_write_fn)(void *user, int fd, const char *temporary);
/* Replaces path (or the end of its symbolic links) atomically with what
 * fill writes: temporary file beside it, fsync, rename, fsync of the
 * directory. Keeps an existing file's mode; removes temporaries that dead
 * writers left for the same name. See files.c. */
tc_status tc_file_write_atomic(tc_context *ctx, const char *fn, const char *path, tc_file_write_fn fill,
                               void *user);
tc_status tc_file_write_bytes_atomic(tc_context *ctx, const char *fn, const char *path, const void *data,
                                     size_t size);
/* Appends to a regular file (created when missing) without blocking on
 * anything else. */
tc_status tc_file_append(tc_context *ctx, const char *fn, const char *path, const void *data, size_t size);
/* "file", "directory", "fifo", "character device", "block device",
 * "socket" or "other" for what path names (links followed); NULL when
 * nothing is there. Opens nothing. */
const char *tc_file_kind(const char *path);

/* ---- the CUDA backend library (cuda_loader.c) ---- */

/* The engine functions the CUDA backend library calls. The library links no
 * engine code: the engine that loads it hands over this table
 * (cuda_loader.c), and cuda/cuda_common.h sends each of these names through
 * it. A row here is a field of the table and an entry of the engine's copy. */
#define TC_ENGINE_FUNCTIONS(X)                                                                                     \
    X(fail) X(dtype_name) X(dtype_size) X(dtype_is_floating) X(unary_op_name) X(binary_op_name) X(tensor_numel)    \
    X(tensor_data_at_offset) X(same_shape) X(shape_text_of) X(device_allocate) X(device_release)                   \
    X(tensor_is_contiguous)
#ifdef __cplusplus
#define TC_TYPE_OF(expression) decltype(expression)
#else
#define TC_TYPE_OF(expression) __typeof__(expression)
#endif
#define TC_ENGINE_FUNCTION_FIELD(name) TC_TYPE_OF(tc_##name) *name;
typedef struct tc_engine_functions {
    TC_ENGINE_FUNCTIONS(TC_ENGINE_FUNCTION_FIELD)
} tc_engine_functions;
#undef TC_ENGINE_FUNCTION_FIELD

/* The CUDA backend library's entry point (cuda/cuda_backend.cu), found with
 * dlsym: the table, or NULL with the reason written. `abi` must equal the
 * library's TC_BACKEND_ABI, so a library built against other structures is
 * refused instead of misread (it is checked before `engine` is read; the
 * reason comes before it so that a library expecting fewer arguments still
 * writes it in the right place). */
#define TC_CUDA_ENTRY_POINT "tricycle_cuda_backend"
#define TC_BACKEND_ABI                                                                                             \
    ((uint64_t)sizeof(tc_engine_functions) << 52 | (uint64_t)sizeof(tc_backend) << 40 |                           \
     (uint64_t)sizeof(tc_context) << 20 | (uint64_t)sizeof(tc_tensor))
typedef const tc_backend *(*tc_cuda_entry_fn)(tc_context *ctx, uint64_t abi, char *reason, size_t reason_size,
                                               const tc_engine_functions *engine);

/* The CUDA library's collectives on device memory, through NCCL
 * (cuda/cuda_distributed.cu), found with dlsym under
 * TC_CUDA_COLLECTIVES_ENTRY_POINT; the engine's distributed.c drives them.
 * A communicator has a stream of its own: each operation waits for the work
 * already queued on the context's stream, runs on it, and records an event
 * that `test` polls (a finished event is freed and *event set to NULL).
 * Counts are elements of dtype; counts[r] is rank r's segment. Failures set
 * the context's error. */
#define TC_CUDA_COLLECTIVES_ENTRY_POINT "tricycle_cuda_collectives"
#define TC_NCCL_ID_BYTES 128
typedef struct tc_cuda_collectives {
    uint64_t abi; /* TC_BACKEND_ABI of the library */
    /* TC_ERROR_UNSUPPORTED with the reason when NCCL cannot be used (all of them). */
    tc_status (*available)(tc_context *ctx);
    tc_status (*unique_id)(tc_context *ctx, unsigned char id[TC_NCCL_ID_BYTES]);
    tc_status (*comm_new)(tc_context *ctx, const unsigned char id[TC_NCCL_ID_BYTES], int world, int rank,
                          void **comm);
    /* abort: the peers may be gone (ncclCommAbort rather than a collective destroy). */
    void (*comm_free)(tc_context *ctx, void *comm, bool abort);
    tc_status (*all_reduce)(tc_context *ctx, void *comm, void *data, int64_t count, tc_dtype dtype,
                            tc_collective_op op, void **event);
    tc_status (*broadcast)(tc_context *ctx, void *comm, void *data, int64_t count, tc_dtype dtype, int root,
                           void **event);
    tc_status (*all_gather)(tc_context *ctx, void *comm, const void *send, void *recv, const int64_t *counts,
                            tc_dtype dtype, void **event);
    tc_status (*reduce_scatter)(tc_context *ctx, void *comm, const void *send, void *recv, const int64_t *counts,
                                tc_dtype dtype, tc_collective_op op, void **event);
    tc_status (*test)(tc_context *ctx, void *comm, void **event, bool *done);
} tc_cuda_collectives;
typedef const tc_cuda_collectives *(*tc_cuda_collectives_fn)(void);

#endif
