/*
 * cuda_elementwise.cu: CUDA kernels for copies (broadcasting and converting
 * dtype), fills, unary maps and their derivatives, binary maps, clamp and
 * where: the twins of src/cpu/cpu_elementwise.c, with the same results per
 * element (same formulas, same integer rules, same NaN handling).
 *
 * Every kernel is a grid-stride loop over the output's elements; operands
 * are cuda_strided views coalesced together (cuda_kernels.h), so broadcast
 * inputs (stride 0) and non-contiguous views need no copies.
 */
#include "cuda_kernels.h"

#define SQRT_HALF 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

/* ---- kernels ---- */

/* value as D: a floating value into an integer type is truncated toward
 * zero, saturating at the type's range, NaN as 0 (the CPU backend's rules:
 * cpu_elementwise.c's float_to_*; a bare conversion is undefined out of range
 * and differs between the GPU and the host). Integer to integer wraps. */
template <typename D, typename S> __device__ __forceinline__ D copy_value(S value) {
    if constexpr (std::is_floating_point<S>::value && std::is_integral<D>::value) {
        constexpr int value_bits = (int)sizeof(D) * 8 - (std::is_signed<D>::value ? 1 : 0);
        constexpr D highest = (D)((1ull << value_bits) - 1), lowest = (D)(std::is_signed<D>::value ? -highest - 1 : 0);
        double v = (double)value;
        if (v != v) return (D)0;
        if (v <= (double)lowest) return lowest;
        if (v >= (double)(1ull << value_bits)) return highest; /* 2^bits: exact, unlike (double)highest */
        return (D)v;
    } else {
        return (D)value;
    }
}

/* Converting into bool gives 0/1, not truncation. */
template <typename D, typename S, bool to_bool>
__global__ void copy_kernel(D *dst, cuda_strided dst_view, const S *src, cuda_strided src_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        S value = src[cuda_offset(src_view, i)];
        dst[cuda_offset(dst_view, i)] = to_bool ? (D)(value != (S)0) : copy_value<D>(value);
    }
}

template <typename T> __global__ void fill_kernel(T *data, cuda_strided view, T value, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        data[cuda_offset(view, i)] = value;
}

/* Integer arithmetic wraps around as two's complement: computed in the
 * unsigned type of the same width and converted back, as cpu_elementwise.c's
 * WRAP_* do (uint8 arithmetic runs in int there and here). Signed overflow
 * would be undefined: -INT64_MIN, INT32_MAX + 1. */
template <typename T> __device__ __forceinline__ T wrap_add(T a, T b) {
    typedef typename std::make_unsigned<T>::type U;
    return (T)((U)a + (U)b);
}
template <typename T> __device__ __forceinline__ T wrap_sub(T a, T b) {
    typedef typename std::make_unsigned<T>::type U;
    return (T)((U)a - (U)b);
}
template <typename T> __device__ __forceinline__ T wrap_mul(T a, T b) {
    typedef typename std::make_unsigned<T>::type U;
    return (T)((U)a * (U)b);
}
template <typename T> __device__ __forceinline__ T wrap_neg(T a) {
    typedef typename std::make_unsigned<T>::type U;
    return (T)(0u - (U)a);
}

/* f(x) for one element, in the element type; ops an integer dtype does not
 * have are rejected by the launcher. */
template <typename T> __device__ __forceinline__ T unary_value(tc_unary_op op, T x) {
    const T one = (T)1, half = (T)0.5;
    if constexpr (std::is_floating_point<T>::value) {
        switch (op) {
        case TC_NEG: return -x;
        case TC_EXP: return cuda_exp(x);
        case TC_LOG: return cuda_log(x);
        case TC_SQRT: return cuda_sqrt(x);
        case TC_ABS: return cuda_fabs(x);
        case TC_TANH: return cuda_tanh(x);
        case TC_SIGMOID: return one / (one + cuda_exp(-x));
        case TC_RELU: return x > 0 ? x : (T)0;
        case TC_GELU: return half * x * (one + cuda_erf(x * (T)SQRT_HALF));
        case TC_GELU_TANH: return cuda_gelu_tanh(x);
        case TC_SILU: return x / (one + cuda_exp(-x));
        case TC_SIN: return cuda_sin(x);
        case TC_COS: return cuda_cos(x);
        case TC_RSQRT: return one / cuda_sqrt(x);
        case TC_SQUARE: return x * x;
        case TC_SIGN: return (T)((x > 0) - (x < 0));
        case TC_LOGICAL_NOT: return (T)(x == 0);
        default: return x;
        }
    } else {
        (void)one;
        (void)half;
        switch (op) {
        case TC_NEG: return wrap_neg(x);
        case TC_ABS:
            if constexpr (std::is_unsigned<T>::value) return x;
            else return x < 0 ? wrap_neg(x) : x;
        case TC_RELU:
            if constexpr (std::is_unsigned<T>::value) return x;
            else return x > 0 ? x : (T)0;
        case TC_SQUARE: return wrap_mul(x, x);
        case TC_SIGN:
            if constexpr (std::is_unsigned<T>::value) return (T)(x != 0);
            else return (T)((x > 0) - (x < 0));
        case TC_LOGICAL_NOT: return (T)(x == 0);
        default: return x;
        }
    }
}

