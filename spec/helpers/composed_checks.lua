-- The checks of tricycle.composed (creation functions, shape methods) on one device, against plain-Lua
-- references: spec/composed_spec.lua runs them on the CPU, spec/cuda_emulation_spec.lua on the cuda device.
-- Every shape method is linear in its input, so its gradient is checked exactly: the gradient of
-- sum(out * g) for an upstream g is compared with central differences of step 1 in float64.
local assert = require("luassert")
local tc = require("tricycle")

local M = {}

local function on(device, t)
  return device == "cpu" and t or t:to(device)
end

local function values(t)
  return t:to("cpu"):totable()
end

-- A float64 tensor of the shape, 1, 2, 3, ... on the device, requiring grad.
local function counting(device, shape)
  local n = 1
  for _, size in ipairs(shape) do
    n = n * size
  end
  return on(device, tc.arange(1, n + 1):to("float64"):reshape(shape)):detach():requires_grad_(true)
end

-- The gradient of sum(fn(x) * g) against central differences; fn(x) may return a list of tensors.
local function check_gradient(device, shape, fn)
  local function outputs(x)
    local out = fn(x)
    return tc.Tensor == getmetatable(out) and { out } or out
  end
  local x = counting(device, shape)
  local upstream = {}
  local loss
  for i, out in ipairs(outputs(x)) do
    upstream[i] = on(device, tc.randn(out.shape, { dtype = "float64" }))
    local term = (out * upstream[i]):sum()
    loss = loss and loss + term or term
  end
  loss:backward()
  local got = values(x.grad:reshape({ -1 }))
  local function value_at(flat)
    local total = 0
    local probe = on(device, tc.tensor(flat, { dtype = "float64" }):reshape(shape))
    for i, out in ipairs(outputs(probe)) do
      total = total + (out * upstream[i]):sum():item()
    end
    return total
  end
  local base = values(x:detach():reshape({ -1 }))
  for i = 1, #base do
    local up, down = {}, {}
    for j, v in ipairs(base) do
      up[j], down[j] = v, v
    end
    up[i], down[i] = base[i] + 1, base[i] - 1
    local expected = (value_at(up) - value_at(down)) / 2
    assert.is_true(math.abs(expected - got[i]) <= 1e-9 * (1 + math.abs(expected)),
      ("gradient %d: %.17g by autograd, %.17g by differences"):format(i, got[i], expected))
  end
end

function M.check(device)
  local a = on(device, tc.arange(10):reshape({ 2, 5 }))
  local square = on(device, tc.arange(16):reshape({ 4, 4 }))

  -- creation: the *_like functions keep the device
  local x = on(device, tc.randn({ 2, 3 }, { dtype = "float64" }))
  assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, values(tc.zeros_like(x)))
  assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, values(tc.ones_like(x, { dtype = "int32" })))
  assert.are.same({ { 7, 7, 7 }, { 7, 7, 7 } }, values(tc.full_like(x, 7)))
  local made_like = { tc.zeros_like(x), tc.empty_like(x), tc.rand_like(x), tc.randn_like(x), tc.full_like(x, 1) }
  for _, made in ipairs(made_like) do
    assert.are.equal(device, made.device)
    assert.are.equal("float64", made.dtype)
    assert.are.same({ 2, 3 }, made.shape)
  end
  assert.is_true(tc.ones_like(x, { requires_grad = true }).requires_grad)

  -- split, chunk, unbind: views, with the references' slices
  local pieces = a:split(2, 2)
  assert.are.equal(3, #pieces)
  assert.are.same({ { 0, 1 }, { 5, 6 } }, values(pieces[1]))
  assert.are.same({ { 4 }, { 9 } }, values(pieces[3]))
  pieces = a:split({ 1, 4 }, -1)
  assert.are.same({ { 1, 2, 3, 4 }, { 6, 7, 8, 9 } }, values(pieces[2]))
  assert.are.equal(2, #a:chunk(3, 1))
  assert.are.same({ 2, 2, 1 }, { a:chunk(3, 2)[1]:size(2), a:chunk(3, 2)[2]:size(2), a:chunk(3, 2)[3]:size(2) })
  local slices = a:unbind(2)
  assert.are.equal(5, #slices)
  assert.are.same({ 3, 8 }, values(slices[4]))
  assert.are.same({ { 0, 5 }, { 1, 6 }, { 2, 7 }, { 3, 8 }, { 4, 9 } }, values(a:t()))

  -- flip, tril, triu
  assert.are.same({ { 4, 3, 2, 1, 0 }, { 9, 8, 7, 6, 5 } }, values(a:flip(2)))
  assert.are.same({ { 9, 8, 7, 6, 5 }, { 4, 3, 2, 1, 0 } }, values(a:flip({ 1, -1 })))
  local function triangle_reference(k, lower)
    local rows = {}
    for r = 0, 3 do
      rows[r + 1] = {}
      for c = 0, 3 do
        local keep = lower and c - r <= k or not lower and c - r >= k
        rows[r + 1][c + 1] = keep and r * 4 + c or 0
      end
    end
    return rows
  end
  for _, k in ipairs({ -5, -1, 0, 2, 5 }) do
    assert.are.same(triangle_reference(k, true), values(square:tril(k)))
    assert.are.same(triangle_reference(k, false), values(square:triu(k)))
  end
  assert.are.same({ 2, 4, 4 }, square:expand({ 2, 4, 4 }):tril().shape)

  -- tile / repeat and pad
  assert.are.same({ { 1, 2, 1, 2 }, { 1, 2, 1, 2 } }, values(on(device, tc.tensor({ 1, 2 })):tile(2, 2)))
  assert.are.same({ 2, 2, 10 }, a["repeat"](a, 2, 1, 2).shape)
  assert.are.same({ 0, 10 }, a:tile(0, 2).shape)
  local m = on(device, tc.tensor({ { 1, 2 }, { 3, 4 } }))
  assert.are.same({ { 0, 1, 2, 0, 0 }, { 0, 3, 4, 0, 0 } }, values(m:pad({ 1, 2 })))
  assert.are.same({ { -1, -1 }, { 1, 2 }, { 3, 4 } }, values(tc.pad(m, { 0, 0, 1, 0 }, -1)))
  assert.are.same({ 2, 3, 4, 0 }, values(on(device, tc.tensor({ 1, 2, 3, 4 })):pad({ -1, 1 })))

  -- gradients
  check_gradient(device, { 2, 3 }, function(t) return t:flip({ 1, 2 }) end)
  check_gradient(device, { 3, 3 }, function(t) return t:tril(-1) + t:triu(1) * 2 end)
  check_gradient(device, { 2, 3 }, function(t) return t:tile(2, 1, 2) end)
  check_gradient(device, { 2, 3 }, function(t) return t:pad({ 1, -1, 2, 0 }, 3) end)
  check_gradient(device, { 2, 5 }, function(t) return t:split({ 2, 3 }, 2) end)
  check_gradient(device, { 3, 2 }, function(t) return t:unbind(1) end)
  check_gradient(device, { 2, 3 }, function(t) return t:t() end)
end

return M
