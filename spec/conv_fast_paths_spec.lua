-- The CPU kernels' special cases against the general ones, exactly: a stride-1 im2col whose output has the
-- input's size (one shifted copy per column row; its backward adds whole planes), checked against im2col of
-- the explicitly padded input, which takes the general path; and 2x2 max pooling at stride 2 (16 windows per
-- vector step) against a scalar reference, with ties, NaN and infinities, values and gradients.
local tc = require("tricycle")
local compat = require("tricycle.compat")
local unpack = compat.unpack

-- The largest absolute difference of two tensors of the same shape.
local function max_difference(a, b)
  assert.are.same(a.shape, b.shape)
  return (a - b):abs():max():item()
end

describe("stride-1 'same' im2col and its backward", function()
  -- {kH, kW, padH, padW, dilationH, dilationW}: each keeps the output the input's size
  local kernels = { { 3, 3, 1, 1, 1, 1 }, { 1, 3, 0, 1, 1, 1 }, { 3, 1, 1, 0, 1, 1 }, { 3, 3, 2, 2, 2, 2 },
    { 5, 5, 2, 2, 1, 1 }, { 3, 5, 1, 4, 1, 2 } }
  for _, dtype in ipairs({ "float32", "float64" }) do
    it("equals im2col of the padded input, " .. dtype, function()
      tc.manual_seed(1)
      local checked = 0
      for _, height in ipairs({ 1, 2, 5, 16, 17 }) do
        for _, width in ipairs({ 1, 3, 8, 15, 16, 17, 33 }) do
          for _, k in ipairs(kernels) do
            local kh, kw, ph, pw, dh, dw = unpack(k)
            for _, pad_value in ipairs({ 0, -1.5 }) do
              local x = tc.randn({ 2, 3, height, width }, { dtype = dtype, requires_grad = true })
              local cols = tc.im2col(x, { kernel_size = { kh, kw }, padding = { ph, pw },
                dilation = { dh, dw }, pad_value = pad_value, batch_last = true })
              assert.are.same({ 3 * kh * kw, 2 * height * width }, cols.shape)
              local padded = tc.randn({ 2, 3, height, width }, { dtype = dtype, requires_grad = true })
              padded.data = x:detach():clone()
              local reference = tc.im2col(tc.pad(padded, { pw, pw, ph, ph }, pad_value),
                { kernel_size = { kh, kw }, dilation = { dh, dw }, batch_last = true })
              assert.are.equal(0, max_difference(cols, reference))
              -- the backward sums in the same order, so the gradients agree exactly too
              local grad = tc.randn(cols.shape, { dtype = dtype })
              cols:backward(grad)
              reference:backward(grad)
              assert.are.equal(0, max_difference(x.grad, padded.grad))
              checked = checked + 1
            end
          end
        end
      end
      assert.are.equal(5 * 7 * #kernels * 2, checked)
    end)
  end

  it("drops the gradient of positions outside the image, NaN included", function()
    local x = tc.zeros({ 1, 1, 4, 20 }, { requires_grad = true })
    local cols = tc.im2col(x, { kernel_size = 3, padding = 1, batch_last = true })
    -- column row 3 is kernel offset (1, 0): its output (1, 0) reads column -1, outside x; a NaN there
    -- must not reach x's (0, 19), the position a plane-wide shift would wrap it onto
    local where = tc.arange(0, cols:numel()):reshape(cols.shape)
    local grad = tc.where(where:eq(3 * 80 + 20), tc.full(cols.shape, 0 / 0), tc.ones(cols.shape))
    cols:backward(grad)
    local values = x.grad:totable()[1][1]
    for i = 1, 4 do
      for j = 1, 20 do
        local windows = 0
        for di = -1, 1 do
          for dj = -1, 1 do
            if i + di >= 1 and i + di <= 4 and j + dj >= 1 and j + dj <= 20 then windows = windows + 1 end
          end
        end
        assert.are.equal(windows, values[i][j])
      end
    end
  end)
end)

describe("2x2 max pooling at stride 2", function()
  for _, dtype in ipairs({ "float32", "float64" }) do
    it("takes each window's max, the first of ties, NaN over numbers, " .. dtype, function()
      tc.manual_seed(2)
      local bad, checked = 0, 0
      for _, height in ipairs({ 2, 3, 5, 9 }) do
        for _, width in ipairs({ 2, 3, 7, 16, 17, 33, 64 }) do
          -- small integers give ties; some +inf and some NaN
          local base = tc.randint(0, 3, { 2, 2, height, width }):to(dtype)
          local noise = tc.rand({ 2, 2, height, width }):to(dtype)
          local x = tc.where(noise:lt(0.1), base + math.huge, base)
          x = tc.where(noise:gt(0.95), x * 0 + (0 / 0), x)
          local values = x:totable()
          x.requires_grad = true
          local y = tc.max_pool2d(x, { kernel_size = 2 })
          local grad = tc.arange(1, y:numel() + 1):to(dtype):reshape(y.shape)
          y:backward(grad)
          local got, dx, g = y:totable(), x.grad:totable(), grad:totable()
          for n = 1, 2 do
            for c = 1, 2 do
              for oh = 1, math.floor(height / 2) do
                for ow = 1, math.floor(width / 2) do
                  local best, bi, bj
                  for i = 0, 1 do
                    for j = 0, 1 do
                      local v = values[n][c][2 * oh - 1 + i][2 * ow - 1 + j]
                      if not best or v > best or (v ~= v and best == best) then best, bi, bj = v, i, j end
                    end
                  end
                  local value = got[n][c][oh][ow]
                  if not (value == best or (value ~= value and best ~= best)) then bad = bad + 1 end
                  if dx[n][c][2 * oh - 1 + bi][2 * ow - 1 + bj] ~= g[n][c][oh][ow] then bad = bad + 1 end
                  checked = checked + 1
                end
              end
            end
          end
        end
      end
      assert.are.equal(0, bad)
      assert.are.equal(4 * 8 * 69, checked)
    end)
  end
end)
