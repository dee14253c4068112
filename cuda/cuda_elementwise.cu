/*
 * cuda_elementwise.cu: CUDA kernels for copies (broadcasting and converting
 * dtype), fills, unary maps and their derivatives, binary maps, clamp and
 * where: the twins of src/cpu/cpu_elementwise.c, with the same formulas
 * (src/ops_math.h, expanded here from op_list.h's rows), integer rules and
 * NaN handling.
 *
 * Every kernel is a grid-stride loop over the output's elements; operands
 * are cuda_strided views coalesced together (cuda_kernels.h), so broadcast
 * inputs (stride 0) and non-contiguous views need no copies.
 *
 * bfloat16 and float16: the maps, their derivatives, clamp and where take
 * them too (CUDA_HALF_SLOTS): each element is read as float32, computed with
 * the float32 formulas (cuda_compute_t) and rounded once to its dtype, the
 * bits the engine's widen-compute-round path gives (src/ops_half.c). A
 * conversion touching them goes through float32 with src/half.h's functions,
 * the very ones the CPU backend uses, so both devices give the same bits.
 */
#include "cuda_half.h"

/* ---- kernels ---- */

/* value as D: a floating value into an integer type saturates (ops_math.h's
 * tc_float_to_*, the CPU backend's rules); integer to integer wraps. */
template <typename D, typename S> __device__ __forceinline__ D copy_value(S value) {
    if constexpr (std::is_floating_point<S>::value && std::is_same<D, int32_t>::value)
        return tc_float_to_int32((double)value);
    else if constexpr (std::is_floating_point<S>::value && std::is_same<D, int64_t>::value)
        return tc_float_to_int64((double)value);
    else if constexpr (std::is_floating_point<S>::value && std::is_same<D, uint8_t>::value)
        return tc_float_to_uint8((double)value);
    else
        return (D)value;
}

/* Converting into bool gives 0/1, not truncation. */
template <typename D, typename S, bool to_bool>
__global__ void copy_kernel(D *dst, cuda_strided dst_view, const S *src, cuda_strided src_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        S value = src[cuda_offset(src_view, i)];
        dst[cuda_offset(dst_view, i)] = to_bool ? (D)(value != (S)0) : copy_value<D>(value);
    }
}

/* An element as float32, rounded once where float32 cannot hold it (to odd,
 * so the rounding to 16 bits that follows is right): cpu_elementwise.c's
 * load_as_float. */
template <typename S> __device__ __forceinline__ float load_as_float(S value) {
    if constexpr (cuda_is_16bit<S>::value || std::is_same<S, float>::value || std::is_same<S, uint8_t>::value)
        return (float)value;
    else
        return tc_double_to_float_odd((double)value);
}

/* A float32 into D: saturating into integers, as from float32 anywhere. */
template <typename D> __device__ __forceinline__ D store_from_float(float x) {
    if constexpr (cuda_is_16bit<D>::value)
        return D(x);
    else
        return copy_value<D>(x);
}

template <typename D, typename S, bool to_bool>
__global__ void copy_through_float_kernel(D *dst, cuda_strided dst_view, const S *src, cuda_strided src_view,
                                          int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float value = load_as_float(src[cuda_offset(src_view, i)]);
        if constexpr (to_bool)
            dst[cuda_offset(dst_view, i)] = (D)(value != 0.0f);
        else
            dst[cuda_offset(dst_view, i)] = store_from_float<D>(value);
    }
}

template <typename T> __global__ void fill_kernel(T *data, cuda_strided view, T value, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        data[cuda_offset(view, i)] = value;
}

/* f(x) for one element: ops_math.h's formulas in the cuda kit for float
 * and double, its integer formulas for the integer dtypes (and bool, as
 * uint8); ops an integer dtype does not have are rejected by the launcher. */
