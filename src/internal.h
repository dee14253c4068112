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

/* A backend: memory and kernels for one device. Kernels get validated
 * arguments; outputs are allocated by the caller with the right shape. */
typedef struct tc_backend {
    const char *name;
    tc_device device;
    void *(*allocate)(tc_context *ctx, size_t bytes);
    void (*release)(tc_context *ctx, void *data, size_t bytes);
    /* dst = src, broadcasting src to dst's shape and converting dtype. */
    tc_status (*copy)(tc_tensor *dst, const tc_tensor *src);
    tc_status (*fill)(tc_tensor *t, double value);
    tc_status (*unary)(tc_unary_op op, const tc_tensor *x, tc_tensor *out);
    /* grad_x = grad * d op(x)/dx; y is op(x) (some derivatives use it). */
    tc_status (*unary_backward)(tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad,
                                tc_tensor *grad_x);
    /* a and b already broadcast to out's shape (strides may be 0). */
    tc_status (*binary)(tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out);
    tc_status (*clamp)(const tc_tensor *x, double min, double max, tc_tensor *out);
    /* cond, a, b already broadcast to out's shape. */
    tc_status (*where)(const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out);
    /* Reduces the dims set in `mask` (bit d for dim d); out keeps those dims
     * with size 1. For ARGMAX/ARGMIN exactly one bit is set. */
    tc_status (*reduce)(tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction, tc_tensor *out);
    /* out[b] = op(a[b]) @ op(b[b]) for `batch` matrices with the given
     * element strides between batches; alpha/beta as in BLAS. */
    tc_status (*gemm)(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                      int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b,
                      int64_t ldb, int64_t stride_b, double beta, void *c, int64_t ldc, int64_t stride_c,
                      int64_t batch);
    /* c[m, n] = op(a) @ op(b) + bias for one row-major matrix, the
     * contiguous bias [n] (or NULL: none) added to every row (c is not
     * read); when gelu is
     * not NULL (float32 only) it also gets the tanh GELU of c (leading
     * dimension ldc), the bits unary(TC_GELU_TANH) would give. Optional (NULL: callers copy the
     * bias rows into c, use gemm with beta 1, then unary). */
    tc_status (*gemm_bias)(tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                           int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, const void *bias,
                           void *c, int64_t ldc, void *gelu);
    /* y = alpha * op(a) @ x + beta * y for one row-major matrix a [m, n]
     * (leading dimension lda; op(a) = a^T [n, m] when transpose), x and y
     * contiguous vectors. Optional (NULL: callers use gemm); for products
     * with one row, where GEMM's packing of a costs more than the product. */
    tc_status (*gemv)(tc_context *ctx, tc_dtype dtype, bool transpose, int64_t m, int64_t n, double alpha,
                      const void *a, int64_t lda, const void *x, double beta, void *y);
    /* Softmax or log-softmax over dim of a contiguous x. */
    tc_status (*softmax)(const tc_tensor *x, int dim, bool log, tc_tensor *out);
    tc_status (*softmax_backward)(const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x);
    /* out = x gathered along dim by index (all shaped like out). */
    tc_status (*gather)(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out);
    /* grad_x[index[...]] += grad along dim (grad_x zeroed by the caller). */
    tc_status (*scatter_add)(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad);
    /* out = slices of x along dim picked by 1-D index. */
    tc_status (*index_select)(const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out);
    /* grad_x slices along dim += grad slices (grad_x zeroed by the caller). */
    tc_status (*index_add)(tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad);
    /* Philox uniform [0,1) or normal numbers into a contiguous tensor. */
    tc_status (*random)(tc_tensor *out, bool normal, uint64_t seed, uint64_t offset);
    /* out = x * keep / (1 - p) with keep drawn from Philox; mask gets keep. */
    tc_status (*dropout)(const tc_tensor *x, double p, uint64_t seed, uint64_t offset, tc_tensor *mask,
                         tc_tensor *out);

    /* ---- fused neural-network kernels (CPU versions: cpu/cpu_fused.c) ----
     * Shared contract: arguments are validated by ops_fused.c; `dtype` is
     * TC_FLOAT32 or TC_FLOAT64 and names the element type of every floating
     * pointer; pointers are device memory of this backend, contiguous and
     * row-major; outputs are allocated by the caller. A kernel that needs
     * scratch allocates it itself and fails only with TC_ERROR_MEMORY. Scalar
     * results go to host double* out-parameters. Results depend only on the
     * inputs and ctx->num_threads (fixed chunking, ordered reductions). */

    /* Layer norm (!rms: y = (x - mean) * rstd * w + b) or RMS norm (rms: y =
     * x * rstd * w, mean written as 0) of `rows` rows of `cols` values.
     * weight and bias may be NULL. mean and rstd get one value per row. */
    tc_status (*layer_norm_forward)(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                    const void *bias, double eps, int64_t rows, int64_t cols, void *out, void *mean,
                                    void *rstd);
    /* dx (overwritten) and dweight, dbias (overwritten, summed over rows)
     * from dout; any of dx, dweight, dbias may be NULL (not wanted). */
    tc_status (*layer_norm_backward)(tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight,
                                     const void *mean, const void *rstd, const void *dout, int64_t rows,
                                     int64_t cols, void *dx, void *dweight, void *dbias);
    /* Multi-head self-attention over packed qkv [B, T, 3C] (q, k, v on the
     * last dim; head h at columns h*hd .. h*hd+hd-1 of each), out [B, T, C]
     * with the heads merged, lse [B, n_head, T] the log-sum-exp of each row
     * of scores scaled by 1/sqrt(hd) (masked above the diagonal when causal). */
    tc_status (*attention_forward)(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                   int64_t channels, int64_t n_head, bool causal, void *out, void *lse);
    /* dqkv [B, T, 3C] (overwritten) from dout [B, T, C], given the forward's
     * qkv, out and lse; the probabilities are recomputed, never stored. */
    tc_status (*attention_backward)(tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out,
                                    const void *lse, const void *dout, int64_t batch, int64_t time, int64_t channels,
                                    int64_t n_head, bool causal, void *dqkv);
    /* Incremental decoding, no gradient: the keys and values of qkv [B, T,
     * 3C] (T new positions) are written into k_cache and v_cache [B, n_head,
     * capacity, hd] at positions position .. position+T-1, then the T
     * queries attend to cached positions 0 .. position+T-1 (new query i sees
     * up to position+i when causal); out [B, T, C]. position + T <= capacity. */
    tc_status (*attention_cached)(tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time,
                                  int64_t channels, int64_t n_head, bool causal, void *k_cache, void *v_cache,
                                  int64_t capacity, int64_t position, void *out);
    /* Softmax cross-entropy over rows of logits [rows, classes]; targets are
     * int32 or int64 (target_dtype) in [0, classes) or equal to
     * ignore_index. Writes lse per row, the loss summed over kept rows to
     * *loss_sum and their number to *count. */
    tc_status (*cross_entropy_forward)(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                       const void *targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                       void *lse, double *loss_sum, int64_t *count);
    /* dlogits = scale * (softmax - onehot) on kept rows, 0 on ignored rows. */
    tc_status (*cross_entropy_backward)(tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype,
                                        const void *targets, const void *lse, int64_t rows, int64_t classes,
                                        int64_t ignore_index, double scale, void *dlogits);
    /* AdamW over `count` tensors at once (m = state[0], v = state[1]), in
     * place; bias1 and bias2 (1 - beta^step, per tensor) in each entry. */
    tc_status (*adamw_step)(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                            double beta1, double beta2, double eps, double weight_decay);
    /* SGD over `count` tensors (momentum buffer = state[0], NULL when
     * momentum is 0), in place. */
    tc_status (*sgd_step)(tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr,
                          double momentum, double dampening, bool nesterov, double weight_decay);
    /* *out = the sum of squares of every element of `count` buffers of
     * sizes[i] elements, accumulated in double. */
    tc_status (*sum_squares)(tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes,
                             double *out);
    /* x[i] *= factor in place for `count` buffers of sizes[i] elements. */
    tc_status (*scale)(tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes,
                       double factor);
} tc_backend;

