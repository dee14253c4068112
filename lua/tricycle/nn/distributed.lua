--- tricycle.nn.DistributedDataParallel: data-parallel training of a model
-- over the ranks of tc.distributed.
--
--   tc.distributed.init()
--   local ddp = tc.nn.DistributedDataParallel(model)  -- rank 0's parameters on every rank
--   local _, loss = ddp(x, {targets = y})              -- model(x, ...)
--   loss:backward()                                    -- gradients averaged over the ranks
--   ddp:clip_grad_norm(1.0); optimizer:step()
--
-- Gradients are grouped in buckets of about bucket_mb megabytes, taking the
-- parameters from the last to the first (the order a backward finishes
-- them in). A parameter's gradient hook marks it ready; when every gradient
-- of a bucket is, the bucket is copied into one flat buffer and its average
-- over the ranks starts while the backward goes on. Buckets start in their
-- order on every rank, so the ranks' collectives match. When the backward
-- ends, what is left starts (a parameter without a gradient counts as
-- zeros), the buckets are waited for, and each parameter's .grad becomes a
-- view of its bucket's averaged buffer.
--
-- ddp:no_sync(fn) (or `local guard <close> = ddp:no_sync()`) runs backwards
-- that only accumulate locally: gradient accumulation then communicates
-- once, in the last micro-batch's backward.
--
-- With a ZeRO-1 optimiser (tc.optim.AdamW{zero_stage = 1, ddp = ddp}) the
-- buckets are reduce-scattered instead: each rank gets the averaged
-- gradients of its own slice of the parameters only (.grad stays empty;
-- ddp:clip_grad_norm measures the slices together).
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local functional = require("tricycle.nn.functional")
local check_options = require("tricycle.options").check_options

local DDP = {}
DDP.__index = DDP
DDP.__name = "DistributedDataParallel"

local NAME = "DistributedDataParallel"
local ELEMENT_BYTES = { float32 = 4, float64 = 8 }

local no_grad = Module.no_grad

local function dist()
  return require("tricycle.distributed")
end

local function check_self(self, method)
  if getmetatable(self) ~= DDP then
    error(("%s:%s: call it as ddp:%s(...), got a %s"):format(NAME, method, method, type(self)), 3)
  end
end