template <typename T>
__global__ void unary_kernel(tc_unary_op op, const T *x, cuda_strided x_view, T *out, cuda_strided out_view,
                             int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[cuda_offset(out_view, i)] = unary_value(op, x[cuda_offset(x_view, i)]);
}

/* grad * f'(x), using y = f(x) where the derivative is cheaper that way. */
template <typename T> __device__ __forceinline__ T unary_derivative(tc_unary_op op, T x, T y, T g) {
    const T one = (T)1, half = (T)0.5;
    switch (op) {
    case TC_NEG: return -g;
    case TC_EXP: return g * y;
    case TC_LOG: return g / x;
    case TC_SQRT: return g * half / y;
    case TC_ABS: return g * (T)((x > 0) - (x < 0));
    case TC_TANH: return g * (one - y * y);
    case TC_SIGMOID: return g * y * (one - y);
    case TC_RELU: return x > 0 ? g : (T)0;
    case TC_GELU:
        return g * (half * (one + cuda_erf(x * (T)SQRT_HALF)) + x * (T)INV_SQRT_2PI * cuda_exp(-half * x * x));
    case TC_GELU_TANH: {
        T u = (T)CUDA_SQRT_2_OVER_PI * (x + (T)CUDA_GELU_CUBIC * x * x * x);
        T t = cuda_tanh(u);
        T du = (T)CUDA_SQRT_2_OVER_PI * (one + (T)(3 * CUDA_GELU_CUBIC) * x * x);
        return g * (half * (one + t) + half * x * (one - t * t) * du);
    }
    case TC_SILU: {
        T sig = one / (one + cuda_exp(-x));
        return g * sig * (one + x * (one - sig));
    }
    case TC_SIN: return g * cuda_cos(x);
    case TC_COS: return -g * cuda_sin(x);
    case TC_RSQRT: return -half * g * y * y * y;
    case TC_SQUARE: return 2 * g * x;
    default: return (T)0;
    }
}

template <typename T>
__global__ void unary_backward_kernel(tc_unary_op op, const T *x, cuda_strided x_view, const T *y,
                                      cuda_strided y_view, const T *grad, cuda_strided grad_view, T *grad_x,
                                      cuda_strided grad_x_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        grad_x[cuda_offset(grad_x_view, i)] = unary_derivative(op, x[cuda_offset(x_view, i)], y[cuda_offset(y_view, i)],
                                                               grad[cuda_offset(grad_view, i)]);
}

static bool is_comparison(tc_binary_op op) { return op >= TC_EQ && op <= TC_LOGICAL_OR; }

template <typename T> __device__ __forceinline__ uint8_t compare_values(tc_binary_op op, T a, T b) {
    switch (op) {
    case TC_EQ: return a == b;
    case TC_NE: return a != b;
    case TC_LT: return a < b;
    case TC_LE: return a <= b;
    case TC_GT: return a > b;
    case TC_GE: return a >= b;
    case TC_LOGICAL_AND: return a != 0 && b != 0;
    case TC_LOGICAL_OR: return a != 0 || b != 0;
    default: return 0;
    }
}

/* Arithmetic; integers wrap around, and an integer division (which the op
 * layer turns into a float op) would be defined too: by zero 0, the most
 * negative value by -1 itself. Float maximum/minimum propagate NaN from a;
 * bool arithmetic never comes here (the op layer makes it logic). */
template <typename T> __device__ __forceinline__ T combine_values(tc_binary_op op, T a, T b) {
    if constexpr (std::is_integral<T>::value) {
        switch (op) {
        case TC_ADD: return wrap_add(a, b);
        case TC_SUB: return wrap_sub(a, b);
        case TC_MUL: return wrap_mul(a, b);
        case TC_DIV:
            if constexpr (std::is_signed<T>::value)
                if (b == (T)-1) return wrap_neg(a);
            return b == 0 ? (T)0 : (T)(a / b);
        default: break;
        }
    }
    switch (op) {
    case TC_ADD: return (T)(a + b);
    case TC_SUB: return (T)(a - b);
    case TC_MUL: return (T)(a * b);
    case TC_DIV:
        if constexpr (std::is_floating_point<T>::value) return a / b;
        else return a;
    case TC_POW:
        if constexpr (std::is_floating_point<T>::value) return cuda_pow(a, b);
        else return a;
    case TC_MAXIMUM: return (a > b || a != a) ? a : b;
    case TC_MINIMUM: return (a < b || a != a) ? a : b;
    default: return a;
    }
}

