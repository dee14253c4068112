--- nn.MultiheadAttention(embed_dim, num_heads, {dropout = 0, bias = true,
-- kdim = embed_dim, vdim = embed_dim, batch_first = false, dtype =}):
-- PyTorch's general attention over query, key and value, with its parameter
-- names (in_proj_weight, or q/k/v_proj_weight when kdim or vdim differ from
-- embed_dim; in_proj_bias; out_proj.weight and .bias), so its state_dict
-- loads here as it is.
--
--   local output, weights = mha(query, key, value, {key_padding_mask =, attn_mask =,
--                                                   need_weights = true, average_attn_weights = true})
--
-- query [L, N, E], key [S, N, kdim], value [S, N, vdim] ([N, L, E] ... with
-- batch_first; [L, E] ... unbatched). key_padding_mask [N, S] and attn_mask
-- [L, S] or [N * num_heads, L, S]: a bool mask is true where attention is
-- not allowed, a float mask is added to the scores. Returns the output (the
-- query's layout) and the attention weights [N, L, S] averaged over the
-- heads ([N, num_heads, L, S] when not averaged; nil unless need_weights),
-- after dropout as PyTorch's are. A query row whose keys are all masked
-- gives NaN, as PyTorch's does.
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")
local layers = require("tricycle.nn.layers")
local check_options = require("tricycle.options").check_options
local errors = require("tricycle.errors")

local shape_string = Module.shape_string

local MultiheadAttention = Module:extend("MultiheadAttention")

local NAME = "MultiheadAttention"

local function fail(format, ...)
  errors.raise(format:format(...))
end

local function check_positive(argument, value)
  if not compat.is_integer(value) or value <= 0 then
    error(("%s: %s must be a positive integer, got %s"):format(NAME, argument, tostring(value)), 4)
  end
end

function MultiheadAttention:init(embed_dim, num_heads, options)
  check_positive("embed_dim", embed_dim)
  check_positive("num_heads", num_heads)
  options = layers.check_layer_options(NAME, options, { "dropout", "bias", "kdim", "vdim", "batch_first", "dtype" },
    2)
  if embed_dim % num_heads ~= 0 then
    error(("%s: embed_dim %d is not divisible by num_heads %d"):format(NAME, embed_dim, num_heads), 3)
  end
  local dropout = options.dropout == nil and 0 or options.dropout
  if type(dropout) ~= "number" or not (dropout >= 0 and dropout < 1) then
    error(("%s: option dropout must be a number in [0, 1), got %s"):format(NAME, tostring(options.dropout)), 3)
  end
  if options.batch_first ~= nil and type(options.batch_first) ~= "boolean" then
    error(("%s: option batch_first must be a boolean, got %s"):format(NAME, tostring(options.batch_first)), 3)
  end
  local kdim, vdim = options.kdim or embed_dim, options.vdim or embed_dim
  check_positive("option kdim", kdim)
  check_positive("option vdim", vdim)
  self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, compat.idiv(embed_dim, num_heads)
  self.kdim, self.vdim, self.dropout, self.batch_first = kdim, vdim, dropout, options.batch_first or false
  local dtype = (options.dtype == "float64" or options.dtype == "double") and "float64" or "float32"
  -- Xavier-uniform projections and zero biases, as PyTorch initialises them.
  local function xavier(rows, columns)
    return layers.parameter({ rows, columns }, dtype, layers.uniform(math.sqrt(6 / (rows + columns))))
  end
  self.separate = kdim ~= embed_dim or vdim ~= embed_dim
  if self.separate then
    self.q_proj_weight = xavier(embed_dim, embed_dim)
    self.k_proj_weight = xavier(embed_dim, kdim)
    self.v_proj_weight = xavier(embed_dim, vdim)
  else
    self.in_proj_weight = xavier(3 * embed_dim, embed_dim)
  end
  if options.bias ~= false then
    self.in_proj_bias = layers.parameter({ 3 * embed_dim }, dtype, layers.constant(0))
  end
  self.out_proj = layers.Linear(embed_dim, embed_dim, { bias = options.bias, dtype = dtype })
  if self.out_proj.bias then
    layers.reset(self.out_proj.bias, layers.constant(0))
  end
end

-- The batch-first [N, T, D] form of an input in the module's layout, after
-- checking its rank and last dim.
local function batch_first_of(self, argument, x, width, unbatched)
  layers.check_input(NAME, x)
  local want = unbatched and 2 or 3
  if x:dim() ~= want or x.shape[want] ~= width then
    fail("%s: %s has shape %s, expected %d dims ending in %d (%s)", NAME, argument, shape_string(x.shape), want, width,
      unbatched and "[T, D]" or (self.batch_first and "[N, T, D] (batch_first)" or "[T, N, D]"))
  end
  if unbatched then
    return x:reshape({ 1, x.shape[1], x.shape[2] })
  end
  return self.batch_first and x or x:transpose(1, 2)
end

-- Applies a mask to scores [N, H, L, S]: a bool one fills -inf where true,
-- a float one is added.
local function apply_mask(scores, mask, view)
  mask = mask:reshape(view)
  if mask.dtype == "bool" then
    return scores:masked_fill(mask, -math.huge)
  end
  return scores + mask
end

local function check_mask(argument, mask, scores_dtype, shapes)
  if getmetatable(mask) ~= core.Tensor then
    fail("%s: option %s must be a tensor, got %s", NAME, argument, type(mask))
  end
  if mask.dtype ~= "bool" and mask.dtype ~= scores_dtype then
    fail("%s: option %s must be bool or %s (the query's dtype), got %s", NAME, argument, scores_dtype, mask.dtype)
  end
  local have = shape_string(mask.shape)
  for _, shape in ipairs(shapes) do
    if have == shape_string(shape) then
      return shape
    end
  end
  local wanted = {}
  for i, shape in ipairs(shapes) do
    wanted[i] = shape_string(shape)
  end
  fail("%s: option %s has shape %s, expected %s", NAME, argument, have, table.concat(wanted, " or "))
end

function MultiheadAttention:forward(query, key, value, options)
  if options ~= nil and type(options) ~= "table" then
    fail("%s: options must be a table, got %s", NAME, type(options))
  end
  check_options(NAME, options, { "key_padding_mask", "attn_mask", "need_weights", "average_attn_weights" }, 2)
  options = options or {}
  layers.check_input(NAME, query)
  local unbatched = query:dim() == 2
  local q_in = batch_first_of(self, "query", query, self.embed_dim, unbatched)
  local k_in = batch_first_of(self, "key", key, self.kdim, unbatched)
  local v_in = batch_first_of(self, "value", value, self.vdim, unbatched)
  local N, L, S = q_in.shape[1], q_in.shape[2], k_in.shape[2]
  if k_in.shape[1] ~= N or v_in.shape[1] ~= N or v_in.shape[2] ~= S then
    fail("%s: query %s, key %s and value %s do not agree on the batch and the key length", NAME,
      shape_string(query.shape), shape_string(key.shape), shape_string(value.shape))
  end
  local E, H, D = self.embed_dim, self.num_heads, self.head_dim
  local bias = self.in_proj_bias
  local function project(x, k, weight)
    local b = bias and bias:narrow(1, (k - 1) * E + 1, E) or nil
    if not weight then
      weight = self.in_proj_weight:narrow(1, (k - 1) * E + 1, E)
    end
    return core.linear(x, weight, b)
  end
  local q = project(q_in, 1, self.q_proj_weight)
  local k = project(k_in, 2, self.k_proj_weight)
  local v = project(v_in, 3, self.v_proj_weight)
  -- [N, T, E] -> [N, H, T, D]
  local function heads(x, T)
    return x:reshape({ N, T, H, D }):permute({ 1, 3, 2, 4 })
  end
  q, k, v = heads(q, L), heads(k, S), heads(v, S)
  local scores = q:matmul(k:transpose(3, 4)) * (1 / math.sqrt(D))
  if options.attn_mask ~= nil then
    local shape = check_mask("attn_mask", options.attn_mask, scores.dtype, { { L, S }, { N * H, L, S } })
    scores = apply_mask(scores, options.attn_mask, #shape == 2 and { 1, 1, L, S } or { N, H, L, S })
  end
  if options.key_padding_mask ~= nil then
    check_mask("key_padding_mask", options.key_padding_mask, scores.dtype, { unbatched and { S } or { N, S } })
    scores = apply_mask(scores, options.key_padding_mask, { N, 1, 1, S })
  end
  local weights = scores:softmax(-1)
  if self.dropout > 0 and self.training then
    weights = weights:dropout(self.dropout, true)
  end
  local out = weights:matmul(v):permute({ 1, 3, 2, 4 }):reshape({ N, L, E })
  out = self.out_proj(out)
  if unbatched then
    out = out:reshape({ L, E })
  elseif not self.batch_first then
    out = out:transpose(1, 2):contiguous()
  end
  if options.need_weights == false then
    return out, nil
  end
  if options.average_attn_weights ~= false then
    weights = weights:mean(2)
    if unbatched then
      weights = weights:reshape({ L, S })
    end
  elseif unbatched then
    weights = weights:reshape({ H, L, S })
  end
  return out, weights
end

function MultiheadAttention:extra_repr()
  return ("embed_dim=%d, num_heads=%d%s%s"):format(self.embed_dim, self.num_heads,
    self.separate and (", kdim=%d, vdim=%d"):format(self.kdim, self.vdim) or "",
    self.batch_first and ", batch_first" or "")
end

return MultiheadAttention
