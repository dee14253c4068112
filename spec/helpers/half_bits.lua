--- Comparing 16-bit tensors by their bits (bfloat16 and float16): the CUDA
-- 16-bit kernel specs hold results to the widening path's and the CPU's bits.
local assert = require("luassert")

local half_bits = {}

local function words_of(t)
  local bytes, words = t:cpu():contiguous():tobytes(), {}
  for i = 1, #bytes, 2 do words[#words + 1] = bytes:byte(i) + 256 * bytes:byte(i + 1) end
  return words
end

local function is_nan(word, dtype)
  local magnitude = word % 32768
  if dtype == "bfloat16" then return magnitude > 0x7F80 end
  return magnitude > 0x7C00
end

-- Words in the order of the values they hold (-0 and +0 both 0), so that
-- neighbouring values are one apart.
local function ordinal(word)
  if word >= 32768 then return -(word - 32768) end
  return word
end

--- expected and actual (tensors of one 16-bit dtype) hold the same values
-- within `ulps` (0: the same bits), any two NaNs counting as equal.
function half_bits.agree(expected, actual, ulps, label)
  assert.are.equal(expected.dtype, actual.dtype, label .. ": dtypes")
  assert.are.same(expected.shape, actual.shape, label .. ": shapes")
  local a, b = words_of(expected), words_of(actual)
  for i = 1, #a do
    local nan_a, nan_b = is_nan(a[i], expected.dtype), is_nan(b[i], expected.dtype)
    local ok
    if nan_a or nan_b then ok = nan_a and nan_b
    elseif ulps == 0 then ok = a[i] == b[i]
    else ok = math.abs(ordinal(a[i]) - ordinal(b[i])) <= ulps end
    if not ok then
      error(("%s: element %d is 0x%04x, expected 0x%04x (%s, within %d ulp)"):format(label, i, b[i], a[i],
        expected.dtype, ulps), 2)
    end
  end
end

return half_bits