template <typename T>
__global__ void binary_kernel(tc_binary_op op, const T *a, cuda_strided a_view, const T *b, cuda_strided b_view,
                              T *out, cuda_strided out_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[cuda_offset(out_view, i)] = combine_values(op, a[cuda_offset(a_view, i)], b[cuda_offset(b_view, i)]);
}

template <typename T>
__global__ void compare_kernel(tc_binary_op op, const T *a, cuda_strided a_view, const T *b, cuda_strided b_view,
                               uint8_t *out, cuda_strided out_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[cuda_offset(out_view, i)] = compare_values(op, a[cuda_offset(a_view, i)], b[cuda_offset(b_view, i)]);
}

template <typename T>
__global__ void clamp_kernel(const T *x, cuda_strided x_view, bool has_min, T min, bool has_max, T max, T *out,
                             cuda_strided out_view, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        T value = x[cuda_offset(x_view, i)];
        if (has_min && value < min) value = min;
        if (has_max && value > max) value = max;
        out[cuda_offset(out_view, i)] = value;
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

tc_status cuda_copy(tc_tensor *dst, const tc_tensor *src) {
    int64_t n = tc_tensor_numel(dst);
    if (n == 0) return TC_OK;
    const tc_tensor *operands[2] = {dst, src};
    cuda_strided views[2];
    cuda_coalesce(2, operands, views);
    bool to_bool = dst->dtype == TC_BOOL && src->dtype != TC_BOOL;
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
    bool known = cuda_dispatch_all(t->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(fill_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(t->ctx), data_of<T>(t), view,
                  (T)value, n);
    });
    if (!known) return tc_fail(t->ctx, TC_ERROR_DTYPE, "fill: unknown dtype");
    return cuda_check_launch(t->ctx, "fill");
}

/* The unary ops an integer (or bool) tensor has, as in the CPU backend. */
static bool integer_unary(tc_unary_op op) {
    return op == TC_NEG || op == TC_ABS || op == TC_RELU || op == TC_SQUARE || op == TC_SIGN || op == TC_LOGICAL_NOT;
}

tc_status cuda_unary(tc_unary_op op, const tc_tensor *x, tc_tensor *out) {
    int64_t n = tc_tensor_numel(out);
    if (!tc_dtype_is_floating(x->dtype) && !integer_unary(op))
        return tc_fail(out->ctx, TC_ERROR_DTYPE, "%s: dtype %s is not supported", tc_unary_op_name(op),
                       tc_dtype_name(x->dtype));
    if (n == 0) return TC_OK;
    const tc_tensor *operands[2] = {out, x};
    cuda_strided views[2];
    cuda_coalesce(2, operands, views);
    bool known = cuda_dispatch_all(x->dtype, [&](auto tag) {
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
    bool known = cuda_dispatch_float(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(unary_backward_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(grad_x->ctx), op,
                  data_of<T>(x), views[1], data_of<T>(y), views[2], data_of<T>(grad), views[3], data_of<T>(grad_x),
                  views[0], n);
    });
    if (!known)
        return tc_fail(grad_x->ctx, TC_ERROR_DTYPE, "%s backward: dtype %s is not supported (float32 or float64)",
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
    bool comparison = is_comparison(op);
    bool known = cuda_dispatch_all(a->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        if (comparison)
            TC_LAUNCH(compare_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, op, data_of<T>(a), views[1],
                      data_of<T>(b), views[2], data_of<uint8_t>(out), views[0], n);
        else
            TC_LAUNCH(binary_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, stream, op, data_of<T>(a), views[1],
                      data_of<T>(b), views[2], data_of<T>(out), views[0], n);
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
    bool known = cuda_dispatch_all(x->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        T low = has_min ? (T)min : (T)0, high = has_max ? (T)max : (T)0;
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
    bool known = cuda_dispatch_all(out->dtype, [&](auto tag) {
        typedef typename decltype(tag)::type T;
        TC_LAUNCH(where_kernel<T>, cuda_blocks_for(n), CUDA_BLOCK, 0, cuda_stream_of(out->ctx), data_of<uint8_t>(cond),
                  views[1], data_of<T>(a), views[2], data_of<T>(b), views[3], data_of<T>(out), views[0], n);
    });
    if (!known) return tc_fail(out->ctx, TC_ERROR_DTYPE, "where: unknown dtype");
    return cuda_check_launch(out->ctx, "where");
}
