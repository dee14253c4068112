--- tricycle.training: pieces of a pretraining loop (scripts/train_gpt2.lua
-- is built from them): gradient accumulation, GPT-2's shapes and the FLOPs
-- of a step, a matmul rate to measure utilisation against, and numbered
-- checkpoints of which the last few are kept.
--
--   local loss = training.accumulate_gradients(model, function() return data:batch() end, 4)
--   -- the gradients of one batch four times as large are now in .grad
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local check_options = require("tricycle.options").check_options

local M = {}

--- GPT-2's sizes by name (vocabulary 50257, context 1024).
M.gpt2_shapes = {
  ["124M"] = { n_layer = 12, n_head = 12, n_embd = 768 },
  ["350M"] = { n_layer = 24, n_head = 16, n_embd = 1024 },
  ["774M"] = { n_layer = 36, n_head = 20, n_embd = 1280 },
  ["1.5B"] = { n_layer = 48, n_head = 25, n_embd = 1600 },
}

--- Runs micro_steps forward and backward passes of model, each on the
-- batch next_batch(i) returns (x, y), with each loss scaled by
-- 1 / micro_steps: the gradients summed into .grad are then those of the
-- mean loss over all the micro-batches, as one batch of all their rows
-- would give (for micro-batches of equal size). Call zero_grad before.
-- model(x, {targets = y}) must return the logits and the mean loss, as
-- nn.GPT does. Returns the mean loss (a number). A model with no_sync (a
-- tc.nn.DistributedDataParallel wrapper) runs every backward but the last
-- in it, so the ranks average the gradients once per call.
function M.accumulate_gradients(model, next_batch, micro_steps)
  if type(next_batch) ~= "function" then
    error(("accumulate_gradients: next_batch must be a function returning x, y, got %s"):format(type(next_batch)), 2)
  end
  if not compat.is_integer(micro_steps) or micro_steps < 1 then
    error(("accumulate_gradients: micro_steps must be a positive integer, got %s"):format(tostring(micro_steps)), 2)
  end
  local scale = 1 / micro_steps
  local losses = {}
  local function micro_step(i)
    local x, y = next_batch(i)
    local _, loss = model(x, { targets = y })
    if loss == nil then
      error("accumulate_gradients: model(x, {targets = y}) returned no loss", 3)
    end
    ;(loss * scale):backward()
    losses[i] = loss:detach()
  end
  local deferred = type(model) == "table" and type(model.no_sync) == "function"
  for i = 1, micro_steps do
    if deferred and i < micro_steps then
      model:no_sync(micro_step, i)
    else
      micro_step(i)
    end
  end
  -- read the losses only now, so a device is not made to wait between micro-batches
  local total = 0
  for i = 1, micro_steps do
    total = total + losses[i]:item()
  end
  return total / micro_steps
end

--- Model FLOPs per token of a training step of a GPT (forward and
-- backward): 6 (P - T C) + 12 L T C for P parameters, context T, width C,
-- L layers (the PaLM / nanoGPT count; the position embedding does no
-- matmul, attention is counted as if not causal).
function M.gpt_flops_per_token(config, parameters)
  local T, C, L = config.context_length, config.n_embd, config.n_layer
  return 6 * (parameters - T * C) + 12 * L * T * C
end

--- A float32 matmul rate (FLOP/s) of this machine, to measure utilisation
-- against: the best of a few [m, k] x [k, n] products on device (default
-- the shape of GPT-2 124M's MLP on 1024 tokens). Uses no random numbers.
function M.matmul_flops(options)
  options = check_options("matmul_flops", options or {}, { "device", "m", "k", "n", "repeats" })
  local m, k, n = options.m or 1024, options.k or 768, options.n or 3072
  local a, b = core.full({ m, k }, 0.01), core.full({ k, n }, 0.01)
  if options.device and options.device ~= "cpu" then
    a, b = a:to(options.device), b:to(options.device)
  end
  a:matmul(b):sum():item() -- warm-up (and, on a device, its first kernels)
  local best = math.huge
  for _ = 1, options.repeats or 3 do
    local started = core.wall_time()
    a:matmul(b):sum():item()
    best = math.min(best, core.wall_time() - started)
  end
  return 2 * m * n * k / math.max(best, 1e-9)
end

-- ---------------------------------------------------------------- several ranks

--- For data-parallel scripts, once per step: the mean of `value` over the
-- ranks of tc.distributed and whether any rank asked to stop, in one
-- all-reduce, so that every rank logs the same loss and stops at the same
-- step. A world of one returns them as they are.
function M.agree_step(value, stop)
  local distributed = require("tricycle.distributed")
  if type(value) ~= "number" then
    error(("agree_step: value must be a number, got %s"):format(type(value)), 2)
  end
  if not distributed.is_initialized() or distributed.world_size() == 1 then
    return value, stop and true or false
  end
  local t = core.tensor({ value, stop and 1 or 0 }, { dtype = "float64" })
  distributed.all_reduce(t)
  local totals = t:totable()
  return totals[1] / distributed.world_size(), totals[2] > 0
end

--- A stand-in for cli.Progress on ranks other than 0, which print nothing.
M.silent_progress = setmetatable({}, { __index = function()
  return function() end
end })

-- ---------------------------------------------------------------- checkpoints

--- DIR/checkpoint_00001200.safetensors for step 1200.
function M.checkpoint_path(dir, step)
  return ("%s/checkpoint_%08d.safetensors"):format(dir, step)
end

--- The numbered checkpoints in dir, oldest first: {{path =, step =}, ...}.
function M.list_checkpoints(dir)
  local ok, entries = pcall(core.shards.list_dir, dir)
  if not ok then
    return {}
  end
  local found = {}
  for _, entry in ipairs(entries) do
    local step = entry.kind == "file" and entry.name:match("^checkpoint_(%d+)%.safetensors$")
    if step then
      found[#found + 1] = { path = dir .. "/" .. entry.name, step = compat.tointeger(tonumber(step)) }
    end
  end
  table.sort(found, function(a, b) return a.step < b.step end)
  return found
end

--- Removes all but the newest `keep` numbered checkpoints of dir.
function M.prune_checkpoints(dir, keep)
  if not compat.is_integer(keep) or keep < 1 then
    error(("prune_checkpoints: keep must be a positive integer, got %s"):format(tostring(keep)), 2)
  end
  local found = M.list_checkpoints(dir)
  for i = 1, #found - keep do
    os.remove(found[i].path)
  end
end

return M
