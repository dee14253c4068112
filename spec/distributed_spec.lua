-- tc.distributed, the gradient hooks DistributedDataParallel stands on,
-- DistributedDataParallel and ZeRO-1, in a world of one (in this process)
-- and with several ranks under mpirun (spec/helpers/distributed_worker.lua
-- and the training scripts): collectives against computed values, 20 steps
-- of a small GPT with parameters bit-identical on the ranks and within
-- float32 rounding of one process on the whole batch, ZeRO-1 with half the
-- moments per rank, one all-reduce per step with no_sync, and ranks that
-- fail, die or leave early stopping the others within seconds.
--
-- The multi-process cases (tag #mpi) need Open MPI's mpirun and
-- libtricycle_mpi.so; they are pending without them. Each starts mpirun
-- (0.5 to 2 s); those running the training scripts are tagged #mpi_scripts
-- (about 10 s together).
local lua_command = require("helpers.interpreter")
local compat = require("tricycle.compat")
local tc = require("tricycle")
local dist = tc.distributed
local core = require("tricycle.core")
local shell_quote = require("helpers.scratch").shell_quote
local exists = require("helpers.command").exists

local build = os.getenv("TRICYCLE_BUILD") or "build"

local function slurp(path)
  local f = io.open(path, "rb")
  local text = f and f:read("a") or ""
  if f then
    f:close()
  end
  os.remove(path)
  return text
end

-- Runs a shell command; returns its exit code, stdout, stderr and seconds.
local function run(command)
  local out, err = os.tmpname(), os.tmpname()
  local started = core.wall_time()
  local _, code = compat.execute(("TRICYCLE_BUILD=%s %s < /dev/null > %s 2> %s"):format(shell_quote(build), command,
    shell_quote(out), shell_quote(err)))
  return code, slurp(out), slurp(err), core.wall_time() - started
end

local mpirun do
  local pipe = io.popen("command -v mpirun 2> /dev/null")
  mpirun = pipe and pipe:read("l") or nil
  if pipe then
    pipe:close()
  end
end
local have_glue = exists(build .. "/lua/tricycle/libtricycle_mpi.so")
local why_not = not mpirun and "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"
  or not have_glue and ("%s/lua/tricycle/libtricycle_mpi.so was not built (no mpicc when make ran)"):format(build)
-- TRICYCLE_REQUIRE_MPI (make test-distributed, CI) makes a missing MPI a failure instead
local with_mpi = why_not and not os.getenv("TRICYCLE_REQUIRE_MPI") and function(name)
  pending(name .. " (" .. why_not .. ")")
end or it

-- mpirun of np ranks of `program` (arguments included), bounded by `limit` seconds.
local function launch(np, program, limit)
  assert(not why_not, why_not)
  return run(("timeout -k 5 %d %s --allow-run-as-root --oversubscribe -np %d %s"):format(limit or 120, mpirun, np,
    program))
end

local function worker(np, mode, options, limit)
  return launch(np, (lua_command .. " spec/helpers/distributed_worker.lua %s %s"):format(mode,
    shell_quote(tc.json_encode(options or {}))), limit)
end

describe("tc.distributed in a world of one", function()
  after_each(function()
    dist.shutdown()
  end)

  it("joins without MPI when no launcher started the process, and leaves", function()
    assert.is_nil(dist.launcher())
    assert.is_false(dist.is_initialized())
    assert.are.equal(0, dist.rank())
    dist.init()
    assert.is_true(dist.is_initialized())
    assert.are.same({ 0, 1, 0, 1, "local" }, { dist.rank(), dist.world_size(), dist.local_rank(), dist.local_size(),
      dist.backend() })
    dist.shutdown()
    assert.is_false(dist.is_initialized())
    dist.init({ mpi = false, timeout = 5 })
    assert.are.equal("local", dist.backend())
    -- nothing of MPI was loaded: the core does not link it, and a world of one does not open it
    local maps = io.open("/proc/self/maps", "rb")
    if maps then
      local text = maps:read("a")
      maps:close()
      assert.is_nil(text:find("libmpi", 1, true))
      assert.is_nil(text:find("libtricycle_mpi", 1, true))
    end
  end)

  it("runs every collective as the identity of one rank", function()
    dist.init()
    local t = tc.tensor({ 1, 2, 3 })
    assert.are.equal(t, dist.all_reduce(t, { op = "avg" }))
    assert.are.same({ 1, 2, 3 }, t:totable())
    assert.are.same({ 1, 2, 3 }, dist.broadcast(t, { root = 0 }):totable())
    assert.are.same({ { 1, 2, 3 } }, dist.all_gather(t):totable())
    assert.are.same({ 1, 2, 3 }, dist.all_gather(t, { counts = { 3 } }):totable())
    assert.are.same({ { 1, 2, 3 } }, dist.reduce_scatter(t:reshape({ 1, 3 })):totable())
    local handle = dist.all_reduce(t, { async = true })
    assert.is_true(handle:is_done())
    handle:wait()
    handle:wait()
    dist.barrier()
    local stats = dist.stats()
    assert.are.same({ 2, 1, 2, 1, 1, 0 }, { stats.all_reduce, stats.broadcast, stats.all_gather, stats.reduce_scatter,
      stats.barrier, stats.nccl })
    assert.are.equal(2 * 12 + 12 + 2 * 12 + 12, stats.bytes)
  end)

  it("fails every later collective once a rank aborted, with its message", function()
    dist.init()
    dist.abort("the data ran out")
    assert.are.equal("rank 0 stopped: the data ran out", dist.failure())
    local ok, message = pcall(dist.all_reduce, tc.ones({ 2 }))
    assert.is_false(ok)
    assert.truthy(message:find("all_reduce: rank 0 stopped: the data ran out", 1, true), message)
  end)

  it("run() passes results through, and raises a failure unchanged in a world of one", function()
    dist.init()
    assert.are.same({ 1, 2 }, { dist.run(function(a) return a, 2 end, 1) })
    local ok, message = pcall(dist.run, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.are.equal("boom", message)
  end)

  it("says why MPI cannot be used when its library is missing", function()
    local ok, message = pcall(dist.init, { mpi = true, mpi_library = "/nonexistent/libtricycle_mpi.so" })
    assert.is_false(ok)
    assert.truthy(message:find("distributed.init: MPI cannot be used", 1, true), message)
    assert.truthy(message:find("/nonexistent/libtricycle_mpi.so", 1, true), message)
    assert.is_false(dist.is_initialized())
  end)
end)

describe("gradient hooks", function()
  it("run once a leaf's gradient is final, with every use summed, and not for leaves the backward misses", function()
    local w = tc.tensor({ 2, 3 }, { dtype = "float64", requires_grad = true })
    local unused = tc.tensor({ 1 }, { requires_grad = true })
    local seen, order = {}, {}
    w:on_grad_ready(function(leaf)
      seen[#seen + 1] = leaf.grad:totable()
      order[#order + 1] = "hook"
      tc.on_backward_end(function()
        order[#order + 1] = "end"
      end)
    end)
    unused:on_grad_ready(function()
      seen.unused = true
    end)
    local loss = (w * w):sum() + (w * 3):sum()
    loss:backward()
    assert.are.same({ { 7, 9 } }, seen)
    assert.are.same({ "hook", "end" }, order)
    assert.is_nil(seen.unused)
    w:on_grad_ready(nil)
    ;(w * 2):sum():backward()
    assert.are.equal(1, #seen)
  end)

  it("give each backward its own serial number, and nil outside one", function()
    local w = tc.ones({ 2 }, { requires_grad = true })
    local serials = {}
    w:on_grad_ready(function()
      serials[#serials + 1] = tc.backward_serial()
    end)
    w:sum():backward()
    w:sum():backward()
    assert.are.equal(2, #serials)
    assert.are_not.equal(serials[1], serials[2])
    assert.is_nil(tc.backward_serial())
  end)

  it("stay with a parameter whose data is replaced (model:to)", function()
    local model = tc.nn.Linear(2, 1)
    local calls = 0
    model.weight:on_grad_ready(function()
      calls = calls + 1
    end)
    model:to("float64")
    model(tc.ones({ 1, 2 }, { dtype = "float64" })):sum():backward()
    assert.are.equal(1, calls)
  end)

  it("stop the backward with the hook's error", function()
    local w = tc.ones({ 2 }, { requires_grad = true })
    w:on_grad_ready(function()
      error("no gradients today")
    end)
    local ok, message = pcall(function() w:sum():backward() end)
    assert.is_false(ok)
    assert.truthy(message:find("no gradients today", 1, true), message)
    assert.is_true(tc.is_grad_enabled())
  end)
end)

-- A small GPT and batches that are the same on every call.
local function tiny_gpt(seed)
  tc.manual_seed(seed)
  return tc.nn.GPT({ vocab_size = 16, context_length = 8, n_layer = 2, n_head = 2, n_embd = 16 })
end

local function batch(step, micro)
  local state = step * 31 + micro * 7
  local function ids()
    local rows = {}
    for i = 1, 2 do
      local row = {}
      for j = 1, 8 do
        state = (state * 1103515245 + 12345) % 2147483648
        row[j] = (compat.idiv(state, 65536)) % 16
      end
      rows[i] = row
    end
    return tc.tensor(rows, { dtype = "int64" })
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

local function train(model, ddp, optimizer, steps, accumulation)
  for step = 1, steps do
    optimizer:zero_grad()
    tc.training.accumulate_gradients(ddp or model, function(micro) return batch(step, micro) end, accumulation)
    optimizer:step()
  end
end

describe("DistributedDataParallel in a world of one", function()
  before_each(function()
    dist.init({ mpi = false })
  end)
  after_each(function()
    dist.shutdown()
  end)

  it("trains exactly as the bare model, one all-reduce per bucket and step, accumulation included", function()
    local bare, wrapped = tiny_gpt(3), tiny_gpt(3)
    local ddp = tc.nn.DistributedDataParallel(wrapped, { bucket_mb = 0.01 })
    assert.truthy(#ddp.buckets > 1)
    -- buckets hold the parameters from the last to the first
    local parameters = wrapped:parameters()
    assert.are.equal(parameters[#parameters], ddp.buckets[1].params[1])
    assert.are.equal(parameters[1], ddp.buckets[#ddp.buckets].params[#ddp.buckets[#ddp.buckets].params])
    local bare_optimizer = tc.optim.AdamW(bare:parameters(), { lr = 1e-2 })
    local optimizer = tc.optim.AdamW(wrapped:parameters(), { lr = 1e-2 })
    dist.reset_stats()
    train(bare, nil, bare_optimizer, 3, 3)
    train(wrapped, ddp, optimizer, 3, 3)
    assert.are.equal(0, (flat_parameters(bare) - flat_parameters(wrapped)):abs():max():item())
    assert.are.equal(3 * #ddp.buckets, dist.stats().all_reduce)
    assert.are.equal(3, ddp.synced_backwards)
    -- .grad is a view of the averaged bucket
    assert.are.same(bare:parameters()[1].grad:totable(), wrapped:parameters()[1].grad:totable())
  end)

  it("no_sync accumulates locally, as a function or a guard", function()
    local model = tiny_gpt(4)
    local ddp = tc.nn.DistributedDataParallel(model)
    dist.reset_stats()
    ddp:no_sync(function()
      local x, y = batch(1, 1)
      local _, loss = ddp(x, { targets = y })
      loss:backward()
    end)
    do
      local guard = ddp:no_sync()
      local x, y = batch(1, 2)
      local _, loss = ddp(x, { targets = y })
      loss:backward()
      guard:close()
    end
    assert.are.equal(0, dist.stats().all_reduce)
    local x, y = batch(1, 3)
    local _, loss = ddp(x, { targets = y })
    loss:backward()
    assert.are.equal(#ddp.buckets, dist.stats().all_reduce)
    assert.is_true(ddp.syncing)
  end)

  it("counts a parameter the backward does not reach as zeros", function()
    local Two = tc.nn.Module:extend("Two")
    function Two:init()
      self.used = tc.nn.Linear(2, 2)
      self.unused = tc.nn.Linear(2, 2)
    end
    function Two:forward(x)
      return self.used(x)
    end
    local model = Two()
    local ddp = tc.nn.DistributedDataParallel(model)
    ddp(tc.ones({ 1, 2 })):sum():backward()
    assert.are.same({ { 1, 1 }, { 1, 1 } }, model.used.weight.grad:totable())
    assert.are.same({ { 0, 0 }, { 0, 0 } }, model.unused.weight.grad:totable())
    assert.are.equal(1, ddp.synced_backwards)
  end)

  it("ZeRO-1 on one rank updates as AdamW does, and its state_dict is AdamW's", function()
    local bare, wrapped = tiny_gpt(5), tiny_gpt(5)
    local ddp = tc.nn.DistributedDataParallel(wrapped)
    local bare_optimizer = tc.optim.AdamW(tc.optim.gpt_param_groups(bare, 0.1), { lr = 1e-2 })
    local optimizer = tc.optim.AdamW(tc.optim.gpt_param_groups(wrapped, 0.1), { lr = 1e-2, zero_stage = 1, ddp = ddp })
    train(bare, nil, bare_optimizer, 3, 1)
    train(wrapped, ddp, optimizer, 3, 1)
    assert.are.equal(0, (flat_parameters(bare) - flat_parameters(wrapped)):abs():max():item())
    local a, b = bare_optimizer:state_dict(), optimizer:state_dict()
    assert.are.same(a.values, b.values)
    for name, t in pairs(a.tensors) do
      assert.are.equal(0, (t - b.tensors[name]):abs():max():item(), name)
    end
    -- a plain AdamW state loads into a ZeRO-1 one and goes on identically
    optimizer:load_state_dict(a)
    train(bare, nil, bare_optimizer, 1, 1)
    train(wrapped, ddp, optimizer, 1, 1)
    assert.are.equal(0, (flat_parameters(bare) - flat_parameters(wrapped)):abs():max():item())
    -- a step without a synchronised backward is refused
    local ok, message = pcall(optimizer.step, optimizer)
    assert.is_false(ok)
    assert.truthy(message:find("no backward has averaged the gradients", 1, true), message)
  end)
end)

describe("#mpi several ranks", function()
  with_mpi("run every collective with 2 and 3 ranks, the sums bit-identical on every rank", function()
    for _, np in ipairs({ 2, 3 }) do
      local code, out, err = worker(np, "collectives")
      assert.are.equal(0, code, out .. err)
      local _, oks = out:gsub("ok\n", "")
      assert.are.equal(np, oks, out)
    end
  end)

  local function train_result(options)
    local code, out, err = worker(2, "train", options)
    assert.are.equal(0, code, out .. err)
    local result = tc.json_decode(out:match("(%b{})"))
    return result
  end

  with_mpi("train a GPT for 20 steps: parameters bit-identical on both ranks, float32-close to one process", function()
    local result = train_result({ steps = 20 })
    assert.is_true(result.identical)
    assert.truthy(result.max_difference < 5e-4, result.max_difference)
    assert.truthy(result.max_difference > 0) -- the sums differ in rounding: the comparison is real
    assert.truthy(result.max_state_difference < 1e-6, result.max_state_difference)
    assert.are.same({ result.parameters, result.parameters }, result.state_numels)
    assert.are.equal(20 * result.buckets, result.all_reduce)
  end)

  with_mpi("ZeRO-1: the same, with each rank holding half of AdamW's moments", function()
    local result = train_result({ steps = 20, zero = true })
    assert.is_true(result.identical)
    assert.truthy(result.max_difference < 5e-4, result.max_difference)
    assert.truthy(result.max_state_difference < 1e-6, result.max_state_difference)
    local half = compat.idiv(result.parameters, 2)
    assert.are.same({ half, result.parameters - half }, result.state_numels)
    assert.are.equal(2 * result.parameters, result.gathered_state_numel) -- state_dict still holds it all
    assert.are.equal(20 * result.buckets, result.reduce_scatter)
    assert.are.equal(20 * result.buckets, result.all_gather)
  end)

  with_mpi("gradient accumulation with no_sync gives what averaging each micro-batch gives, in 1 all-reduce", function()
    local deferred = train_result({ steps = 10, accumulation = 4, bucket_mb = 100 })
    local every = train_result({ steps = 10, accumulation = 4, bucket_mb = 100, no_sync = false })
    assert.are.equal(1, deferred.buckets)
    assert.are.equal(10, deferred.all_reduce) -- one per optimiser step
    assert.are.equal(40, every.all_reduce)
    assert.is_true(deferred.identical and every.identical)
    assert.truthy(deferred.max_difference < 5e-4 and every.max_difference < 5e-4)
  end)

  local function fault(kind)
    local code, out, err, seconds = worker(2, "fault", { kind = kind }, 60)
    return code, out .. err, seconds
  end

  with_mpi("a rank killed mid-step: the other stops naming it within 60 seconds", function()
    local code, output, seconds = fault("kill")
    assert.are_not.equal(0, code)
    assert.truthy(seconds < 60, seconds)
    -- the collective's error is placed at the worker's line that called it
    assert.truthy(output:find("rank 0 stopped after [%d.]+ s: rank 0: spec/helpers/distributed_worker.lua:%d+: "
      .. "all_reduce: rank 1 %(process %d+ on [^)]+%) ended without a word while rank 0 waited for it"), output)
  end)

  with_mpi("a rank that raises an error: the other stops with it, naming the rank", function()
    local code, output, seconds = fault("error")
    assert.are_not.equal(0, code)
    assert.truthy(seconds < 60, seconds)
    assert.truthy(output:find("rank 0: spec/helpers/distributed_worker.lua:%d+: all_reduce: rank 1 stopped: "
      .. "spec/helpers/distributed_worker.lua:%d+: bad batch in step 3"), output)
  end)

  with_mpi("a rank that ends without a word, or leaves early: the other stops naming it", function()
    local code, output = fault("exit")
    assert.are_not.equal(0, code)
    assert.truthy(output:find("rank 1 (process", 1, true) and output:find("ended without a word", 1, true), output)
    code, output = fault("leave")
    assert.are_not.equal(0, code)
    assert.truthy(output:find("rank 1 finished", 1, true), output)
    assert.truthy(output:find("rank 1 left the world after 2 collectives, without starting collective #3", 1, true),
      output)
  end)

  with_mpi("two contexts of each process, on two threads at once, each with communicators of its own", function()
    local library = build .. "/lua/tricycle/libtricycle_mpi.so"
    local code, out, err = launch(2, ("%s/spec/c/distributed_test --mpi %s"):format(build, shell_quote(library)))
    assert.are.equal(0, code, out .. err)
    local _, reports = out:gsub("distributed_test %-%-mpi: %d+ passed, 0 failed", "")
    assert.are.equal(2, reports, out)
  end)

  with_mpi("MPI in one process without a launcher (asked for): a world of one over MPI", function()
    local code, out, err = run(lua_command .. " -e " .. shell_quote([[
      package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
      package.cpath = os.getenv("TRICYCLE_BUILD") .. "/" .. require("helpers.module_dir") .. "/?.so;" .. package.cpath
      local tc = require("tricycle")
      tc.distributed.init({ mpi = true })
      local t = tc.tensor({ 1, 2 })
      tc.distributed.all_reduce(t, { op = "avg" })
      print(tc.distributed.backend(), tc.distributed.world_size(), table.concat(t:totable(), " "))]]))
    assert.are.equal(0, code, out .. err)
    -- (LuaJIT and 5.1/5.2 print 1.0 as 1)
    assert.truthy(out:find(compat.has_integers and "mpi\t1\t1.0 2.0" or "mpi\t1\t1 2", 1, true), out)
  end)
end)

describe("#mpi #mpi_scripts the training scripts under mpirun", function()
  local work
  setup(function()
    local pipe = io.popen("mktemp -d /tmp/tricycle_distributed_XXXXXX")
    work = pipe:read("l")
    pipe:close()
    -- token shards of ids in [0, 64)
    local function write(path, n, seed)
      local ids, s = {}, seed
      for i = 1, n do
        s = (s * 1103515245 + 12345) % 2147483648
        ids[i] = (compat.idiv(s, 65536)) % 64
      end
      local f = assert(io.open(path, "wb"))
      f:write(tc.data.token_shard_bytes(ids))
      f:close()
    end
    write(work .. "/d_train_000.bin", 20000, 1)
    write(work .. "/d_val_000.bin", 4000, 2)
  end)
  teardown(function()
    if work then
      os.execute("rm -rf " .. shell_quote(work))
    end
  end)

  local tiny = "--n-layer 2 --n-head 2 --n-embd 32 --context-length 16 --vocab-size 64 --batch-size 4 "
    .. "--total-batch 128 --steps 6 --val-every 3 --val-batches 2 --checkpoint-every 3 --sample-tokens 0 "
    .. "--threads 1 --lr 1e-2 --warmup 1"

  local function train_gpt2(np, extra)
    local command = (lua_command .. " scripts/train_gpt2.lua --data %s %s %s")
      :format(shell_quote(work .. "/d"), tiny, extra)
    if np == 1 then
      return run(command)
    end
    return launch(np, command)
  end

  local function difference(a, b)
    local first, second = tc.checkpoint.load(a), tc.checkpoint.load(b)
    local worst = 0
    for name, t in pairs(first.model) do
      worst = math.max(worst, (t - second.model[name]):abs():max():item())
    end
    for name, t in pairs(first.optimizer.tensors) do
      worst = math.max(worst, (t - second.optimizer.tensors[name]):abs():max():item())
    end
    return worst
  end

  with_mpi("train_gpt2: 2 ranks train as one process on the whole batch; ZeRO-1 and a resume, bit for bit", function()
    local code, out, err = train_gpt2(1, "--out " .. shell_quote(work .. "/one"))
    assert.are.equal(0, code, out .. err)
    code, out, err = train_gpt2(2, "--out " .. shell_quote(work .. "/two"))
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("data-parallel: 2 ranks over mpi", 1, true), out)
    local _, dones = out:gsub("done: 6 steps", "")
    assert.are.equal(1, dones, out) -- rank 0 alone prints
    local last = "/checkpoint_00000006.safetensors"
    local gap = difference(work .. "/one" .. last, work .. "/two" .. last)
    assert.truthy(gap > 0 and gap < 1e-3, gap)
    code, out, err = train_gpt2(2, "--zero --stop-at 3 --out " .. shell_quote(work .. "/zero"))
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("stopped at step 3", 1, true), out)
    code, out, err = train_gpt2(2, "--zero --resume --out " .. shell_quote(work .. "/zero"))
    assert.are.equal(0, code, out .. err)
    assert.are.equal(0, difference(work .. "/two" .. last, work .. "/zero" .. last))
    -- another number of ranks is refused
    code, out, err = train_gpt2(1, "--resume --out " .. shell_quote(work .. "/zero"))
    assert.are.equal(1, code, out .. err)
    assert.truthy(err:find("was written by a run of 2 ranks, this one has 1", 1, true), err)
  end)

  local data_dir = os.getenv("TRICYCLE_DATA")
  local shakespeare = data_dir and data_dir .. "/tinyshakespeare.txt"
  local with_text = (shakespeare and exists(shakespeare)) and with_mpi or function(name)
    pending(name .. " (no tinyshakespeare.txt in TRICYCLE_DATA)")
  end

  with_text("train_shakespeare: 2 ranks of 4 sequences train as one process of 8", function()
    local common = (lua_command .. " scripts/train_shakespeare.lua --data %s --device cpu --steps 6 "
      .. "--context-length 32 --n-layer 2 --n-head 2 --n-embd 32 --eval-every 3 --eval-batches 2 "
      .. "--checkpoint-every 3 --sample-tokens 8 --threads 1"):format(shell_quote(shakespeare))
    local code, out, err = run(common .. " --batch-size 8 --out " .. shell_quote(work .. "/s1"))
    assert.are.equal(0, code, out .. err)
    code, out, err = launch(2, common .. " --batch-size 4 --zero --out " .. shell_quote(work .. "/s2"))
    assert.are.equal(0, code, out .. err)
    local _, dones = out:gsub("done: 6 steps", "")
    assert.are.equal(1, dones, out)
    local gap = difference(work .. "/s1/checkpoint.safetensors", work .. "/s2/checkpoint.safetensors")
    assert.truthy(gap < 1e-3, gap)
    code, out, err = run(common .. " --batch-size 4 --resume --out " .. shell_quote(work .. "/s2"))
    assert.are.equal(1, code)
    assert.truthy(err:find("was written by a run of 2 ranks, this one has 1", 1, true), err)
  end)
end)
