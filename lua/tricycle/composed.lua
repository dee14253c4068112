--- tricycle.composed: creation functions and shape methods made of the
-- engine's ops, so each runs on every device the ops run on and is
-- differentiable through them (none records a node of its own):
--   tc.linspace, tc.randint, tc.randperm, tc.eye, tc.zeros_like, tc.ones_like,
--   tc.full_like, tc.empty_like, tc.rand_like, tc.randn_like;
--   t:split, t:chunk, t:unbind (narrow/select views), t:t(), t:flip and
--   t:tril/t:triu (index_select, where), t:tile and t["repeat"] (expand then
--   reshape), t:pad (cat with constant blocks, narrow for negative pads);
--   t:std (var), t:logsumexp, t:prod, t:all, t:any (reductions), t:cumsum
--   and t:cumprod (shifted adds and products), t:norm (abs, powers, sums,
--   max), mm and bmm (matmul
--   with their own shape checks), tc.one_hot (eq), isclose and allclose;
--   t:leaky_relu and t:elu (where);
--   from tricycle/selection.lua, argsort over the engine's sort, masked_select,
--   scatter and Torch7's indexing (`install` hooks the tensor metatable for
--   the latter); and, from tricycle/conv.lua, tc.conv1d, tc.avg_pool2d,
--   tc.adaptive_avg_pool2d and tc.batch_norm.
-- Dims are 1-based, negative from the end, as everywhere in the binding.
-- init.lua installs `functions` into the tricycle table and `methods` into
-- the tensor methods, and lists `ops` in tc.ops() with `composed = true`, so
-- spec/op_cases.lua holds a row for each, run on every backend present.
local arguments = require("tricycle.arguments")
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local M = { functions = {}, methods = {} }
local functions, methods = M.functions, M.methods

-- The composed functions as tc.ops() lists them: name, arity (tensor inputs), properties, summary. A property
-- left out is false; `method` is set for those in `methods`, by init.lua.
M.ops = {
  { name = "linspace", arity = 0, summary = "evenly spaced values, both ends exact" },
  { name = "randint", arity = 0, summary = "uniform random integers in [low, high)" },
  { name = "randperm", arity = 0, summary = "a random permutation of 0 .. n - 1" },
  { name = "eye", arity = 0, summary = "the identity matrix (an eq of aranges)" },
  { name = "zeros_like", arity = 1, integers = true, summary = "zeros of a tensor's shape, dtype and device" },
  { name = "ones_like", arity = 1, integers = true, summary = "ones of a tensor's shape, dtype and device" },
  { name = "full_like", arity = 1, integers = true, summary = "a value in a tensor's shape, dtype and device" },
  { name = "empty_like", arity = 1, integers = true, summary = "uninitialised, a tensor's shape, dtype and device" },
  { name = "rand_like", arity = 1, summary = "uniform [0, 1) draws in a tensor's shape and device" },
  { name = "randn_like", arity = 1, summary = "normal draws in a tensor's shape and device" },
  { name = "split", arity = 1, differentiable = true, integers = true, view = true,
    summary = "views of pieces along a dim (narrow)" },
  { name = "chunk", arity = 1, differentiable = true, integers = true, view = true,
    summary = "views of n equal pieces along a dim (split)" },
  { name = "unbind", arity = 1, differentiable = true, integers = true, view = true,
    summary = "the slices along a dim (select)" },
  { name = "t", arity = 1, differentiable = true, integers = true, view = true,
    summary = "the transpose of a matrix (transpose)" },
  { name = "flip", arity = 1, differentiable = true, integers = true,
    summary = "elements reversed along dims (index_select)" },
  { name = "tril", arity = 1, differentiable = true, integers = true,
    summary = "the lower triangle, zeros above (where)" },
  { name = "triu", arity = 1, differentiable = true, integers = true,
    summary = "the upper triangle, zeros below (where)" },
  { name = "tile", arity = 1, differentiable = true, integers = true,
    summary = "repeated along dims (expand, reshape); t[\"repeat\"] too" },
  { name = "pad", arity = 1, differentiable = true, integers = true,
    summary = "constant padding or cropping of the last dims (cat, narrow)" },
  { name = "std", arity = 1, differentiable = true, float_only = true, summary = "standard deviation (sqrt of var)" },
  { name = "logsumexp", arity = 1, differentiable = true, float_only = true,
    summary = "log(sum(exp(x))) over dims, shifted by the max so it neither overflows nor underflows" },
  { name = "prod", arity = 1, differentiable = true, integers = true,
    summary = "product over dims (pairwise products; integers as int64)" },
  { name = "cumsum", arity = 1, differentiable = true, integers = true,
    summary = "running sums along a dim (shifted adds; integers as int64)" },
  { name = "cumprod", arity = 1, differentiable = true, integers = true,
    summary = "running products along a dim (shifted products, exact gradients through zeros; integers as int64)" },
  { name = "norm", arity = 1, differentiable = true, float_only = true,
    summary = "the p-norm over dims: p = 1, 2, inf, -inf, 0, any p > 0 or \"fro\"" },
  { name = "all", arity = 1, integers = true, bool_result = true, summary = "whether every element is non-zero" },
  { name = "any", arity = 1, integers = true, bool_result = true, summary = "whether some element is non-zero" },
  { name = "mm", arity = 2, differentiable = true, float_only = true, summary = "matrix product of two matrices" },
  { name = "bmm", arity = 2, differentiable = true, float_only = true,
    summary = "batched matrix product of {B, n, k} and {B, k, m}" },
  { name = "leaky_relu", arity = 1, differentiable = true, float_only = true,
    summary = "x where x > 0, negative_slope * x elsewhere (where)" },
  { name = "elu", arity = 1, differentiable = true, float_only = true,
    summary = "x where x > 0, alpha * (exp(x) - 1) elsewhere (where, exp of the clamped x)" },
  { name = "one_hot", arity = 1, integers = true, summary = "int64 one-hot vectors of 0-based class ids" },
  { name = "isclose", arity = 2, integers = true, bool_result = true,
    summary = "|a - b| <= atol + rtol * |b|, element-wise, broadcasting" },
  { name = "allclose", arity = 2, integers = true, summary = "whether isclose holds everywhere (a boolean)" },
}

