/*
 * tricycle.h: the whole public C API of the tricycle engine.
 *
 * A context owns every piece of mutable state (allocator, RNG, thread count,
 * error message, log callback, grad mode, backends). Every call returns a
 * tc_status; on failure the context holds a message naming the function, the
 * argument and the shapes involved (tc_last_error). The engine never exits,
 * aborts or writes to stdout/stderr.
 *
 * Conventions of the C API: dimensions are 0-based and may be negative
 * (counting from the end); integer data (indices, token ids) are 0-based.
 * Tensors are reference counted: every tensor returned through an out
 * parameter is owned by the caller, who releases it with tc_tensor_release.
 */
#ifndef TRICYCLE_H
#define TRICYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "op_list.h"

#define TC_MAX_DIMS 8

typedef enum tc_status {
    TC_OK = 0,
    TC_ERROR_ARGUMENT,    /* a bad argument: wrong value, out-of-range dim */
    TC_ERROR_SHAPE,       /* shapes that do not fit together */
    TC_ERROR_DTYPE,       /* a dtype the operation does not accept */
    TC_ERROR_MEMORY,      /* allocation failed or the byte budget is spent */
    TC_ERROR_IO,          /* a file could not be read or written */
    TC_ERROR_FORMAT,      /* a file's contents are malformed */
    TC_ERROR_STATE,       /* wrong state: graph already freed, closed tensor */
    TC_ERROR_UNSUPPORTED, /* not available: device, backend, dtype combo */
    TC_ERROR_CALLBACK     /* a user callback (custom autograd function) failed */
} tc_status;

typedef enum tc_dtype {
    TC_FLOAT32 = 0,
    TC_FLOAT64,
    TC_INT32,
    TC_INT64,
    TC_UINT8,
    TC_BOOL,
    TC_BFLOAT16, /* 16-bit floats: stored as such, computed in float32 (docs/API.md lists the ops) */
    TC_FLOAT16,
    TC_DTYPE_COUNT
} tc_dtype;

typedef enum tc_device { TC_CPU = 0, TC_CUDA = 1, TC_DEVICE_COUNT } tc_device;

typedef enum tc_log_level { TC_LOG_DEBUG = 0, TC_LOG_INFO, TC_LOG_WARNING, TC_LOG_ERROR } tc_log_level;

typedef struct tc_context tc_context;
typedef struct tc_tensor tc_tensor;
typedef struct tc_node tc_node;

/* ---- context ---------------------------------------------------------- */

typedef void (*tc_log_fn)(void *user, tc_log_level level, const char *message);

/* A host may supply its own allocator; alignment is always a power of two. */
typedef struct tc_allocator {
    void *(*allocate)(void *user, size_t bytes, size_t alignment);
    void (*release)(void *user, void *pointer, size_t bytes);
    void *user;
} tc_allocator;

/* Creates a context with the default allocator, seed 0, grad mode on. NULL on
 * allocation failure (the only call that cannot report through a context). */
tc_context *tc_context_new(void);
/* Creates a context with a host allocator (NULL for the default). */
tc_context *tc_context_new_with_allocator(const tc_allocator *allocator);
void tc_context_free(tc_context *ctx);

const char *tc_last_error(const tc_context *ctx);
tc_status tc_last_status(const tc_context *ctx);
void tc_clear_error(tc_context *ctx);
/* Records an error (for host callbacks such as custom functions); returns status. */
tc_status tc_set_error(tc_context *ctx, tc_status status, const char *message);
void tc_set_log_callback(tc_context *ctx, tc_log_fn fn, void *user);
/* Caps the bytes of tensor storage alive at once; 0 means no cap. An
 * allocation past it fails with TC_ERROR_MEMORY, naming the bytes asked and
 * in use; storage already alive is kept. */
void tc_set_memory_budget(tc_context *ctx, size_t bytes);
size_t tc_memory_budget(const tc_context *ctx);
size_t tc_memory_in_use(const tc_context *ctx);
size_t tc_memory_peak(const tc_context *ctx);
/* Hands the freed storage kept for reuse and the GEMM's packing space back
 * to the allocator (the system), as a host may after loading a model; later
 * allocations refill the cache. */
void tc_memory_release_cached(tc_context *ctx);
/* Bytes the CPU side keeps for reuse now, not counted in tc_memory_in_use:
 * freed storage blocks and the GEMM's packing space (tc_memory_release_cached frees both). */
size_t tc_memory_cached(const tc_context *ctx);
/* Threads for CPU kernels (the caller and threads - 1 workers, started by
 * the first parallel kernel or tc_start_threads). */
void tc_set_num_threads(tc_context *ctx, int threads);
int tc_num_threads(const tc_context *ctx);
/* How long idle worker threads spin for the next job before they sleep:
 * TC_DEFAULT_THREAD_SPIN_MICROSECONDS bridges the gaps between the ops of a
 * training step; a host that runs a forward pass once per frame sets 0 so
 * that between frames the workers sleep and use no CPU. 0 ..
 * TC_MAX_THREAD_SPIN_MICROSECONDS, else TC_ERROR_ARGUMENT. */
#define TC_DEFAULT_THREAD_SPIN_MICROSECONDS 100
#define TC_MAX_THREAD_SPIN_MICROSECONDS 1000000
tc_status tc_set_thread_spin(tc_context *ctx, int64_t microseconds);
int64_t tc_thread_spin(const tc_context *ctx);
/* Tells the worker threads that no kernel follows soon (a frame's work is
 * done): they stop spinning and sleep now; the next parallel kernel wakes
 * them and spinning resumes. With it a host keeps the spin's speed inside
 * a frame and idle workers between frames. */
void tc_park_threads(tc_context *ctx);
/* Starts the worker threads now rather than in the first parallel kernel
 * (a host's load step, so that no frame pays for it); TC_ERROR_STATE when
 * none could be started. */
tc_status tc_start_threads(tc_context *ctx);
void tc_set_default_device(tc_context *ctx, tc_device device);
tc_device tc_default_device(const tc_context *ctx);
/* Float32 matrix products on the CPU run on the engine's own AVX-512 kernel
 * when the CPU has it (the default), or on the BLAS when disabled (to
 * compare). tc_native_sgemm says which is used. */
void tc_set_native_sgemm(tc_context *ctx, bool enabled);
bool tc_native_sgemm(const tc_context *ctx);
/* The CUDA backend library to load (a path, e.g. the CPU-emulated build);
 * NULL or "" for the usual places: libtricycle_cuda.so beside the module
 * holding the engine when the NVIDIA driver is present, else the system's
 * library path. The path is copied. Clears a recorded failure to load, so
 * the next use of the device tries again. */
tc_status tc_set_cuda_library(tc_context *ctx, const char *path);
const char *tc_cuda_library(const tc_context *ctx); /* NULL: the usual places */
/* Whether float32 matmuls on cuda may use TF32 tensor cores (default: no,
 * exact float32). Both CUDA settings fail with TC_ERROR_STATE once the
 * backend has started for the context (its first use of the device). */
