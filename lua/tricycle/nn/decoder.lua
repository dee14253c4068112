--- What the decoder-only models (nn.GPT, nn.Llama) share: the dtype of
-- their activations and the checks of their token ids and of a key/value
-- cache from model:new_cache. Each check names the model (`name`) and
-- raises at `level`, as for error().
local compat = require("tricycle.compat")
local core = require("tricycle.core")
local Module = require("tricycle.nn.module")

local shape_string = Module.shape_string

local decoder = {}

-- Activations (and the key/value cache) are float32 under 16-bit weights:
-- the ops read the 16-bit weights and compute in float32.
local sixteen_bit = { bfloat16 = true, float16 = true }

--- The dtype of the activations of a model whose weights are like `weight`.
function decoder.activation_dtype(weight)
  return sixteen_bit[weight.dtype] and "float32" or weight.dtype
end

--- Whether x (the embedded tokens) must be widened to float32 first.
function decoder.is_16bit(x)
  return sixteen_bit[x.dtype] == true
end

local integer_dtypes = { int64 = true, int32 = true }

--- Checks token ids: an int64 or int32 tensor [B, T]. Returns its shape.
function decoder.check_ids(name, ids, level)
  if getmetatable(ids) ~= core.Tensor then
    error(("%s: ids must be an integer tensor [B, T], got %s"):format(name, type(ids)), level + 1)
  end
  if not integer_dtypes[ids.dtype] then
    error(("%s: ids must be int64 or int32 token ids, got dtype %s"):format(name, ids.dtype), level + 1)
  end
  local shape = ids.shape
  if #shape ~= 2 then
    error(("%s: ids must be [B, T], got shape %s"):format(name, shape_string(shape)), level + 1)
  end
  return shape
end

--- Checks the table of a cache: a table with an integer position >= 0 and
-- one {k =, v =} per layer (`layers`); a tampered or foreign cache would
-- otherwise run some layers without it, or fail deep inside with a message
-- about something else. Returns the position.
function decoder.check_cache_table(name, cache, layers, level)
  if type(cache) ~= "table" then
    error(("%s: options.cache must be a cache made by model:new_cache(batch_size), got %s"):format(name,
      type(cache)), level + 1)
  end
  local position = cache.position
  if not compat.is_integer(position) or position < 0 then
    error(("%s: cache.position must be a non-negative integer (the positions already cached), got %s"):format(
      name, tostring(position)), level + 1)
  end
  local found = type(cache.layers) == "table" and #cache.layers or type(cache.layers)
  if found ~= layers then
    error(("%s: cache.layers must hold one {k =, v =} per layer (%d), got %s; make the cache with "
      .. "model:new_cache"):format(name, layers, tostring(found)), level + 1)
  end
  return position
end

--- Checks every k and v of cache.layers: a tensor of shape `want` (whose
-- first size is the batch; `layout` names the sizes) in the activation
-- dtype of `weight`, on its device.
function decoder.check_cache_tensors(name, cache, want, layout, weight, level)
  local batch, want_text = want[1], shape_string(want)
  local dtype = decoder.activation_dtype(weight)
  for i, layer in ipairs(cache.layers) do
    for _, key in ipairs({ "k", "v" }) do
      local t = type(layer) == "table" and layer[key] or nil
      if getmetatable(t) ~= core.Tensor then
        error(("%s: cache.layers[%d].%s must be a tensor, got %s"):format(name, i, key, type(t)), level + 1)
      end
      local shape = t.shape
      if shape[1] ~= batch and #shape == 4 then
        error(("%s: the cache holds batch size %d, the input has %d (cache.layers[%d].%s has shape %s)"):format(
          name, shape[1], batch, i, key, shape_string(shape)), level + 1)
      end
      local have = shape_string(shape)
      if have ~= want_text then
        error(("%s: cache.layers[%d].%s has shape %s, expected %s (%s)"):format(name, i, key, have, want_text,
          layout), level + 1)
      end
      if t.dtype ~= dtype or t.device ~= weight.device then
        error(("%s: cache.layers[%d].%s is %s on %s, the model's activations %s on %s"):format(name, i, key,
          t.dtype, t.device, dtype, weight.device), level + 1)
      end
    end
  end
end

return decoder
