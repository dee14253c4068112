--- A policy learning to balance a pole on a cart, in real time: a batch of
-- carts runs the policy a few physics steps per frame (as many as the
-- frame's time budget allows); when every cart of the batch has fallen or
-- lasted MAX_STEPS, one REINFORCE update (returns-to-go, normalised,
-- weighting log-probabilities of the actions taken) trains the network with
-- AdamW, and a new batch starts. The classic cart-pole physics (Barto,
-- Sutton and Anderson, 1983): a pole falls past 12 degrees, the cart leaves
-- the track past 2.4 m.
local Balance = {}
Balance.__index = Balance

local GRAVITY, CART_MASS, POLE_MASS, HALF_LENGTH = 9.8, 1.0, 0.1, 0.5
local FORCE, TAU = 10.0, 0.02
local THETA_LIMIT, X_LIMIT = 12 * math.pi / 180, 2.4
local MAX_STEPS, GAMMA = 300, 0.99

local function physics_step(s, push_right)
  local x, x_dot, theta, theta_dot = s[1], s[2], s[3], s[4]
  local force = push_right and FORCE or -FORCE
  local cos, sin = math.cos(theta), math.sin(theta)
  local total = CART_MASS + POLE_MASS
  local temp = (force + POLE_MASS * HALF_LENGTH * theta_dot * theta_dot * sin) / total
  local theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4 / 3 - POLE_MASS * cos * cos / total))
  local x_acc = temp - POLE_MASS * HALF_LENGTH * theta_acc * cos / total
  return { x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc }
end

local function fallen(s)
  return math.abs(s[1]) > X_LIMIT or math.abs(s[3]) > THETA_LIMIT
end

--- options: carts (16), hidden (32), lr (0.01), seed (1).
function Balance.new(tc, options)
  options = options or {}
  require("tricycle.options").check_options("Balance.new", options, { "carts", "hidden", "lr", "seed" })
  tc.manual_seed(options.seed or 1)
  local nn = tc.nn
  local policy = nn.Sequential(nn.Linear(4, options.hidden or 32), nn.Tanh(), nn.Linear(options.hidden or 32, 2))
  local self = setmetatable({
    tc = tc, policy = policy, optimizer = tc.optim.AdamW(policy:parameters(), { lr = options.lr or 0.01,
      weight_decay = 0 }),
    carts = options.carts or 16, updates = 0, history = {}, random = love and love.math.newRandomGenerator(7),
  }, Balance)
  self:new_batch()
  return self
end

function Balance:new_batch()
  self.states, self.trails, self.done, self.steps = {}, {}, {}, 0
  for i = 1, self.carts do
    local r = function() return (self.random:random() - 0.5) * 0.1 end
    self.states[i] = { r(), r(), r(), r() }
    self.trails[i] = {}
    self.done[i] = false
  end
end

