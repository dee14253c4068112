-- One side of bench/conv_bench.lua in its own process: the small CNN training step of bench/torch_cnn.py
-- (forward, cross-entropy, backward, SGD lr 0.01; batch 64 of 32x32x3 random images; conv 3->32->64->64,
-- 3x3 padding 1, ReLU, 2x2 max-pool after the first two, a linear layer to 10), timed the same way and
-- printed as one JSON line with the same fields.
--
--   lua5.4 bench/conv_line.lua --threads 1 --steps 20 [--warmup 3] [--batch 64]
local here = arg[0]:match("^(.*)/") or "."
local common = dofile(here .. "/common.lua")
local tc = common.tricycle()
local clock = common.clock_for(tc)

local program = common.program({
  name = "conv_line", usage = "lua5.4 bench/conv_line.lua --threads N [--steps 20 --warmup 3 --batch 64]",
  description = "One line of bench/conv_bench.lua, printed as one JSON line.",
  options = {
    { name = "threads", type = "integer", default = 2, help = "engine threads" },
    { name = "steps", type = "integer", default = 20, help = "timed training steps" },
    { name = "warmup", type = "integer", default = 3, help = "steps before the timed ones" },
    { name = "batch", type = "integer", default = 64, help = "images per step" },
  },
})
local options = program:parse(arg)
for _, key in ipairs({ "threads", "steps", "batch" }) do
  if options[key] < 1 then program:fail_usage(("--%s must be positive, got %d"):format(key, options[key])) end
end
tc.set_num_threads(options.threads)
tc.manual_seed(0)

local nn, optim = require("tricycle.nn"), require("tricycle.optim")
local model = nn.Sequential(
  nn.Conv2d(3, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(64, 64, 3, { padding = 1 }), nn.ReLU(),
  nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
local optimizer = optim.SGD(model:parameters(), { lr = 0.01 })
local x = tc.randn({ options.batch, 3, 32, 32 })
local y = tc.randint(0, 10, { options.batch })

local times, loss = {}, nil
for step = 1, options.warmup + options.steps do
  local start = clock()
  optimizer:zero_grad()
  loss = nn.cross_entropy(model(x), y)
  loss:backward()
  optimizer:step()
  local elapsed = (clock() - start) * 1000
  if step > options.warmup then times[#times + 1] = elapsed end
end
table.sort(times)
local n = #times
local median = n % 2 == 1 and times[(n + 1) / 2] or (times[n / 2] + times[n / 2 + 1]) / 2
print(tc.json_encode({ system = "tricycle", threads = tc.num_threads(), median_ms = median, min_ms = times[1],
  max_ms = times[n], steps = n, loss = loss:item() }))