tc_status tc_set_cuda_tf32(tc_context *ctx, bool allowed);
bool tc_cuda_tf32(const tc_context *ctx);
/* The CUDA device (0-based) the backend starts on for this context:
 * default 0; tc_distributed_init sets the local rank, one device per rank
 * of a machine. Fails with TC_ERROR_STATE once the backend started. */
tc_status tc_set_cuda_device(tc_context *ctx, int device);
int tc_cuda_device(const tc_context *ctx);

/* The RNG is Philox 4x32-10 keyed by (seed, offset): the same seed gives the
 * same numbers on every device and any thread count. */
void tc_manual_seed(tc_context *ctx, uint64_t seed);
void tc_rng_get_state(const tc_context *ctx, uint64_t *seed, uint64_t *offset);
void tc_rng_set_state(tc_context *ctx, uint64_t seed, uint64_t offset);

/* Grad mode: while disabled no op records on the tape. Calls nest like a
 * stack: each tc_set_grad_enabled(ctx, false) is undone by one later
 * tc_set_grad_enabled(ctx, true), so a library disabling it inside a
 * caller's disabled region leaves it disabled on return. */
void tc_set_grad_enabled(tc_context *ctx, bool enabled);
bool tc_is_grad_enabled(const tc_context *ctx);

/* Autocast (mixed precision): while the context's autocast dtype is
 * TC_BFLOAT16 or TC_FLOAT16, float32 matrix products (matmul, einsum,
 * linear, linear_gelu, and the backward of every op recorded meanwhile,
 * whenever it runs) read their operands rounded to that dtype (nearest
 * even; float16 past 65504 is +-Inf, so train with loss scaling) and sum in
 * float32 (bf16 on the CPU cpu_bgemm; float16 on the CPU the float32 GEMM
 * on rounded copies; on CUDA cuBLAS's 16-bit GEMM on rounded copies), and
 * tc_attention of float32 qkv reads qkv so rounded; tensors, outputs and
 * every other op stay float32. TC_FLOAT32 turns it
 * off; any other dtype is TC_ERROR_DTYPE. */
tc_status tc_set_autocast(tc_context *ctx, tc_dtype dtype);
tc_dtype tc_autocast(const tc_context *ctx);
/* What runs those bf16 products on the CPU (and linear's bf16 weights):
 * "amx", "avx512" or "fallback" (widened values through the BLAS), each
 * capped by what the CPU has; the fastest by default. Another name is
 * TC_ERROR_ARGUMENT. The same values on every path; sums differ by float32
 * rounding. */
tc_status tc_set_bgemm_path(tc_context *ctx, const char *name);
const char *tc_bgemm_path(const tc_context *ctx);

/* ---- dtypes ----------------------------------------------------------- */

size_t tc_dtype_size(tc_dtype dtype);
const char *tc_dtype_name(tc_dtype dtype);
/* Parses "float32", "float", "float64", "double", "int32", "int64", "long",
 * "uint8", "bool"; returns false for anything else. */
bool tc_dtype_from_name(const char *name, tc_dtype *dtype);
bool tc_dtype_is_floating(tc_dtype dtype);
/* bfloat16 or float16: floating, stored in 16 bits, computed in float32. */
bool tc_dtype_is_16bit(tc_dtype dtype);
/* Whether a tensor of dtype holds value exactly: for an integer dtype, an
 * integer in its range (never NaN); true for floating and bool dtypes. */
bool tc_dtype_holds(tc_dtype dtype, double value);
const char *tc_device_name(tc_device device);

/* ---- tensors: lifetime and metadata ----------------------------------- */

void tc_tensor_retain(tc_tensor *t);
void tc_tensor_release(tc_tensor *t);

tc_context *tc_tensor_context(const tc_tensor *t);
int tc_tensor_ndim(const tc_tensor *t);
const int64_t *tc_tensor_shape(const tc_tensor *t);
const int64_t *tc_tensor_strides(const tc_tensor *t);
int64_t tc_tensor_numel(const tc_tensor *t);
tc_dtype tc_tensor_dtype(const tc_tensor *t);
tc_device tc_tensor_device(const tc_tensor *t);
bool tc_tensor_is_contiguous(const tc_tensor *t);
/* Bytes of storage behind the tensor (shared by its views). */
size_t tc_tensor_storage_bytes(const tc_tensor *t);
/* Host pointer to the first element (CPU tensors only), honouring the view
 * offset; the layout is given by shape and strides (in elements). */
void *tc_tensor_data(const tc_tensor *t);

bool tc_tensor_requires_grad(const tc_tensor *t);
tc_status tc_tensor_set_requires_grad(tc_tensor *t, bool requires_grad);
/* The accumulated gradient of a leaf, or NULL. Borrowed: retain to keep. */
tc_tensor *tc_tensor_grad(const tc_tensor *t);
/* Replaces the gradient (NULL clears it). The shape must match. */
tc_status tc_tensor_set_grad(tc_tensor *t, tc_tensor *grad);
bool tc_tensor_is_leaf(const tc_tensor *t);
/* Name of the op that produced t on the tape, or NULL for a leaf. */
const char *tc_tensor_grad_fn_name(const tc_tensor *t);

/* ---- tensors: creation ------------------------------------------------ */

/* Every tensor's shape obeys one rule: 0 to TC_MAX_DIMS sizes, each >= 0,
 * whose product (a size of 0 counted as 1) times the element size fits in
 * int64. Functions that make tensors refuse other shapes; this checks one
 * beforehand (op names the caller in the message). */
tc_status tc_check_shape(tc_context *ctx, const char *op, int ndim, const int64_t *shape, tc_dtype dtype);
/* The element count of a shape of sizes >= 0; fails, naming op and the
 * shape, when it does not fit in int64. */
tc_status tc_checked_numel(tc_context *ctx, const char *op, int ndim, const int64_t *shape, int64_t *numel);

