/*
 * backend.c: what a backend can do, asked by slot (backend_slots.h): the
 * supports query, and the check every call of an optional slot goes
 * through, whose error names the op, the device and the missing kernel.
 */
#include "internal.h"

#define SLOT_NAME(name, kind, result, parameters) #name,
static const char *const slot_names[] = {TC_BACKEND_SLOTS(SLOT_NAME)};
#undef SLOT_NAME
_Static_assert(sizeof slot_names / sizeof slot_names[0] == TC_SLOT_COUNT, "one name per slot");

const char *tc_backend_slot_name(tc_backend_slot slot) {
    return (int)slot >= 0 && slot < TC_SLOT_COUNT ? slot_names[slot] : "(no such slot)";
}

bool tc_backend_supports(const tc_backend *backend, tc_backend_slot slot) {
    switch (slot) {
#define SLOT_CASE(name, kind, result, parameters)                                                                  \
    case TC_SLOT_##name: return backend->name != NULL;
        TC_BACKEND_SLOTS(SLOT_CASE)
#undef SLOT_CASE
    case TC_SLOT_COUNT: break;
    }
    return false;
}

tc_status tc_backend_kernels(const tc_tensor *t, const char *op, uint64_t slots, const tc_backend **backend) {
    const tc_backend *candidate = tc_backend_of(t);
    *backend = NULL;
    if ((slots & ~candidate->half_slots) != 0) /* float32/float64 kernels only */
        TC_TRY(tc_refuse_16bit(op, t));
    for (int slot = 0; slot < TC_SLOT_COUNT; slot++)
        if ((slots >> slot & 1) && !tc_backend_supports(candidate, (tc_backend_slot)slot))
            return tc_fail(t->ctx, TC_ERROR_UNSUPPORTED,
                           "%s: not supported on %s (its backend has no %s kernel; tensor of shape %s)", op,
                           tc_device_name(t->storage->device), slot_names[slot], TC_SHAPE(t));
    *backend = candidate;
    return TC_OK;
}

bool tc_backend_takes_16bit(const tc_tensor *t, uint64_t slots) {
    return tc_dtype_is_16bit(t->dtype) && (slots & ~tc_backend_of(t)->half_slots) == 0;
}
