--- tricycle.distributed: training across processes, GPUs and machines.
--
--   local dist = tc.distributed
--   dist.init()                      -- under mpirun: this process's rank in the job; else a world of one
--   print(dist.rank(), dist.world_size(), dist.local_rank())
--   dist.all_reduce(t, {op = "avg"}) -- in place, on every rank
--
-- Processes started by a launcher (`mpirun -np 4 lua train.lua`) find each
-- other through MPI; CPU tensors travel over MPI and CUDA tensors over NCCL
-- inside the CUDA backend. MPI is optional: nothing of it is loaded unless
-- init() runs under a launcher (or is given {mpi = true}); without it the
-- world is this process alone and the collectives are local copies.
--
-- Every rank must call the same collectives in the same order on tensors of
-- the same dtype and size. When a rank fails (dist.abort, or dist.run
-- catching its error), ends without closing, or is killed, the ranks that
-- wait for it stop with an error naming it instead of hanging.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local check_options = require("tricycle.options").check_options
local call = require("tricycle.errors").call

local native = core.distributed
local M = {}

-- Set by the launchers that start MPI jobs: Open MPI's mpirun, PMIx and PMI
-- (MPICH's hydra, Slurm's srun --mpi).
local LAUNCHER_VARIABLES = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE" }

local function is_tensor(value)
  return getmetatable(value) == core.Tensor
end

local function check_tensor(function_name, t)
  if not is_tensor(t) then
    error(("%s: argument 1 must be a tensor, got %s"):format(function_name, type(t)), 3)
  end
end

local function check_async(function_name, options)
  if options.async ~= nil and type(options.async) ~= "boolean" then
    error(("%s: option async must be a boolean, got %s"):format(function_name, tostring(options.async)), 3)
  end
end

--- The launcher variable that says this process was started as part of a
-- job (e.g. "OMPI_COMM_WORLD_SIZE"), or nil.
function M.launcher()
  for _, name in ipairs(LAUNCHER_VARIABLES) do
    if os.getenv(name) then
      return name
    end
  end
  return nil
end

--- Joins the world: init{mpi = nil, timeout = 0, mpi_library = nil}.
-- mpi: true joins through MPI (an error says why it cannot), false never
-- loads MPI (a world of one), nil (the default) uses MPI when a launcher
-- started this process. timeout: seconds a collective may wait before it
-- fails (0, the default: no limit; failed, closed and, on this machine,
-- dead ranks end a wait anyway). mpi_library: the glue library to load
-- (default: TRICYCLE_MPI_LIBRARY, else libtricycle_mpi.so beside core.so).
-- A CUDA device not started yet becomes the local rank's.
function M.init(options)
  if options ~= nil and type(options) ~= "table" then
    error(("distributed.init: options must be a table, got %s"):format(type(options)), 2)
  end
  options = check_options("distributed.init", options or {}, { "mpi", "timeout", "mpi_library" }, 2)
  if options.mpi ~= nil and type(options.mpi) ~= "boolean" then
    error(("distributed.init: option mpi must be a boolean, got %s"):format(tostring(options.mpi)), 2)
  end
  local timeout = options.timeout or 0
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 or timeout == math.huge then
    error(("distributed.init: option timeout must be a finite number of seconds >= 0, got %s"):format(
      tostring(options.timeout)), 2)
  end
  if options.mpi_library ~= nil and type(options.mpi_library) ~= "string" then
    error(("distributed.init: option mpi_library must be a path, got %s"):format(type(options.mpi_library)), 2)
  end
  local use_mpi = options.mpi
  if use_mpi == nil then
    use_mpi = M.launcher() ~= nil
  end
  call(native.init, { use_mpi = use_mpi, timeout = timeout,
    mpi_library = options.mpi_library or os.getenv("TRICYCLE_MPI_LIBRARY") })
end

M.is_initialized = native.is_initialized
--- This process's rank, from 0 (0 before init).
M.rank = native.rank
M.world_size = native.world_size
--- The rank among this machine's ranks (the CUDA device it uses).
M.local_rank = native.local_rank
M.local_size = native.local_size
--- "mpi" or "local" (a world of one without MPI); nil before init.
M.backend = native.backend
--- Why the world broke (a rank failed, left or died), or nil.
M.failure = native.failure
M.stats = native.stats
M.reset_stats = native.reset_stats

--- Tells every other rank that this one stops, and why; their collectives
-- then fail with the message, naming this rank.
function M.abort(message)
  native.abort(message ~= nil and tostring(message) or "")
end

--- Leaves the world: waits until every rank has left, then finalises MPI
-- (closing the Lua state does the same).
M.shutdown = native.shutdown

--- Waits until every rank has called it.
M.barrier = native.barrier

local function check_op(function_name, op)
  if op ~= nil and op ~= "sum" and op ~= "avg" and op ~= "max" then
    error(("%s: unknown op '%s' (sum, avg, max)"):format(function_name, tostring(op)), 3)
  end
  return op or "sum"
end

