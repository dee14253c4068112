--- The Lua side of examples/host/host.c: loads a GPT (a checkpoint written by
-- scripts/train_shakespeare.lua, or a fresh one of the cpu preset's shape)
-- and returns the function the host calls once per frame.
--
--   local frame, info = dofile("examples/host/frame.lua")({checkpoint = path or nil})
--   local next_id = frame(n_tokens)   -- a forward pass over the last n_tokens ids
local tc = require("tricycle")

local CPU_PRESET = { vocab_size = 65, context_length = 64, n_layer = 4, n_head = 4, n_embd = 128 }

local function load_model(checkpoint)
  if not checkpoint then
    tc.manual_seed(1)
    return tc.nn.GPT(CPU_PRESET), "a fresh GPT of the cpu preset's shape"
  end
  local state = tc.checkpoint.load(checkpoint)
  local config = state.config or {}
  local model = tc.nn.GPT({
    vocab_size = config.vocab_size, context_length = config.context_length, n_layer = config.n_layer,
    n_head = config.n_head, n_embd = config.n_embd, bias = config.bias ~= false,
    tie_weights = config.tie_weights ~= false,
  })
  model:load_state_dict(state.model)
  return model, checkpoint
end

return function(options)
  require("tricycle.options").check_options("frame.lua", options, { "checkpoint" })
  local model, source = load_model(options.checkpoint)
  model:eval()
  local config = model.config
  local tensor_bytes = 0
  for _, parameter in ipairs(model:parameters()) do
    tensor_bytes = tensor_bytes + parameter:storage_bytes()
  end
  -- a rolling window of token ids: each frame appends the model's greedy pick
  local ids = {}
  for i = 1, config.context_length do
    ids[i] = (i * 7) % config.vocab_size
  end

  local function frame(n_tokens)
    if math.type(n_tokens) ~= "integer" then
      error(("frame: n_tokens must be an integer, got %s"):format(type(n_tokens)), 2)
    end
    local row = {}
    for i = #ids - math.min(n_tokens, #ids) + 1, #ids do
      row[#row + 1] = ids[i]
    end
    for _ = #row + 1, n_tokens do -- more than the window holds: the host asked for a bad shape
      row[#row + 1] = 0
    end
    -- every tensor is closed on return, so a frame leaves no storage to the collector
    local guard <close> = tc.no_grad()
    local input <close> = tc.tensor({ row }, { dtype = "int64" })
    local logits <close> = model(input)
    local final <close> = logits:select(2, -1) -- a view: it holds the logits' storage too
    local last <close> = final:argmax(-1)
    local next_id = last:item()
    table.remove(ids, 1)
    ids[#ids + 1] = next_id
    return next_id
  end

  return frame, { tensor_bytes = tensor_bytes, source = source, context_length = config.context_length,
    parameters = model:num_parameters() }
end
