-- tc.distributed on CUDA tensors. With the emulated CUDA backend (`make
-- test-cuda`, which names it in TRICYCLE_CUDA_LIBRARY): a world of one copies
-- locally, DistributedDataParallel trains on the device as the bare model
-- does, and two ranks are told that NCCL cannot run there (the emulation
-- runs kernels on the CPU; NCCL needs NVIDIA GPUs). On a real GPU (#gpu,
-- `make test-gpu`): a world of one goes through NCCL and trains exactly as
-- the plain CUDA run. Pending where the backend cannot start.
local lua_command = require("helpers.interpreter")
local tc = require("tricycle")
local dist = tc.distributed

local available, reason = tc.cuda.is_available()
local emulated = available and (os.getenv("TRICYCLE_CUDA_LIBRARY") or ""):find("emulated", 1, true) ~= nil
local with_cuda = available and it or function(name)
  pending(name .. " (the CUDA backend is not available: " .. tostring(reason) .. ")")
end
local with_emulation = emulated and it or function(name)
  pending(name .. " (not the emulated backend)")
end
local with_gpu = (available and not emulated) and it or function(name)
  pending(name .. " (no GPU)")
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function tiny_gpt()
  tc.manual_seed(9)
  return tc.nn.GPT({ vocab_size = 16, context_length = 8, n_layer = 1, n_head = 2, n_embd = 16 }):to("cuda")
end

local function batch(step)
  local x, y = {}, {}
  for i = 1, 2 do
    x[i], y[i] = {}, {}
    for j = 1, 8 do
      x[i][j] = (i * 8 + j + step) % 16
      y[i][j] = (i * 24 + j * 3 + step) % 16
    end
  end
  return tc.tensor(x, { dtype = "int64" }):to("cuda"), tc.tensor(y, { dtype = "int64" }):to("cuda")
end

-- 3 steps of AdamW; the parameters, flat, on the host.
local function train(model, ddp, zero)
  local optimizer = tc.optim.AdamW(model:parameters(), { lr = 1e-2, zero_stage = zero and 1 or 0,
    ddp = zero and ddp or nil })
  for step = 1, 3 do
    optimizer:zero_grad()
    local x, y = batch(step)
    local _, loss = (ddp or model)(x, { targets = y })
    loss:backward()
    optimizer:step()
  end
  local parts = {}
  for i, p in ipairs(model:parameters()) do
    parts[i] = p:detach():cpu():reshape({ -1 })
  end
  return tc.cat(parts, 1)
end

describe("#gpu distributed collectives on CUDA tensors", function()
  before_each(function()
    dist.init({ mpi = false })
  end)
  after_each(function()
    dist.shutdown()
  end)

  with_cuda("a world of one: every collective keeps the values on the device", function()
    local t = tc.tensor({ 1, 2, 3 }):to("cuda")
    dist.all_reduce(t, { op = "avg" })
    dist.broadcast(t)
    assert.are.same({ 1, 2, 3 }, t:cpu():totable())
    assert.are.same({ { 1, 2, 3 } }, dist.all_gather(t):cpu():totable())
    assert.are.same({ 1, 2, 3 }, dist.reduce_scatter(t, { counts = { 3 } }):cpu():totable())
    assert.are.equal("cuda", dist.all_gather(t).device)
  end)

  with_emulation("the emulated backend copies locally, never through NCCL", function()
    dist.all_reduce(tc.ones({ 2 }):to("cuda"))
    assert.are.equal(0, dist.stats().nccl)
  end)

  with_cuda("DistributedDataParallel and ZeRO-1 on the device train as the bare model", function()
    local bare = train(tiny_gpt())
    local model = tiny_gpt()
    local wrapped = train(model, tc.nn.DistributedDataParallel(model))
    local zero_model = tiny_gpt()
    local zero = train(zero_model, tc.nn.DistributedDataParallel(zero_model), true)
    assert.are.equal(0, (bare - wrapped):abs():max():item())
    assert.are.equal(0, (bare - zero):abs():max():item())
  end)

  with_gpu("one GPU through NCCL: the collectives ran in NCCL", function()
    dist.reset_stats()
    local model = tiny_gpt()
    train(model, tc.nn.DistributedDataParallel(model))
    assert.truthy(dist.stats().nccl > 0, "no collective went through NCCL")
  end)
end)

describe("#gpu distributed CUDA tensors with two ranks", function()
  local pipe = io.popen("command -v mpirun 2> /dev/null")
  local mpirun = pipe and pipe:read("l")
  if pipe then
    pipe:close()
  end
  local build = os.getenv("TRICYCLE_BUILD") or "build"
  local glue = io.open(build .. "/lua/tricycle/libtricycle_mpi.so", "rb")
  if glue then
    glue:close()
  end
  local with_ranks = (emulated and mpirun and glue) and it or function(name)
    pending(name .. " (needs the emulated backend, mpirun and libtricycle_mpi.so)")
  end

  with_ranks("the emulated backend says that NCCL cannot run there", function()
    local out = os.tmpname()
    os.execute(("timeout -k 5 120 %s --allow-run-as-root --oversubscribe -np 2 " .. lua_command .. " "
      .. "spec/helpers/distributed_worker.lua cuda > %s 2>&1 < /dev/null"):format(mpirun, shell_quote(out)))
    local f = assert(io.open(out, "rb"))
    local text = f:read("a")
    f:close()
    os.remove(out)
    for rank = 0, 1 do
      assert.truthy(text:find(("rank %d: [^\n]-all_reduce: NCCL cannot be used for CUDA tensors"):format(rank)), text)
    end
    assert.truthy(text:find("NCCL cannot run in the emulated CUDA backend", 1, true), text)
  end)
end)
