/*
 * cpu_backend.c: the CPU backend table. Constant: it holds no state.
 */
#include "cpu_backend.h"
#include "cpu_fused.h"

static const tc_backend cpu_backend_table = {
    .name = "cpu",
    .device = TC_CPU,
    .allocate = tc_host_allocate,
    .release = tc_host_release,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .unary = cpu_unary,
    .unary_backward = cpu_unary_backward,
    .binary = cpu_binary,
    .clamp = cpu_clamp,
    .where = cpu_where,
    .reduce = cpu_reduce,
    .gemm = cpu_gemm,
    .gemm_bias = cpu_gemm_bias,
    .gemv = cpu_gemv,
    .softmax = cpu_softmax,
    .softmax_backward = cpu_softmax_backward,
    .gather = cpu_gather,
    .scatter_add = cpu_scatter_add,
    .index_select = cpu_index_select,
    .index_add = cpu_index_add,
    .random = cpu_random,
    .dropout = cpu_dropout,
    .layer_norm_forward = cpu_layer_norm_forward,
    .layer_norm_backward = cpu_layer_norm_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_cached = cpu_attention_cached,
    .cross_entropy_forward = cpu_cross_entropy_forward,
    .cross_entropy_backward = cpu_cross_entropy_backward,
    .adamw_step = cpu_adamw_step,
    .sgd_step = cpu_sgd_step,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
};

const tc_backend *tc_cpu_backend(void) { return &cpu_backend_table; }