-- Buckets from the last parameter to the first, each of one dtype and
-- device, closed when the next parameter would take it past cap bytes (a
-- parameter larger than cap has a bucket of its own).
local function make_buckets(params, cap)
  local buckets, current, start = {}, nil, 0
  for i = #params, 1, -1 do
    local p = params[i]
    local numel, bytes = p:numel(), p:numel() * ELEMENT_BYTES[p.dtype]
    if not current or current.dtype ~= p.dtype or current.device ~= p.device
      or (current.bytes > 0 and current.bytes + bytes > cap) then
      current = { params = {}, offsets = {}, numel = 0, bytes = 0, dtype = p.dtype, device = p.device, start = start }
      buckets[#buckets + 1] = current
    end
    local slot = #current.params + 1
    current.params[slot], current.offsets[slot] = p, current.numel
    current.numel, current.bytes = current.numel + numel, current.bytes + bytes
    start = start + numel
  end
  return buckets, start
end

local function flat(t)
  return t:detach():reshape({ -1 })
end

--- DistributedDataParallel(model, {bucket_mb = 25, overlap = true, broadcast = true}).
-- overlap = false starts every bucket only when the backward has ended (to
-- measure what overlapping saves); broadcast = false keeps each rank's own
-- parameters (when they are known to be equal).
function DDP.new(model, options)
  if not Module.is_module(model) then
    error(("%s: argument 1 must be a module, got %s"):format(NAME, type(model)), 2)
  end
  if options ~= nil and type(options) ~= "table" then
    error(("%s: options must be a table, got %s"):format(NAME, type(options)), 2)
  end
  options = check_options(NAME, options or {}, { "bucket_mb", "overlap", "broadcast" }, 2)
  local bucket_mb = options.bucket_mb or 25
  if type(bucket_mb) ~= "number" or bucket_mb ~= bucket_mb or bucket_mb <= 0 or bucket_mb == math.huge then
    error(("%s: option bucket_mb must be a number of megabytes > 0, got %s"):format(NAME, tostring(options.bucket_mb)),
      2)
  end
  for _, key in ipairs({ "overlap", "broadcast" }) do
    if options[key] ~= nil and type(options[key]) ~= "boolean" then
      error(("%s: option %s must be a boolean, got %s"):format(NAME, key, tostring(options[key])), 2)
    end
  end
  if not dist().is_initialized() then
    error(("%s: call tc.distributed.init() first (without a launcher it gives a world of one)"):format(NAME), 2)
  end
  local params = model:parameters()
  if #params == 0 then
    error(("%s: the model has no parameters"):format(NAME), 2)
  end
  local self = setmetatable({
    module = model, params = params, overlap = options.overlap ~= false, syncing = true,
    last_wait_seconds = 0, synced_backwards = 0,
  }, DDP)
  self.buckets, self.numel = make_buckets(params, bucket_mb * 1024 * 1024)
  if options.broadcast ~= false then
    self:broadcast_parameters()
  end
  -- The hooks reach this object through a weak reference, so that a
  -- dropped wrapper (and its model) can be collected.
  local owner = setmetatable({ ddp = self }, { __mode = "v" })
  for b, bucket in ipairs(self.buckets) do
    for slot, p in ipairs(bucket.params) do
      p:on_grad_ready(function()
        local ddp = owner.ddp
        if ddp then
          ddp:grad_ready(b, slot)
        end
      end)
    end
  end
  return self
end

setmetatable(DDP, {
  __call = function(_, model, options)
    return DDP.new(model, options)
  end,
})

--- model(...): the wrapped model's forward.
function DDP:__call(...)
  return self.module(...)
end

function DDP:__tostring()
  return ("DistributedDataParallel(%d parameters in %d buckets, rank %d of %d%s)"):format(self.numel, #self.buckets,
    dist().rank(), dist().world_size(), self.zero and ", ZeRO-1" or "")
end

function DDP:parameters() return self.module:parameters() end
function DDP:named_parameters() return self.module:named_parameters() end
function DDP:state_dict() return self.module:state_dict() end
function DDP:train(mode) self.module:train(mode); return self end
function DDP:eval() self.module:eval(); return self end

--- Every rank takes rank 0's parameters and buffers.
function DDP:broadcast_parameters()
  check_self(self, "broadcast_parameters")
  local d = dist()
  if d.world_size() == 1 then
    return
  end
  no_grad(function()
    for _, bucket in ipairs(self.buckets) do
      local buffer = self:bucket_buffer(bucket)
      for slot, p in ipairs(bucket.params) do
        buffer:narrow(1, bucket.offsets[slot] + 1, p:numel()):copy_(flat(p))
      end
      d.broadcast(buffer, { root = 0 })
      for slot, p in ipairs(bucket.params) do
        flat(p):copy_(buffer:narrow(1, bucket.offsets[slot] + 1, p:numel()))
      end
    end
    for _, pair in ipairs(self.module:named_buffers()) do
      d.broadcast(pair[2], { root = 0 })
    end
  end)
end

function DDP:bucket_buffer(bucket)
  if not bucket.buffer then
    local buffer = core.zeros({ bucket.numel }, { dtype = bucket.dtype })
    bucket.buffer = bucket.device ~= "cpu" and buffer:to(bucket.device) or buffer
  end
  return bucket.buffer
end

-- The first hook of a backward sets up its bookkeeping and asks to be
-- called when it ends.
function DDP:begin_backward(serial)
  self.serial = serial
  self.next_launch = 1
  for _, bucket in ipairs(self.buckets) do
    bucket.pending, bucket.ready, bucket.handle = #bucket.params, {}, nil
  end
  local owner = setmetatable({ ddp = self }, { __mode = "v" })
  core.on_backward_end(function()
    local ddp = owner.ddp
    if ddp and ddp.serial == serial then
      ddp:end_backward()
    end
  end)
end

--- Called by parameter hooks: bucket b's parameter `slot` has its gradient.
function DDP:grad_ready(b, slot)
  if not self.syncing then
    return
  end
  local serial = core.backward_serial()
  if serial ~= self.serial then
    self:begin_backward(serial)
  end
  local bucket = self.buckets[b]
  if bucket.ready[slot] then
    return
  end
  bucket.ready[slot] = true
  bucket.pending = bucket.pending - 1
  if self.overlap then
    while self.next_launch <= #self.buckets and self.buckets[self.next_launch].pending == 0 do
      self:launch(self.next_launch)
    end
    self:poll()
  end
end

-- Copies bucket b's gradients (zeros for a parameter without one) into its
-- buffer and starts their average (or, for ZeRO-1, its reduce-scatter).
function DDP:launch(b)
  local bucket = self.buckets[b]
  local buffer = self:bucket_buffer(bucket)
  for _, p in ipairs(bucket.params) do
    if p.dtype ~= bucket.dtype or p.device ~= bucket.device then
      error(("%s: a parameter became %s on %s after the model was wrapped (%s on %s then); move or cast the "
        .. "model before wrapping it"):format(NAME, p.dtype, p.device, bucket.dtype, bucket.device), 0)
    end
  end
  no_grad(function()
    for slot, p in ipairs(bucket.params) do
      local segment = buffer:narrow(1, bucket.offsets[slot] + 1, p:numel())
      local grad = p.grad
      if grad ~= nil then
        segment:copy_(grad:reshape({ -1 }))
      else
        segment:fill_(0)
      end
    end
  end)
  local d = dist()
  if self.zero then
    local _, handle = d.reduce_scatter(buffer, { op = "avg", counts = bucket.shard_counts, out = bucket.shard_grad,
      async = true })
    bucket.handle = handle
  else
    bucket.handle = d.all_reduce(buffer, { op = "avg", async = true })
  end
  self.next_launch = b + 1
end

-- Moves the running collectives along (MPI progresses only inside its calls).
function DDP:poll()
  local newest = self.buckets[self.next_launch - 1]
  if newest and newest.handle then
    newest.handle:is_done() -- one test moves every running collective of the context
  end
end

--- The end of a synchronised backward: starts what is left, waits, and
-- gives each parameter its averaged gradient.
function DDP:end_backward()
  while self.next_launch <= #self.buckets do
    self:launch(self.next_launch)
  end
  local started = core.wall_time()
  for _, bucket in ipairs(self.buckets) do
    bucket.handle:wait()
    bucket.handle = nil
  end
  self.last_wait_seconds = core.wall_time() - started
  self.serial = nil
  self.synced_backwards = self.synced_backwards + 1
  for _, bucket in ipairs(self.buckets) do
    for slot, p in ipairs(bucket.params) do
      if self.zero then
        p.grad = nil -- this rank has the average of its slice only (bucket.shard_grad)
      else
        p.grad = bucket.buffer:narrow(1, bucket.offsets[slot] + 1, p:numel()):view(p.shape)
      end
    end
  end
end

local guard_metatable = {
  __close = function(guard)
    if not guard.closed then
      guard.closed = true
      guard.ddp.syncing = guard.previous
    end
  end,
  __name = "tricycle.NoSyncGuard",
}
guard_metatable.__index = { close = guard_metatable.__close }

--- Backwards that accumulate gradients locally without communicating:
-- ddp:no_sync(fn, ...) runs fn and returns its results; ddp:no_sync()
-- returns a guard for `local guard <close> = ddp:no_sync()`. The next
-- backward outside it averages what was accumulated.
function DDP:no_sync(fn, ...)
  check_self(self, "no_sync")
  if fn ~= nil and type(fn) ~= "function" then
    error(("%s:no_sync: expects a function or nothing, got %s"):format(NAME, type(fn)), 2)
  end
  local previous = self.syncing
  self.syncing = false
  if fn == nil then
    return setmetatable({ closed = false, previous = previous, ddp = self }, guard_metatable)
  end
  local results = compat.pack(pcall(fn, ...))
  self.syncing = previous
  if not results[1] then
    error(results[2], 0)
  end
  return compat.unpack(results, 2, results.n)
end

--- Scales the averaged gradients so that their global norm is at most
-- max_norm (math.huge only measures) and returns the norm before: the same
-- number on every rank. With ZeRO-1 the slices' squares are summed over the
-- ranks.
function DDP:clip_grad_norm(max_norm)
  check_self(self, "clip_grad_norm")
  if not self.zero then
    return functional.clip_grad_norm(self.params, max_norm)
  end
  if type(max_norm) ~= "number" or max_norm ~= max_norm or max_norm <= 0 then
    error(("%s:clip_grad_norm: max_norm must be a number > 0, got %s"):format(NAME, tostring(max_norm)), 2)
  end
  local zero = self.zero
  local local_norm = zero.shard_numel > 0 and core.global_norm({ zero.shard_grad }) or 0
  local squares = core.tensor({ local_norm * local_norm }, { dtype = "float64" })
  dist().all_reduce(squares, { op = "sum" })
  local total = math.sqrt(squares:item())
  if total > max_norm and total ~= math.huge and zero.shard_numel > 0 then
    core.scale_(zero.shard_grad, max_norm / (total + 1e-6))
  end
  return total
end

-- ---------------------------------------------------------------- ZeRO-1

--- Switches the buckets to reduce-scatters for a ZeRO-1 optimiser and
-- returns the layout it updates in: the parameters, one flat vector in
-- bucket order, split into world_size contiguous slices (rank r's is
-- shard_counts[r + 1] elements from shard_starts[r + 1]); pieces lists,
-- for this rank's slice, each parameter part {param, offset (in the
-- parameter), length, shard_offset}.
function DDP:enable_zero()
  check_self(self, "enable_zero")
  if self.zero then
    return self.zero
  end
  local d = dist()
  local world, rank = d.world_size(), d.rank()
  local first = self.buckets[1]
  for _, bucket in ipairs(self.buckets) do
    if bucket.dtype ~= first.dtype or bucket.device ~= first.device then
      error(("%s: ZeRO-1 needs every parameter of one dtype and device, got %s on %s and %s on %s"):format(NAME,
        first.dtype, first.device, bucket.dtype, bucket.device), 3)
    end
  end
  local counts, starts, start = {}, {}, 0
  for r = 1, world do
    counts[r] = compat.idiv(self.numel, world) + ((r - 1) < self.numel % world and 1 or 0)
    starts[r] = start
    start = start + counts[r]
  end
  local own_start, own_numel = starts[rank + 1], counts[rank + 1]
  local shard_grad = core.zeros({ own_numel }, { dtype = first.dtype })
  if first.device ~= "cpu" then
    shard_grad = shard_grad:to(first.device)
  end
  local pieces = {}
  for _, bucket in ipairs(self.buckets) do
    local bucket_counts = {}
    for r = 1, world do
      local low = math.max(bucket.start, starts[r])
      local high = math.min(bucket.start + bucket.numel, starts[r] + counts[r])
      bucket_counts[r] = math.max(0, high - low)
    end
    bucket.shard_counts = bucket_counts
    local low = math.max(bucket.start, own_start)
    bucket.shard_offset = low - own_start -- where this bucket's part of the slice starts in it
    bucket.shard_grad = shard_grad:narrow(1, math.min(bucket.shard_offset, own_numel) + 1, bucket_counts[rank + 1])
    for slot, p in ipairs(bucket.params) do
      local p_start = bucket.start + bucket.offsets[slot]
      local piece_low = math.max(p_start, own_start)
      local piece_high = math.min(p_start + p:numel(), own_start + own_numel)
      if piece_high > piece_low then
        pieces[#pieces + 1] = { param = p, offset = piece_low - p_start, length = piece_high - piece_low,
          shard_offset = piece_low - own_start, bucket = bucket }
      end
    end
  end
  self.zero = {
    shard_counts = counts, shard_starts = starts, shard_numel = own_numel, shard_start = own_start,
    shard_grad = shard_grad, pieces = pieces, numel = self.numel,
  }
  -- where each parameter starts in the flat vector
  local flat_start = {}
  for _, bucket in ipairs(self.buckets) do
    for slot, p in ipairs(bucket.params) do
      flat_start[p] = bucket.start + bucket.offsets[slot]
    end
  end
  self.zero.flat_start = flat_start
  return self.zero
end

--- ZeRO-1, after each rank updated its slice: every rank gets every slice
-- (one all-gather per bucket), so the parameters are equal everywhere.
function DDP:gather_parameters()
  check_self(self, "gather_parameters")
  local zero = self.zero
  local d = dist()
  no_grad(function()
    -- this rank's updated slice, bucket by bucket, into the (now spent) gradient slices
    for _, piece in ipairs(zero.pieces) do
      zero.shard_grad:narrow(1, piece.shard_offset + 1, piece.length)
        :copy_(flat(piece.param):narrow(1, piece.offset + 1, piece.length))
    end
    local handles = {}
    for b, bucket in ipairs(self.buckets) do
      local _, handle = d.all_gather(bucket.shard_grad, { counts = bucket.shard_counts,
        out = self:bucket_buffer(bucket), async = true })
      handles[b] = handle
    end
    for b, bucket in ipairs(self.buckets) do
      handles[b]:wait()
      for slot, p in ipairs(bucket.params) do
        flat(p):copy_(bucket.buffer:narrow(1, bucket.offsets[slot] + 1, p:numel()))
      end
    end
  end)
end

return DDP
