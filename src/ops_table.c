/*
 * ops_table.c: the tables op_list.h's rows make: each op's public
 * description (tc_op_at, tc.ops()) and its tape descriptor (name and
 * backward), both indexed by tc_op_id.
 */
#include "internal.h"

#define INFO_ENTRY(ID, name, arity, backward, properties, summary)                                                \
    [TC_OP_##ID] = {name, arity, ((properties) & TC_OP_DIFFERENTIABLE) != 0, summary, properties},
static const tc_op_info op_infos[] = {TC_OP_LIST(INFO_ENTRY)};
#undef INFO_ENTRY

#define TAPE_ENTRY(ID, name, arity, backward, properties, summary) [TC_OP_##ID] = {name, backward},
const tc_op tc_tape_ops[TC_OP_COUNT] = {TC_OP_LIST(TAPE_ENTRY)};
#undef TAPE_ENTRY

_Static_assert(sizeof op_infos / sizeof op_infos[0] == TC_OP_COUNT, "one description per op");
/* The element-wise lists come first, in the order of their public enums. */
_Static_assert((int)TC_OP_NEG == 0 && (int)TC_OP_LOGICAL_NOT == (int)TC_LOGICAL_NOT, "unary ids are the unary enum");
_Static_assert((int)TC_OP_ADD == (int)TC_UNARY_OP_COUNT && (int)TC_OP_LOGICAL_OR == TC_OP_ADD + (int)TC_LOGICAL_OR,
               "binary ids follow the unary ones in the binary enum's order");
_Static_assert((int)TC_OP_SUM == TC_OP_ADD + (int)TC_BINARY_OP_COUNT &&
                   (int)TC_OP_VAR == TC_OP_SUM + (int)TC_REDUCE_VAR,
               "reduction ids follow the binary ones in the reduction enum's order");

tc_status tc_no_backward(tc_node *node, tc_tensor *grad_output, tc_tensor **grad_inputs) {
    (void)grad_output;
    (void)grad_inputs;
    return tc_fail(node->ctx, TC_ERROR_STATE, "backward: %s puts no node of its own on the tape", node->op->name);
}

int tc_op_count(void) { return TC_OP_COUNT; }

const tc_op_info *tc_op_at(int index) { return index >= 0 && index < TC_OP_COUNT ? &op_infos[index] : NULL; }
