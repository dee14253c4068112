-- One rank of the multi-process specs (spec/distributed_spec.lua), started by
-- mpirun from the repository root:
--
--   lua5.4 spec/helpers/distributed_worker.lua MODE [options]
--
-- collectives: every collective against values computed here; prints "ok".
-- train {zero =, accumulation =, no_sync =, bucket_mb =, steps =}: a small
--   GPT trained with DistributedDataParallel on each rank's rows of every
--   batch; rank 0 also trains it alone on the whole batches and prints one
--   JSON line comparing the two.
-- cuda: an all_reduce of a CUDA tensor; prints its outcome.
-- fault KIND: rank 1 fails in the middle of step 3 (error: raises; kill: is
--   killed; exit: ends without a word; leave: returns and closes cleanly);
--   each rank prints what ended it, with the time it took.
-- The options come as one JSON object after the mode.
local build = os.getenv("TRICYCLE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = build .. "/" .. dofile("spec/helpers/module_dir.lua") .. "/?.so;" .. package.cpath

local compat = require("tricycle.compat")
local tc = require("tricycle")
local dist = tc.distributed

local mode = arg[1]
local options = arg[2] and tc.json_decode(arg[2]) or {}
dist.init({ timeout = options.timeout })
tc.set_num_threads(1)
local rank, world = dist.rank(), dist.world_size()

local function check(condition, message)
  if not condition then
    error(("rank %d: %s"):format(rank, message), 2)
  end
end

local function values(t)
  local shown = {}
  for i, v in ipairs(t:reshape({ -1 }):totable()) do
    shown[i] = tostring(v)
  end
  return table.concat(shown, " ")
end

local modes = {}

function modes.collectives()
  -- sums: every rank's (r + 1) * [1 .. 5]
  local t = tc.arange(1, 6, { dtype = "float32" }) * (rank + 1)
  dist.all_reduce(t)
  local factor = world * (world + 1) / 2
  check(values(t) == values(tc.arange(1, 6, { dtype = "float32" }) * factor), "sum: " .. values(t))
  local a = tc.arange(1, 4, { dtype = "float64" }) * (rank + 1)
  dist.all_reduce(a, { op = "avg" })
  check(values(a) == values(tc.arange(1, 4, { dtype = "float64" }) * (factor / world)), "avg: " .. values(a))
  local m = tc.tensor({ rank, -rank }, { dtype = "int64" })
  dist.all_reduce(m, { op = "max" })
  check(values(m) == ("%d 0"):format(world - 1), "max: " .. values(m))
  local flags = tc.tensor({ rank == 1, false })
  dist.all_reduce(flags, { op = "max" })
  check(values(flags) == "true false", "bool max: " .. values(flags))
  -- a transposed view, reduced in place through a copy
  local matrix = tc.tensor({ { 1, 2 }, { 3, 4 } }):transpose(1, 2)
  dist.all_reduce(matrix)
  check(matrix[1][2]:item() == 3 * world, "a view: " .. tostring(matrix))
  -- every rank gets the same bits of a sum that rounds
  local noisy = tc.randn({ 1001 }, { dtype = "float32" }) * (1 + rank * 1e-3)
  dist.all_reduce(noisy)
  local gathered = dist.all_gather(noisy)
  for r = 2, world do
    check((gathered[r] - gathered[1]):abs():max():item() == 0, "the ranks' sums differ")
  end
  -- broadcast from the last rank
  local b = tc.full({ 3 }, rank)
  dist.broadcast(b, { root = world - 1 })
  check(values(b) == values(tc.full({ 3 }, world - 1)), "broadcast: " .. values(b))
  -- all_gather: equal parts, and counts
  local g = dist.all_gather(tc.full({ 2 }, rank))
  check(table.concat(g.shape, ",") == world .. ",2" and g[world][2]:item() == world - 1, "all_gather: " .. tostring(g))
  local counts, expected = {}, {}
  for r = 1, world do
    counts[r] = r
    for _ = 1, r do
      expected[#expected + 1] = r - 1
    end
  end
  local gv = dist.all_gather(tc.full({ rank + 1 }, rank, { dtype = "int32" }), { counts = counts })
  check(values(gv) == table.concat(expected, " "), "all_gather with counts: " .. values(gv))
  -- reduce_scatter: rank r gets row r + 1 of the sum
  local rows = tc.arange(0, 2 * world, { dtype = "float32" }):reshape({ world, 2 })
  local mine = dist.reduce_scatter(rows, { op = "avg" })
  check(values(mine) == values(rows[rank + 1]:reshape({ 1, 2 })), "reduce_scatter: " .. values(mine))
  local part = dist.reduce_scatter(tc.ones({ compat.idiv(world * (world + 1), 2) }), { counts = counts })
  check(part:numel() == rank + 1 and part:sum():item() == (rank + 1) * world, "reduce_scatter with counts")
  -- async: several in flight, waited in another order
  local handles, tensors = {}, {}
  for i = 1, 4 do
    tensors[i] = tc.full({ 100 * i }, i)
    handles[i] = dist.all_reduce(tensors[i], { async = true })
  end
  for i = 4, 1, -1 do
    handles[i]:wait()
    check(tensors[i][1]:item() == i * world, "async all_reduce " .. i)
  end
  dist.barrier()
  local stats = dist.stats()
  check(stats.all_reduce == 10 and stats.broadcast == 1 and stats.all_gather == 3 and stats.reduce_scatter == 2
    and stats.barrier == 1, "the counters: " .. tc.json_encode(stats))
  check(dist.backend() == "mpi" and dist.local_size() == world and dist.local_rank() == rank, "the ranks' places")
  print("ok")
end

-- Token ids of a batch, the same on every rank.
local function batch(step, micro, rows, length, vocab)
  local state = step * 7919 + micro * 104729
  local function ids()
    local out = {}
    for i = 1, rows do
      local row = {}
      for j = 1, length do
        state = (state * 1103515245 + 12345) % 2147483648
        row[j] = (compat.idiv(state, 65536)) % vocab
      end
      out[i] = row
    end
    return tc.tensor(out, { dtype = "int64" })
  end
  return ids(), ids()
end

local function flat_parameters(model)
  local parts = {}
  for i, p in ipairs(model:parameters()) do
    parts[i] = p:detach():reshape({ -1 })
  end
  return tc.cat(parts, 1)
end

function modes.train()
  local steps, accumulation = options.steps or 20, options.accumulation or 1
  local config = { vocab_size = 32, context_length = 8, n_layer = 2, n_head = 2, n_embd = 16 }
  local rows = 2 -- per rank and micro-batch
  local function make(seed)
    tc.manual_seed(seed)
    return tc.nn.GPT(config)
  end
  local function run(model, ddp, optimizer, full_batch)
    for step = 1, steps do
      optimizer:zero_grad()
      tc.training.accumulate_gradients(ddp or model, function(micro)
        local x, y = batch(step, micro, rows * world, config.context_length, config.vocab_size)
        if full_batch then
          return x, y
        end
        return x:narrow(1, rank * rows + 1, rows), y:narrow(1, rank * rows + 1, rows)
      end, accumulation)
      if ddp then
        ddp:clip_grad_norm(1.0)
      else
        tc.nn.clip_grad_norm(model:parameters(), 1.0)
      end
      optimizer:step()
    end
  end
  local model = make(10 + rank) -- each rank its own start: the wrapper gives them rank 0's
  local ddp = tc.nn.DistributedDataParallel(model, { bucket_mb = options.bucket_mb or 1 })
  if options.no_sync == false then
    ddp.no_sync = false -- accumulate_gradients then averages every micro-batch
  end
  local optimizer = tc.optim.AdamW(tc.optim.gpt_param_groups(model, 0.1), { lr = 1e-2,
    zero_stage = options.zero and 1 or 0, ddp = options.zero and ddp or nil })
  dist.reset_stats()
  run(model, ddp, optimizer, false)
  local stats = dist.stats()
  local mine = flat_parameters(model)
  local everyone = dist.all_gather(mine)
  local identical = true
  for r = 2, world do
    identical = identical and (everyone[r] - everyone[1]):abs():max():item() == 0
  end
  local state_numel = 0
  for _, entry in pairs(optimizer.state) do
    state_numel = state_numel + (entry.exp_avg and entry.exp_avg:numel() or 0)
  end
  local gathered_state = optimizer:state_dict() -- every rank: ZeRO-1 gathers
  local gathered_numel = 0
  for _, t in pairs(gathered_state.tensors) do
    gathered_numel = gathered_numel + t:numel()
  end
  local state_numels = dist.all_gather(tc.tensor({ state_numel }, { dtype = "int64" })):reshape({ -1 }):totable()
  if rank ~= 0 then
    return
  end
  -- one process, the whole batches
  local alone = make(10)
  local alone_optimizer = tc.optim.AdamW(tc.optim.gpt_param_groups(alone, 0.1), { lr = 1e-2 })
  run(alone, nil, alone_optimizer, true)
  local reference = flat_parameters(alone)
  local alone_state = alone_optimizer:state_dict()
  local state_difference = 0
  for name, t in pairs(alone_state.tensors) do
    state_difference = math.max(state_difference, (t - gathered_state.tensors[name]):abs():max():item())
  end
  print(tc.json_encode({
    identical = identical, max_difference = (mine - reference):abs():max():item(),
    max_state_difference = state_difference, parameters = mine:numel(), state_numels = state_numels,
    gathered_state_numel = gathered_numel, steps = steps, buckets = #ddp.buckets,
    all_reduce = stats.all_reduce, reduce_scatter = stats.reduce_scatter, all_gather = stats.all_gather,
  }))
end

function modes.fault()
  local kind = options.kind
  local started = tc.wall_time()
  local ok, message = pcall(dist.run, function()
    for step = 1, 5 do
      if rank == 1 and step == 3 then
        if kind == "error" then
          error("bad batch in step 3")
        elseif kind == "kill" then
          local stat = assert(io.open("/proc/self/stat")):read("a")
          os.execute("kill -9 " .. stat:match("^(%d+)"))
        elseif kind == "exit" then
          os.exit(3, false)
        elseif kind == "leave" then
          return
        end
      end
      dist.all_reduce(tc.ones({ 1000 }))
    end
  end)
  io.stdout:write(("rank %d %s after %.2f s: %s\n"):format(rank, ok and "finished" or "stopped",
    tc.wall_time() - started, tostring(message)))
  io.stdout:flush()
  if not ok then
    os.exit(1, false)
  end
end

-- CUDA tensors with the library TRICYCLE_CUDA_LIBRARY names, every rank on
-- device 0: prints what all_reduce said.
function modes.cuda()
  tc.cuda.set_device(0)
  local t = tc.ones({ 4 }):to("cuda")
  local ok, message = pcall(dist.all_reduce, t)
  print(("rank %d: %s"):format(rank, ok and "reduced" or message))
end

local run = modes[mode]
if not run then
  error("distributed_worker: unknown mode " .. tostring(mode))
end
run()
