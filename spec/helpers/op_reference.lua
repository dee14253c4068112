--- Plain-Lua reference maths for the op list (spec/op_cases.lua): every
-- function works on totable() values (nested tables, numbers, booleans) in
-- double precision and never calls the engine, so a reference cannot share a
-- bug with the kernels it checks. NaN follows the engine's rules: it
-- propagates through maximum, minimum, max and min, and argmax and argmin
-- pick it.
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local G = require("helpers.gradcheck")

local R = {}

R.flatten, R.nest, R.map, R.reduce = G.flatten, G.nest, G.map, G.reduce

local function is_nan(v) return v ~= v end

-- The 1-based row-major position of a 1-based multi-index in `shape`.
local function position_of(shape, index)
  local position = 0
  for d = 1, #shape do position = position * shape[d] + index[d] - 1 end
  return position + 1
end

-- Maclaurin series; exact to double precision for the |x| < 3 used here.
function R.erf(x)
  local sum, term, n = x, x, 0
  repeat
    n = n + 1
    term = -term * x * x / n
    local add = term / (2 * n + 1)
    sum = sum + add
  until math.abs(add) < 1e-17 * math.abs(sum) or n > 200
  return 2 / math.sqrt(math.pi) * sum
end

function R.sigmoid(x) return 1 / (1 + math.exp(-x)) end

function R.tanh(x)
  if x > 20 then return 1 elseif x < -20 then return -1 end
  local e = math.exp(2 * x)
  return (e - 1) / (e + 1)
end

function R.gelu(x) return 0.5 * x * (1 + R.erf(x / math.sqrt(2))) end

function R.gelu_tanh(x) return 0.5 * x * (1 + R.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3))) end

function R.maximum(a, b)
  if is_nan(a) or is_nan(b) then return 0 / 0 end
  return math.max(a, b)
end

function R.minimum(a, b)
  if is_nan(a) or is_nan(b) then return 0 / 0 end
  return math.min(a, b)
end

-- ---- integers ----

local bits = { int32 = 32, int64 = 64, uint8 = 8 }

