/*
 * backend_slots.h: every slot of a backend (tc_backend, internal.h), one row
 * each, with its contract. The rows make the struct's members, each slot's
 * function type tc_slot_<name> (backends declare their kernels with it), the
 * slot ids TC_SLOT_<name>, the mask of required slots and the supports query
 * (backend.c). Adding a slot is a row here and a kernel in every backend
 * that has it.
 *
 *   X(name, kind, result, (parameters))
 *
 * kind is REQUIRED (every backend fills it: a table without it does not
 * compile) or OPTIONAL (a backend may leave it NULL; callers go through
 * tc_backend_supports, which picks a fallback, or tc_backend_kernels, which
 * fails naming the op and the device, never calling NULL).
 *
 * Shared contract: kernels get arguments validated by the ops (src/ops_*.c);
 * outputs are allocated by the caller with the right shape. The fused
 * kernels (layer_norm_forward onwards) take a `dtype` of TC_FLOAT32 or
 * TC_FLOAT64 naming the element type of every floating pointer; pointers are
 * device memory of this backend, contiguous and row-major. A kernel that
 * needs scratch allocates it itself and fails only with TC_ERROR_MEMORY.
 * Scalar results go to host double* out-parameters. Results depend only on
 * the inputs and ctx->num_threads (fixed chunking, ordered reductions).
 *
 * 16-bit: a slot in the backend's half_slots (internal.h) also takes
 * TC_BFLOAT16 and TC_FLOAT16, as `dtype` or as the dtype of its tensors.
 * Then every floating pointer holding an op's tensor or gradient is of that
 * dtype, per-row statistics (mean, rstd, lse) are float32, values are
 * computed as the float32 kernel computes them, and each result is rounded
 * once from float32 to the 16-bit dtype (nearest even): the bits of the
 * float32 kernel run on the widened inputs, then rounded, up to the float32
 * kernel's own reordering. The ops widen 16-bit operands for other slots.
 */
#ifndef TRICYCLE_BACKEND_SLOTS_H
#define TRICYCLE_BACKEND_SLOTS_H

