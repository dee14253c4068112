-- Bad inputs: tc.optim (optimiser construction and options, steps, state
-- dicts, set_lr, gpt_param_groups, the cosine schedule). See
-- spec/bad_inputs_spec.lua for the format.
local tc = require("tricycle")
local nn = require("tricycle.nn")
local optim = require("tricycle.optim")

local function param()
  return tc.zeros({ 2 }, { requires_grad = true })
end

local function adamw(options)
  return optim.AdamW({ param() }, options)
end

local function sgd(options)
  return optim.SGD({ param() }, options)
end

local loaded -- the optimiser of a failed load, for its `after` check

return {
  -- before: accepted; the first step failed in adamw_step without naming the parameter
  { "AdamW over an int64 tensor", function() return optim.AdamW({ param(), tc.zeros({ 2 }, { dtype = "int64" }) }) end,
    { "AdamW", "parameter 2", "int64" } },
  -- before: accepted
  { "SGD over an int64 tensor", function() return optim.SGD({ tc.zeros({ 2 }, { dtype = "int64" }) }, { lr = 1 }) end,
    { "SGD", "parameter 1", "int64" } },
  { "AdamW over a named uint8 tensor", function()
    return optim.AdamW({ { "scale", tc.zeros({ 1 }, { dtype = "uint8" }) } })
  end, { "AdamW", "parameter 1", "'scale'", "uint8" } },
  -- before: "AdamW: group 1 must be a table with a list `params`"
  { "AdamW over a list starting with a number", function() return optim.AdamW({ 5, param() }) end,
    { "AdamW", "parameter 1", "number" } },
  { "AdamW over a list with a string", function() return optim.AdamW({ param(), "x" }) end,
    { "AdamW", "parameter 2", "string" } },
  -- before: accepted as an optimiser of nothing
  { "AdamW over a module", function() return optim.AdamW(nn.Linear(2, 2)) end,
    { "AdamW", "module", "parameters()" } },
  { "AdamW over a tensor", function() return optim.AdamW(param()) end, { "AdamW", "tensor" } },
  -- before: accepted
  { "AdamW over an empty list", function() return optim.AdamW({}) end, { "AdamW", "empty" } },
  { "AdamW over a non-leaf", function() return optim.AdamW({ param() * 2 }) end, { "AdamW", "not a leaf", "mul" } },
  { "AdamW over a closed tensor", function()
    local p = param()
    p:free()
    return optim.AdamW({ p })
  end, { "AdamW", "parameter 1", "closed" } },
  { "AdamW over one tensor twice", function()
    local p = param()
    return optim.AdamW({ p, p })
  end, { "AdamW", "parameter 2", "twice" } },
  -- before: accepted; NaN passed the range test
  { "AdamW with lr NaN", function() return adamw({ lr = 0 / 0 }) end, { "AdamW", "lr", "nan" } },
  { "AdamW with lr infinite", function() return adamw({ lr = math.huge }) end, { "AdamW", "lr", "inf" } },
  { "AdamW with lr -1", function() return adamw({ lr = -1 }) end, { "AdamW", "lr", "-1" } },
  -- before: accepted
  { "AdamW with eps 0", function() return adamw({ eps = 0 }) end, { "AdamW", "eps", "0" } },
  -- before: accepted
  { "AdamW with eps NaN", function() return adamw({ eps = 0 / 0 }) end, { "AdamW", "eps", "nan" } },
  { "AdamW with beta2 1", function() return adamw({ betas = { 0.9, 1 } }) end, { "AdamW", "betas[2]", "1" } },
  -- before: accepted; NaN passed the range test
  { "AdamW with beta1 NaN", function() return adamw({ betas = { 0 / 0, 0.9 } }) end, { "AdamW", "betas[1]", "nan" } },
  { "AdamW with three betas", function() return adamw({ betas = { 0.9, 0.9, 0.9 } }) end,
    { "AdamW", "betas", "list of 3" } },
  { "AdamW with betas a number", function() return adamw({ betas = 0.9 }) end, { "AdamW", "betas", "0.9" } },
  -- before: accepted; the first step failed in adamw_step
  { "AdamW with weight_decay -1", function() return adamw({ weight_decay = -1 }) end,
    { "AdamW", "weight_decay", "-1" } },
  { "AdamW with a misspelt option", function() return adamw({ learning_rate = 1 }) end,
    { "AdamW", "learning_rate", "valid: betas, ddp, eps, lr, weight_decay, zero_stage" } },
  -- before: "bad argument #1 to 'for iterator'"
  { "AdamW with a number for options", function() return adamw(0.1) end, { "AdamW", "options", "number" } },
  { "AdamW with a misspelt group option", function() return optim.AdamW({ { params = { param() }, lrr = 1 } }) end,
    { "AdamW", "group 1", "lrr", "valid" } },
  { "AdamW with a group without params", function() return optim.AdamW({ { params = { param() } }, { lr = 1 } }) end,
    { "AdamW", "group 2", "params" } },
  { "SGD without lr", function() return sgd({}) end, { "SGD", "lr", "required" } },
  -- before: accepted
  { "SGD with momentum NaN", function() return sgd({ lr = 1, momentum = 0 / 0 }) end, { "SGD", "momentum", "nan" } },
  -- before: accepted; the first step failed in sgd_step
  { "SGD with dampening 2", function() return sgd({ lr = 1, dampening = 2 }) end, { "SGD", "dampening", "2" } },
  -- before: any value meant true
  { "SGD with nesterov = \"yes\"", function() return sgd({ lr = 1, nesterov = "yes" }) end,
    { "SGD", "nesterov", "yes" } },
  { "SGD with nesterov and no momentum", function() return sgd({ lr = 1, nesterov = true }) end,
    { "SGD", "nesterov needs momentum" } },
  { "a step after lr was set to NaN", function()
    local p = param()
    local opt = optim.AdamW({ p })
    opt.param_groups[1].lr = 0 / 0
    p.grad = tc.ones({ 2 })
    opt:step()
  end, { "AdamW.step", "lr", "nan" } },
  -- before: "attempt to index a nil value (local 'self')"
  { "step called with a dot", function() adamw().step() end, { "Optimizer:step", "nil" } },
  { "a step over a closed parameter", function()
    local p = param()
    local opt = optim.AdamW({ p })
    p:free()
    opt:step()
  end, { "AdamW.step", "parameter 1", "closed" } },
  { "load_state_dict of another optimiser's state", function()
    adamw():load_state_dict(sgd({ lr = 1 }):state_dict())
  end, { "AdamW:load_state_dict", "SGD" } },
  -- before: the bad lr was copied into the optimiser
  { "load_state_dict with a negative lr", function()
    loaded = adamw({ lr = 0.5 })
    local state = loaded:state_dict()
    state.values.groups[1].lr = -1
    loaded:load_state_dict(state)
  end, { "AdamW:load_state_dict", "lr", "-1" }, after = function()
    assert(loaded.param_groups[1].lr == 0.5, "the failed load changed lr")
  end },
  -- before: the unknown key was copied into the group
  { "load_state_dict with an unknown option", function()
    local opt = adamw()
    local state = opt:state_dict()
    state.values.groups[1].momentum = 0.9
    opt:load_state_dict(state)
  end, { "AdamW:load_state_dict", "momentum" } },
  { "load_state_dict with another number of groups", function()
    adamw():load_state_dict(optim.AdamW({ { params = { param() } }, { params = { param() } } }):state_dict())
  end, { "load_state_dict", "2 parameter groups", "1" } },
  { "load_state_dict of a number", function() adamw():load_state_dict(5) end, { "load_state_dict", "number" } },
  { "load_state_dict with a mis-shaped moment", function()
    local p = param()
    local opt = optim.AdamW({ p })
    p.grad = tc.ones({ 2 })
    opt:step()
    local state = opt:state_dict()
    state.tensors["1.1.exp_avg"] = tc.zeros({ 3 })
    opt:load_state_dict(state)
  end, { "load_state_dict", "exp_avg", "{3}", "{2}" } },
  -- before: accepted; NaN passed the range test
  { "set_lr to NaN", function() optim.set_lr(adamw(), 0 / 0) end, { "set_lr", "nan" } },
  { "set_lr of a number", function() optim.set_lr(5, 0.1) end, { "set_lr", "number" } },
  { "gpt_param_groups of a number", function() return optim.gpt_param_groups(5) end,
    { "gpt_param_groups", "number" } },
  { "gpt_param_groups with weight_decay NaN", function() return optim.gpt_param_groups(nn.Linear(2, 2), 0 / 0) end,
    { "gpt_param_groups", "weight_decay", "nan" } },
  -- before: accepted; every rate was NaN
  { "cosine_schedule with max_lr NaN", function() return optim.cosine_schedule({ max_lr = 0 / 0, total = 10 }) end,
    { "cosine_schedule", "max_lr", "nan" } },
  -- before: the misspelt key was ignored and warmup was 0
  { "cosine_schedule with a misspelt key", function()
    return optim.cosine_schedule({ max_lr = 1, total = 10, warmpu = 2 })
  end, { "cosine_schedule", "warmpu", "valid" } },
  { "cosine_schedule with min_lr above max_lr", function()
    return optim.cosine_schedule({ max_lr = 1, min_lr = 2, total = 10 })
  end, { "cosine_schedule", "min_lr 2", "max_lr 1" } },
  { "cosine_schedule with total below warmup", function()
    return optim.cosine_schedule({ max_lr = 1, warmup = 5, total = 3 })
  end, { "cosine_schedule", "total 3", "warmup 5" } },
  { "cosine_schedule lr of a negative step", function()
    return optim.cosine_schedule({ max_lr = 1, total = 10 }):lr(-1)
  end, { "cosine_schedule:lr", "-1" } },
  { "cosine_schedule lr called with a dot", function()
    return optim.cosine_schedule({ max_lr = 1, total = 10 }).lr(3)
  end,
    { "schedule:lr", "number" } },
  { "cosine_schedule load_state_dict with a fractional step", function()
    optim.cosine_schedule({ max_lr = 1, total = 10 }):load_state_dict({ max_lr = 1, min_lr = 0, warmup = 0, total = 10,
      step = 2.5 })
  end, { "cosine_schedule:load_state_dict", "step", "2.5" } },
  -- ---- Adam and the schedulers bound to an optimiser ----
  { "Adam with amsgrad 'yes'", function() return optim.Adam({ param() }, { amsgrad = "yes" }) end,
    { "Adam", "amsgrad", "yes" } },
  { "Adam with betas {0.9, 1}", function() return optim.Adam({ param() }, { betas = { 0.9, 1 } }) end,
    { "Adam", "betas[2]", "1" } },
  { "Adam with a misspelt option", function() return optim.Adam({ param() }, { weight_decy = 0.1 }) end,
    { "Adam", "unknown option 'weight_decy'", "weight_decay" } },
  { "Adam with weight_decay -1", function() return optim.Adam({ param() }, { weight_decay = -1 }) end,
    { "Adam", "weight_decay", "-1" } },
  { "step_lr without step_size", function() return optim.step_lr(sgd({ lr = 1 }), { gamma = 0.5 }) end,
    { "step_lr", "step_size", "nil" } },
  { "step_lr over a table that is not an optimiser", function() return optim.step_lr({}, { step_size = 1 }) end,
    { "step_lr", "optimiser", "table" } },
  { "multistep_lr with milestones out of order", function()
    return optim.multistep_lr(sgd({ lr = 1 }), { milestones = { 5, 2 } })
  end, { "multistep_lr", "milestones", "2" } },
  { "exponential_lr with a misspelt option", function()
    return optim.exponential_lr(sgd({ lr = 1 }), { gama = 0.9 })
  end, { "exponential_lr", "unknown option 'gama'", "gamma" } },
  { "lambda_lr with a number for lr_lambda", function()
    return optim.lambda_lr(sgd({ lr = 1 }), { lr_lambda = 2 })
  end, { "lambda_lr", "lr_lambda", "number" } },
  { "lambda_lr whose function gives NaN", function()
    local scheduler = optim.lambda_lr(sgd({ lr = 1 }), { lr_lambda = function(e) return e == 0 and 1 or 0 / 0 end })
    scheduler:step()
  end, { "lambda_lr", "lr_lambda(1)", "nan" } },
  { "warmup_lr with start_factor 0", function()
    return optim.warmup_lr(sgd({ lr = 1 }), { start_factor = 0 })
  end, { "warmup_lr", "start_factor", "0" } },
  { "one_cycle_lr with total_steps 1", function()
    return optim.one_cycle_lr(sgd({ lr = 1 }), { max_lr = 1, total_steps = 1 })
  end, { "one_cycle_lr", "total_steps", "1" } },
  { "one_cycle_lr with anneal_strategy 'cosine'", function()
    return optim.one_cycle_lr(sgd({ lr = 1 }), { max_lr = 1, total_steps = 10, anneal_strategy = "cosine" })
  end, { "one_cycle_lr", "anneal_strategy", "cosine" } },
  { "reduce_lr_on_plateau stepped without a metric", function()
    optim.reduce_lr_on_plateau(sgd({ lr = 1 })):step()
  end, { "reduce_lr_on_plateau:step", "metric", "nil" } },
  { "reduce_lr_on_plateau with mode 'lowest'", function()
    return optim.reduce_lr_on_plateau(sgd({ lr = 1 }), { mode = "lowest" })
  end, { "reduce_lr_on_plateau", "mode", "lowest" } },
  { "step_lr stepped with a metric", function() optim.step_lr(sgd({ lr = 1 }), { step_size = 1 }):step(0.5) end,
    { "step_lr:step", "metric" } },
  { "an optimiser's load_state_dict with a scheduler it does not have", function()
    local source = sgd({ lr = 1 })
    optim.step_lr(source, { step_size = 2 })
    local target = sgd({ lr = 1 })
    optim.exponential_lr(target, { gamma = 0.5 })
    target:load_state_dict(source:state_dict())
  end, { "SGD:load_state_dict", "exponential_lr", "step_lr" } },
  { "scheduler load_state_dict with a negative last_epoch", function()
    local scheduler = optim.step_lr(sgd({ lr = 1 }), { step_size = 2 })
    local state = scheduler:state_dict()
    state.last_epoch = -1
    scheduler:load_state_dict(state)
  end, { "step_lr:load_state_dict", "last_epoch", "-1" } },

  -- tc.amp.GradScaler (new)
  { "GradScaler with an unknown option", function() return tc.amp.GradScaler({ init_scal = 2 }) end,
    { "GradScaler", "init_scal", "init_scale", "growth_interval" } },
  { "GradScaler with options that are not a table", function() return tc.amp.GradScaler(3) end,
    { "GradScaler", "options", "number" } },
  { "GradScaler with init_scale 0", function() return tc.amp.GradScaler({ init_scale = 0 }) end,
    { "GradScaler", "init_scale", "0" } },
  { "GradScaler with a NaN init_scale", function() return tc.amp.GradScaler({ init_scale = 0 / 0 }) end,
    { "GradScaler", "init_scale", "nan" } },
  { "GradScaler with an infinite init_scale", function() return tc.amp.GradScaler({ init_scale = 1 / 0 }) end,
    { "GradScaler", "init_scale", "inf" } },
  { "GradScaler with growth_factor 1", function() return tc.amp.GradScaler({ growth_factor = 1 }) end,
    { "GradScaler", "growth_factor", "> 1", "1" } },
  { "GradScaler with backoff_factor 1", function() return tc.amp.GradScaler({ backoff_factor = 1 }) end,
    { "GradScaler", "backoff_factor", "(0, 1)", "1" } },
  { "GradScaler with a negative backoff_factor", function() return tc.amp.GradScaler({ backoff_factor = -0.5 }) end,
    { "GradScaler", "backoff_factor", "-0.5" } },
  { "GradScaler with a fractional growth_interval", function() return tc.amp.GradScaler({ growth_interval = 2.5 }) end,
    { "GradScaler", "growth_interval", "2.5" } },
  { "GradScaler with growth_interval 0", function() return tc.amp.GradScaler({ growth_interval = 0 }) end,
    { "GradScaler", "growth_interval", "0" } },
  { "GradScaler with enabled = 1", function() return tc.amp.GradScaler({ enabled = 1 }) end,
    { "GradScaler", "enabled", "boolean", "number" } },
  { "GradScaler:scale of a number", function() return tc.amp.GradScaler():scale(3) end,
    { "GradScaler:scale", "tensor", "number" } },
  { "GradScaler:scale of an int64 loss", function()
    return tc.amp.GradScaler():scale(tc.tensor({ 1 }, { dtype = "int64" }))
  end,
    { "GradScaler:scale", "floating", "int64" } },
  { "GradScaler:scale of a list with a string", function() return tc.amp.GradScaler():scale({ tc.tensor(1), "x" }) end,
    { "GradScaler:scale", "entry 2", "string" } },
  { "GradScaler:scale called with a dot", function() return tc.amp.GradScaler().scale(tc.tensor(1)) end,
    { "GradScaler:scale", "':'" } },
  { "GradScaler:step of a table that is not an optimiser", function() return tc.amp.GradScaler():step({}) end,
    { "GradScaler:step", "optimiser", "table" } },
  { "GradScaler:step twice before update", function()
    local scaler, opt = tc.amp.GradScaler(), sgd({ lr = 1 })
    scaler:step(opt)
    scaler:step(opt)
  end, { "GradScaler:step", "already", "update()" } },
  { "GradScaler:unscale_ twice before update", function()
    local scaler, opt = tc.amp.GradScaler(), sgd({ lr = 1 })
    scaler:unscale_(opt)
    scaler:unscale_(opt)
  end, { "GradScaler:unscale_", "already", "update()" } },
  { "GradScaler:unscale_ after step", function()
    local scaler, opt = tc.amp.GradScaler(), sgd({ lr = 1 })
    scaler:step(opt)
    scaler:unscale_(opt)
  end, { "GradScaler:unscale_", "after step()" } },
  { "GradScaler:update before any step", function() tc.amp.GradScaler():update() end,
    { "GradScaler:update", "no inf checks" } },
  { "GradScaler:update with a negative new_scale", function() tc.amp.GradScaler():update(-2) end,
    { "GradScaler:update", "new_scale", "-2" } },
  { "GradScaler:unscale_ of float16 gradients", function()
    -- the optimisers refuse 16-bit parameters; an optimiser-like table of its own holds one
    local p = tc.zeros({ 2, 3 }, { dtype = "float16", requires_grad = true })
    p.grad = tc.ones({ 2, 3 }, { dtype = "float16" })
    tc.amp.GradScaler():unscale_({ param_groups = { { params = { p } } }, step = function() end })
  end, { "GradScaler:unscale_", "parameter 1", "float16", "[2, 3]" } },
  { "GradScaler:load_state_dict with an unknown key", function()
    local state = tc.amp.GradScaler():state_dict()
    state.scale_ = 3
    tc.amp.GradScaler():load_state_dict(state)
  end, { "GradScaler:load_state_dict", "scale_", "_growth_tracker" } },
  { "GradScaler:load_state_dict without a key", function()
    local state = tc.amp.GradScaler():state_dict()
    state.backoff_factor = nil
    tc.amp.GradScaler():load_state_dict(state)
  end, { "GradScaler:load_state_dict", "backoff_factor" } },
  { "GradScaler:load_state_dict with a growth tracker past the interval", function()
    local state = tc.amp.GradScaler({ growth_interval = 4 }):state_dict()
    state._growth_tracker = 4
    tc.amp.GradScaler():load_state_dict(state)
  end, { "GradScaler:load_state_dict", "_growth_tracker", "4" } },
  { "GradScaler:load_state_dict of a disabled scaler's state", function()
    tc.amp.GradScaler():load_state_dict(tc.amp.GradScaler({ enabled = false }):state_dict())
  end, { "GradScaler:load_state_dict", "empty" } },
  { "GradScaler:load_state_dict into a disabled scaler", function()
    tc.amp.GradScaler({ enabled = false }):load_state_dict(tc.amp.GradScaler():state_dict())
  end, { "GradScaler:load_state_dict", "disabled" } },
  { "GradScaler:load_state_dict with a string scale", function()
    local state = tc.amp.GradScaler():state_dict()
    state.scale = "big"
    tc.amp.GradScaler():load_state_dict(state)
  end, { "GradScaler:load_state_dict", "scale", "big" } },
}
