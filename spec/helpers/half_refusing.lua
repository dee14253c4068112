-- The ops that refuse 16-bit tensors on every device (docs/API.md,
-- "bfloat16 and float16"): spec/half_spec.lua on the CPU and
-- spec/cuda_emulation_spec.lua on the device check them against the op list.
return {
  adamw_step = true, sgd_step = true, scale_ = true, global_norm = true, attention_cached = true,
}
