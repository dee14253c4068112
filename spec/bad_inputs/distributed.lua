-- Bad inputs of tc.distributed, the gradient hooks, DistributedDataParallel
-- and ZeRO-1, in a world of one (no MPI is loaded). Cases that join the
-- world leave it in `after`.
local tc = require("tricycle")
local dist = tc.distributed

local function leave()
  dist.shutdown()
end

-- Runs fn(...) in a world of one (left by `after = leave`).
local function joined(fn)
  return function()
    dist.init({ mpi = false })
    return fn()
  end
end

local function tiny_model()
  return tc.nn.Linear(2, 2)
end

return {
  -- joining
  { "init with an unknown option", function() dist.init({ mpii = true }) end,
    { "distributed.init", "unknown option 'mpii'", "mpi, mpi_library, timeout" }, after = leave },
  { "init with mpi not a boolean", function() dist.init({ mpi = "yes" }) end,
    { "distributed.init", "option mpi", "yes" }, after = leave },
  { "init with a negative timeout", function() dist.init({ timeout = -1 }) end,
    { "distributed.init", "timeout", "-1" }, after = leave },
  { "init with an infinite timeout", function() dist.init({ timeout = math.huge }) end,
    { "distributed.init", "timeout", "inf" }, after = leave },
  { "init with a non-table", function() dist.init("mpi") end, { "distributed.init", "must be a table", "string" } },
  { "init twice", joined(function() dist.init() end), { "distributed.init", "already joined", "rank 0 of 1" },
    after = leave },
  { "init with an MPI library that is not there",
    function() dist.init({ mpi = true, mpi_library = "/nonexistent/libtricycle_mpi.so" }) end,
    { "distributed.init", "MPI cannot be used", "/nonexistent/libtricycle_mpi.so" }, after = leave },
  { "init with an MPI library that is not ours", function()
    dist.init({ mpi = true, mpi_library = package.searchpath("tricycle.core", package.cpath) })
  end, { "distributed.init", "MPI cannot be used", "core.so", "not a library of this engine's version" },
    after = leave },
  { "run with a non-function", function() dist.run(42) end, { "distributed.run", "argument 1", "number" } },

  -- collectives
  { "a collective before init", function() dist.all_reduce(tc.ones({ 2 })) end,
    { "all_reduce", "has not joined a world", "tc.distributed.init()" } },
  { "a barrier before init", function() dist.barrier() end, { "barrier", "has not joined a world" } },
  { "all_reduce of a number", joined(function() dist.all_reduce(3) end),
    { "all_reduce", "argument 1 must be a tensor", "number" }, after = leave },
  { "all_reduce with an unknown op", joined(function() dist.all_reduce(tc.ones({ 2 }), { op = "mean" }) end),
    { "all_reduce", "unknown op 'mean'", "sum, avg, max" }, after = leave },
  { "all_reduce with an unknown option", joined(function() dist.all_reduce(tc.ones({ 2 }), { asynch = true }) end),
    { "all_reduce", "unknown option 'asynch'", "async, op" }, after = leave },
  { "all_reduce with async not a boolean", joined(function() dist.all_reduce(tc.ones({ 2 }), { async = 1 }) end),
    { "all_reduce", "async", "1" }, after = leave },
  { "the average of integers", joined(function()
    dist.all_reduce(tc.ones({ 2 }, { dtype = "int64" }), { op = "avg" })
  end), { "all_reduce", "op avg", "int64", "{2}" }, after = leave },
  { "the sum of bools", joined(function() dist.all_reduce(tc.tensor({ true, false }), { op = "sum" }) end),
    { "all_reduce", "op sum on a bool tensor", "{2}", "max" }, after = leave },
  { "all_reduce in place on a leaf that requires grad", joined(function()
    dist.all_reduce(tc.ones({ 2 }, { requires_grad = true }))
  end), { "all_reduce", "leaf that requires grad", "no_grad" }, after = leave },
  { "broadcast from a rank that is not there", joined(function() dist.broadcast(tc.ones({ 2 }), { root = 1 }) end),
    { "broadcast", "root", "0 to 0", "1" }, after = leave },
  { "broadcast from a fractional root", joined(function() dist.broadcast(tc.ones({ 2 }), { root = 0.5 }) end),
    { "broadcast", "root", "0.5" }, after = leave },
  { "all_gather with counts for another world", joined(function()
    dist.all_gather(tc.ones({ 2 }), { counts = { 1, 1 } })
  end), { "all_gather", "counts has 2 entries", "1 ranks" }, after = leave },
  { "all_gather with a negative count", joined(function() dist.all_gather(tc.ones({ 2 }), { counts = { -2 } }) end),
    { "all_gather", "counts[1]", "-2" }, after = leave },
  { "all_gather with counts that are not this rank's size", joined(function()
    dist.all_gather(tc.ones({ 3 }), { counts = { 5 } })
  end), { "all_gather", "{3}", "holds 3 elements", "counts[1] (this rank's) is 5" }, after = leave },
  { "all_gather into out of the wrong size", joined(function()
    dist.all_gather(tc.ones({ 3 }), { out = tc.zeros({ 4 }) })
  end), { "all_gather", "out (shape {4})", "holds 4 elements, expected 3" }, after = leave },
  { "all_gather into out of another dtype", joined(function()
    dist.all_gather(tc.ones({ 3 }), { out = tc.zeros({ 3 }, { dtype = "float64" }) })
  end), { "all_gather", "out has dtype float64", "float32" }, after = leave },
  { "all_gather into a non-contiguous out", joined(function()
    dist.all_gather(tc.ones({ 4 }), { out = tc.zeros({ 2, 2 }):transpose(1, 2) })
  end), { "all_gather", "out (shape {2, 2})", "contiguous" }, after = leave },
  { "all_gather with out not a tensor", joined(function() dist.all_gather(tc.ones({ 2 }), { out = {} }) end),
    { "all_gather", "option out", "table" }, after = leave },
  { "reduce_scatter with counts that miss elements", joined(function()
    dist.reduce_scatter(tc.ones({ 3 }), { counts = { 4 } })
  end), { "reduce_scatter", "add up to 4", "{3}", "holds 3 elements" }, after = leave },
  { "reduce_scatter of a 0-dim tensor without counts", joined(function() dist.reduce_scatter(tc.tensor(1)) end),
    { "reduce_scatter", "first dim", "{}", "counts" }, after = leave },
  { "reduce_scatter with counts not a list", joined(function()
    dist.reduce_scatter(tc.ones({ 2 }), { counts = 2 })
  end), { "reduce_scatter", "counts", "number" }, after = leave },
  { "a handle's wait called with a dot", joined(function()
    local handle = dist.all_reduce(tc.ones({ 2 }), { async = true })
    handle.wait()
  end), { "Collective:wait", "handle:wait()" }, after = leave },

  -- gradient hooks
  { "on_grad_ready with a number", function() tc.ones({ 2 }, { requires_grad = true }):on_grad_ready(3) end,
    { "on_grad_ready", "must be a function", "number" } },
  { "on_grad_ready on an op's result", function()
    (tc.ones({ 2 }, { requires_grad = true }) * 2):on_grad_ready(function() end)
  end, { "on_grad_ready", "result of 'mul'", "not a leaf" } },
  { "on_grad_ready on a tensor that needs no gradient", function() tc.ones({ 2 }):on_grad_ready(function() end) end,
    { "on_grad_ready", "does not require grad" } },
  { "on_backward_end outside a backward", function() tc.on_backward_end(function() end) end,
    { "on_backward_end", "no backward is running" } },

  -- DistributedDataParallel
  { "DistributedDataParallel before init", function() tc.nn.DistributedDataParallel(tiny_model()) end,
    { "DistributedDataParallel", "tc.distributed.init() first" } },
  { "DistributedDataParallel of a tensor", joined(function() tc.nn.DistributedDataParallel(tc.ones({ 2 })) end),
    { "DistributedDataParallel", "must be a module", "userdata" }, after = leave },
  { "DistributedDataParallel with an unknown option", joined(function()
    tc.nn.DistributedDataParallel(tiny_model(), { bucket_size = 1 })
  end), { "DistributedDataParallel", "unknown option 'bucket_size'", "bucket_mb, overlap" }, after = leave },
  { "DistributedDataParallel with buckets of 0 MB", joined(function()
    tc.nn.DistributedDataParallel(tiny_model(), { bucket_mb = 0 })
  end), { "DistributedDataParallel", "bucket_mb", "> 0", "got 0" }, after = leave },
  { "DistributedDataParallel with overlap not a boolean", joined(function()
    tc.nn.DistributedDataParallel(tiny_model(), { overlap = "yes" })
  end), { "DistributedDataParallel", "option overlap", "yes" }, after = leave },
  { "DistributedDataParallel of a model without parameters", joined(function()
    tc.nn.DistributedDataParallel(tc.nn.ReLU())
  end), { "DistributedDataParallel", "no parameters" }, after = leave },
  { "no_sync with a number", joined(function() tc.nn.DistributedDataParallel(tiny_model()):no_sync(5) end),
    { "no_sync", "a function or nothing", "number" }, after = leave },
  { "clip_grad_norm with max_norm 0", joined(function()
    tc.nn.DistributedDataParallel(tiny_model()):clip_grad_norm(0)
  end), { "clip_grad_norm", "max_norm", "> 0", "0" }, after = leave },
  { "a model cast after it was wrapped", joined(function()
    local model = tiny_model()
    local ddp = tc.nn.DistributedDataParallel(model)
    model:to("float64")
    ddp(tc.ones({ 1, 2 }, { dtype = "float64" })):sum():backward()
  end), { "DistributedDataParallel", "became float64 on cpu", "float32 on cpu", "before wrapping" }, after = leave },
  { "a wrapper method called with a dot", joined(function()
    local ddp = tc.nn.DistributedDataParallel(tiny_model())
    ddp.no_sync()
  end), { "DistributedDataParallel:no_sync", "ddp:no_sync" }, after = leave },

  -- ZeRO-1
  { "AdamW with zero_stage 2", joined(function()
    local model = tiny_model()
    tc.optim.AdamW(model:parameters(), { zero_stage = 2, ddp = tc.nn.DistributedDataParallel(model) })
  end), { "AdamW", "zero_stage", "0 (off) or 1", "got 2" }, after = leave },
  { "AdamW with zero_stage 1 and no wrapper", joined(function()
    tc.optim.AdamW(tiny_model():parameters(), { zero_stage = 1 })
  end), { "AdamW", "zero_stage = 1", "DistributedDataParallel", "got none" }, after = leave },
  { "AdamW with a wrapper but no ZeRO", joined(function()
    local model = tiny_model()
    tc.optim.AdamW(model:parameters(), { ddp = tc.nn.DistributedDataParallel(model) })
  end), { "AdamW", "option ddp is for zero_stage = 1" }, after = leave },
  { "AdamW with an unknown option lists its own options too", function()
    tc.optim.AdamW(tiny_model():parameters(), { zero = 1 })
  end, { "AdamW", "unknown option 'zero'", "betas, ddp, eps, lr, weight_decay, zero_stage" } },
  { "ZeRO-1 over parameters that are not the model's", joined(function()
    local model, other = tiny_model(), tiny_model()
    tc.optim.AdamW(other:parameters(), { zero_stage = 1, ddp = tc.nn.DistributedDataParallel(model) })
  end), { "AdamW", "zero_stage = 1", "parameter 1 of the wrapped model", "not among the optimiser's" }, after = leave },
  { "ZeRO-1 over some of the model's parameters", joined(function()
    local model = tiny_model()
    local ddp = tc.nn.DistributedDataParallel(model)
    tc.optim.AdamW({ model.weight, model.bias, tc.ones({ 1 }, { requires_grad = true }) },
      { zero_stage = 1, ddp = ddp })
  end), { "AdamW", "the optimiser has 3 parameters, the wrapped model 2" }, after = leave },
  { "a ZeRO-1 step without a backward", joined(function()
    local model = tiny_model()
    local ddp = tc.nn.DistributedDataParallel(model)
    tc.optim.AdamW(model:parameters(), { zero_stage = 1, ddp = ddp }):step()
  end), { "AdamW.step", "ZeRO-1", "no backward has averaged the gradients" }, after = leave },

  -- helpers of the scripts
  { "agree_step of a string", joined(function() tc.training.agree_step("1.5", false) end),
    { "agree_step", "must be a number", "string" }, after = leave },
  { "a negative CUDA device", function() tc.cuda.set_device(-1) end, { "set_cuda_device", ">= 0", "-1" } },
  { "a fractional CUDA device", function() tc.cuda.set_device(0.5) end, { "set_cuda_device", "integer", "number" } },
}
