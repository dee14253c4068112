--- tricycle.checkpoint: resumable training state in one safetensors file.
--
--   checkpoint.save(path, {
--     model = model,            -- an object with :state_dict(), or a table name -> tensor
--     optimizer = optimizer,    -- an object with :state_dict(), or its result
--     scheduler = scheduler,    -- likewise (any table; tensors allowed anywhere in it)
--     step = 1200,
--     rng = {seed, offset},     -- default: the current tc.rng_state()
--     config = {...},           -- plain Lua values: numbers, strings, booleans, tables
--     tokenizer = text,         -- a string (any bytes), or nil
--     extra = {...},            -- anything else worth keeping (tensors allowed)
--   })
--   local state = checkpoint.load(path)     -- the same structure, tensors loaded
--   checkpoint.restore(state, {model = model, optimizer = optimizer, scheduler = scheduler})
--
-- The contract with models and optimisers: `model:state_dict()` returns a
-- flat table name -> tensor; `optimizer:state_dict()` returns
-- {tensors = {name -> tensor}, values = plain Lua table}; each has
-- `load_state_dict(sd)` taking what state_dict gave. Plain tables of the
-- same shape are accepted in their place. Any part may hold tensors at any
-- depth, and numbers, strings, booleans and nested tables around them.
--
-- Layout: tensors are named by where they sit, "model.<name>",
-- "optimizer.tensors.<name>", "optimizer.values.<path>", "scheduler.<path>",
-- "extra.<path>"; the tokenizer is the uint8 tensor "tokenizer". Everything
-- else is JSON in "__metadata__" under "tricycle.checkpoint", with each
-- tensor replaced by {"__tensor__": name}. A tensor that appears twice (tied
-- weights) is stored once and comes back as one tensor in both places. The
-- file is an ordinary safetensors file: other tools can read the weights.
--
-- Writing is atomic (a temporary file renamed over `path`), so a crash
-- while saving leaves the previous checkpoint intact.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local errors = require("tricycle.errors")

local M = {}

local FORMAT_KEY = "tricycle.checkpoint"
local VERSION = 1
local TENSOR_MARK = "__tensor__"
local ENTRIES_MARK = "__entries__"
local PARTS = { "model", "optimizer", "scheduler", "config", "extra" }

local Tensor = core.Tensor

local function is_tensor(value)
  return getmetatable(value) == Tensor
end

local function describe(path)
  return path == "" and "the top level" or path
end

--- True when t is a sequence 1..n with no other keys.
local function is_sequence(t)
  local count = 0
  for _ in pairs(t) do
    count = count + 1
  end
  for i = 1, count do
    if rawget(t, i) == nil then
      return false
    end
  end
  return true
end