template <typename T> __device__ __forceinline__ T unary_value(tc_unary_op op, T x) {
    if constexpr (std::is_floating_point<T>::value) {
        switch (op) {
#define FLOAT_UNARY_CASE(ID, name, arity, backward, properties, summary)                                           \
    case TC_##ID: return (T)TC_MATH_##ID(cuda, x);
            TC_UNARY_OP_LIST(FLOAT_UNARY_CASE)
        default: return x;
        }
    } else {
        switch (op) {
#define INTEGER_UNARY_CASE(ID, formula)                                                                            \
    case TC_##ID: return (T)formula(integer, x);
            TC_MATH_INTEGER_UNARY(INTEGER_UNARY_CASE)
        default: return x;
        }
    }
}

template <typename T>
__global__ void unary_kernel(tc_unary_op op, const T *x, cuda_strided x_view, T *out, cuda_strided out_view,
                             int64_t n) {
    typedef cuda_compute_t<T> C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[cuda_offset(out_view, i)] = T(unary_value<C>(op, (C)x[cuda_offset(x_view, i)]));
}

/* g * f'(x), from x and y = f(x). */
template <typename T> __device__ __forceinline__ T unary_derivative(tc_unary_op op, T x, T y, T g) {
    (void)y;
    switch (op) {
#define DERIVATIVE_CASE(ID, name, arity, backward, properties, summary)                                            \
    case TC_##ID: return (T)TC_MATH_##ID##_GRAD(cuda, x, y, g);
        TC_UNARY_OP_LIST(DERIVATIVE_CASE)
    default: return (T)0;
    }
}

template <typename T>
__global__ void unary_backward_kernel(tc_unary_op op, const T *x, cuda_strided x_view, const T *y,
                                      cuda_strided y_view, const T *grad, cuda_strided grad_view, T *grad_x,
                                      cuda_strided grad_x_view, int64_t n) {
    typedef cuda_compute_t<T> C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        C value = (C)x[cuda_offset(x_view, i)];
        /* 16-bit: y again in float32, as the widening path keeps it; the
         * rounded y would cost the derivative its precision (tanh's 1 - y^2
         * near 1). */
        C result = cuda_is_16bit<T>::value ? unary_value<C>(op, value) : (C)y[cuda_offset(y_view, i)];
        grad_x[cuda_offset(grad_x_view, i)] =
            T(unary_derivative<C>(op, value, result, (C)grad[cuda_offset(grad_view, i)]));
    }
}

static bool is_bool_result(tc_binary_op op) { return (TC_MATH_BINARY_BOOL_RESULTS >> op) & 1; }

/* a op b for one element, as R (T, or uint8_t for comparisons and logic):
 * ops_math.h's formulas as for unary ops; bool arithmetic never comes here
 * (the op layer makes it logic). */
template <typename T, typename R> __device__ __forceinline__ R binary_value(tc_binary_op op, T a, T b) {
    if constexpr (std::is_floating_point<T>::value) {
        switch (op) {
#define FLOAT_BINARY_CASE(ID, name, arity, backward, properties, summary)                                          \
    case TC_##ID: return (R)TC_MATH_##ID(cuda, a, b);
            TC_BINARY_OP_LIST(FLOAT_BINARY_CASE)
        default: return (R)0;
        }
    } else {
        switch (op) {
#define INTEGER_BINARY_CASE(ID, formula)                                                                           \
    case TC_##ID: return (R)formula(integer, a, b);
            TC_MATH_INTEGER_BINARY(INTEGER_BINARY_CASE)
        default: return (R)0;
        }
    }
}

/* R is T, or uint8_t for comparisons and logic; 16-bit T computes in float32
 * and rounds the value once (a bool result needs no rounding). */