--- In place on every rank: t = the sum ("sum", the default), the mean
-- ("avg", float32 and float64) or the largest ("max") of every rank's t.
-- Returns t, or with {async = true} a handle: handle:wait(), handle:is_done().
function M.all_reduce(t, options)
  check_tensor("all_reduce", t)
  options = check_options("all_reduce", options or {}, { "op", "async" }, 2)
  local op = check_op("all_reduce", options.op)
  check_async("all_reduce", options)
  local handle = call(native.all_reduce, t, op, options.async)
  return handle or t
end

--- In place on every rank: t = rank `root`'s t ({root = 0}).
function M.broadcast(t, options)
  check_tensor("broadcast", t)
  options = check_options("broadcast", options or {}, { "root", "async" }, 2)
  local root = options.root or 0
  if not compat.is_integer(root) or root < 0 or root >= native.world_size() then
    error(("broadcast: root must be a rank from 0 to %d, got %s"):format(native.world_size() - 1,
      tostring(options.root)), 2)
  end
  check_async("broadcast", options)
  local handle = call(native.broadcast, t, root, options.async)
  return handle or t
end

local function empty_like(t, shape)
  local out = core.empty(shape, { dtype = t.dtype })
  if t.device ~= "cpu" then
    out = out:to(t.device)
  end
  return out
end

local function counts_total(function_name, counts)
  if type(counts) ~= "table" then
    error(("%s: option counts must be a list of element counts, one per rank, got %s"):format(function_name,
      type(counts)), 3)
  end
  local total = 0
  for i, n in ipairs(counts) do
    if not compat.is_integer(n) or n < 0 then
      error(("%s: counts[%d] must be an integer >= 0, got %s"):format(function_name, i, tostring(n)), 3)
    end
    total = total + n
  end
  return total
end

--- Every rank's t, in rank order, in a new tensor of shape {world_size,
-- ...t.shape}. With {counts = {n1, n2, ...}} rank r gives counts[r + 1]
-- elements (its t has that many) and the result is 1-D, their
-- concatenation. {out = tensor} writes there instead. Returns the result
-- (and the handle with {async = true}).
function M.all_gather(t, options)
  check_tensor("all_gather", t)
  options = check_options("all_gather", options or {}, { "counts", "out", "async" }, 2)
  check_async("all_gather", options)
  local out = options.out
  if out ~= nil and not is_tensor(out) then
    error(("all_gather: option out must be a tensor, got %s"):format(type(out)), 2)
  end
  if out == nil then
    if options.counts ~= nil then
      out = empty_like(t, { counts_total("all_gather", options.counts) })
    else
      local shape = { native.world_size() }
      for i, n in ipairs(t.shape) do
        shape[i + 1] = n
      end
      out = empty_like(t, shape)
    end
  end
  local handle = call(native.all_gather, t, out, options.counts, options.async)
  return out, handle
end

--- This rank's part of the reduction of every rank's t: without counts, t's
-- first dim is split into world_size equal parts and the result is part
-- rank + 1; with {counts = {...}}, the elements of t (in order) are split
-- into parts of those sizes and the result is 1-D. op as in all_reduce.
-- {out = tensor} writes there instead. Returns the result (and the handle
-- with {async = true}).
function M.reduce_scatter(t, options)
  check_tensor("reduce_scatter", t)
  options = check_options("reduce_scatter", options or {}, { "op", "counts", "out", "async" }, 2)
  local op = check_op("reduce_scatter", options.op)
  check_async("reduce_scatter", options)
  local out = options.out
  if out ~= nil and not is_tensor(out) then
    error(("reduce_scatter: option out must be a tensor, got %s"):format(type(out)), 2)
  end
  local world = native.world_size()
  if out == nil then
    if options.counts ~= nil then
      counts_total("reduce_scatter", options.counts)
      local mine = options.counts[native.rank() + 1]
      out = empty_like(t, { compat.is_integer(mine) and mine >= 0 and mine or 0 })
    else
      local shape = t.shape
      if #shape == 0 or shape[1] % world ~= 0 then
        error(("reduce_scatter: the first dim of the tensor (shape {%s}) must split into %d equal parts (one per "
          .. "rank); give counts otherwise"):format(table.concat(shape, ", "), world), 2)
      end
      shape[1] = compat.idiv(shape[1], world)
      out = empty_like(t, shape)
    end
  end
  local handle = call(native.reduce_scatter, t, out, op, options.counts, options.async)
  return out, handle
end

--- Runs main(...) and returns its results; when it raises an error in a
-- world of several ranks, first tells the others (abort), so that they stop
-- with the message instead of waiting for this rank. The error is raised
-- again, prefixed with the rank.
function M.run(main, ...)
  if type(main) ~= "function" then
    error(("distributed.run: argument 1 must be a function, got %s"):format(type(main)), 2)
  end
  local results = compat.pack(xpcall(main, function(message)
    return message
  end, ...))
  if results[1] then
    return compat.unpack(results, 2, results.n)
  end
  local message = results[2]
  if native.is_initialized() and native.world_size() > 1 then
    local text = tostring(message)
    if not native.failure() then
      pcall(native.abort, text)
    end
    if type(message) == "string" and not text:find("^rank %d+") then
      message = ("rank %d: %s"):format(native.rank(), text)
    end
  end
  error(message, 0)
end

return M
