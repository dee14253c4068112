-- A child process of spec/autocast_spec.lua, run in a fresh context (so that TRICYCLE_BGEMM, read when a context is
-- made, takes effect, and the memory peak is this process's own). Prints "key value" lines:
--   path: the bf16 GEMM's path (tc.bgemm_path());
--   linear_error: autocast linear against float32 linear on bf16-rounded operands (forward and both gradients);
--   peak_rise: bytes the memory peak rose to above what was in use, over three autocast linears with one weight,
--     at one thread;
--   weight_bytes: that weight's float32 bytes.
local tc = require("tricycle")
tc.manual_seed(7)

local function rounded(t) return t:to("bfloat16"):to("float32") end
local function max_difference(a, b) return (a - b):abs():max():item() end
local function scale(t) return t:abs():max():item() end

local x, w, b = tc.randn({48, 200}), tc.randn({72, 200}), tc.randn({72})
local g = tc.randn({48, 72})
local xr, wr, gr = rounded(x), rounded(w), rounded(g)
local reference = tc.linear(xr, wr, b)
local dx_reference = gr:matmul(wr)
local dw_reference = gr:transpose(1, 2):matmul(xr)
local xl, wl = x:clone():requires_grad_(), w:clone():requires_grad_()
local out = tc.autocast("bfloat16", function() return tc.linear(xl, wl, b) end)
out:backward(g)
local error = math.max(max_difference(out, reference), max_difference(xl.grad, dx_reference),
  max_difference(wl.grad, dw_reference))
print(("linear_error %.9g"):format(error))
print("path " .. tc.bgemm_path())

-- bf16 weights, 1 to 5 rows of x (GEMVs up to 4): against float32 on the rounded operands, relative to the scale
local weight_error = 0
for rows = 1, 5 do
  for _, k in ipairs({ 5, 32, 45 }) do
    local w, xs = tc.randn({ 7, k }), tc.randn({ rows, k })
    local reference = tc.linear(rounded(xs), rounded(w))
    local got = tc.no_grad(function() return tc.linear(xs, w:to("bfloat16")) end)
    weight_error = math.max(weight_error, max_difference(got, reference) / scale(reference))
  end
end
print(("weight_error %.9g"):format(weight_error))

tc.set_num_threads(1)
local big = tc.randn({1024, 2048})
local rows = tc.randn({16, 2048})
collectgarbage()
local in_use_before = tc.memory()
tc.autocast("bfloat16", function()
  for _ = 1, 3 do
    tc.linear(rows, big)
  end
end)
local _, after = tc.memory()
print(("peak_rise %d"):format(after - in_use_before))
print(("weight_bytes %d"):format(1024 * 2048 * 4))