template <typename T, typename R>
__global__ void binary_kernel(tc_binary_op op, const T *a, cuda_strided a_view, const T *b, cuda_strided b_view,
                              R *out, cuda_strided out_view, int64_t n) {
    typedef cuda_compute_t<T> C;
    typedef typename std::conditional<std::is_same<R, T>::value, C, R>::type RC;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[cuda_offset(out_view, i)] =
            R(binary_value<C, RC>(op, (C)a[cuda_offset(a_view, i)], (C)b[cuda_offset(b_view, i)]));
}

/* The bounds are C (float32 for 16-bit T, as the float32 kernel has them). */
template <typename T>
__global__ void clamp_kernel(const T *x, cuda_strided x_view, bool has_min, cuda_compute_t<T> min, bool has_max,
                             cuda_compute_t<T> max, T *out, cuda_strided out_view, int64_t n) {
    typedef cuda_compute_t<T> C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        C value = (C)x[cuda_offset(x_view, i)];
        if (has_min && value < min) value = min;
        if (has_max && value > max) value = max;
        out[cuda_offset(out_view, i)] = T(value);
    }
}

template <typename T>
__global__ void where_kernel(const uint8_t *cond, cuda_strided cond_view, const T *a, cuda_strided a_view, const T *b,
                             cuda_strided b_view, T *out, cuda_strided out_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[cuda_offset(out_view, i)] = cond[cuda_offset(cond_view, i)] ? a[cuda_offset(a_view, i)]
                                                                        : b[cuda_offset(b_view, i)];
}

/* ---- launchers ---- */

template <typename T> static T *data_of(const tc_tensor *t) { return static_cast<T *>(t->storage->data); }

template <typename D> static void launch_copy(tc_tensor *dst, const tc_tensor *src, const cuda_strided *views,
                                              bool to_bool, int64_t n) {
    cuda_stream stream = cuda_stream_of(dst->ctx);
    cuda_dispatch_all(src->dtype, [&](auto source_tag) {
        typedef typename decltype(source_tag)::type S;
        if (to_bool) {
            auto kernel = copy_kernel<D, S, true>;
            TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, data_of<D>(dst), views[0], data_of<S>(src),
                      views[1], n);
        } else {
            auto kernel = copy_kernel<D, S, false>;
            TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, data_of<D>(dst), views[0], data_of<S>(src),
                      views[1], n);
        }
    });
}

/* Every dtype's element type, the 16-bit ones included. */
template <typename F> static bool dispatch_storage(tc_dtype dtype, F &&f) {
    switch (dtype) {
    case TC_BFLOAT16: f(type_tag<cuda_bfloat16>()); return true;
    case TC_FLOAT16: f(type_tag<cuda_float16>()); return true;
    default: return cuda_dispatch_all(dtype, f);
    }
}


/* A copy between two dtypes at least one of which is 16-bit. */
static bool launch_copy_through_float(tc_tensor *dst, const tc_tensor *src, const cuda_strided *views, bool to_bool,
                                      int64_t n) {
    cuda_stream stream = cuda_stream_of(dst->ctx);
    bool known_source = false;
    bool known = dispatch_storage(dst->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type D;
        known_source = dispatch_storage(src->dtype, [&](auto source_tag) {
            typedef typename decltype(source_tag)::type S;
            if constexpr (!cuda_is_16bit<D>::value && !cuda_is_16bit<S>::value) {
                return; /* the other copies have their own kernel */
            } else if (to_bool) {
                if constexpr (std::is_same<D, uint8_t>::value) {
                    auto kernel = copy_through_float_kernel<D, S, true>;
                    TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, data_of<D>(dst), views[0],
                              data_of<S>(src), views[1], n);
                }
            } else {
                auto kernel = copy_through_float_kernel<D, S, false>;
                TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, data_of<D>(dst), views[0],
                          data_of<S>(src), views[1], n);
            }
        });
    });
    return known && known_source;
}