#define TC_BACKEND_SLOTS(X)                                                                                          \
    /* Device memory for tensor storage; NULL with the context's error set. */                                       \
    X(allocate, REQUIRED, void *, (tc_context *ctx, size_t bytes))                                                   \
    X(release, REQUIRED, void, (tc_context *ctx, void *data, size_t bytes))                                          \
    /* dst = src, broadcasting src to dst's shape and converting dtype. */                                           \
    X(copy, REQUIRED, tc_status, (tc_tensor *dst, const tc_tensor *src))                                             \
    X(fill, REQUIRED, tc_status, (tc_tensor *t, double value))                                                       \
    X(unary, REQUIRED, tc_status, (tc_unary_op op, const tc_tensor *x, tc_tensor *out))                              \
    /* grad_x = grad * d op(x)/dx; y is op(x) (some derivatives use it; a                                            \
     * 16-bit kernel recomputes it in float32 from x instead of reading the                                          \
     * rounded y, as the widening path keeps it). */                                                                 \
    X(unary_backward, REQUIRED, tc_status,                                                                           \
      (tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad, tc_tensor *grad_x))            \
    /* a and b already broadcast to out's shape (strides may be 0). */                                               \
    X(binary, REQUIRED, tc_status, (tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out))        \
    X(clamp, REQUIRED, tc_status, (const tc_tensor *x, double min, double max, tc_tensor *out))                      \
    /* cond, a, b already broadcast to out's shape. */                                                               \
    X(where, REQUIRED, tc_status, (const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out))   \
    /* Reduces the dims set in `mask` (bit d for dim d); out keeps those dims                                        \
     * with size 1. For ARGMAX/ARGMIN exactly one bit is set (out int64, a                                           \
     * 16-bit x's too). */                                                                                           \
    X(reduce, REQUIRED, tc_status,                                                                                   \
      (tc_reduce_op op, const tc_tensor *x, uint32_t mask, int correction, tc_tensor *out))                          \
    /* out[b] = op(a[b]) @ op(b[b]) for `batch` matrices with the given                                              \
     * element strides between batches; alpha/beta as in BLAS. float32 under                                         \
     * autocast (ctx->autocast) reads both operands rounded to its dtype and                                         \
     * sums in float32 (products exact); gemm_bias and gemv likewise. */                                             \
    X(gemm, REQUIRED, tc_status,                                                                                     \
      (tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,         \
       double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,     \
       double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch))                                          \
    /* c[m, n] = op(a) @ op(b) + bias for one row-major matrix, the                                                  \
     * contiguous bias [n] (or NULL: none) added to every row (c is not                                              \
     * read); when gelu is not NULL (float32 only) it also gets the tanh GELU                                        \
     * of c (leading dimension ldc), the bits unary(TC_GELU_TANH) would give.                                        \
     * Without it, callers copy the bias rows into c, use gemm with beta 1,                                          \
     * then unary. */                                                                                                \
    X(gemm_bias, OPTIONAL, tc_status,                                                                                \
      (tc_context *ctx, tc_dtype dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,         \
       const void *a, int64_t lda, const void *b, int64_t ldb, const void *bias, void *c, int64_t ldc, void *gelu))  \
    /* y = alpha * op(a) @ x + beta * y for one row-major matrix a [m, n]                                            \
     * (leading dimension lda; op(a) = a^T [n, m] when transpose), x and y                                           \
     * contiguous vectors; for products with one row, where GEMM's packing of                                        \
     * a costs more than the product. Without it, callers use gemm. */                                               \
    X(gemv, OPTIONAL, tc_status,                                                                                     \
      (tc_context *ctx, tc_dtype dtype, bool transpose, int64_t m, int64_t n, double alpha, const void *a,           \
       int64_t lda, const void *x, double beta, void *y))                                                            \
    /* gemm for a and b of the 16-bit dtype `dtype` (TC_BFLOAT16 or                                                  \
     * TC_FLOAT16, both): products exact, summed in float32, and c of                                                \
     * c_dtype (dtype or TC_FLOAT32) = alpha op(a) op(b) + beta c rounded                                            \
     * once to it (nearest even); autocast does not apply. Without it, callers                                       \
     * widen the operands to float32 and use gemm. */                                                                \
    X(gemm_16bit, OPTIONAL, tc_status,                                                                               \
      (tc_context *ctx, tc_dtype dtype, tc_dtype c_dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,  \
       int64_t k, double alpha, const void *a, int64_t lda, int64_t stride_a, const void *b, int64_t ldb,            \
       int64_t stride_b, double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch))                        \
    /* Softmax or log-softmax over dim of a contiguous x. 16-bit: x, out, y,                                         \
     * grad and grad_x all of x's dtype (the backward reads the rounded y). */                                       \
    X(softmax, REQUIRED, tc_status, (const tc_tensor *x, int dim, bool log, tc_tensor *out))                         \
    X(softmax_backward, REQUIRED, tc_status,                                                                         \
      (const tc_tensor *y, const tc_tensor *grad, int dim, bool log, tc_tensor *grad_x))                             \
    /* out = x gathered along dim by index (all shaped like out). */                                                 \
    X(gather, REQUIRED, tc_status, (const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out))            \
    /* grad_x[index[...]] += grad along dim (grad_x zeroed by the caller). */                                        \
    X(scatter_add, REQUIRED, tc_status, (tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad)) \
    /* out = slices of x along dim picked by 1-D index. */                                                           \
    X(index_select, REQUIRED, tc_status, (const tc_tensor *x, int dim, const tc_tensor *index, tc_tensor *out))      \
    /* grad_x slices along dim += grad slices (grad_x zeroed by the caller). */                                      \
    X(index_add, REQUIRED, tc_status, (tc_tensor *grad_x, int dim, const tc_tensor *index, const tc_tensor *grad))   \
    /* indices [..., k] (int64) = the positions along the last dim of a                                             \
     * contiguous x [..., n] (any dtype; 1 <= k <= n) of the first k                                                 \
     * elements in ascending (descending) order: stable, NaN the largest,                                            \
     * -0 equal to 0 (ops_math.h's sort keys). */                                                                    \
    X(sort, OPTIONAL, tc_status, (const tc_tensor *x, bool descending, tc_tensor *indices))                          \
    /* Philox uniform [0,1) or normal numbers into a contiguous tensor. */                                           \
    X(random, REQUIRED, tc_status, (tc_tensor *out, bool normal, uint64_t seed, uint64_t offset))                    \
    /* out = x * keep / (1 - p) with keep drawn from Philox; mask gets keep. */                                      \
    X(dropout, REQUIRED, tc_status,                                                                                  \
      (const tc_tensor *x, double p, uint64_t seed, uint64_t offset, tc_tensor *mask, tc_tensor *out))               \
    /* ---- fused neural-network kernels (norm, attention, cross_entropy and                                         \
     * optim files of each backend) ----                                                                             \
     * Layer norm (!rms: y = (x - mean) * rstd * w + b) or RMS norm (rms: y =                                        \
     * x * rstd * w, mean written as 0) of `rows` rows of `cols` values.                                             \
     * weight and bias may be NULL. mean and rstd get one value per row.                                             \
     * 16-bit: x, weight, bias and out of dtype; mean and rstd float32. */                                           \
    X(layer_norm_forward, OPTIONAL, tc_status,                                                                       \
      (tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight, const void *bias, double eps,   \
       int64_t rows, int64_t cols, void *out, void *mean, void *rstd))                                               \
    /* dx (overwritten) and dweight, dbias (overwritten, summed over rows)                                           \
     * from dout; any of dx, dweight, dbias may be NULL (not wanted).                                                \
     * 16-bit: mean and rstd float32, every other pointer of dtype. */                                               \
    X(layer_norm_backward, OPTIONAL, tc_status,                                                                      \
      (tc_context *ctx, tc_dtype dtype, bool rms, const void *x, const void *weight, const void *mean,               \
       const void *rstd, const void *dout, int64_t rows, int64_t cols, void *dx, void *dweight, void *dbias))        \
    /* Multi-head self-attention over packed qkv [B, T, (H + 2 KV) hd]: q                                            \
     * head h at columns h*hd, k/v head j at H*hd + j*hd and (H + KV)*hd +                                           \
     * j*hd; KV divides H and q head h reads k/v head h / (H / KV) (grouped                                          \
     * queries; KV = H is plain multi-head). out [B, T, H hd] with the heads                                         \
     * merged, lse [B, H, T] the log-sum-exp of each row of scores scaled by                                         \
     * 1/sqrt(hd) (masked above the diagonal when causal). 16-bit: qkv and out                                       \
     * (backward: dout and dqkv too) of dtype, lse float32. */                                                       \
    X(attention_forward, OPTIONAL, tc_status,                                                                        \
      (tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time, int64_t n_head,                \
       int64_t n_kv_head, int64_t head_dim, bool causal, void *out, void *lse))                                      \
    /* dqkv [B, T, (H + 2 KV) hd] (overwritten) from dout [B, T, H hd], given                                        \
     * the forward's qkv, out and lse; the probabilities are recomputed, never                                       \
     * stored. */                                                                                                    \
    X(attention_backward, OPTIONAL, tc_status,                                                                       \
      (tc_context *ctx, tc_dtype dtype, const void *qkv, const void *out, const void *lse, const void *dout,         \
       int64_t batch, int64_t time, int64_t n_head, int64_t n_kv_head, int64_t head_dim, bool causal, void *dqkv))   \
    /* Incremental decoding, no gradient: the keys and values of qkv (as                                             \
     * above, T new positions) are written into k_cache and v_cache [B, KV,                                          \
     * capacity, hd] at positions position .. position+T-1, then the T                                               \
     * queries attend to cached positions 0 .. position+T-1 (new query i sees                                        \
     * up to position+i when causal); out [B, T, H hd]. position + T <=                                              \
     * capacity. */                                                                                                  \
    X(attention_cached, OPTIONAL, tc_status,                                                                         \
      (tc_context *ctx, tc_dtype dtype, const void *qkv, int64_t batch, int64_t time, int64_t n_head,                \
       int64_t n_kv_head, int64_t head_dim, bool causal, void *k_cache, void *v_cache, int64_t capacity,             \
       int64_t position, void *out))                                                                                 \
    /* Softmax cross-entropy over rows of logits [rows, classes]; targets are                                        \
     * int32 or int64 (target_dtype) in [0, classes) or equal to                                                     \
     * ignore_index. Writes lse per row, the loss summed over kept rows to                                           \
     * *loss_sum and their number to *count. 16-bit: logits of dtype, lse                                            \
     * float32. */                                                                                                   \
    X(cross_entropy_forward, OPTIONAL, tc_status,                                                                    \
      (tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,              \
       int64_t rows, int64_t classes, int64_t ignore_index, void *lse, double *loss_sum, int64_t *count))            \
    /* dlogits = scale * (softmax - onehot) on kept rows, 0 on ignored rows.                                         \
     * 16-bit: logits and dlogits of dtype, lse float32. */                                                          \
    X(cross_entropy_backward, OPTIONAL, tc_status,                                                                   \
      (tc_context *ctx, tc_dtype dtype, const void *logits, tc_dtype target_dtype, const void *targets,              \
       const void *lse, int64_t rows, int64_t classes, int64_t ignore_index, double scale, void *dlogits))           \
    /* AdamW over `count` tensors at once (m = state[0], v = state[1]), in                                           \
     * place; bias1 and bias2 (1 - beta^step, per tensor) in each entry. */                                          \
    X(adamw_step, OPTIONAL, tc_status,                                                                               \
      (tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr, double beta1,           \
       double beta2, double eps, double weight_decay))                                                               \
    /* SGD over `count` tensors (momentum buffer = state[0], NULL when                                               \
     * momentum is 0), in place. */                                                                                  \
    X(sgd_step, OPTIONAL, tc_status,                                                                                 \
      (tc_context *ctx, tc_dtype dtype, int count, const tc_step_tensor *tensors, double lr, double momentum,        \
       double dampening, bool nesterov, double weight_decay))                                                        \
    /* *out = the sum of squares of every element of `count` buffers of                                              \
     * sizes[i] elements, accumulated in double. */                                                                  \
    X(sum_squares, OPTIONAL, tc_status,                                                                              \
      (tc_context *ctx, tc_dtype dtype, int count, const void *const *x, const int64_t *sizes, double *out))         \
    /* x[i] *= factor in place for `count` buffers of sizes[i] elements. */                                          \
    X(scale, OPTIONAL, tc_status,                                                                                    \
      (tc_context *ctx, tc_dtype dtype, int count, void *const *x, const int64_t *sizes, double factor))             \
    /* Rotary position embedding: out = x with each pair of a row's values                                           \
     * rotated by an angle. x and out are [batch, before, time, after, dim];                                         \
     * table [table_batch, time, dim/2, 2] holds (cos, sin) of each pair's angle                                     \
     * (table_batch 1 or batch). Pair i is (2i, 2i+1) when interleaved, else                                         \
     * (i, i + dim/2); inverse rotates by the opposite angle (the backward).                                         \
     * 16-bit: x and out of dtype, the table float32 (the table the widening                                         \
     * path builds for its float32 x). */                                                                            \
    X(rope, OPTIONAL, tc_status,                                                                                     \
      (tc_context *ctx, tc_dtype dtype, const void *x, const void *table, int64_t batch, int64_t before,             \
       int64_t time, int64_t after, int64_t dim, int64_t table_batch, bool interleaved, bool inverse, void *out))    \
    /* Convolution's windows (the layout: tc_conv_geometry, internal.h).                                             \
     * im2col: cols = the windows of x, with pad_value where a window reaches                                        \
     * past x's edges; col2im, its adjoint: x = for each element, the sum of                                         \
     * the columns' entries read from it (x is overwritten, padding dropped).                                        \
     * 16-bit: x and cols of dtype (col2im sums in float32). */                                                      \
    X(im2col, OPTIONAL, tc_status,                                                                                   \
      (tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *x, double pad_value,           \
       void *cols))                                                                                                  \
    X(col2im, OPTIONAL, tc_status,                                                                                   \
      (tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *cols, void *x))                \
    /* Max pooling over the windows of x (padding never wins: it is -inf):                                           \
     * out [batch, channels, out_height, out_width] and, for each, the                                               \
     * position ih * width + iw of its max inside its plane (the first max;                                          \
     * a NaN wins). The backward: dx = zeros, then grad added at each index.                                         \
     * 16-bit: x, out, grad and dx of dtype, indices int64 (sums in float32). */                                     \
    X(max_pool2d, OPTIONAL, tc_status,                                                                               \
      (tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *x, void *out,                  \
       int64_t *indices))                                                                                            \
    X(max_pool2d_backward, OPTIONAL, tc_status,                                                                      \
      (tc_context *ctx, tc_dtype dtype, const tc_conv_geometry *geometry, const void *grad,                          \
       const int64_t *indices, void *dx))

#endif