-- One physics step of every cart still up, the policy's actions sampled
-- from one batched forward pass.
function Balance:step()
  local tc, rows, live = self.tc, {}, {}
  for i = 1, self.carts do
    if not self.done[i] then
      rows[#rows + 1] = self.states[i]
      live[#live + 1] = i
    end
  end
  local probabilities
  do
    local previous = tc.is_grad_enabled()
    tc.set_grad_enabled(false)
    local ok, result = pcall(function() return self.policy(tc.tensor(rows)):softmax(2):totable() end)
    tc.set_grad_enabled(previous)
    if not ok then
      error(result, 0)
    end
    probabilities = result
  end
  for k, i in ipairs(live) do
    local right = self.random:random() < probabilities[k][2]
    local trail = self.trails[i]
    trail[#trail + 1] = { state = self.states[i], action = right and 1 or 0 }
    self.states[i] = physics_step(self.states[i], right)
    if fallen(self.states[i]) or #trail >= MAX_STEPS then
      self.done[i] = true
    end
  end
  self.steps = self.steps + 1
end

-- REINFORCE over the finished batch: loss = -mean(advantage * log pi(action | state)).
function Balance:learn()
  local tc = self.tc
  local states, actions, returns, total_length = {}, {}, {}, 0
  for i = 1, self.carts do
    local trail, g = self.trails[i], 0
    local first = #states
    for t = #trail, 1, -1 do
      g = 1 + GAMMA * g
      states[first + t], actions[first + t], returns[first + t] = trail[t].state, trail[t].action, g
    end
    total_length = total_length + #trail
  end
  local n, mean, variance = #returns, 0, 0
  for _, g in ipairs(returns) do
    mean = mean + g / n
  end
  for _, g in ipairs(returns) do
    variance = variance + (g - mean) ^ 2 / n
  end
  local scale = 1 / (math.sqrt(variance) + 1e-6)
  local advantages, action_rows = {}, {}
  for k = 1, n do
    advantages[k] = (returns[k] - mean) * scale
    action_rows[k] = { actions[k] }
  end
  local log_probabilities = self.policy(tc.tensor(states)):log_softmax(2)
  local taken = log_probabilities:gather(2, tc.tensor(action_rows, { dtype = "int64" })):reshape({ n })
  local loss = -(taken * tc.tensor(advantages)):mean()
  self.optimizer:zero_grad()
  loss:backward()
  self.optimizer:step()
  self.updates = self.updates + 1
  self.history[#self.history + 1] = total_length / self.carts
end

--- Runs physics steps until budget_seconds have passed; learns and starts a
-- new batch when every cart is done. Returns the steps run.
function Balance:update(budget_seconds, clock)
  local start, steps = clock(), 0
  repeat
    local all_done = true
    for i = 1, self.carts do
      all_done = all_done and self.done[i]
    end
    if all_done then
      self:learn()
      self:new_batch()
    else
      self:step()
      steps = steps + 1
    end
  until clock() - start >= budget_seconds
  return steps
end

--- The mean episode length of the last update (0 before the first).
function Balance:last_length()
  return self.history[#self.history] or 0
end

function Balance:draw(x0, y0, width, height)
  local g = love.graphics
  -- the first cart still up (or the first cart)
  local shown = 1
  for i = 1, self.carts do
    if not self.done[i] then
      shown = i
      break
    end
  end
  local s = self.states[shown]
  local scale = width / (2 * X_LIMIT + 1)
  local track_y = y0 + height * 0.45
  g.setColor(0.5, 0.5, 0.55)
  g.line(x0, track_y, x0 + width, track_y)
  local cx = x0 + width / 2 + s[1] * scale
  g.setColor(0.3, 0.6, 0.9)
  g.rectangle("fill", cx - 30, track_y - 15, 60, 30)
  g.setColor(0.95, 0.75, 0.3)
  g.setLineWidth(6)
  local pole = 2 * HALF_LENGTH * scale
  g.line(cx, track_y - 15, cx + math.sin(s[3]) * pole, track_y - 15 - math.cos(s[3]) * pole)
  g.setLineWidth(1)
  -- the mean episode length per update
  local chart_y, chart_h = y0 + height * 0.6, height * 0.35
  g.setColor(0.25, 0.25, 0.3)
  g.rectangle("line", x0, chart_y, width, chart_h)
  g.setColor(0.4, 0.9, 0.5)
  local n = #self.history
  for k = 2, n do
    local xa = x0 + (k - 2) / math.max(1, n - 1) * width
    local xb = x0 + (k - 1) / math.max(1, n - 1) * width
    g.line(xa, chart_y + chart_h * (1 - self.history[k - 1] / MAX_STEPS), xb,
      chart_y + chart_h * (1 - self.history[k] / MAX_STEPS))
  end
  g.setColor(1, 1, 1)
  g.print(("updates %d   mean episode length %.1f of %d steps   cart %d of %d"):format(self.updates,
    self:last_length(), MAX_STEPS, shown, self.carts), x0, y0 + height - 20)
end

return Balance