--- v wrapped into the range of an integer dtype (two's complement), as the
-- engine's integer arithmetic does; floats and bools pass through.
function R.wrap(v, dtype)
  if dtype == "bool" then return v ~= 0 and v ~= false end
  local n = bits[dtype]
  if not n or n == 64 then return v end
  local m = compat.lshift(1, n)
  v = compat.tointeger(v) % m
  if dtype ~= "uint8" and v >= compat.idiv(m, 2) then v = v - m end
  return v
end

--- A value converted to `dtype` as t:to(dtype) does: floats into integers
-- truncate toward zero and saturate (NaN gives 0), integers into a narrower
-- integer dtype wrap, anything into bool is ~= 0.
function R.convert(v, dtype)
  if type(v) == "boolean" then v = v and 1 or 0 end
  if dtype == "bool" then return v ~= 0 end
  if dtype == "float64" then return v + 0.0 end
  if dtype == "float32" then return binpack.unpack("<f", binpack.pack("<f", v)) end
  if compat.is_float(v) then
    if is_nan(v) then return 0 end
    local lo, hi
    if dtype == "uint8" then lo, hi = 0, 255
    elseif dtype == "int32" then lo, hi = -2147483648, 2147483647
    else lo, hi = compat.min_integer, compat.max_integer end
    if v >= 2.0 ^ (bits[dtype] - (dtype == "uint8" and 0 or 1)) then return hi end
    if v <= -(2.0 ^ 63) or v < lo then return lo end
    v = compat.tointeger(v < 0 and math.ceil(v) or math.floor(v))
    return math.max(lo, math.min(hi, v))
  end
  return R.wrap(v, dtype)
end

-- ---- reductions over lists ----

function R.sum(list)
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return s
end

function R.mean(list) return R.sum(list) / #list end

function R.max(list)
  local best = list[1]
  for i = 2, #list do best = R.maximum(best, list[i]) end
  return best
end

function R.min(list)
  local best = list[1]
  for i = 2, #list do best = R.minimum(best, list[i]) end
  return best
end

--- 0-based index of the first maximum (or the first NaN).
function R.argmax(list)
  local best = 1
  for i = 1, #list do
    if is_nan(list[i]) then return i - 1 end
    if list[i] > list[best] then best = i end
  end
  return best - 1
end

function R.argmin(list)
  local best = 1
  for i = 1, #list do
    if is_nan(list[i]) then return i - 1 end
    if list[i] < list[best] then best = i end
  end
  return best - 1
end

function R.var(correction)
  return function(list)
    local m = R.mean(list)
    local s = 0
    for _, v in ipairs(list) do s = s + (v - m) ^ 2 end
    return s / (#list - correction)
  end
end

-- ---- shapes ----

--- A 2-D table transposed.
function R.transpose(a)
  local out = {}
  for j = 1, #a[1] do
    out[j] = {}
    for i = 1, #a do out[j][i] = a[i][j] end
  end
  return out
end

--- Dims of a nested table permuted: out dim d is input dim order[d].
function R.permute(value, order)
  local flat, shape = G.flatten(value)
  local out_shape = {}
  for d, from in ipairs(order) do out_shape[d] = shape[from] end
  local out = {}
  for k = 1, G.numel(out_shape) do
    local index = G.unflatten_index(k, out_shape)
    local source = {}
    for d, from in ipairs(order) do source[from] = index[d] end
    out[k] = flat[position_of(shape, source)]
  end
  return G.nest(out, out_shape)
end

--- Applies fn to every row (innermost list) of a nested table.
function R.rows(value, fn)
  if type(value[1]) ~= "table" then return fn(value) end
  local out = {}
  for i, v in ipairs(value) do out[i] = R.rows(v, fn) end
  return out
end

--- fn over the rows along `dim` (1-based, negative from the end): the dim
-- is moved last, fn applied to each row, and moved back.
function R.along(value, dim, fn)
  local _, shape = G.flatten(value)
  local n = #shape
  if dim < 0 then dim = n + dim + 1 end
  if dim == n then return R.rows(value, fn) end
  local order, back = {}, {}
  for d = 1, n do if d ~= dim then order[#order + 1] = d end end
  order[n] = dim
  for d, from in ipairs(order) do back[from] = d end
  return R.permute(R.rows(R.permute(value, order), fn), back)
end

-- ---- linear algebra and fused ops ----

function R.matmul(a, b)
  local out = {}
  for i = 1, #a do
    out[i] = {}
    for j = 1, #b[1] do
      local s = 0
      for k = 1, #b do s = s + a[i][k] * b[k][j] end
      out[i][j] = s
    end
  end
  return out
end

--- matmul with 1-D operands and broadcast batch dims, as the engine's.
function R.matmul_nd(a, b)
  local _, sa = G.flatten(a)
  local _, sb = G.flatten(b)
  if #sa == 1 and #sb == 1 then
    local s = 0
    for i = 1, #a do s = s + a[i] * b[i] end
    return s
  end
  if #sa == 1 and #sb == 2 then return R.matmul({ a }, b)[1] end
  if #sb == 1 and #sa == 2 then
    local column = {}
    for i, v in ipairs(b) do column[i] = { v } end
    local out = {}
    for i, row in ipairs(R.matmul(a, column)) do out[i] = row[1] end
    return out
  end
  if #sa == 2 and #sb == 2 then return R.matmul(a, b) end
  local out = {}
  if #sa > #sb then
    for i = 1, #a do out[i] = R.matmul_nd(a[i], b) end
  elseif #sb > #sa then
    for i = 1, #b do out[i] = R.matmul_nd(a, b[i]) end
  else
    for i = 1, math.max(#a, #b) do out[i] = R.matmul_nd(a[#a == 1 and 1 or i], b[#b == 1 and 1 or i]) end
  end
  return out
end

-- fn(parts, dim - 1) over the i-th entries of the tables in `list`, for each i.
local function zip_along(list, dim, fn)
  local out = {}
  for i = 1, #list[1] do
    local parts = {}
    for k, t in ipairs(list) do parts[k] = t[i] end
    out[i] = fn(parts, dim - 1)
  end
  return out
end

--- Concatenation of nested tables along `dim` (1-based, negative from the end).
function R.cat(list, dim, ndim)
  if dim < 0 then dim = ndim + dim + 1 end
  if dim > 1 then return zip_along(list, dim, R.cat) end
  local out = {}
  for _, t in ipairs(list) do
    for _, v in ipairs(t) do out[#out + 1] = v end
  end
  return out
end

--- Stacking of nested tables along a new `dim`.
function R.stack(list, dim)
  if dim == 1 then return list end
  return zip_along(list, dim, R.stack)
end

--- out[...] = x[... with dim replaced by index[...] + 1] (0-based index).
function R.gather(x, dim, index)
  local flat_x, shape_x = G.flatten(x)
  local flat_i, shape_i = G.flatten(index)
  local out = {}
  for k = 1, #flat_i do
    local at = G.unflatten_index(k, shape_i)
    at[dim] = flat_i[k] + 1
    out[k] = flat_x[position_of(shape_x, at)]
  end
  return G.nest(out, shape_i)
end

--- Slices of x along `dim` picked by a list of 0-based indices.
function R.index_select(x, dim, index)
  local flat_x, shape_x = G.flatten(x)
  local shape = { compat.unpack(shape_x) }
  shape[dim] = #index
  local out = {}
  for k = 1, G.numel(shape) do
    local at = G.unflatten_index(k, shape)
    at[dim] = index[at[dim]] + 1
    out[k] = flat_x[position_of(shape_x, at)]
  end
  return G.nest(out, shape)
end

function R.softmax_row(row, log)
  local m = R.max(row)
  if m == -math.huge then m = 0 end
  local s = 0
  for _, v in ipairs(row) do s = s + math.exp(v - m) end
  local out = {}
  for j, v in ipairs(row) do out[j] = log and (v - m - math.log(s)) or math.exp(v - m) / s end
  return out
end

--- x broadcast to `shape`.
function R.expand(x, shape)
  local zeros = {}
  for k = 1, G.numel(shape) do zeros[k] = 0 end
  return G.map(function(v) return v end, x, G.nest(zeros, shape))
end

--- Layer norm (or RMS norm) of every row of a nested table.
function R.layer_norm(x, w, b, eps, rms)
  return R.rows(x, function(row)
    local m = rms and 0 or R.mean(row)
    local s = 0
    for _, v in ipairs(row) do s = s + (v - m) ^ 2 end
    local inv = 1 / math.sqrt(s / #row + eps)
    local out = {}
    for j, v in ipairs(row) do out[j] = (v - m) * inv * (w and w[j] or 1) + (b and b[j] or 0) end
    return out
  end)
end

--- x @ w^T + b over the rows of x (any leading dims), optionally gelu_tanh.
function R.linear(x, w, b, gelu)
  return R.rows(x, function(row)
    local out = {}
    for o = 1, #w do
      local acc = b and b[o] or 0
      for i = 1, #row do acc = acc + row[i] * w[o][i] end
      out[o] = gelu and R.gelu_tanh(acc) or acc
    end
    return out
  end)
end

--- Attention over packed qkv {B, T, (H + 2 KV) hd} (KV = n_kv_head, n_head
-- by default: {B, T, 3C}): softmax(q k^T / sqrt(hd)) v per head, q head h
-- reading k/v head h / (H / KV) (Hugging Face's repeat_kv), rows [first,
-- last] of each sequence (all by default), keys up to the row itself when
-- causal.
function R.attention(qkv, n_head, causal, first, last, n_kv_head)
  n_kv_head = n_kv_head or n_head
  local group = compat.idiv(n_head, n_kv_head)
  local out = {}
  for b, rows in ipairs(qkv) do
    local T = #rows
    local hd = compat.idiv(#rows[1], n_head + 2 * n_kv_head)
    local C = n_head * hd
    out[b] = {}
    for t = first or 1, last or T do
      local row = {}
      for h = 0, n_head - 1 do
        local kv = compat.idiv(h, group)
        local k_at, v_at = C + kv * hd, C + (n_kv_head + kv) * hd
        local scores = {}
        local keys = causal and t or T
        for s = 1, keys do
          local dot = 0
          for d = 1, hd do dot = dot + rows[t][h * hd + d] * rows[s][k_at + d] end
          scores[s] = dot / math.sqrt(hd)
        end
        local p = R.softmax_row(scores)
        for d = 1, hd do
          local acc = 0
          for s = 1, keys do acc = acc + p[s] * rows[s][v_at + d] end
          row[h * hd + d] = acc
        end
      end
      out[b][#out[b] + 1] = row
    end
  end
  return out
end

--- Mean cross-entropy of logits rows against 0-based targets, skipping ignore.
function R.cross_entropy(logits, targets, ignore)
  local rows = {}
  R.rows(logits, function(row) rows[#rows + 1] = row end)
  local flat_targets = G.flatten(targets)
  local total, count = 0, 0
  for i, t in ipairs(flat_targets) do
    if t ~= ignore then
      total = total - R.softmax_row(rows[i], true)[t + 1]
      count = count + 1
    end
  end
  return count > 0 and total / count or 0
end

--- AdamW steps on flat lists (decoupled weight decay, bias-corrected).
function R.adamw(p, grads, m, v, steps, o)
  p, m, v = { compat.unpack(p) }, { compat.unpack(m) }, { compat.unpack(v) }
  for k, step in ipairs(steps) do
    for i = 1, #p do
      local g = grads[k][i]
      p[i] = p[i] - o.lr * o.weight_decay * p[i]
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g
      local mhat, vhat = m[i] / (1 - o.beta1 ^ step), v[i] / (1 - o.beta2 ^ step)
      p[i] = p[i] - o.lr * mhat / (math.sqrt(vhat) + o.eps)
    end
  end
  return p, m, v
end

--- SGD steps (weight decay, momentum with dampening, Nesterov) on flat
-- lists, with a momentum buffer that is given (not started from the first
-- gradient).
function R.sgd(p, grads, buffer, o)
  p, buffer = { compat.unpack(p) }, buffer and { compat.unpack(buffer) }
  for _, g in ipairs(grads) do
    for i = 1, #p do
      local d = g[i] + (o.weight_decay or 0) * p[i]
      if o.momentum and o.momentum ~= 0 then
        buffer[i] = o.momentum * buffer[i] + (1 - (o.dampening or 0)) * d
        d = o.nesterov and d + o.momentum * buffer[i] or buffer[i]
      end
      p[i] = p[i] - o.lr * d
    end
  end
  return p, buffer
end

return R