tc_status cuda_copy_within(tc_tensor *dst, const tc_tensor *src) {
    int64_t n = tc_tensor_numel(dst);
    if (n == 0) return TC_OK;
    const tc_tensor *operands[2] = {dst, src};
    cuda_strided views[2];
    cuda_coalesce(2, operands, views);
    bool to_bool = dst->dtype == TC_BOOL && src->dtype != TC_BOOL;
    if (cuda_dtype_is_16bit(dst->dtype) || cuda_dtype_is_16bit(src->dtype)) {
        if (dst->dtype == src->dtype) {
            auto kernel = copy_kernel<uint16_t, uint16_t, false>; /* the bits as they are */
            TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(dst->ctx), data_of<uint16_t>(dst),
                      views[0], data_of<uint16_t>(src), views[1], n);
        } else if (!launch_copy_through_float(dst, src, views, to_bool, n)) {
            return tc_fail(dst->ctx, TC_ERROR_DTYPE, "copy: unknown dtype");
        }
        return cuda_check_launch(dst->ctx, "copy");
    }
    bool known = cuda_dispatch_all(dst->dtype, [&](auto tag) {
        launch_copy<typename decltype(tag)::type>(dst, src, views, to_bool, n);
    });
    if (!known) return tc_fail(dst->ctx, TC_ERROR_DTYPE, "copy: unknown dtype");
    return cuda_check_launch(dst->ctx, "copy");
}

tc_status cuda_fill(tc_tensor *t, double value) {
    int64_t n = tc_tensor_numel(t);
    if (n == 0) return TC_OK;
    if (t->dtype == TC_BOOL) value = value != 0.0;
    const tc_tensor *operands[1] = {t};
    cuda_strided view;
    cuda_coalesce(1, operands, &view);
    if (cuda_dtype_is_16bit(t->dtype)) { /* rounded once, on the host, as cpu_fill does */
        uint16_t bits = t->dtype == TC_BFLOAT16 ? tc_double_to_bfloat16(value) : tc_double_to_float16(value);
        TC_LAUNCH(fill_kernel<uint16_t>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(t->ctx),
                  data_of<uint16_t>(t), view, bits, n);
        return cuda_check_launch(t->ctx, "fill");
    }
    bool known = cuda_dispatch_all(t->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(fill_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(t->ctx), data_of<T>(t), view,
                  (T)value, n);
    });
    if (!known) return tc_fail(t->ctx, TC_ERROR_DTYPE, "fill: unknown dtype");
    return cuda_check_launch(t->ctx, "fill");
}

/* The unary ops an integer (or bool) tensor has (op_list.h's TC_OP_INTEGERS). */
static bool integer_unary(tc_unary_op op) { return (TC_MATH_UNARY_INTEGERS >> op) & 1; }

tc_status cuda_unary(tc_unary_op op, const tc_tensor *x, tc_tensor *out) {
    int64_t n = tc_tensor_numel(out);
    if (!tc_dtype_is_floating(x->dtype) && !integer_unary(op))
        return tc_fail(out->ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported", tc_unary_op_name(op),
                       tc_dtype_name(x->dtype));
    if (n == 0) return TC_OK;
    const tc_tensor *operands[2] = {out, x};
    cuda_strided views[2];
    cuda_coalesce(2, operands, views);
    bool known = dispatch_storage(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(unary_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(out->ctx), op, data_of<T>(x),
                  views[1], data_of<T>(out), views[0], n);
    });
    if (!known) return tc_fail(out->ctx, TC_ERROR_DTYPE, "%s: unknown dtype", tc_unary_op_name(op));
    return cuda_check_launch(out->ctx, tc_unary_op_name(op));
}

