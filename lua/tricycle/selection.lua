--- tricycle.selection: sorting, selecting and indexing over the engine's
-- ops, so each runs on every device the ops run on and differentiates
-- through them:
--   t:sort, t:topk (the engine's ops, their options read here; the values
--   are a gather, whose backward scatters the gradient back), t:argsort
--   (sort's indices);
--   t:masked_select (index_select of the positions a bool mask picks);
--   t:scatter (scatter_add into zeros, then where), t:index_add with alpha;
--   Torch7's indexing: t[{{2, 4}, 1}] (narrow and select views) and t[mask],
--   and their assignments, in place through copy_ and fill_.
-- Indices are 0-based int64, as gather's and argmax's; dims are 1-based.
-- composed.lua merges `ops`, `functions` and `methods` into its own, and
-- `install(Tensor)` hooks the tensor metatable's indexing by tables and masks.
local arguments = require("tricycle.arguments")
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local Tensor = core.Tensor
local M = { functions = {}, methods = {} }
local functions, methods = M.functions, M.methods
local engine_index_add = Tensor.methods.index_add

M.ops = {
  { name = "argsort", arity = 1, integers = true, summary = "the 0-based int64 indices that sort a dim (sort)" },
  { name = "masked_select", arity = 2, differentiable = true, integers = true,
    summary = "a 1-D copy of the elements where a bool mask is true (index_select); t[mask]" },
  { name = "scatter", arity = 3, differentiable = true, float_only = true,
    summary = "a copy of x with src written at an index tensor's positions along a dim (scatter_add, where)" },
}

local fail, describe, check_tensor = arguments.fail, arguments.describe, arguments.check_tensor
local shape_string = arguments.shape_string

local function is_tensor(value)
  return getmetatable(value) == Tensor
end

local function on_device_of(t, made)
  return t.device ~= "cpu" and made:to(t.device) or made
end

--- A 1-based dim of t (negative from the end; default -1); a 0-dim tensor has dim 1 (or -1).
local function dim_of(name, t, dim)
  if dim == nil then
    dim = -1
  end
  local n = math.max(t:dim(), 1)
  if not compat.is_integer(dim) or dim == 0 or dim > n or dim < -n then
    fail("%s: dim %s is out of range for a tensor of shape %s (1 to %d, or -%d to -1)", name, describe(dim),
      shape_string(t.shape), n, n)
  end
  return dim < 0 and n + dim + 1 or dim
end

local function boolean_option(name, options, key, default)
  local value = options[key]
  if value == nil then
    return default
  end
  if type(value) ~= "boolean" then
    fail("%s: option %s must be a boolean, got %s", name, key, describe(value))
  end
  return value
end

local function options_table(name, options, valid)
  if options == nil then
    return {}
  end
  if type(options) ~= "table" then
    fail("%s: options must be a table {%s}, got %s", name, table.concat(valid, " =, ") .. " =", type(options))
  end
  local ok, message = pcall(check_options, name, options, valid)
  if not ok then
    errors.raise(errors.strip_location(message))
  end
  return options
end

-- ---------------------------------------------------------------- sort

local engine_sort, engine_topk = Tensor.methods.sort, Tensor.methods.topk

local function sort_options(name, options)
  options = options_table(name, options, { "descending", "stable" })
  boolean_option(name, options, "stable", false)
  return boolean_option(name, options, "descending", false)
end

--- Values and 0-based int64 indices of t sorted along dim (default -1; options {descending =, stable =}). The
-- order is always stable (equal values keep their order); NaN sorts as the largest value. The values are a gather
-- of t, so their gradient is scattered back through the indices.
function methods.sort(t, dim, options)
  check_tensor("sort", "self", t)
  if type(dim) == "table" and options == nil then
    dim, options = nil, dim
  end
  local descending = sort_options("sort", options)
  return errors.call(engine_sort, t, dim_of("sort", t, dim), descending)
end

--- The 0-based int64 indices that sort t along dim (as sort's).
function methods.argsort(t, dim, options)
  check_tensor("argsort", "self", t)
  if type(dim) == "table" and options == nil then
    dim, options = nil, dim
  end
  local descending = sort_options("argsort", options)
  local _, indices = errors.call(engine_sort, t, dim_of("argsort", t, dim), descending)
  return indices
end

--- The k largest values along dim (default -1; options {largest = true, sorted = true}) and their 0-based int64
-- indices, in order (largest first, or smallest first with largest = false; equal values by position).
function methods.topk(t, k, dim, options)
  check_tensor("topk", "self", t)
  if type(dim) == "table" and options == nil then
    dim, options = nil, dim
  end
  options = options_table("topk", options, { "largest", "sorted" })
  local largest = boolean_option("topk", options, "largest", true)
  boolean_option("topk", options, "sorted", true)
  dim = dim_of("topk", t, dim)
  local size = t:dim() == 0 and 1 or t:size(dim)
  if not compat.is_integer(k) or k < 0 or k > size then
    fail("topk: k %s is out of range for dim %d of size %d (shape %s; 0 to %d)", describe(k), dim, size,
      shape_string(t.shape), size)
  end
  return errors.call(engine_topk, t, k, dim, largest)
end

functions.sort = methods.sort
functions.argsort = methods.argsort
functions.topk = methods.topk

-- ---------------------------------------------------------------- masks

--- The shape a and b broadcast to, or nil.
local function broadcast_shape(a, b)
  local shape, na, nb = {}, #a, #b
  local n = math.max(na, nb)
  for i = 1, n do
    local x, y = a[na - n + i] or 1, b[nb - n + i] or 1
    if x ~= y and x ~= 1 and y ~= 1 then
      return nil
    end
    shape[i] = x == 1 and y or x
  end
  return shape
end

local function check_mask(name, mask)
  if not is_tensor(mask) then
    fail("%s: mask must be a bool tensor, got %s", name, type(mask))
  end
  if mask.dtype ~= "bool" then
    fail("%s: mask must be a bool tensor, got %s of shape %s", name, mask.dtype, shape_string(mask.shape))
  end
end

--- The 0-based flat positions where mask (any device) is true, as a Lua list.
local function true_positions(mask)
  local flags = mask:to("cpu"):reshape({ mask:numel() }):to("uint8"):totable()
  local positions = {}
  for i, flag in ipairs(flags) do
    if flag ~= 0 then
      positions[#positions + 1] = i - 1
    end
  end
  return positions
end

local function int64_list(t, list)
  if #list == 0 then
    return on_device_of(t, core.empty({ 0 }, { dtype = "int64" }))
  end
  return on_device_of(t, core.tensor(list, { dtype = "int64" }))
end

--- The elements of t where mask is true, in row-major order, as a 1-D copy; t and mask broadcast together.
function methods.masked_select(t, mask)
  check_tensor("masked_select", "self", t)
  check_mask("masked_select", mask)
  if t.device ~= mask.device then
    fail("masked_select: the tensor is on %s but the mask on %s", t.device, mask.device)
  end
  local shape = broadcast_shape(t.shape, mask.shape)
  if not shape then
    fail("masked_select: the mask of shape %s does not broadcast with the tensor's shape %s", shape_string(mask.shape),
      shape_string(t.shape))
  end
  local expanded = t:expand(shape)
  local flat = expanded:reshape({ expanded:numel() })
  return flat:index_select(1, int64_list(t, true_positions(mask:expand(shape))))
end

functions.masked_select = methods.masked_select

-- ---------------------------------------------------------------- scatter, index_add

--- A copy of x with src written at index's positions along dim: out[index[i][j]][j] = src[i][j] for dim 1, and
-- alike. A position named twice would be written twice: that is an error, naming it, as its result would depend on
-- the order of the writes.
function methods.scatter(t, dim, index, src)
  check_tensor("scatter", "self", t)
  check_tensor("scatter", "index", index)
  if type(src) == "number" then
    src = on_device_of(t, core.full(index.shape, src, { dtype = t.dtype }))
  end
  check_tensor("scatter", "src", src)
  local zeros = on_device_of(t, core.zeros(t.shape, { dtype = t.dtype }))
  local ok, placed = pcall(t.scatter_add, zeros, dim, index, src)
  if not ok then
    fail("scatter: %s", (errors.strip_location(placed):gsub("^scatter_add: ", "")))
  end
  local hits = zeros:scatter_add(dim, index, on_device_of(t, core.ones(index.shape, { dtype = t.dtype })))
  local most = hits:numel() > 0 and hits:max():item() or 0
  if most > 1 then
    local flat = true_positions(hits:gt(1))
    fail("scatter: index names a position of x (shape %s) %d times (the first is element %d of x in row-major order); "
      .. "write each once, or use scatter_add", shape_string(t.shape), most, flat[1] + 1)
  end
  return hits:gt(0):where(placed, t)
end

--- A copy of x with alpha * src's slices summed in at a 1-D index along dim (options {alpha = 1}).
function methods.index_add(t, dim, index, src, options)
  check_tensor("index_add", "self", t)
  options = options_table("index_add", options, { "alpha" })
  local alpha = options.alpha
  if alpha ~= nil and (type(alpha) ~= "number" or alpha ~= alpha) then
    fail("index_add: option alpha must be a number, got %s", describe(alpha))
  end
  if alpha ~= nil and alpha ~= 1 and is_tensor(src) then
    src = src * alpha
  end
  return errors.call(engine_index_add, t, dim, index, src)
end

functions.scatter = methods.scatter
functions.scatter_add = Tensor.methods.scatter_add
functions.index_add = methods.index_add

-- ---------------------------------------------------------------- Torch7 indexing

--- The view of t a Torch7 index table picks: per leading dim, an integer selects (1-based, negative from the end;
-- the dim goes), {first, last} narrows to that inclusive range, {first} to one element (the dim stays), {} keeps
-- the whole dim; dims not named stay whole.
local function indexed_view(name, t, key)
  local count = 0
  for k in pairs(key) do
    if not compat.is_integer(k) or k < 1 then
      fail("%s: an index table holds a number, {first, last}, {first} or {} per dim, got key %s", name, describe(k))
    end
    count = math.max(count, k)
  end
  if count > t:dim() then
    fail("%s: %d indices for a tensor of shape %s", name, count, shape_string(t.shape))
  end
  local view, dim = t, 1
  for i = 1, count do
    local entry, size = key[i], view:size(dim)
    if type(entry) == "number" then
      if not compat.is_integer(entry) or entry == 0 or entry > size or entry < -size then
        fail("%s: index %s is out of range for dim %d of size %d (shape %s; 1 to %d, or -%d to -1)", name,
          describe(entry), i, size, shape_string(t.shape), size, size)
      end
      view = view:select(dim, entry > 0 and entry or size + entry + 1)
    elseif type(entry) == "table" and not is_tensor(entry) then
      local first, last = entry[1], entry[2]
      if entry[3] ~= nil or (first == nil and last ~= nil) then
        fail("%s: entry %d must be {first, last}, {first} or {}, got %d values", name, i, #entry)
      end
      if first ~= nil then
        last = last == nil and first or last
        local range = { first, last }
        for j = 1, 2 do
          local value = range[j]
          if not compat.is_integer(value) or value == 0 or value > size or value < -size then
            fail("%s: range {%s, %s} is out of range for dim %d of size %d (shape %s; 1 to %d, or -%d to -1)", name,
              describe(first), describe(last), i, size, shape_string(t.shape), size, size)
          end
          range[j] = value > 0 and value or size + value + 1
        end
        if range[2] < range[1] then
          fail("%s: range {%s, %s} of dim %d ends before it starts", name, describe(first), describe(last), i)
        end
        view = view:narrow(dim, range[1], range[2] - range[1] + 1)
      end
      dim = dim + 1
    else
      fail("%s: entry %d must be a number, {first, last}, {first} or {}, got %s", name, i, type(entry))
    end
  end
  return view
end

--- t[key] for the keys the engine's __index leaves: a Torch7 index table or a bool mask.
local function index_by(t, key)
  if is_tensor(key) then
    if key.dtype ~= "bool" then
      fail("[]: a tensor index must be a bool mask, got %s of shape %s (use index_select or gather)", key.dtype,
        shape_string(key.shape))
    end
    local ok, selected = pcall(methods.masked_select, t, key)
    if not ok then
      fail("[]: %s", (errors.strip_location(selected):gsub("^masked_select: ", "")))
    end
    return selected
  end
  if type(key) ~= "table" then
    fail("[]: cannot index a tensor with a %s", type(key))
  end
  return indexed_view("[]", t, key)
end

--- Runs fill_ or copy_ into target, naming "[]=" in its error.
local function write_into(target, value)
  local ok, message = pcall(function()
    if type(value) == "number" or type(value) == "boolean" then
      target:fill_(value)
    else
      target:copy_(value)
    end
  end)
  if not ok then
    fail("[]=: %s", (errors.strip_location(message):gsub("^[%w_]+: ", "")))
  end
end

--- t[mask] = value in place: a number everywhere mask (broadcast to t's shape) is true, or a 1-D tensor of one
-- value per true element (or of one value for all) in row-major order.
local function assign_masked(t, mask, value)
  local shape = broadcast_shape(t.shape, mask.shape)
  local fits = shape ~= nil and #shape == t:dim()
  for i = 1, fits and #shape or 0 do
    fits = fits and shape[i] == t.shape[i]
  end
  if not fits then
    fail("[]=: the mask of shape %s does not broadcast to the tensor's shape %s", shape_string(mask.shape),
      shape_string(t.shape))
  end
  local full = mask:expand(t.shape)
  if type(value) == "number" or type(value) == "boolean" then
    local ok, filled = pcall(t.masked_fill, t:detach(), full, value)
    if not ok then
      fail("[]=: %s", (errors.strip_location(filled):gsub("^masked_fill: ", "")))
    end
    return write_into(t, filled)
  end
  if not is_tensor(value) then
    fail("[]=: the value must be a number or a tensor, got %s", type(value))
  end
  if value.device ~= t.device then
    fail("[]=: the tensor is on %s but the value on %s", t.device, value.device)
  end
  local positions = true_positions(full)
  local count = #positions
  if value:dim() > 1 or (value:numel() ~= count and value:numel() ~= 1) then
    fail("[]=: the value of shape %s must be 1-D with one element per true element of the mask (%d) or one in all",
      shape_string(value.shape), count)
  end
  if count == 0 then
    return write_into(t:narrow(1, 1, 0), value:reshape({ value:numel() }):narrow(1, 1, 0))
  end
  -- slot[i] is the position in value of flat element i (0 where the mask is false: where drops it)
  local slot = {}
  for i = 1, t:numel() do
    slot[i] = 0
  end
  if value:numel() == count then
    for j, p in ipairs(positions) do
      slot[p + 1] = j - 1
    end
  end
  local spread = value:reshape({ value:numel() }):index_select(1, int64_list(t, slot)):reshape(t.shape)
  write_into(t, full:where(spread:to(t.dtype), t:detach()))
end

--- t[key] = value for the keys the engine's __newindex leaves: an integer, a Torch7 index table or a bool mask.
-- In place, so refused (as copy_ and fill_ are) on a tensor that requires grad while grad mode is on.
local function newindex_by(t, key, value)
  if t.requires_grad and core.is_grad_enabled() then
    if t.grad_fn then
      fail("[]=: the tensor is the result of '%s' and requires grad; in-place assignments are not recorded, so its "
        .. "gradient would be wrong: assign into a clone, or wrap it in tc.no_grad", tostring(t.grad_fn))
    end
    fail("[]=: a leaf that requires grad is used in an in-place assignment; wrap it in tc.no_grad")
  end
  if is_tensor(key) then
    if key.dtype ~= "bool" then
      fail("[]=: a tensor index must be a bool mask, got %s of shape %s", key.dtype, shape_string(key.shape))
    end
    if key.device ~= t.device then
      fail("[]=: the tensor is on %s but the mask on %s", t.device, key.device)
    end
    return assign_masked(t, key, value)
  end
  if type(key) == "number" then
    key = { key }
  elseif type(key) ~= "table" then
    fail("[]=: cannot index a tensor with a %s", type(key))
  end
  if t:dim() == 0 then
    fail("[]=: a 0-dim tensor cannot be indexed")
  end
  if type(value) ~= "number" and type(value) ~= "boolean" and not is_tensor(value) then
    fail("[]=: the value must be a number or a tensor, got %s", type(value))
  end
  write_into(indexed_view("[]=", t, key), value)
end

--- Hooks the tensor metatable: the engine's __index and __newindex hand it the keys they do not take.
function M.install(metatable)
  metatable.__index_by = index_by
  metatable.__newindex_by = newindex_by
end

return M
