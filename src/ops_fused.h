/*
 * ops_fused.h: what the fused ops share (ops_fused.c): their argument
 * checks and the gradient's preparation. The ops, each forward beside its
 * hand-written backward: ops_norm.c (layer norm, RMS norm),
 * ops_attention.c (attention, attention_cached), ops_cross_entropy.c and
 * ops_optim.c (AdamW, SGD, global norm, in-place scaling), ops_conv.c
 * (im2col, max pooling; conv2d made of im2col and matmul). Each checks its
 * arguments (errors name the function, the argument and the shapes), makes
 * its inputs contiguous, runs its kernel and records a tape entry. The
 * kernels are the backends' optional fused slots, reached through
 * tc_backend_kernels: a backend without one makes the op fail with
 * TC_ERROR_UNSUPPORTED naming the device and the kernel.
 */
#ifndef TRICYCLE_OPS_FUSED_H
#define TRICYCLE_OPS_FUSED_H

#include "internal.h"

/* t must be float32 or float64; names the function and the argument. */
tc_status tc_check_floating(const char *function, const char *argument, const tc_tensor *t);
/* `other` must match `like` in dtype and device (its shape is checked by
 * the caller). */
tc_status tc_check_companion(const char *function, const char *argument, const tc_tensor *like,
                             const char *like_name, const tc_tensor *other);
/* The gradient arriving at a node, in the node's output dtype and
 * contiguous, as the kernels want it. Runs with grad mode off. */
tc_status tc_prepare_grad(const tc_node *node, tc_tensor *grad, tc_tensor **out);
/* Releases count tensors (entries may be NULL). */
void tc_release_all(int count, tc_tensor **tensors);

#endif