tc_status cuda_unary_backward(tc_unary_op op, const tc_tensor *x, const tc_tensor *y, const tc_tensor *grad,
                              tc_tensor *grad_x) {
    int64_t n = tc_tensor_numel(grad_x);
    if (n == 0) return TC_OK;
    const tc_tensor *operands[4] = {grad_x, x, y, grad};
    cuda_strided views[4];
    cuda_coalesce(4, operands, views);
    bool known = cuda_dispatch_float_or_16bit(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(unary_backward_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(grad_x->ctx), op,
                  data_of<T>(x), views[1], data_of<T>(y), views[2], data_of<T>(grad), views[3], data_of<T>(grad_x),
                  views[0], n);
    });
    if (!known)
        return tc_fail(grad_x->ctx, TC_ERROR_DTYPE, "%s backward: dtype %s is not supported (a floating dtype)",
                       tc_unary_op_name(op), tc_dtype_name(x->dtype));
    return cuda_check_launch(grad_x->ctx, tc_unary_op_name(op));
}

tc_status cuda_binary(tc_binary_op op, const tc_tensor *a, const tc_tensor *b, tc_tensor *out) {
    int64_t n = tc_tensor_numel(out);
    if (op == TC_POW && !tc_dtype_is_floating(a->dtype))
        return tc_fail(out->ctx, TC_ERROR_DTYPE, "pow: dtype %s is not supported (float32 or float64)",
                       tc_dtype_name(a->dtype));
    if (n == 0) return TC_OK;
    const tc_tensor *operands[3] = {out, a, b};
    cuda_strided views[3];
    cuda_coalesce(3, operands, views);
    cuda_stream stream = cuda_stream_of(out->ctx);
    bool bool_result = is_bool_result(op);
    bool known = dispatch_storage(a->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        if (bool_result) {
            auto kernel = binary_kernel<T, uint8_t>;
            TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, op, data_of<T>(a), views[1], data_of<T>(b),
                      views[2], data_of<uint8_t>(out), views[0], n);
        } else {
            auto kernel = binary_kernel<T, T>;
            TC_LAUNCH(kernel, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, op, data_of<T>(a), views[1], data_of<T>(b),
                      views[2], data_of<T>(out), views[0], n);
        }
    });
    if (!known) return tc_fail(out->ctx, TC_ERROR_DTYPE, "binary: unknown dtype");
    return cuda_check_launch(out->ctx, tc_binary_op_name(op));
}

/* min or max may be NaN for "no bound"; a bound converts to x's dtype (for
 * an integer dtype the op layer has checked that it fits). */
tc_status cuda_clamp(const tc_tensor *x, double min, double max, tc_tensor *out) {
    int64_t n = tc_tensor_numel(out);
    if (n == 0) return TC_OK;
    const tc_tensor *operands[2] = {out, x};
    cuda_strided views[2];
    cuda_coalesce(2, operands, views);
    bool has_min = !isnan(min), has_max = !isnan(max);
    bool known = dispatch_storage(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        typedef cuda_compute_t<T> C;
        C low = has_min ? (C)min : (C)0, high = has_max ? (C)max : (C)0;
        TC_LAUNCH(clamp_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(out->ctx), data_of<T>(x), views[1],
                  has_min, low, has_max, high, data_of<T>(out), views[0], n);
    });
    if (!known) return tc_fail(out->ctx, TC_ERROR_DTYPE, "clamp: unknown dtype");
    return cuda_check_launch(out->ctx, "clamp");
}

tc_status cuda_where(const tc_tensor *cond, const tc_tensor *a, const tc_tensor *b, tc_tensor *out) {
    int64_t n = tc_tensor_numel(out);
    if (n == 0) return TC_OK;
    const tc_tensor *operands[4] = {out, cond, a, b};
    cuda_strided views[4];
    cuda_coalesce(4, operands, views);
    bool known = dispatch_storage(out->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(where_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(out->ctx), data_of<uint8_t>(cond),
                  views[1], data_of<T>(a), views[2], data_of<T>(b), views[3], data_of<T>(out), views[0], n);
    });
    if (!known) return tc_fail(out->ctx, TC_ERROR_DTYPE, "where: unknown dtype");
    return cuda_check_launch(out->ctx, "where");
}