struct tc_context {
    tc_allocator allocator;
    bool custom_allocator;
    size_t memory_budget;
    size_t memory_in_use;
    size_t memory_peak;
    int num_threads;
    uint64_t rng_seed;
    uint64_t rng_offset;
    int grad_disabled_depth;
    tc_device default_device;
    tc_status last_status;
    char error[TC_ERROR_CAPACITY];
    tc_log_fn log_fn;
    void *log_user;
    uint64_t backward_mark;
    const tc_backend *backends[TC_DEVICE_COUNT];
    char backend_unavailable_reason[256];
    void *cuda_library; /* dlopen handle of the CUDA backend, when loaded */
    void *cuda_state;   /* the CUDA backend's stream, cuBLAS handle and memory cache */
    void (*cuda_release_state)(tc_context *ctx); /* set by the CUDA backend */
    struct cpu_pool *cpu_pool;          /* worker threads, started by the first parallel kernel */
    bool native_sgemm; /* float32 GEMMs through cpu/cpu_sgemm.c (AVX-512) rather than the BLAS */
    struct tc_block_cache *block_cache; /* freed storage kept for reuse (context.c) */
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

/* a * b or a + b of non-negative sizes; false on overflow or a negative. */
bool tc_mul_sizes(int64_t a, int64_t b, int64_t *out);
bool tc_add_sizes(int64_t a, int64_t b, int64_t *out);
/* Fails, naming op and the shape, unless a tensor of this shape and dtype
 * obeys the rule. */
tc_status tc_check_shape(tc_context *ctx, const char *op, int ndim, const int64_t *shape, tc_dtype dtype);
/* The element count of a shape whose sizes are >= 0; fails naming op and the
 * shape when it overflows int64. */
tc_status tc_checked_numel(tc_context *ctx, const char *op, int ndim, const int64_t *shape, int64_t *numel);

/* ---- memory (context.c) ---- */

void *tc_allocate(tc_context *ctx, size_t bytes);
void tc_release_memory(tc_context *ctx, void *data, size_t bytes);
/* The context's worker pool, started on first use with num_threads threads;
 * NULL when the context runs on one thread (or no worker could start). */
struct cpu_pool *tc_context_pool(tc_context *ctx);
/* Plain heap memory for engine bookkeeping (not tensor storage). */
void *tc_malloc(tc_context *ctx, size_t bytes);
void *tc_calloc(tc_context *ctx, size_t count, size_t size);
void tc_free(void *p);

const tc_backend *tc_cpu_backend(void);
/* The CUDA backend library's entry point (cuda/cuda_backend.cu), found with
 * dlsym: the table, or NULL with the reason written. `abi` must equal the
 * library's TC_BACKEND_ABI, so a library built against other structures is
 * refused instead of misread. */
#define TC_CUDA_ENTRY_POINT "tricycle_cuda_backend"
#define TC_BACKEND_ABI                                                                                             \
    ((uint64_t)sizeof(tc_backend) << 40 | (uint64_t)sizeof(tc_context) << 20 | (uint64_t)sizeof(tc_tensor))
typedef const tc_backend *(*tc_cuda_entry_fn)(tc_context *ctx, uint64_t abi, char *reason, size_t reason_size);
/* Loads the CUDA backend into ctx->backends (cuda_loader.c); on failure
 * ctx->backend_unavailable_reason says why. */
void tc_load_cuda_backend(tc_context *ctx);
/* The backend for a device, loading it if needed; fails with the reason. */
tc_status tc_backend_for(tc_context *ctx, tc_device device, const tc_backend **backend);
const tc_backend *tc_backend_of(const tc_tensor *t);

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
/* A copy of t converted to dtype, or t retained when it already is. */
tc_status tc_cast_if_needed(tc_tensor *t, tc_dtype dtype, tc_tensor **out);
void *tc_tensor_data_at_offset(const tc_tensor *t);
/* A fresh contiguous copy of t with the same dtype; not on the tape. */
tc_status tc_contiguous_copy(const tc_tensor *t, tc_tensor **out);

/* ---- files from memory (io_safetensors.c, tokenizer.c) ----
 * The file readers on bytes already in memory, for tests and fuzzing: the
 * same checks and messages as the path-based calls (which read the file
 * and share the code), with `name` standing for the path. */

/* tc_safetensors_load on a private copy of the size bytes at bytes. */
tc_status tc_safetensors_load_memory(tc_context *ctx, const char *name, const void *bytes, size_t size,
                                     tc_safetensors_file **out);
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

#endif
