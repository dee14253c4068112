--- tricycle.optim.zero: ZeRO-1 for AdamW, as llm.c does it. The moments
-- are sharded over the ranks: the parameters, taken as one flat vector in
-- the DistributedDataParallel wrapper's bucket order, are cut into
-- world_size contiguous slices, and rank r keeps exp_avg and exp_avg_sq for
-- slice r only. A step: the backward reduce-scatters the gradients (each
-- rank gets the average of its slice), each rank updates its slice, and the
-- slices are all-gathered so that every rank has every parameter.
--
-- The optimiser's state_dict still holds the whole state (each moment
-- all-gathered: every rank must call it), in the layout of an optimiser
-- without ZeRO, and load_state_dict takes such a state and keeps this
-- rank's slice: checkpoints move freely between the two and between world
-- sizes.
local core = require("tricycle.core")
local Optimizer = require("tricycle.optim.optimizer")

local Zero = {}
Zero.__index = Zero

local function flat(t)
  return t:detach():reshape({ -1 })
end

local function zeros(length, like)
  local t = core.zeros({ length }, { dtype = like.dtype })
  if like.device ~= "cpu" then
    t = t:to(like.device)
  end
  return t
end

--- The sharding of `optimizer` (an AdamW) over ddp's layout; the
-- optimiser's parameters must be the model's.
function Zero.new(optimizer, ddp, name)
  if getmetatable(ddp) ~= require("tricycle.nn.distributed") then
    error(("%s: zero_stage = 1 needs the model's DistributedDataParallel wrapper as option ddp, got %s"):format(name,
      ddp == nil and "none" or type(ddp)), 4)
  end
  local group_of, count = {}, 0
  for g, group in ipairs(optimizer.param_groups) do
    for _, p in ipairs(group.params) do
      group_of[p] = g
      count = count + 1
    end
  end
  for i, p in ipairs(ddp.params) do
    if not group_of[p] then
      error(("%s: zero_stage = 1: parameter %d of the wrapped model is not among the optimiser's parameters (ZeRO-1 "
        .. "updates every parameter of the model)"):format(name, i), 4)
    end
  end
  if count ~= #ddp.params then
    error(("%s: zero_stage = 1: the optimiser has %d parameters, the wrapped model %d; they must be the same")
      :format(name, count, #ddp.params), 4)
  end
  local self = setmetatable({ ddp = ddp, layout = ddp:enable_zero(), group_of = group_of, name = name,
    synced = ddp.synced_backwards }, Zero)
  return self
end

--- One update of this rank's slice, then the all-gather of the parameters.
function Zero:step(optimizer)
  local ddp, layout, name = self.ddp, self.layout, self.name
  if ddp.synced_backwards == self.synced then
    error(("%s.step: ZeRO-1: no backward has averaged the gradients since the last step (every step needs a "
      .. "backward outside ddp:no_sync)"):format(name), 3)
  end
  self.synced = ddp.synced_backwards
  for g, group in ipairs(optimizer.param_groups) do
    local ok, message = pcall(optimizer.check_group, group, #optimizer.param_groups > 1 and ("group %d: "):format(g)
      or "")
    if not ok then
      error(tostring(message):gsub("^[^:]*:%d+: ", ""):gsub("^(%w+): ", "%1.step: ", 1), 3)
    end
  end
  local state = optimizer.state
  Optimizer.no_grad_call(function()
    for _, group in ipairs(optimizer.param_groups) do
      for _, p in ipairs(group.params) do
        local entry = state[p]
        if not entry then
          entry = { step = 0 }
          state[p] = entry
        end
        entry.step = entry.step + 1 -- every rank counts every parameter's steps
      end
    end
    local lists = {}
    for _, piece in ipairs(layout.pieces) do
      local p = piece.param
      local entry = state[p]
      if not entry.exp_avg then
        entry.exp_avg, entry.exp_avg_sq = zeros(piece.length, p), zeros(piece.length, p)
      end
      local g = self.group_of[p]
      local list = lists[g]
      if not list then
        list = { params = {}, grads = {}, ms = {}, vs = {}, steps = {} }
        lists[g] = list
      end
      local n = #list.params + 1
      list.params[n] = flat(p):narrow(1, piece.offset + 1, piece.length)
      list.grads[n] = layout.shard_grad:narrow(1, piece.shard_offset + 1, piece.length)
      list.ms[n], list.vs[n], list.steps[n] = entry.exp_avg, entry.exp_avg_sq, entry.step
    end
    for g, list in pairs(lists) do
      local group = optimizer.param_groups[g]
      core.adamw_steps(list.params, list.grads, list.ms, list.vs, list.steps, {
        lr = group.lr, beta1 = group.betas[1], beta2 = group.betas[2], eps = group.eps,
        weight_decay = group.weight_decay,
      })
    end
  end)
  ddp:gather_parameters()
end

--- The whole state (every rank must call it together): each moment's
-- slices all-gathered and cut back into per-parameter tensors.
function Zero:state_dict(optimizer)
  local ddp, layout = self.ddp, self.layout
  local d = require("tricycle.distributed")
  local has_moments = false
  for _, piece in ipairs(layout.pieces) do
    if optimizer.state[piece.param] and optimizer.state[piece.param].exp_avg then
      has_moments = true
    end
  end
  -- whether moments exist is the same on every rank (they are made at the first step)
  local any = false
  for _, p in ipairs(ddp.params) do
    if optimizer.state[p] and optimizer.state[p].step > 0 then
      any = true
    end
  end
  local gathered = {}
  if any then
    for _, moment in ipairs(optimizer.state_tensors) do
      local slice = zeros(layout.shard_numel, layout.shard_grad)
      if has_moments then
        for _, piece in ipairs(layout.pieces) do
          slice:narrow(1, piece.shard_offset + 1, piece.length):copy_(optimizer.state[piece.param][moment])
        end
      end
      gathered[moment] = d.all_gather(slice, { counts = layout.shard_counts })
    end
  end
  -- the same structure as Optimizer.state_dict, with whole tensors
  local full = {}
  for _, p in ipairs(ddp.params) do
    local entry = optimizer.state[p]
    if entry then
      local whole = { step = entry.step }
      for moment, vector in pairs(gathered) do
        whole[moment] = vector:narrow(1, layout.flat_start[p] + 1, p:numel()):view(p.shape)
      end
      full[p] = whole
    end
  end
  local saved = optimizer.state
  optimizer.state = full
  local ok, result = pcall(Optimizer.state_dict, optimizer)
  optimizer.state = saved
  if not ok then
    error(result, 0)
  end
  return result
end

--- Takes a whole state (from state_dict, with or without ZeRO) and keeps
-- this rank's slice of each moment.
function Zero:load_state_dict(optimizer, sd)
  local ok, message = pcall(Optimizer.load_state_dict, optimizer, sd)
  if not ok then
    error(message, 0)
  end
  local sliced = {}
  for p, entry in pairs(optimizer.state) do
    sliced[p] = { step = entry.step }
  end
  Optimizer.no_grad_call(function()
    for _, piece in ipairs(self.layout.pieces) do
      local entry = optimizer.state[piece.param]
      if entry then
        for _, moment in ipairs(optimizer.state_tensors) do
          if entry[moment] then
            sliced[piece.param][moment] = flat(entry[moment]):narrow(1, piece.offset + 1, piece.length):clone()
          end
        end
      end
    end
  end)
  optimizer.state = sliced
end

--- Elements of moments this rank holds (for measuring the saving).
function Zero:state_numel(optimizer)
  local total = 0
  for _, entry in pairs(optimizer.state) do
    for _, moment in ipairs(optimizer.state_tensors) do
      if entry[moment] then
        total = total + entry[moment]:numel()
      end
    end
  end
  return total
end

return Zero