--- Copies value into something JSON can hold, moving tensors into
-- `tensors` (name -> tensor) and leaving {__tensor__ = name} behind.
-- Tables whose keys are neither all strings nor 1..n are written as
-- {__entries__ = {{key, value}, ...}}.
local function pack(value, path, context, depth)
  local kind = type(value)
  if kind == "nil" or kind == "boolean" or kind == "string" then
    return value
  elseif kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      error(("checkpoint.save: %s is %s, which cannot be stored"):format(describe(path), tostring(value)), 0)
    end
    return value
  elseif is_tensor(value) then
    local name = context.names[value]
    if not name then
      name = path
      if context.tensors[name] ~= nil then
        error(("checkpoint.save: two tensors would be stored as '%s' (rename one of the keys)"):format(name), 0)
      end
      context.tensors[name] = value
      context.names[value] = name
    end
    return { [TENSOR_MARK] = name }
  elseif kind == "table" then
    if depth > 64 then
      error(("checkpoint.save: tables nest too deeply at %s (a cycle?)"):format(describe(path)), 0)
    end
    if context.visiting[value] then
      error(("checkpoint.save: %s refers back to a table that contains it (a cycle)"):format(describe(path)), 0)
    end
    context.visiting[value] = true
    local prefix = path == "" and "" or path .. "."
    local result = {}
    if rawget(value, TENSOR_MARK) ~= nil or rawget(value, ENTRIES_MARK) ~= nil then
      error(("checkpoint.save: %s uses a reserved key (%s or %s)"):format(describe(path), TENSOR_MARK, ENTRIES_MARK), 0)
    end
    local all_strings = true
    for key in pairs(value) do
      if type(key) ~= "string" then
        all_strings = false
        break
      end
    end
    if all_strings then
      local keys = {}
      for key in pairs(value) do
        keys[#keys + 1] = key
      end
      table.sort(keys) -- names of tensors, and so the file, do not depend on hash order
      for _, key in ipairs(keys) do
        result[key] = pack(value[key], prefix .. key, context, depth + 1)
      end
    elseif is_sequence(value) then
      for i = 1, #value do
        result[i] = pack(value[i], prefix .. i, context, depth + 1)
      end
    else
      local keys = {}
      for key in pairs(value) do
        local key_kind = type(key)
        if key_kind ~= "string" and key_kind ~= "number" and key_kind ~= "boolean" then
          error(("checkpoint.save: %s has a %s key, which cannot be stored"):format(describe(path), key_kind), 0)
        end
        keys[#keys + 1] = key
      end
      table.sort(keys, function(a, b)
        if type(a) ~= type(b) then
          return type(a) < type(b)
        end
        if type(a) == "boolean" then
          return (a and 1 or 0) < (b and 1 or 0)
        end
        return a < b
      end)
      local entries = {}
      for i, key in ipairs(keys) do
        entries[i] = { key, pack(value[key], prefix .. tostring(key), context, depth + 1) }
      end
      result[ENTRIES_MARK] = entries
    end
    context.visiting[value] = nil
    return result
  else
    error(("checkpoint.save: %s is a %s, which cannot be stored"):format(describe(path), kind), 0)
  end
end

--- The inverse of pack: swaps tensor references for the loaded tensors.
local function unpack_value(value, tensors, path, file)
  if type(value) ~= "table" then
    return value
  end
  local name = value[TENSOR_MARK]
  if name ~= nil then
    local t = tensors[name]
    if not is_tensor(t) then
      error(("checkpoint.load '%s': the state refers to tensor '%s', which the file lacks (corrupt checkpoint)")
        :format(file, tostring(name)), 0)
    end
    return t
  end
  local entries = value[ENTRIES_MARK]
  local result = {}
  if entries ~= nil then
    if type(entries) ~= "table" then
      error(("checkpoint.load '%s': malformed entries at %s"):format(file, describe(path)), 0)
    end
    for _, pair in ipairs(entries) do
      if type(pair) ~= "table" or pair[1] == nil then
        error(("checkpoint.load '%s': malformed entries at %s"):format(file, describe(path)), 0)
      end
      result[pair[1]] = unpack_value(pair[2], tensors, path .. "." .. tostring(pair[1]), file)
    end
    return result
  end
  for key, item in pairs(value) do
    result[key] = unpack_value(item, tensors, path == "" and tostring(key) or path .. "." .. tostring(key), file)
  end
  return result
end

--- What an object (with :state_dict()) or a plain table contributes.
local function state_of(part, value)
  if value == nil then
    return nil
  end
  local ok, state_dict = pcall(function()
    return value.state_dict
  end)
  if ok and type(state_dict) == "function" then
    value = state_dict(value)
  end
  if part == "model" then
    if type(value) ~= "table" then
      error(("checkpoint.save: model must be a module or a table name -> tensor, got %s"):format(type(value)), 0)
    end
    for name, t in pairs(value) do
      if not is_tensor(t) then
        error(("checkpoint.save: model entry '%s' is a %s, expected a tensor"):format(tostring(name), type(t)), 0)
      end
    end
  end
  return value
end

--- Writes state to path (see the top of this file). Returns nothing.
function M.save(path, state)
  if type(path) ~= "string" then
    error(("checkpoint.save: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  if type(state) ~= "table" then
    error(("checkpoint.save: argument 2 (state) must be a table, got %s"):format(type(state)), 2)
  end
  local known = { step = true, rng = true, tokenizer = true }
  for _, part in ipairs(PARTS) do
    known[part] = true
  end
  for key in pairs(state) do
    if not known[key] then
      error(("checkpoint.save: unknown field '%s' (model, optimizer, scheduler, step, rng, config, tokenizer, extra; "
        .. "put anything else in extra)"):format(tostring(key)), 2)
    end
  end
  if state.step ~= nil and not compat.is_integer(state.step) then
    error(("checkpoint.save: step must be an integer, got %s"):format(tostring(state.step)), 2)
  end
  local rng = state.rng
  if rng == nil then
    rng = { core.rng_state() }
  elseif type(rng) ~= "table" or not compat.is_integer(rng[1]) or not compat.is_integer(rng[2]) then
    error("checkpoint.save: rng must be {seed, offset} (two integers), as tc.rng_state() returns", 2)
  end
  local tokenizer = state.tokenizer
  if tokenizer ~= nil and type(tokenizer) ~= "string" then
    error(("checkpoint.save: tokenizer must be a string (its saved form) or nil, got %s"):format(type(tokenizer)), 2)
  end

  local context = { tensors = {}, names = {}, visiting = {} }
  local record = { version = VERSION, step = state.step, rng = { rng[1], rng[2] }, parts = {} }
  for _, part in ipairs(PARTS) do
    local value = state_of(part, state[part])
    if value ~= nil then
      record.parts[part] = pack(value, part, context, 0)
    end
  end
  if tokenizer ~= nil then
    context.tensors.tokenizer = core.from_bytes(tokenizer, "uint8", { #tokenizer })
    record.tokenizer = true
  end
  local metadata = { [FORMAT_KEY] = core.json_encode(record) }
  local ok, message = pcall(core.save, path, context.tensors, metadata)
  if not ok then
    error(("checkpoint.save: %s"):format(message), 2)
  end
end

--- Reads a checkpoint written by save: returns {model =, optimizer =,
-- scheduler =, step =, rng = {seed, offset}, config =, tokenizer =, extra =}
-- with tensors in place (on the CPU). A missing, truncated or corrupt file
-- raises an error naming the path.
function M.load(path)
  if type(path) ~= "string" then
    error(("checkpoint.load: argument 1 (path) must be a string, got %s"):format(type(path)), 2)
  end
  local ok, tensors, metadata = pcall(core.load, path)
  if not ok then
    error(("checkpoint.load: %s"):format(tensors), 2)
  end
  local text = metadata[FORMAT_KEY]
  if type(text) ~= "string" then
    error(("checkpoint.load '%s': a safetensors file but not a tricycle checkpoint (no '%s' metadata); "
      .. "tc.load reads plain tensor files"):format(path, FORMAT_KEY), 2)
  end
  local decoded, record = pcall(core.json_decode, text)
  if not decoded or type(record) ~= "table" or type(record.parts) ~= "table" then
    error(("checkpoint.load '%s': the checkpoint state is corrupt: %s"):format(path,
      decoded and "unexpected structure" or tostring(record)), 2)
  end
  if record.version ~= VERSION then
    error(("checkpoint.load '%s': checkpoint version %s is not supported (this library reads version %d)")
      :format(path, tostring(record.version), VERSION), 2)
  end
  local state = { step = record.step, rng = record.rng }
  local unpacked, failure = pcall(function()
    for _, part in ipairs(PARTS) do
      if record.parts[part] ~= nil then
        state[part] = unpack_value(record.parts[part], tensors, part, path)
      end
    end
  end)
  if not unpacked then
    error(failure, 2)
  end
  if record.tokenizer then
    local bytes = tensors.tokenizer
    if not is_tensor(bytes) then
      error(("checkpoint.load '%s': the tokenizer tensor is missing (corrupt checkpoint)"):format(path), 2)
    end
    state.tokenizer = bytes:tobytes()
  end
  return state
end

-- ": the checkpoint's has n_embd 16 (the model's 32), ...; tc.nn.GPT(state.config) builds it", or ""
-- when either config is missing or they agree.
local function config_differences(saved, own)
  if type(saved) ~= "table" or type(own) ~= "table" then
    return ""
  end
  local keys = {}
  for key, value in pairs(saved) do
    if type(key) == "string" and own[key] ~= nil and own[key] ~= value then
      keys[#keys + 1] = key
    end
  end
  if #keys == 0 then
    return ""
  end
  table.sort(keys)
  for i, key in ipairs(keys) do
    keys[i] = ("%s %s (the model's %s)"):format(key, tostring(saved[key]), tostring(own[key]))
  end
  return (": the checkpoint's has %s; tc.nn.GPT(state.config) builds it")
    :format(table.concat(keys, ", "))
end

--- Puts a loaded state back: targets.model/optimizer/scheduler receive
-- load_state_dict(state.<part>), and the RNG is restored from state.rng
-- (unless targets.rng == false), so a resumed run draws the numbers the
-- interrupted one would have. Returns state.step.
function M.restore(state, targets)
  if type(state) ~= "table" then
    error(("checkpoint.restore: argument 1 (state) must be a table, got %s"):format(type(state)), 2)
  end
  targets = targets or {}
  for _, part in ipairs({ "model", "optimizer", "scheduler" }) do
    local target = targets[part]
    if target ~= nil then
      if state[part] == nil then
        error(("checkpoint.restore: the checkpoint has no %s state"):format(part), 2)
      end
      if type(target.load_state_dict) ~= "function" then
        error(("checkpoint.restore: %s has no load_state_dict method"):format(part), 2)
      end
      local ok, failure = pcall(target.load_state_dict, target, state[part])
      if not ok then
        local message = errors.strip_location(failure)
        if type(message) == "string" and part == "model" then
          message = message .. config_differences(state.config, target.config)
        end
        errors.raise(message)
      end
    end
  end
  if targets.rng ~= false and type(state.rng) == "table" then
    core.set_rng_state(state.rng[1], state.rng[2])
  end
  return state.step
end

return M