local fail, describe, check_tensor = arguments.fail, arguments.describe, arguments.check_tensor
local shape_string = arguments.shape_string

local function check_integer(name, argument, value, minimum)
  if not compat.is_integer(value) or value < minimum then
    fail("%s: %s must be an integer >= %d, got %s", name, argument, minimum, describe(value))
  end
end

--- A 1-based dim of t from a 1-based or negative one (default `default`).
local function dim_of(name, t, dim, default)
  if dim == nil then
    dim = default
  end
  local n = t:dim()
  if not compat.is_integer(dim) or dim == 0 or dim > n or dim < -n then
    fail("%s: dim %s is out of range for a tensor of %d dims (1 to %d, or -%d to -1)", name, describe(dim), n, n, n)
  end
  return dim < 0 and n + dim + 1 or dim
end


-- The options of a creation function: dtype (one of `dtypes`, default the first) and requires_grad.
local function creation_options(name, options, default_dtype, dtypes)
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table {dtype =, requires_grad =}, got %s", name, type(options))
  end
  options = options or {}
  check_options(name, options, { "dtype", "requires_grad" }, 3)
  local dtype = options.dtype or default_dtype
  if dtypes and not dtypes[dtype] then
    local names = {}
    for key in pairs(dtypes) do
      names[#names + 1] = key
    end
    table.sort(names)
    fail("%s: dtype must be %s, got %s", name, table.concat(names, " or "), describe(options.dtype))
  end
  if options.requires_grad ~= nil and type(options.requires_grad) ~= "boolean" then
    fail("%s: option requires_grad must be a boolean, got %s", name, describe(options.requires_grad))
  end
  return dtype, options.requires_grad
end

local function finish(t, requires_grad)
  if requires_grad then
    t:requires_grad_(true)
  end
  return t
end

local floats = { float32 = true, float64 = true, bfloat16 = true, float16 = true }
local integers = { int32 = true, int64 = true }

-- ---------------------------------------------------------------- creation

--- `steps` values from start to stop, both included (stop exactly).
function functions.linspace(start, stop, steps, options)
  for _, pair in ipairs({ { "start", start }, { "stop", stop } }) do
    local value = pair[2]
    if type(value) ~= "number" or value ~= value or value == math.huge or value == -math.huge then
      fail("linspace: %s must be a finite number, got %s", pair[1], describe(value))
    end
  end
  check_integer("linspace", "steps", steps, 0)
  local dtype, requires_grad = creation_options("linspace", options, "float32", floats)
  -- the first half counts up from start, the second down from stop, so both ends are exact
  local delta = steps > 1 and (stop - start) / (steps - 1) or 0
  local values = {}
  for i = 0, steps - 1 do
    values[i + 1] = i < steps / 2 and start + i * delta or stop - (steps - 1 - i) * delta
  end
  if steps == 0 then
    return finish(core.empty({ 0 }, { dtype = dtype }), requires_grad)
  end
  return finish(core.tensor(values, { dtype = dtype }), requires_grad)
end

local function check_shape(name, shape)
  if type(shape) ~= "table" then
    fail("%s: shape must be a table of sizes, got %s", name, type(shape))
  end
end

--- Integers uniform in [low, high): randint(high, shape) or randint(low, high, shape), options last.
function functions.randint(a, b, c, d)
  local low, high, shape, options
  if type(b) == "table" then
    low, high, shape, options = 0, a, b, c
  else
    low, high, shape, options = a, b, c, d
  end
  if not compat.is_integer(low) or not compat.is_integer(high) then
    fail("randint: low and high must be integers, got %s and %s", describe(low), describe(high))
  end
  if high <= low then
    fail("randint: high (%s) must be above low (%s)", describe(high), describe(low))
  end
  local range = high - low
  -- float64 draws hold every integer of a range up to 2^52 (range < 0: high - low wrapped around)
  if range < 0 or range > 4503599627370496 then
    fail("randint: high - low must be at most 2^52, got [%s, %s)", describe(low), describe(high))
  end
  check_shape("randint", shape)
  local dtype, requires_grad = creation_options("randint", options, "int64", integers)
  if requires_grad then
    fail("randint: an integer tensor cannot require grad")
  end
  local draws = core.rand(shape, { dtype = "float64" })
  -- u * range is below range; the clamp guards a rounding up to it
  return (draws * range):to("int64"):clamp(0, range - 1):add(low):to(dtype)
end

--- A random permutation of 0 .. n - 1 (int64 by default).
function functions.randperm(n, options)
  check_integer("randperm", "n", n, 0)
  if n > 4503599627370496 then
    fail("randperm: n must be at most 2^52, got %s", describe(n))
  end
  local dtype, requires_grad = creation_options("randperm", options, "int64", integers)
  if requires_grad then
    fail("randperm: an integer tensor cannot require grad")
  end
  if n == 0 then
    return core.empty({ 0 }, { dtype = dtype })
  end
  -- Fisher-Yates over draws from the engine's generator (so tc.manual_seed repeats it)
  local draws = core.rand({ n }, { dtype = "float64" }):totable()
  local values = {}
  for i = 1, n do
    values[i] = i - 1
  end
  for i = n, 2, -1 do
    local j = math.min(i, math.floor(draws[i] * i) + 1)
    values[i], values[j] = values[j], values[i]
  end
  return core.tensor(values, { dtype = dtype })
end

--- The n x m identity (m defaults to n).
function functions.eye(n, m, options)
  if type(m) == "table" and options == nil then
    m, options = nil, m
  end
  check_integer("eye", "n", n, 0)
  if m ~= nil then
    check_integer("eye", "m", m, 0)
  end
  m = m or n
  local dtype, requires_grad = creation_options("eye", options, "float32")
  local rows = core.arange(n):unsqueeze(2)
  local columns = core.arange(m):unsqueeze(1)
  return finish(rows:eq(columns):to(dtype), requires_grad)
end

-- The *_like functions: t's shape, dtype and device unless options say another dtype.
local function like(name, t, options, make)
  check_tensor(name, "argument 1", t)
  local dtype, requires_grad = creation_options(name, options, t.dtype)
  local made = make(t.shape, dtype)
  if t.device ~= "cpu" then
    made = made:to(t.device)
  end
  return finish(made, requires_grad)
end

function functions.zeros_like(t, options)
  return like("zeros_like", t, options, function(shape, dtype) return core.zeros(shape, { dtype = dtype }) end)
end

function functions.ones_like(t, options)
  return like("ones_like", t, options, function(shape, dtype) return core.ones(shape, { dtype = dtype }) end)
end

function functions.empty_like(t, options)
  return like("empty_like", t, options, function(shape, dtype) return core.empty(shape, { dtype = dtype }) end)
end

function functions.full_like(t, value, options)
  return like("full_like", t, options, function(shape, dtype)
    local ok, made = pcall(core.full, shape, value, { dtype = dtype })
    if not ok then
      fail("full_like: %s", errors.strip_location(made):gsub("^full: ", ""))
    end
    return made
  end)
end

local function random_like(name, draw)
  return function(t, options)
    check_tensor(name, "argument 1", t)
    if options ~= nil and type(options) ~= "table" then
      fail("%s: options must be a table {dtype =, requires_grad =}, got %s", name, type(options))
    end
    local dtype = options and options.dtype or t.dtype
    if not floats[dtype] then
      fail("%s: dtype must be float32 or float64 (or bfloat16, float16), got %s (give {dtype =} for an integer tensor)",
        name, describe(dtype))
    end
    return like(name, t, options, function(shape) return draw(shape, { dtype = dtype }) end)
  end
end

functions.rand_like = random_like("rand_like", core.rand)
functions.randn_like = random_like("randn_like", core.randn)

-- ---------------------------------------------------------------- shape

--- Views of t along dim: pieces of `size` (the last may be shorter), or of the sizes of a list.
function methods.split(t, sizes, dim)
  check_tensor("split", "self", t)
  dim = dim_of("split", t, dim, 1)
  local length = t:size(dim)
  local pieces = {}
  if type(sizes) == "table" then
    local total = 0
    for i, size in ipairs(sizes) do
      if not compat.is_integer(size) or size < 0 then
        fail("split: sizes[%d] must be an integer >= 0, got %s", i, describe(size))
      end
      total = total + size
    end
    if total ~= length or #sizes == 0 then
      fail("split: the sizes %s add up to %d, dim %d has size %d", shape_string(sizes), total, dim, length)
    end
    local start = 1
    for i, size in ipairs(sizes) do
      pieces[i] = t:narrow(dim, start, size)
      start = start + size
    end
    return pieces
  end
  if not compat.is_integer(sizes) or sizes < 1 then
    fail("split: the size of a piece must be an integer >= 1 (or a list of sizes), got %s", describe(sizes))
  end
  local start = 1
  repeat
    local size = math.min(sizes, length - start + 1)
    pieces[#pieces + 1] = t:narrow(dim, start, size)
    start = start + size
  until start > length
  return pieces
end

--- At most `chunks` views of equal size along dim (the last may be shorter), as torch.chunk.
function methods.chunk(t, chunks, dim)
  check_tensor("chunk", "self", t)
  check_integer("chunk", "chunks", chunks, 1)
  dim = dim_of("chunk", t, dim, 1)
  local length = t:size(dim)
  local size = math.max(1, compat.idiv(length + chunks - 1, chunks))
  return methods.split(t, size, dim)
end

--- The slices of t along dim, each without that dim (views).
function methods.unbind(t, dim)
  check_tensor("unbind", "self", t)
  dim = dim_of("unbind", t, dim, 1)
  local slices = {}
  for i = 1, t:size(dim) do
    slices[i] = t:select(dim, i)
  end
  return slices
end

--- The transpose of a 2-D tensor (a 0-D or 1-D tensor is returned as is).
function methods.t(t)
  check_tensor("t", "self", t)
  local n = t:dim()
  if n > 2 then
    fail("t: expects a tensor of at most 2 dims, got shape %s (use transpose or permute)", shape_string(t.shape))
  end
  return n == 2 and t:transpose(1, 2) or t
end

-- A list of distinct 1-based dims from a dim or a list of dims.
local function dims_of(name, t, dims)
  if type(dims) ~= "table" then
    dims = { dims }
  end
  local seen, result = {}, {}
  for i = 1, #dims do
    local dim = dim_of(name, t, dims[i])
    if seen[dim] then
      fail("%s: dim %d is given twice", name, dim)
    end
    seen[dim] = true
    result[i] = dim
  end
  return result
end

local function reversed_index(n, device)
  local index = core.arange(n - 1, -1, -1)
  return device ~= "cpu" and index:to(device) or index
end

--- t with the order of its elements reversed along each of dims.
function methods.flip(t, dims)
  check_tensor("flip", "self", t)
  if dims == nil then
    fail("flip: dims is required (a dim or a list of dims)")
  end
  for _, dim in ipairs(dims_of("flip", t, dims)) do
    local n = t:size(dim)
    if n > 1 then
      t = t:index_select(dim, reversed_index(n, t.device))
    end
  end
  return t
end

-- The bool mask over the last two dims of t: column - row <= k (tril) or >= k (triu).
local function triangle(name, t, k, lower)
  check_tensor(name, "self", t)
  if t:dim() < 2 then
    fail("%s: expects a tensor of at least 2 dims, got shape %s", name, shape_string(t.shape))
  end
  k = k or 0
  if not compat.is_integer(k) then
    fail("%s: diagonal must be an integer, got %s", name, describe(k))
  end
  local rows, columns = t:size(-2), t:size(-1)
  local offset = core.arange(columns):unsqueeze(1) - core.arange(rows):unsqueeze(2) -- column - row
  local keep = lower and offset:le(k) or offset:ge(k)
  if t.device ~= "cpu" then
    keep = keep:to(t.device)
  end
  return keep:where(t, 0)
end

--- The lower triangle of the last two dims (column - row <= diagonal), zeros elsewhere.
function methods.tril(t, diagonal)
  return triangle("tril", t, diagonal, true)
end

--- The upper triangle of the last two dims (column - row >= diagonal), zeros elsewhere.
function methods.triu(t, diagonal)
  return triangle("triu", t, diagonal, false)
end

--- t repeated `sizes[i]` times along dim i (torch's repeat): t:tile({2, 3}) or t:tile(2, 3);
-- more sizes than dims add leading dims.
function methods.tile(t, ...)
  check_tensor("tile", "self", t)
  local sizes = select("#", ...) == 1 and type((...)) == "table" and (...) or { ... }
  local n = t:dim()
  if #sizes < n then
    fail("tile: needs a count for each of the %d dims of a tensor of shape %s, got %d", n, shape_string(t.shape),
      #sizes)
  end
  local shape = t.shape
  local pad = #sizes - n
  local spread, expanded, result = {}, {}, {}
  for i, count in ipairs(sizes) do
    if not compat.is_integer(count) or count < 0 then
      fail("tile: count %d must be an integer >= 0, got %s", i, describe(count))
    end
    local size = i > pad and shape[i - pad] or 1
    spread[#spread + 1], spread[#spread + 2] = 1, size
    expanded[#expanded + 1], expanded[#expanded + 2] = count, size
    result[i] = count * size
  end
  return t:reshape(spread):expand(expanded):reshape(result)
end
methods["repeat"] = methods.tile

--- Pads the last dims with `value` (default 0): pads = {before_last, after_last, before_second_last, ...}
-- as torch.nn.functional.pad; a negative pad crops.
function methods.pad(t, pads, value)
  check_tensor("pad", "self", t)
  if type(pads) ~= "table" or #pads % 2 ~= 0 or #pads == 0 then
    fail("pad: pads must be a list of an even number of integers {before, after, ...}, got %s",
      type(pads) == "table" and shape_string(pads) or type(pads))
  end
  if #pads / 2 > t:dim() then
    fail("pad: pads %s cover %d dims; the tensor has shape %s", shape_string(pads), #pads / 2, shape_string(t.shape))
  end
  value = value == nil and 0 or value
  if type(value) ~= "number" and type(value) ~= "boolean" then
    fail("pad: value must be a number, got %s", type(value))
  end
  for i, amount in ipairs(pads) do
    if not compat.is_integer(amount) then
      fail("pad: pads[%d] must be an integer, got %s", i, describe(amount))
    end
  end
  local n = t:dim()
  for pair = 1, #pads / 2 do
    local dim = n - pair + 1
    local before, after = pads[2 * pair - 1], pads[2 * pair]
    local size = t:size(dim)
    local kept = size + math.min(before, 0) + math.min(after, 0)
    if kept < 0 then
      fail("pad: pads %d and %d crop more than the %d elements of dim %d", before, after, size, dim)
    end
    if before < 0 or after < 0 then
      t = t:narrow(dim, 1 - math.min(before, 0), kept)
    end
    local parts = {}
    for _, amount in ipairs({ math.max(before, 0), -1, math.max(after, 0) }) do
      if amount == -1 then
        parts[#parts + 1] = t
      elseif amount > 0 then
        local shape = t.shape
        shape[dim] = amount
        local ok, block = pcall(core.full, shape, value, { dtype = t.dtype })
        if not ok then
          fail("pad: %s", (errors.strip_location(block):gsub("^full: ", "")))
        end
        parts[#parts + 1] = t.device ~= "cpu" and block:to(t.device) or block
      end
    end
    if #parts > 1 then
      t = core.cat(parts, dim)
    end
  end
  return t
end

function functions.pad(t, pads, value)
  return methods.pad(t, pads, value)
end

-- ---------------------------------------------------------------- reductions

-- The 1-based dims a reduction's `dims` (nil: all, a dim or a list) names, distinct.
local function reduced_dims(name, t, dims)
  if dims == nil then
    local all = {}
    for d = 1, t:dim() do
      all[d] = d
    end
    return all
  end
  return dims_of(name, t, dims)
end

-- result (reduced over `list` with keepdim) without those dims unless keepdim.
local function without_dims(result, list, keepdim)
  if keepdim or #list == 0 then
    return result
  end
  local reduced, shape = {}, {}
  for _, dim in ipairs(list) do
    reduced[dim] = true
  end
  for d, size in ipairs(result.shape) do
    if not reduced[d] then
      shape[#shape + 1] = size
    end
  end
  return result:reshape(shape)
end

local function check_keepdim(name, keepdim)
  if keepdim ~= nil and type(keepdim) ~= "boolean" then
    fail("%s: keepdim must be a boolean, got %s", name, describe(keepdim))
  end
end

--- The standard deviation over dims: sqrt of var with the same arguments (correction 1 by default).
function methods.std(t, dims, options)
  check_tensor("std", "self", t)
  local ok, variance = pcall(t.var, t, dims, options)
  if not ok then
    fail("std: %s", (errors.strip_location(variance):gsub("^var: ", "")))
  end
  return variance:sqrt()
end

--- log(sum(exp(t))) over dims (nil: all): the max m of each slice is taken out first, m + log(sum(exp(t - m))), so
-- large values do not overflow nor very negative ones vanish; an infinite m stays as it is. Integers: as float32.
function methods.logsumexp(t, dims, keepdim)
  check_tensor("logsumexp", "self", t)
  check_keepdim("logsumexp", keepdim)
  local list = reduced_dims("logsumexp", t, dims)
  if not floats[t.dtype] then
    t = t:to("float32")
  end
  local shift
  if t:numel() > 0 then
    shift = t:detach()
    for _, dim in ipairs(list) do
      shift = shift:max(dim, true)
    end
    -- a slice of -inf (or +inf) keeps its infinity: shifting by it would give NaN
    shift = shift:abs():eq(math.huge):where(0, shift)
  else
    local shape = t.shape
    for _, dim in ipairs(list) do
      shape[dim] = 1
    end
    shift = core.zeros(shape, { dtype = t.dtype })
    shift = t.device ~= "cpu" and shift:to(t.device) or shift
  end
  return without_dims((t - shift):exp():sum(list, true):log() + shift, list, keepdim)
end

-- Integer and bool tensors as int64 (sums and products of them are int64, as PyTorch's), 16-bit floats as float32
-- (the partial results round once, at the end: narrowed), other floats as they are.
local sixteen_bit = { bfloat16 = true, float16 = true }
local function widened(t)
  if sixteen_bit[t.dtype] then return t:float() end
  return floats[t.dtype] and t or t:to("int64")
end

-- A result computed on widened(t), in t's dtype when that is 16-bit.
local function narrowed(result, t)
  return sixteen_bit[t.dtype] and result:to(t.dtype) or result
end

--- The product over dims (nil: all), by halving each dim with element-wise products (exact gradients where
-- elements are 0 too); an empty dim gives 1. Integer and bool tensors give int64.
function methods.prod(t, dims, keepdim)
  check_tensor("prod", "self", t)
  check_keepdim("prod", keepdim)
  local list = reduced_dims("prod", t, dims)
  local result, multiplied = widened(t), false
  for _, dim in ipairs(list) do
    local n = result:size(dim)
    if n == 0 then
      -- ones, on the tape as PyTorch's are: the empty sum (0) plus 1
      result, multiplied = result:sum(dim, true) + 1, true
    end
    while n > 1 do
      local half = compat.idiv(n, 2)
      local paired = result:narrow(dim, 1, half) * result:narrow(dim, half + 1, half)
      if n % 2 == 1 then
        paired = core.cat({ paired, result:narrow(dim, n, 1) }, dim)
      end
      result, multiplied, n = paired, true, half + n % 2
    end
  end
  result = without_dims(result, list, keepdim)
  if sixteen_bit[t.dtype] then return narrowed(result, t) end
  -- dims of size 1 only: a copy, not a view of t
  return multiplied and result or result:clone()
end

--- Running sums along dim: out[i] = t[1] + ... + t[i], in log2(n) steps of shifted adds. Integer and bool tensors
-- give int64 (wrapping, as their add).
function methods.cumsum(t, dim)
  check_tensor("cumsum", "self", t)
  if dim == nil then
    fail("cumsum: dim is required")
  end
  if t:dim() == 0 then
    if dim ~= 1 and dim ~= -1 then
      fail("cumsum: dim %s is out of range for a 0-dim tensor (1 or -1)", describe(dim))
    end
    return sixteen_bit[t.dtype] and narrowed(widened(t), t) or widened(t):clone()
  end
  dim = dim_of("cumsum", t, dim)
  local result = widened(t)
  local n = result:size(dim)
  local offset = 1
  if n <= 1 then
    return rawequal(result, t) and result:clone() or narrowed(result, t)
  end
  while offset < n do
    local shape = result.shape
    shape[dim] = offset
    local zeros = core.zeros(shape, { dtype = result.dtype })
    zeros = result.device ~= "cpu" and zeros:to(result.device) or zeros
    result = result + core.cat({ zeros, result:narrow(dim, 1, n - offset) }, dim)
    offset = offset * 2
  end
  return narrowed(result, t)
end

--- Running products along dim: out[i] = t[1] * ... * t[i], in log2(n) steps of products with a shifted copy padded
-- with ones. Only products, no division, so the gradient is exact where elements are 0. Integer and bool tensors
-- give int64 (wrapping, as their mul).
function methods.cumprod(t, dim)
  check_tensor("cumprod", "self", t)
  if dim == nil then
    fail("cumprod: dim is required")
  end
  if t:dim() == 0 then
    if dim ~= 1 and dim ~= -1 then
      fail("cumprod: dim %s is out of range for a 0-dim tensor (1 or -1)", describe(dim))
    end
    return narrowed(widened(t):clone(), t)
  end
  dim = dim_of("cumprod", t, dim)
  local result = widened(t)
  local n = result:size(dim)
  if n <= 1 then
    return rawequal(result, t) and result:clone() or narrowed(result, t)
  end
  local offset = 1
  while offset < n do
    local shape = result.shape
    shape[dim] = offset
    local ones = core.ones(shape, { dtype = result.dtype })
    ones = result.device ~= "cpu" and ones:to(result.device) or ones
    result = result * core.cat({ ones, result:narrow(dim, 1, n - offset) }, dim)
    offset = offset * 2
  end
  return narrowed(result, t)
end

-- The orders norm takes by name.
local NORM_ORDERS = { fro = 2, inf = math.huge, ["-inf"] = -math.huge }

--- f(x) where mask is false and 0 where it is true, with f never evaluated at the masked elements (1 stands in for
-- them), so neither the value nor the gradient there is NaN or infinite: the subgradient 0 of a norm at 0.
local function zero_where(mask, x, f)
  return mask:where(0, f(mask:where(1, x)))
end

--- The p-norm of t over dims (nil: all; keepdim): (sum |x|^p)^(1/p) for p > 0 (p = 2 and "fro": the Euclidean
-- norm), max |x| for inf, min |x| for -inf, the count of non-zeros for 0 (zero gradient). The gradient is 0 where
-- the norm is 0 (p = 2, as PyTorch's) and at elements that are 0 (p < 1). Integers: as float32.
function methods.norm(t, p, dims, keepdim)
  check_tensor("norm", "self", t)
  if p == nil then
    p = 2
  end
  if type(p) == "string" and NORM_ORDERS[p] then
    p = NORM_ORDERS[p]
  end
  if type(p) ~= "number" or p ~= p or (p < 0 and p ~= -math.huge) then
    fail("norm: p must be a number >= 0, math.huge, -math.huge, \"inf\", \"-inf\" or \"fro\", got %s", describe(p))
  end
  check_keepdim("norm", keepdim)
  local list = reduced_dims("norm", t, dims)
  local given = t
  if not floats[t.dtype] or sixteen_bit[t.dtype] then
    t = t:to("float32") -- integers, and 16-bit tensors (rounded back once at the end)
  end
  local magnitude = t:abs()
  local result
  if p == math.huge or p == -math.huge then
    if t:numel() == 0 then
      fail("norm: the %s-norm of an empty tensor (shape %s) is not defined", describe(p), shape_string(t.shape))
    end
    result = magnitude
    for _, dim in ipairs(list) do
      result = p > 0 and result:max(dim, true) or result:min(dim, true)
    end
  elseif p == 0 then
    -- the count, with t on the tape through a zero product (its gradient is 0)
    result = magnitude:ne(0):to(t.dtype):sum(list, true) + (magnitude * 0):sum(list, true)
  elseif p == 1 then
    result = magnitude:sum(list, true)
  elseif p == 2 then
    local squares = (t * t):sum(list, true)
    result = zero_where(squares:eq(0), squares, function(x) return x:sqrt() end)
  else
    local powers = zero_where(magnitude:eq(0), magnitude, function(x) return x ^ p end):sum(list, true)
    result = zero_where(powers:eq(0), powers, function(x) return x ^ (1 / p) end)
  end
  return narrowed(without_dims(result, list, keepdim), given)
end

--- Whether some element over dims (nil: all) is non-zero (NaN counts), as bool.
function methods.any(t, dims, keepdim)
  check_tensor("any", "self", t)
  check_keepdim("any", keepdim)
  local list = reduced_dims("any", t, dims)
  return t:ne(0):to("int64"):sum(list, keepdim or false):gt(0)
end

--- Whether every element over dims (nil: all) is non-zero, as bool; true over nothing.
function methods.all(t, dims, keepdim)
  check_tensor("all", "self", t)
  check_keepdim("all", keepdim)
  local list = reduced_dims("all", t, dims)
  return t:eq(0):to("int64"):sum(list, keepdim or false):eq(0)
end

-- ---------------------------------------------------------------- products

local function check_float_matrices(name, a, b, ndim)
  check_tensor(name, "argument 1", a)
  check_tensor(name, "argument 2", b)
  if a:dim() ~= ndim or b:dim() ~= ndim then
    fail("%s: expects two %d-D tensors, got shapes %s and %s", name, ndim, shape_string(a.shape),
      shape_string(b.shape))
  end
  if not floats[a.dtype] or a.dtype ~= b.dtype then
    fail("%s: expects two float32 or two float64 tensors (or two bfloat16, float16), got %s and %s", name, a.dtype,
      b.dtype)
  end
  if a:size(-1) ~= b:size(-2) then
    fail("%s: the shapes %s and %s do not fit: %d columns against %d rows", name, shape_string(a.shape),
      shape_string(b.shape), a:size(-1), b:size(-2))
  end
end

--- The product of an {n, k} and a {k, m} matrix (matmul without broadcasting).
-- ---------------------------------------------------------------- activations

local function check_finite_option(name, option, value)
  if type(value) ~= "number" or value ~= value or value == math.huge or value == -math.huge then
    fail("%s: %s must be a finite number, got %s", name, option, describe(value))
  end
end

local function check_floating(name, t)
  check_tensor(name, "input", t)
  if not floats[t.dtype] then
    fail("%s: input must be float32 or float64, got %s", name, t.dtype)
  end
end

--- x where x > 0, negative_slope * x elsewhere (default slope 0.01).
function methods.leaky_relu(t, negative_slope)
  check_floating("leaky_relu", t)
  negative_slope = negative_slope == nil and 0.01 or negative_slope
  check_finite_option("leaky_relu", "negative_slope", negative_slope)
  return core.where(t:gt(0), t, t * negative_slope)
end

--- x where x > 0, alpha * (exp(x) - 1) elsewhere (default alpha 1); exp
-- sees min(x, 0), so a large x neither overflows nor sends NaN through the
-- unused branch's gradient.
function methods.elu(t, alpha)
  check_floating("elu", t)
  alpha = alpha == nil and 1 or alpha
  check_finite_option("elu", "alpha", alpha)
  return core.where(t:gt(0), t, (t:clamp(nil, 0):exp() - 1) * alpha)
end

functions.leaky_relu = methods.leaky_relu
functions.elu = methods.elu

function methods.mm(a, b)
  check_float_matrices("mm", a, b, 2)
  return a:matmul(b)
end

--- The products of {B, n, k} and {B, k, m} batches, matrix by matrix (matmul without broadcasting).
function methods.bmm(a, b)
  check_float_matrices("bmm", a, b, 3)
  if a:size(1) ~= b:size(1) then
    fail("bmm: the batch sizes differ: shapes %s and %s", shape_string(a.shape), shape_string(b.shape))
  end
  return a:matmul(b)
end

functions.mm = methods.mm
functions.bmm = methods.bmm

-- ---------------------------------------------------------------- one_hot, isclose

--- {..., num_classes} int64 one-hot vectors of the 0-based ids of an integer tensor; num_classes defaults to the
-- largest id + 1.
function functions.one_hot(index, num_classes)
  check_tensor("one_hot", "index", index)
  if not integers[index.dtype] and index.dtype ~= "uint8" then
    fail("one_hot: index must be an integer tensor, got %s", index.dtype)
  end
  if num_classes ~= nil then
    check_integer("one_hot", "num_classes", num_classes, 1)
  end
  if index:numel() == 0 then
    if num_classes == nil then
      fail("one_hot: num_classes is needed for an empty index (shape %s)", shape_string(index.shape))
    end
  else
    local low, high = index:min():item(), index:max():item()
    num_classes = num_classes or high + 1
    if low < 0 or high >= num_classes then
      fail("one_hot: index %s is out of range for %s classes (ids are 0 to %s)", describe(low < 0 and low or high),
        describe(num_classes), describe(num_classes - 1))
    end
  end
  local classes = core.arange(num_classes)
  classes = index.device ~= "cpu" and classes:to(index.device) or classes
  return index:to("int64"):unsqueeze(-1):eq(classes):to("int64")
end

local function close_options(name, options)
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table {rtol =, atol =, equal_nan =}, got %s", name, type(options))
  end
  options = options or {}
  check_options(name, options, { "rtol", "atol", "equal_nan" }, 3)
  local rtol, atol = options.rtol or 1e-5, options.atol or 1e-8
  for _, pair in ipairs({ { "rtol", rtol }, { "atol", atol } }) do
    if type(pair[2]) ~= "number" or not (pair[2] >= 0) then
      fail("%s: %s must be a number >= 0, got %s", name, pair[1], describe(pair[2]))
    end
  end
  if options.equal_nan ~= nil and type(options.equal_nan) ~= "boolean" then
    fail("%s: equal_nan must be a boolean, got %s", name, describe(options.equal_nan))
  end
  return rtol, atol, options.equal_nan
end

--- |a - b| <= atol + rtol * |b| element by element (broadcasting), as bool; equal infinities are close, NaN is
-- close to NaN only with equal_nan. Compared in float64 (integers too).
local function isclose(name, a, b, options)
  check_tensor(name, "argument 1", a)
  if type(b) == "number" then
    b = core.tensor(b, { dtype = "float64" })
    b = a.device ~= "cpu" and b:to(a.device) or b
  end
  check_tensor(name, "argument 2", b)
  local rtol, atol, equal_nan = close_options(name, options)
  if a.device ~= b.device then
    fail("%s: the tensors are on different devices: %s and %s", name, a.device, b.device)
  end
  local x, y = a:detach():to("float64"), b:detach():to("float64")
  local ok, difference = pcall(function() return (x - y):abs() end)
  if not ok then
    fail("%s: %s", name, (errors.strip_location(difference):gsub("^sub: ", "")))
  end
  local close = difference:le(y:abs() * rtol + atol):logical_or(x:eq(y))
  if equal_nan then
    close = close:logical_or(x:ne(x):logical_and(y:ne(y)))
  end
  return close
end

function methods.isclose(a, b, options)
  return isclose("isclose", a, b, options)
end

--- Whether isclose(a, b, options) holds for every element: a Lua boolean.
function methods.allclose(a, b, options)
  return isclose("allclose", a, b, options):all():item()
end

functions.isclose = methods.isclose
functions.allclose = methods.allclose

-- Convolution and pooling (tricycle/conv.lua).
local conv = require("tricycle.conv")
for _, op in ipairs(conv.ops) do
  M.ops[#M.ops + 1] = op
end
for name, fn in pairs(conv.functions) do
  functions[name] = fn
end

-- Sorting, selection and Torch7 indexing (tricycle/selection.lua) are listed and installed with these.
local selection = require("tricycle.selection")
for _, op in ipairs(selection.ops) do
  M.ops[#M.ops + 1] = op
end
for name, fn in pairs(selection.functions) do
  functions[name] = fn
end
for name, fn in pairs(selection.methods) do
  methods[name] = fn
end
M.install = selection.install

return M