tc_status tc_empty(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_zeros(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_ones(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_full(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, double value, tc_tensor **out);
/* start, start+step, ... while < end (or > end for a negative step). */
tc_status tc_arange(tc_context *ctx, tc_dtype dtype, double start, double end, double step, tc_tensor **out);
/* Uniform in [0, 1) and standard normal, from the context's RNG. */
tc_status tc_rand(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_randn(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, tc_tensor **out);
/* Copies count contiguous elements of `source_dtype` from host memory,
 * converting to `dtype`. */
tc_status tc_from_data(tc_context *ctx, tc_dtype dtype, int ndim, const int64_t *shape, const void *data,
                       tc_dtype source_dtype, tc_tensor **out);
/* Reads one element as double; index has ndim entries. */
tc_status tc_get(const tc_tensor *t, const int64_t *index, double *value);
/* The single element of a one-element tensor. */
tc_status tc_item(const tc_tensor *t, double *value);
/* The same as an int64 (exact for int64 tensors past 2^53, where a double
 * rounds; floats are truncated, saturated, NaN as 0). */
tc_status tc_item_int64(const tc_tensor *t, int64_t *value);
/* Copies all elements, in row-major order, converted to double. */
tc_status tc_copy_to_doubles(const tc_tensor *t, double *values, int64_t count);
/* Copies all elements, in row-major order, as int64 (for integer dtypes). */
tc_status tc_copy_to_int64(const tc_tensor *t, int64_t *values, int64_t count);

/* ---- copies, casts, devices ------------------------------------------- */

/* A contiguous tensor with the same values: t itself (retained) if it is. */
tc_status tc_contiguous(tc_tensor *t, tc_tensor **out);
/* A fresh contiguous copy; differentiable. */
tc_status tc_clone(tc_tensor *t, tc_tensor **out);
/* Shares storage, not on the tape, requires_grad false. */
tc_status tc_detach(tc_tensor *t, tc_tensor **out);
/* Converts to dtype (a differentiable copy between floating dtypes). */
tc_status tc_to_dtype(tc_tensor *t, tc_dtype dtype, tc_tensor **out);
tc_status tc_to_device(tc_tensor *t, tc_device device, tc_tensor **out);
/* In place: dst = src (broadcast to dst's shape, converted); not recorded. */
tc_status tc_copy_(tc_tensor *dst, tc_tensor *src);
/* In place: every element of t = value; not recorded. */
tc_status tc_fill_(tc_tensor *t, double value);
/* TC_OK when tc_dtype_holds(dtype, value); otherwise fails with a message
 * naming op, the value and the dtype. */
tc_status tc_check_scalar(tc_context *ctx, const char *op, double value, tc_dtype dtype);

/* ---- views (share storage; differentiable) ---------------------------- */

/* One entry of shape may be -1 (inferred). Copies when the strides do not
 * allow a view (reshape); tc_view fails instead. */
tc_status tc_reshape(tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_view(tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_transpose(tc_tensor *t, int dim0, int dim1, tc_tensor **out);
tc_status tc_permute(tc_tensor *t, int ndim, const int *dims, tc_tensor **out);
tc_status tc_narrow(tc_tensor *t, int dim, int64_t start, int64_t length, tc_tensor **out);
tc_status tc_select(tc_tensor *t, int dim, int64_t index, tc_tensor **out);
/* Entries of -1 keep the size; new leading dims may be added. */
tc_status tc_expand(tc_tensor *t, int ndim, const int64_t *shape, tc_tensor **out);
tc_status tc_squeeze(tc_tensor *t, int dim, tc_tensor **out);
tc_status tc_unsqueeze(tc_tensor *t, int dim, tc_tensor **out);
tc_status tc_flatten(tc_tensor *t, int start_dim, int end_dim, tc_tensor **out);

/* ---- element-wise ops ------------------------------------------------- */

/* The element-wise ops, from the lists in op_list.h. */
#define TC_ENUM_ENTRY(ID, name, arity, backward, properties, summary) TC_##ID,
typedef enum tc_unary_op { TC_UNARY_OP_LIST(TC_ENUM_ENTRY) TC_UNARY_OP_COUNT } tc_unary_op;
/* Comparisons and logical ops give bool tensors and are not differentiable. */
typedef enum tc_binary_op { TC_BINARY_OP_LIST(TC_ENUM_ENTRY) TC_BINARY_OP_COUNT } tc_binary_op;
#undef TC_ENUM_ENTRY

const char *tc_unary_op_name(tc_unary_op op);
const char *tc_binary_op_name(tc_binary_op op);

/* neg, abs, relu, square, sign and logical_not keep an integer dtype (neg,
 * abs and square wrapping around as two's complement); the other ops compute
 * integers as float32. */
tc_status tc_unary(tc_unary_op op, tc_tensor *x, tc_tensor **out);
/* NumPy broadcasting; mixed dtypes promote (bool < uint8 < int32 < int64 <
 * float32 < float64). Integer add, sub and mul wrap around as two's
 * complement; integer div and pow are float32 ops; on bool, add and maximum
 * are logical or, mul and minimum logical and. */
tc_status tc_binary(tc_binary_op op, tc_tensor *a, tc_tensor *b, tc_tensor **out);
/* A number as a 0-dim tensor of t's dtype (float32 for an integer t when the
 * number has a fraction), for `t op number` and `number op t`. */
tc_status tc_binary_scalar(tc_binary_op op, tc_tensor *t, double value, bool scalar_first, tc_tensor **out);
/* min/max may be NAN for "no bound". For an integer x, a fractional bound
 * clamps a float32 copy, an infinite bound on its open side is no bound, and
 * any other bound must fit the dtype; a bool x is refused. */
tc_status tc_clamp(tc_tensor *x, double min, double max, tc_tensor **out);
/* cond ? a : b, broadcasting all three; cond is bool or uint8. */
tc_status tc_where(tc_tensor *cond, tc_tensor *a, tc_tensor *b, tc_tensor **out);
tc_status tc_masked_fill(tc_tensor *x, tc_tensor *mask, double value, tc_tensor **out);

/* ---- reductions ------------------------------------------------------- */

/* argmax and argmin give int64 results, 0-based, over one dim; var takes
 * a `correction` (tc_var): 1 unbiased, 0 biased. */
#define TC_REDUCE_ENUM_ENTRY(ID, name, arity, backward, properties, summary) TC_REDUCE_##ID,
typedef enum tc_reduce_op { TC_REDUCE_OP_LIST(TC_REDUCE_ENUM_ENTRY) TC_REDUCE_OP_COUNT } tc_reduce_op;
#undef TC_REDUCE_ENUM_ENTRY

/* dims: ndims dimensions to reduce (0-based, negative allowed); ndims == 0
 * reduces over all of them. */
tc_status tc_reduce(tc_reduce_op op, tc_tensor *x, int ndims, const int *dims, bool keepdim, tc_tensor **out);
tc_status tc_var(tc_tensor *x, int ndims, const int *dims, int correction, bool keepdim, tc_tensor **out);

/* ---- linear algebra --------------------------------------------------- */

/* torch.matmul semantics: 1-D and 2-D operands, batched with broadcast
 * batch dims; float32 and float64 through BLAS. */
tc_status tc_matmul(tc_tensor *a, tc_tensor *b, tc_tensor **out);
/* A linear layer in one op: x [..., in] @ weight^T + bias, weight [out, in]
 * (row- or column-major; a transposed view is read in place), bias [out] or
 * NULL; out [..., out]. The bias initialises the GEMM's output (beta = 1);
 * backward is three GEMMs (dx, dweight, and dbias as ones^T @ grad).
 * tc_linear_gelu applies the tanh GELU to the result in the same op and
 * keeps the pre-activation for backward. */
tc_status tc_linear(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, tc_tensor **out);
tc_status tc_linear_gelu(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, tc_tensor **out);
/* Einstein summation over any number of operands, with `...` and repeated
 * indices ("ii->i" takes a diagonal). Contractions of two operands are
 * lowered to batched matmul. */
tc_status tc_einsum(const char *equation, int count, tc_tensor **operands, tc_tensor **out);

/* ---- shaping many tensors, indexing ----------------------------------- */

tc_status tc_cat(int count, tc_tensor **tensors, int dim, tc_tensor **out);
tc_status tc_stack(int count, tc_tensor **tensors, int dim, tc_tensor **out);
/* out[i][j] = x[index[i][j]][j] for dim 0, and alike; index is int64/int32. */
tc_status tc_gather(tc_tensor *x, int dim, tc_tensor *index, tc_tensor **out);
/* Picks whole slices along dim by a 1-D index. */
tc_status tc_index_select(tc_tensor *x, int dim, tc_tensor *index, tc_tensor **out);
/* A copy of x (float32 or float64) with src added at index's positions along dim: out[index[i][j]][j] +=
 * src[i][j] for dim 0, and alike (index and src of one shape, no larger than x but along dim). */
tc_status tc_scatter_add(tc_tensor *x, int dim, tc_tensor *index, tc_tensor *src, tc_tensor **out);
/* A copy of x with the slices of src added at a 1-D index along dim (src is x's shape with dim's size the
 * index's length); repeated ids add up in index order. */
tc_status tc_index_add(tc_tensor *x, int dim, tc_tensor *index, tc_tensor *src, tc_tensor **out);
/* values and 0-based int64 indices of x in order along dim (any dtype; 0-dim x as one element): stable, NaN as the
 * largest (first when descending), -0 equal to 0. values are a gather of x by indices (differentiable). */
tc_status tc_sort(tc_tensor *x, int dim, bool descending, tc_tensor **values, tc_tensor **indices);
/* The first k (0 <= k <= dim's size) of sort's order along dim, largest first when largest (else smallest first);
 * a 0-dim x gives 1-D results. */
tc_status tc_topk(tc_tensor *x, int64_t k, int dim, bool largest, tc_tensor **values, tc_tensor **indices);
/* weight [n, d], ids of any shape -> [..., d]. */
tc_status tc_embedding(tc_tensor *weight, tc_tensor *ids, tc_tensor **out);

/* ---- neural-network ops ----------------------------------------------- */

tc_status tc_softmax(tc_tensor *x, int dim, tc_tensor **out);
tc_status tc_log_softmax(tc_tensor *x, int dim, tc_tensor **out);
/* Zeroes each element with probability p and scales the rest by 1/(1-p);
 * the identity when !training or p == 0. */
tc_status tc_dropout(tc_tensor *x, double p, bool training, tc_tensor **out);

/* ---- autograd --------------------------------------------------------- */

/* Backpropagates from t. grad may be NULL only when t has one element;
 * otherwise it has t's shape and device and a floating dtype.
 * Gradients accumulate (+=) into .grad of leaves that require grad. The
 * graph is freed unless retain_graph. */
tc_status tc_backward(tc_tensor *t, tc_tensor *grad, bool retain_graph);
/* The gradients of t (seeded by grad, or 1 when t has one element) with
 * respect to inputs[0 .. n_inputs), each requiring grad, as new references
 * in grads (NULL for an input no path from t reaches). Unlike tc_backward
 * no tensor's grad field changes and no leaf's gradient hook runs. */
tc_status tc_grad(tc_tensor *t, tc_tensor *grad, int n_inputs, tc_tensor *const *inputs, bool retain_graph,
                  tc_tensor **grads);

/* A user-defined differentiable function. backward receives the gradient of
 * the output and fills grad_inputs[i] (owned references, or NULL for none)
 * for each of the n inputs; a non-OK status aborts the backward pass. */
typedef struct tc_custom_function {
    const char *name;
    tc_status (*backward)(void *user, tc_tensor *grad_output, int n_inputs, tc_tensor **grad_inputs);
    void (*release)(void *user); /* called once when the tape entry is freed */
    void *user;
} tc_custom_function;

/* Records `output` (computed by the caller from `inputs` with grad off) on
 * the tape as the result of fn; out is a new tensor sharing output's storage.
 * A gradient fn->backward gives for an input that requires grad must have
 * that input's shape, dtype and device; anything else fails the backward
 * with a message naming fn and the input's position. */
tc_status tc_custom_apply(const tc_custom_function *fn, int n_inputs, tc_tensor **inputs, tc_tensor *output,
                          tc_tensor **out);

/* A leaf's "gradient ready" hook: called during a backward once the leaf's
 * gradient is final in it (every node of that backward that feeds the leaf
 * has run, so .grad holds the sum), with the leaf; only for leaves the
 * backward gave a gradient. Data-parallel training starts sending a group of
 * gradients as soon as all of them are ready, while the backward goes on.
 * Runs with grad mode off; a status other than TC_OK stops the backward
 * (the hook sets the context's error). One hook per tensor: setting one
 * replaces (and releases) the previous; fn NULL removes it. release, when
 * not NULL, is called once with user when the hook is replaced or the
 * tensor freed. */
typedef tc_status (*tc_grad_hook_fn)(void *user, tc_tensor *leaf);
tc_status tc_tensor_set_grad_hook(tc_tensor *t, tc_grad_hook_fn fn, void (*release)(void *user), void *user);
bool tc_tensor_has_grad_hook(const tc_tensor *t);
/* A tensor's gradient hook: called during a backward with the whole
 * gradient of the tensor in that backward, before a leaf accumulates it into
 * its grad (or tc_grad gathers it) and before a non-leaf passes it on. It
 * may set *replacement to a new reference of the same shape to be used
 * instead (it keeps grad's dtype and device). Runs with grad mode off; a
 * status other than TC_OK stops the backward (the hook sets the error). */
typedef tc_status (*tc_tensor_hook_fn)(void *user, tc_tensor *grad, tc_tensor **replacement);
/* Adds fn to t's hooks (after those already there; t must require grad) and
 * sets *id to a number naming it. release(user), if not NULL, is called once
 * when the hook is removed or t (a leaf) or its graph node is freed. */
tc_status tc_tensor_add_hook(tc_tensor *t, tc_tensor_hook_fn fn, void (*release)(void *user), void *user,
                             uint64_t *id);
/* Removes the hook `id` from t; false when t has no hook of that id. */
bool tc_tensor_remove_hook(tc_tensor *t, uint64_t id);
/* Moves the hook of from (a leaf) to to, as when a leaf's data is replaced
 * by another tensor that takes its place. */
void tc_tensor_move_grad_hook(tc_tensor *from, tc_tensor *to);

/* ---- op table --------------------------------------------------------- */

/* Properties of an op (tc_op_info.properties). */
enum {
    TC_OP_DIFFERENTIABLE = 1 << 0, /* gradients flow to its floating inputs */
    TC_OP_FLOAT_ONLY = 1 << 1,     /* integer inputs are computed in float32, or refused */
    TC_OP_INTEGERS = 1 << 2,       /* computes on integer dtypes in their own dtype */
    TC_OP_BOOL_RESULT = 1 << 3,    /* gives a bool tensor */
    TC_OP_VIEW = 1 << 4,           /* shares its input's storage */
    TC_OP_IN_PLACE = 1 << 5,       /* writes into an argument */
    TC_OP_FUSED = 1 << 6,          /* a hand-written kernel with its own backward */
    TC_OP_METHOD = 1 << 7,         /* a tensor method taking only tensors (or numbers) */
    TC_OP_INTERNAL = 1 << 8,       /* made by other ops, not called by name */
};

/* Every op: TC_OP_<ID>, in the order of op_list.h. */
#define TC_OP_ENUM_ENTRY(ID, name, arity, backward, properties, summary) TC_OP_##ID,
typedef enum tc_op_id { TC_OP_LIST(TC_OP_ENUM_ENTRY) TC_OP_COUNT } tc_op_id;
#undef TC_OP_ENUM_ENTRY

typedef struct tc_op_info {
    const char *name;
    int arity; /* tensor inputs; -1 for a list */
    bool differentiable;
    const char *summary;
    unsigned properties; /* TC_OP_* flags */
} tc_op_info;

/* The ops the engine provides, one per row of op_list.h (index = id). */
int tc_op_count(void);
const tc_op_info *tc_op_at(int index);

/* ---- fused neural-network ops ------------------------------------------ */
/* Hand-written forward and backward kernels (ops_fused.c). Float32 and
 * float64; inputs are made contiguous; CPU only for now. */

/* Layer norm over the last dim of x [..., C]; weight and bias are [C] or
 * NULL. Differentiable in x, weight and bias; keeps the per-row mean and
 * 1/std for the backward. */
tc_status tc_layer_norm(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, double eps, tc_tensor **out);
/* x / sqrt(mean(x^2) + eps) * weight over the last dim; weight [C] or NULL. */
tc_status tc_rms_norm(tc_tensor *x, tc_tensor *weight, double eps, tc_tensor **out);
/* Multi-head self-attention over packed qkv [B, T, (n_head + 2 n_kv_head)
 * * head_dim] (q, k, v concatenated on the last dim: n_head query heads,
 * n_kv_head key and value heads) giving [B, T, n_head * head_dim] with the
 * heads merged. n_kv_head divides n_head and query head h attends with
 * key/value head h / (n_head / n_kv_head) (grouped-query attention;
 * n_kv_head = n_head is plain multi-head attention over [B, T, 3C], 1 is
 * multi-query). Scores scaled by 1/sqrt(head_dim), masked above the
 * diagonal when causal. Keeps only the row log-sum-exp [B, n_head, T] (and
 * holds the output) for the backward, which recomputes the probabilities. */
tc_status tc_attention(tc_tensor *qkv, int n_head, int n_kv_head, bool causal, tc_tensor **out);
/* Incremental decoding (never recorded): writes the keys and values of qkv
 * (packed as for tc_attention, T new positions) into k_cache and v_cache
 * ([B, n_kv_head, capacity, head_dim], contiguous) at positions position ..
 * position+T-1, then attends the T queries to cached positions 0 ..
 * position+T-1 (causally within the new block); out [B, T, n_head *
 * head_dim]. position runs from 0 to capacity - T. */
tc_status tc_attention_cached(tc_tensor *qkv, tc_tensor *k_cache, tc_tensor *v_cache, int64_t position, int n_head,
                              int n_kv_head, bool causal, tc_tensor **out);
/* Rotary position embedding (RoPE) of x, [B, T, H, D] (time_dim 1) or
 * [B, H, T, D] (time_dim 2), D even: each head's pairs of values are
 * rotated by position * base^(-2i/D) for pair i, the positions (int32 or
 * int64, [T] or [B, T]) giving each row's. Pairs are (i, i + D/2), Hugging
 * Face's rotate_half, or (2i, 2i+1) when interleaved (GPT-J, Meta's Llama).
 * Differentiable in x. */
tc_status tc_rope(tc_tensor *x, tc_tensor *positions, int time_dim, double base, bool interleaved, tc_tensor **out);
/* The sliding windows of x [N, C, H, W] as columns [N, C*kH*kW, L] (as
 * PyTorch's F.unfold), L = out_h * out_w with out = (in + 2 * padding -
 * dilation * (kernel - 1) - 1) / stride + 1 on each side; entries past the
 * edges are pad_value (0 for a convolution, -inf for max pooling). Each pair
 * is {height, width}: kernel, stride and dilation >= 1, padding >= 0, each at
 * most 2^31 - 1. batch_last gives [C*kH*kW, N*L] instead (image n in
 * columns n*L to (n+1)*L - 1). Differentiable in x (its backward is col2im). */
tc_status tc_im2col(tc_tensor *x, const int64_t kernel[2], const int64_t stride[2], const int64_t padding[2],
                    const int64_t dilation[2], double pad_value, bool batch_last, tc_tensor **out);
/* 2-D convolution (cross-correlation, as PyTorch's): x [N, C, H, W], weight
 * [O, C / groups, kH, kW], bias [O] or NULL; out [N, O, out_h, out_w]. Made
 * of tc_im2col (batch_last) and one matmul per group over the whole batch
 * (differentiable through them). 16-bit x, weight and bias of one dtype on
 * CUDA: one op, float32 products rounded once (widening's values up to the
 * GEMM's order of summation). */
tc_status tc_conv2d(tc_tensor *x, tc_tensor *weight, tc_tensor *bias, const int64_t stride[2],
                    const int64_t padding[2], const int64_t dilation[2], int64_t groups, tc_tensor **out);
/* Max pooling of x [N, C, H, W] over windows as tc_im2col's (padding at most
 * half the kernel on each side, so no window is all padding); out [N, C,
 * out_h, out_w]. The gradient goes to each window's max (the first of ties). */
tc_status tc_max_pool2d(tc_tensor *x, const int64_t kernel[2], const int64_t stride[2], const int64_t padding[2],
                        const int64_t dilation[2], tc_tensor **out);
/* Mean softmax cross-entropy of logits [..., V] against 0-based targets
 * [...] (int32 or int64) over the targets that are not ignore_index; 0 (and
 * zero gradients) when every target is ignored. A 0-dim result;
 * differentiable in logits. */
tc_status tc_cross_entropy(tc_tensor *logits, tc_tensor *targets, int64_t ignore_index, tc_tensor **out);
/* In-place AdamW update of param, m and v from grad (all the same shape and
 * floating dtype, contiguous); step counts from 1. Decoupled weight decay:
 * p -= lr*wd*p, then p -= lr * mhat / (sqrt(vhat) + eps). Not recorded. */
tc_status tc_adamw_step(tc_tensor *param, tc_tensor *grad, tc_tensor *m, tc_tensor *v, int64_t step, double lr,
                        double beta1, double beta2, double eps, double weight_decay);
/* tc_adamw_step over `count` parameters in one call, each with its own
 * step; the same hyper-parameters for all. */
tc_status tc_adamw_step_many(int count, tc_tensor **params, tc_tensor **grads, tc_tensor **m, tc_tensor **v,
                             const int64_t *steps, double lr, double beta1, double beta2, double eps,
                             double weight_decay);
/* In-place SGD: g = grad + wd*p; with momentum, buf = momentum*buf +
 * (1-dampening)*g (buf starts at zeros) and g = buf, or g + momentum*buf
 * when nesterov; p -= lr*g. momentum_buffer may be NULL when momentum is 0. */
tc_status tc_sgd_step(tc_tensor *param, tc_tensor *grad, tc_tensor *momentum_buffer, double lr, double momentum,
                      double dampening, bool nesterov, double weight_decay);
/* sqrt of the sum of squares of every element of every tensor (NULL entries
 * are skipped), accumulated in double; for gradient clipping. */
tc_status tc_global_norm(int count, tc_tensor **tensors, double *out);
/* In place: t *= factor (floating t); not recorded. */
tc_status tc_scale_(tc_tensor *t, double factor);

/* ---- files: safetensors ----------------------------------------------- */

/* The safetensors format: an 8-byte little-endian header length N, N bytes
 * of JSON ({name: {dtype, shape, data_offsets: [begin, end)}, optional
 * "__metadata__": {string: string}}), then the data section. Dtypes map as
 * F32 float32, F64 float64, I32 int32, I64 int64, U8 uint8, BOOL bool,
 * BF16 bfloat16, F16 float16 (each read and written as such). */
typedef struct tc_safetensors_file tc_safetensors_file;

/* Writes count tensors under their names (distinct, non-empty, not
 * "__metadata__"), in name order, to a temporary file next to path, fsyncs
 * it and renames it over path: a crash leaves the old file or the new one,
 * never a mix. A symbolic link is followed (its target is replaced), an
 * existing file keeps its mode, and a path that names something other than
 * a regular file is an error. Tensors may be views or on any device (copied
 * to host as needed). metadata_json is NULL or a JSON object whose values
 * are all strings, with no NUL byte in its keys and values; it becomes
 * "__metadata__". */
tc_status tc_safetensors_save(tc_context *ctx, const char *path, int count, const char **names, tc_tensor **tensors,
                              const char *metadata_json);
/* Opens path (a regular file: a directory, FIFO or device is an error, found
 * without blocking), reads and validates the whole header: header length,
 * JSON, dtypes, shapes (each a valid tensor shape, sizes checked against
 * overflow), offsets in bounds and non-overlapping, and byte lengths
 * matching shape x dtype size. Errors name the path and the offending
 * tensor and field. The handle keeps the file open. On success *out is
 * owned by the caller. */
tc_status tc_safetensors_load(tc_context *ctx, const char *path, tc_safetensors_file **out);
/* Number of tensors; index i in [0, count) lists them in name order. */
int tc_safetensors_count(const tc_safetensors_file *file);
const char *tc_safetensors_name(const tc_safetensors_file *file, int index);
/* The tensor at index i (owned by the caller), read from the file into
 * memory of its own (the context's allocator, so within its budget); it
 * outlives tc_safetensors_close and never changes the file. The file is
 * not mapped, so another program truncating or rewriting it cannot crash
 * this one: a file whose size or modification time changed since it was
 * opened is an error (TC_ERROR_IO) naming it. F16/BF16 load as float16/bfloat16. */
tc_status tc_safetensors_get(tc_safetensors_file *file, int index, tc_tensor **out);
/* The same by name; TC_ERROR_ARGUMENT naming the file when absent. */
tc_status tc_safetensors_get_by_name(tc_safetensors_file *file, const char *name, tc_tensor **out);
/* Index of name, or -1. */
int tc_safetensors_find(const tc_safetensors_file *file, const char *name);
/* The "__metadata__" object as compact JSON text, or NULL when absent.
 * Borrowed: valid until tc_safetensors_close. */
const char *tc_safetensors_metadata(const tc_safetensors_file *file);
/* Releases the handle; tensors taken from it stay valid. NULL is fine. */
void tc_safetensors_close(tc_safetensors_file *file);

/* ---- tokenizers ------------------------------------------------------- */

/*
 * Byte-level BPE, GPT-2 files, and a character-level tokenizer.
 *
 * A tokenizer is immutable once made and belongs to the context it was made
 * with: errors are reported there, so like its context it is used by one
 * thread at a time. Token ids are 0-based int32. Buffers that a call
 * returns are owned by the caller and released with the matching
 * tc_tokenizer_free_* function.
 *
 * Byte-level BPE: a token is a byte string. A trained tokenizer has the 256
 * single bytes as ids 0..255 and merge number r (0-based, in training order)
 * as id 256 + r. Encoding applies the merges by rank (lowest first, all
 * occurrences of one merge left to right before the next), so any bytes can
 * be encoded, and tc_tokenizer_decode_bytes gives them back exactly
 * (tc_tokenizer_decode too, when they are valid UTF-8).
 *
 * GPT-2 pre-splitting: with it, text is first cut into pieces by GPT-2's
 * pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and merges never cross pieces. \p{L}, \p{N} and \s follow the Unicode
 * tables (letters, numbers, White_Space). A byte that is not part of valid
 * UTF-8 counts as one character that is neither letter, number nor space.
 * Without it, training and encoding treat the whole text as one sequence.
 */

typedef struct tc_tokenizer tc_tokenizer;

typedef enum tc_tokenizer_kind {
    TC_TOKENIZER_BPE = 0, /* byte-level BPE (trained, loaded or GPT-2) */
    TC_TOKENIZER_CHAR     /* one token per character of a fixed alphabet */
} tc_tokenizer_kind;

/* Trains a byte-level BPE on text until it has vocab_size tokens (>= 256).
 * Each step merges the most frequent adjacent pair; ties go to the smallest
 * pair (first id, then second id). Training stops early, with a smaller
 * vocabulary, when no adjacent pair is left. Deterministic. text may hold
 * any bytes; len must be below 2^31. */
tc_status tc_bpe_train(tc_context *ctx, const char *text, size_t len, int vocab_size, bool gpt2_split,
                       tc_tokenizer **out);

/* A character tokenizer whose vocabulary is the distinct characters of text
 * (UTF-8 sequences; a byte outside valid UTF-8 is a character of its own),
 * sorted by code point: id i is the i-th smallest. text must not be empty. */
tc_status tc_char_tokenizer_new(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out);

/* Loads GPT-2's vocab.json (token string -> id, the strings written with
 * GPT-2's byte-to-character mapping) and merges.txt (an optional `#version`
 * first line, then one merge `left right` per line, in rank order). The
 * result pre-splits like GPT-2 and encodes exactly as GPT-2's tokenizer does
 * on ordinary text (special tokens such as <|endoftext|> are decodable but
 * never produced by encoding). Errors name the file, line and column. */
tc_status tc_tokenizer_load_gpt2(tc_context *ctx, const char *vocab_json_path, const char *merges_txt_path,
                                 tc_tokenizer **out);

/* Loads Hugging Face's tokenizer.json of a BPE model: byte-level ones (a
 * ByteLevel pre-tokenizer, alone or after a Split by GPT-2's, Llama 3's or
 * Qwen's pattern; normalizer null or NFC; ignore_merges) as in Llama 3,
 * Qwen 2/3 and GPT-2, and SentencePiece ones with byte fallback (Prepend
 * "▁" and Replace " " -> "▁" normalizer, no pre-tokenizer) as in Llama 2.
 * Encoding matches transformers.js (tokenizer.encode(text,
 * {add_special_tokens: false})): added tokens (special or not) are found in
 * the text first, longest first, and become their ids; nothing is added in
 * front (no BOS). Merges apply one at a time by (rank, position). Tokens
 * hold the bytes they decode to (SentencePiece's "▁" is " ", <0xNN> the
 * byte); tc_tokenizer_decode drops SentencePiece's leading space,
 * tc_tokenizer_decode_bytes keeps it (for decoding one token at a time). What else a file
 * asks for (another model or pattern, lstrip, dropout ...) is an error
 * naming the field. */
tc_status tc_tokenizer_load_hf(tc_context *ctx, const char *path, tc_tokenizer **out);
/* The lowest id whose token is exactly these bytes; -1 when none. */
int32_t tc_tokenizer_find_token(const tc_tokenizer *tok, const char *bytes, size_t len);

/* Writes a tokenizer to a text file (tokens and merges, one per line) that
 * tc_tokenizer_load reads back exactly. Replaces path atomically as
 * tc_safetensors_save does, so a failed save leaves path untouched.
 * Loading, here and in tc_tokenizer_load_gpt2, accepts regular files only
 * (a FIFO or a device is an error, never a read that blocks or does not
 * end). */
tc_status tc_tokenizer_save(const tc_tokenizer *tok, const char *path);
tc_status tc_tokenizer_load(tc_context *ctx, const char *path, tc_tokenizer **out);
/* The same text form in memory (for embedding in checkpoints): *text is a
 * fresh NUL-terminated buffer of *len bytes, freed with
 * tc_tokenizer_free_text; errors name the line as `<text>:LINE`. */
tc_status tc_tokenizer_serialize(const tc_tokenizer *tok, char **text, size_t *len);
tc_status tc_tokenizer_deserialize(tc_context *ctx, const char *text, size_t len, tc_tokenizer **out);

void tc_tokenizer_free(tc_tokenizer *tok);

/* Encodes len bytes of text (len below 2^31). *ids is a fresh array of *count ids (possibly
 * zero ids, never NULL on success); free it with tc_tokenizer_free_ids.
 * BPE never fails on content; a character tokenizer fails on a character
 * outside its vocabulary, naming it and its byte offset. */
tc_status tc_tokenizer_encode(const tc_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *count);
void tc_tokenizer_free_ids(int32_t *ids);

/* Decodes ids to text. *text is a fresh NUL-terminated buffer of *len bytes
 * (the NUL not counted); free it with tc_tokenizer_free_text. Byte sequences
 * that are not valid UTF-8 (a multi-byte character cut between tokens, say)
 * become U+FFFD, one per maximal invalid subpart, never an error. An id
 * outside 0..vocab_size-1 is an error naming its position and value. */
tc_status tc_tokenizer_decode(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **text, size_t *len);
/* Same, but returns the tokens' bytes as they are, without UTF-8 repair. */
tc_status tc_tokenizer_decode_bytes(const tc_tokenizer *tok, const int32_t *ids, size_t count, char **bytes,
                                    size_t *len);
void tc_tokenizer_free_text(char *text);

int tc_tokenizer_vocab_size(const tc_tokenizer *tok);
tc_tokenizer_kind tc_tokenizer_get_kind(const tc_tokenizer *tok);
/* "bpe" or "char". */
const char *tc_tokenizer_kind_name(tc_tokenizer_kind kind);
/* Whether the tokenizer pre-splits text with the GPT-2 pattern. */
bool tc_tokenizer_gpt2_split(const tc_tokenizer *tok);
/* Number of merges (0 for a character tokenizer). */
int tc_tokenizer_merge_count(const tc_tokenizer *tok);
/* The bytes of token id (borrowed; valid while tok lives). */
tc_status tc_tokenizer_token_bytes(const tc_tokenizer *tok, int32_t id, const char **bytes, size_t *len);
tc_context *tc_tokenizer_context(const tc_tokenizer *tok);

/* ---- batch encoding --------------------------------------------------- */

/*
 * Encodes blocks of text on several threads into packed ids, in block
 * order, for preparing token shards. A block is either text (documents end
 * after each occurrence of the encoder's separator, which stays with the
 * document it ends; without a separator the block is one document) or JSON
 * Lines (each line that is not blank is an object whose string "text" is a
 * document). Each document is encoded on its own, after the end-of-text
 * id; empty documents are skipped. Text must be well-formed UTF-8.
 *
 * Every thread has its own context and its own copy of the tokenizer, made
 * by tc_batch_encoder_new; the encoder, like a tokenizer, is used by one
 * thread at a time and reports errors in the tokenizer's context.
 */

typedef enum tc_block_format { TC_BLOCK_TEXT = 0, TC_BLOCK_JSONL } tc_block_format;

typedef struct tc_text_block {
    const char *data;
    size_t length;
    tc_block_format format;
    /* Text blocks: the first document goes on from the previous block (a
     * long document cut where encoding both parts apart gives the same ids):
     * no end-of-text id before it, and it is not counted. */
    bool continues;
    const char *name; /* for messages: the file it came from (NULL: "<input>") */
    int64_t line;     /* 1-based line of data[0] in that file */
    int64_t offset;   /* byte offset of data[0] in that file */
} tc_text_block;

typedef struct tc_batch_encoder_options {
    int threads;            /* 1 to 1024; the calling thread is one of them */
    int32_t eot;            /* the id before every document; -1 for none */
    int id_bytes;           /* 2 or 4: the width of each packed little-endian id */
    const char *separator;  /* text blocks: documents end after it (NULL or length 0: none) */
    size_t separator_length;
} tc_batch_encoder_options;

typedef struct tc_batch_encoder tc_batch_encoder;

/* Fails when the tokenizer's ids or eot do not fit id_bytes. */
tc_status tc_batch_encoder_new(const tc_tokenizer *tok, const tc_batch_encoder_options *options,
                               tc_batch_encoder **out);
void tc_batch_encoder_free(tc_batch_encoder *enc);
int tc_batch_encoder_threads(const tc_batch_encoder *enc);
int tc_batch_encoder_id_bytes(const tc_batch_encoder *enc);
/* Encodes count blocks: *ids is a fresh buffer of *id_count packed ids
 * (free it with tc_batch_encode_free); documents, when not NULL, receives
 * the number of documents begun in each block. The first failing block (in
 * order) is reported: malformed UTF-8 or JSON, a record without a string
 * "text", naming the block's file, line and byte offset. */
tc_status tc_batch_encode(tc_batch_encoder *enc, const tc_text_block *blocks, size_t count, unsigned char **ids,
                          size_t *id_count, int64_t *documents);
void tc_batch_encode_free(unsigned char *ids);

/* ---- token shards ----------------------------------------------------- */

/*
 * Token shards in llm.c's layout: a header of 256 little-endian int32
 * (magic, version, number of tokens, then zeros) followed by the ids,
 * little-endian. Magic 20240520 version 1 holds uint16 ids (GPT-2's
 * vocabulary); magic 20240801 version 7 holds uint32 ids, for vocabularies
 * past 65536, which readers of the uint16 layout refuse by its magic. The
 * token count is an int32, so a shard holds fewer than 2^31 tokens.
 * Shards are mapped read-only, never read whole into memory.
 */
#define TC_SHARD_HEADER_INTS 256
#define TC_SHARD_MAGIC_UINT16 20240520
#define TC_SHARD_VERSION_UINT16 1
#define TC_SHARD_MAGIC_UINT32 20240801
#define TC_SHARD_VERSION_UINT32 7

typedef struct tc_token_shard tc_token_shard;

/* The 1024-byte header of a shard of count ids of id_bytes (2 or 4) each. */
tc_status tc_token_shard_header(tc_context *ctx, int64_t count, int id_bytes, unsigned char header[1024]);
/* Maps path and checks its header: a known magic and version, and a token
 * count that agrees with the file's size. Errors name the path. */
tc_status tc_token_shard_open(tc_context *ctx, const char *path, tc_token_shard **out);
void tc_token_shard_close(tc_token_shard *shard);
int64_t tc_token_shard_count(const tc_token_shard *shard);
/* 2 or 4. */
int tc_token_shard_id_bytes(const tc_token_shard *shard);
const char *tc_token_shard_path(const tc_token_shard *shard);
/* Fails, naming the path, the position and the id, when an id is at or
 * above vocab_size (reads every id once; later calls with a vocabulary at
 * least as large return at once). */
tc_status tc_token_shard_check_ids(tc_token_shard *shard, int64_t vocab_size);
/* ids [start, start + count) (0-based) as an int64 tensor [count]. */
tc_status tc_token_shard_read(tc_token_shard *shard, int64_t start, int64_t count, tc_tensor **out);
/* rows × length consecutive ids from start as int64 [rows, length] inputs,
 * and the same shifted by one as targets: rows · length + 1 ids in all. */
tc_status tc_token_shard_batch(tc_token_shard *shard, int64_t start, int64_t rows, int64_t length, tc_tensor **x,
                               tc_tensor **y);

/* ---- distributed: collectives between processes ----------------------- */

/*
 * A context joins a world of ranks 0 .. world_size-1 with
 * tc_distributed_init. Without MPI the world is this process alone and every
 * collective is local. With MPI (use_mpi: the processes a launcher such as
 * mpirun started), the engine opens libtricycle_mpi.so with dlopen (never
 * linked; distributed_glue.h) and gives the context communicators of its
 * own, so several contexts may join, in the same order on every process.
 * CPU tensors go through MPI; CUDA tensors through NCCL inside the CUDA
 * backend (its id sent over MPI).
 *
 * Every rank must start the same collectives, in the same order, on tensors
 * of the same dtype and size. A collective given `pending` returns at once
 * with a handle to test or wait on (the tensors are held until it is done);
 * with pending NULL it waits. Sums are formed once per element and sent to
 * every rank, so all ranks get the same bits.
 *
 * Faults: a rank that calls tc_distributed_abort tells the others why; one
 * whose context closes tells them it left. A rank waiting in a collective
 * then fails it with a message naming that rank, as it does when a rank on
 * the same machine ends without a word (it is looked for by its process id
 * while waiting), or when the wait passes the timeout. After such a failure
 * the context's world is broken: every later collective fails at once with
 * the same message, and MPI is not finalised (the launcher ends the job).
 */

typedef enum tc_collective_op { TC_COLLECTIVE_SUM = 0, TC_COLLECTIVE_AVG, TC_COLLECTIVE_MAX } tc_collective_op;

typedef struct tc_distributed_options {
    bool use_mpi;            /* join the other processes through MPI; false: a world of one */
    const char *mpi_library; /* NULL or "": libtricycle_mpi.so beside the engine, else the system's path */
    double timeout;          /* seconds a collective may wait; 0: no limit (a dead or failed rank still ends it) */
} tc_distributed_options;

/* Fails when the context already joined (TC_ERROR_STATE), or with the reason
 * MPI cannot be used (TC_ERROR_UNSUPPORTED). */
tc_status tc_distributed_init(tc_context *ctx, const tc_distributed_options *options);
bool tc_distributed_is_initialized(const tc_context *ctx);
/* 0, 1, 0, 1 before init. */
int tc_distributed_rank(const tc_context *ctx);
int tc_distributed_world_size(const tc_context *ctx);
/* Among the ranks on this machine (same host name). */
int tc_distributed_local_rank(const tc_context *ctx);
int tc_distributed_local_size(const tc_context *ctx);
/* "mpi" or "local" (a world of one without MPI); NULL before init. */
const char *tc_distributed_backend(const tc_context *ctx);
/* Why the world is broken, or NULL. */
const char *tc_distributed_failure(const tc_context *ctx);
/* Tells every other rank that this one stopped because of message, and
 * breaks this context's world. */
tc_status tc_distributed_abort(tc_context *ctx, const char *message);
/* Leaves the world: tells the others, waits until each has left too (or
 * the world breaks), frees the communicators and, with the last context of
 * the process, finalises MPI. Called by tc_context_free; a context may
 * init again afterwards. */
tc_status tc_distributed_shutdown(tc_context *ctx);

typedef struct tc_collective tc_collective;

/* In place: t = op over every rank's t (AVG: the sum / world_size; floating
 * dtypes only). */
tc_status tc_all_reduce(tc_tensor *t, tc_collective_op op, tc_collective **pending);
/* In place: every rank's t = root's t. */
tc_status tc_broadcast(tc_tensor *t, int root, tc_collective **pending);
/* out (contiguous) = every rank's t in rank order. counts NULL: each rank
 * gives numel(t) elements; otherwise rank r gives counts[r] (t holds
 * counts[rank] elements) and out holds their sum. */
tc_status tc_all_gather(tc_tensor *t, const int64_t *counts, tc_tensor *out, tc_collective **pending);
/* out (contiguous) = this rank's segment of op over every rank's t: with
 * counts NULL, numel(t) / world_size elements (numel(t) divisible by it),
 * otherwise counts[rank] of t's sum(counts) elements, the segments in rank
 * order. */
tc_status tc_reduce_scatter(tc_tensor *t, const int64_t *counts, tc_collective_op op, tc_tensor *out,
                            tc_collective **pending);
tc_status tc_barrier(tc_context *ctx);
/* Waits for a pending collective; its failure is returned here. */
tc_status tc_collective_wait(tc_collective *c);
/* *done once finished (TC_OK or the failure); moves it along meanwhile. */
tc_status tc_collective_test(tc_collective *c, bool *done);
/* Frees the handle; a collective still running goes on and is finished by
 * the context's later collectives (its tensors are held until then). */
void tc_collective_free(tc_collective *c);

/* Counters since init or the last reset, for measuring. */
typedef struct tc_distributed_stats {
    int64_t all_reduce, broadcast, all_gather, reduce_scatter, barrier; /* collectives started */
    int64_t bytes;       /* bytes of the tensors given to them */
    int64_t nccl;        /* of those, the ones on CUDA tensors (NCCL) */
    double wait_seconds; /* time spent waiting for collectives to finish */
} tc_distributed_stats;
void tc_distributed_get_stats(const tc_context *ctx, tc_distributed_stats *out);
void tc_distributed_reset_stats(tc_context *ctx);

#ifdef __cplusplus
}
#endif

#endif
