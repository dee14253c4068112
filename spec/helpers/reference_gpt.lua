--- An independent GPT in plain Lua numbers (float64) for checking nn.GPT:
-- no tricycle ops, only loops over nested tables. Gradients come from
-- central finite differences of this reference's own loss.
--
-- Parameters are a table name -> nested Lua tables, named like nn.GPT's
-- state_dict (Linear weights [out][in], blocks h.1 .. h.L, head tied to wte).
local reference = {}

local function layer_norm(x, weight, bias, eps)
  local n = #x
  local mean = 0
  for i = 1, n do
    mean = mean + x[i]
  end
  mean = mean / n
  local var = 0
  for i = 1, n do
    var = var + (x[i] - mean) ^ 2
  end
  var = var / n
  local inv = 1 / math.sqrt(var + eps)
  local out = {}
  for i = 1, n do
    out[i] = (x[i] - mean) * inv * weight[i] + (bias and bias[i] or 0)
  end
  return out
end

-- y[o] = sum_i W[o][i] x[i] + b[o]
local function linear(x, weight, bias)
  local out = {}
  for o = 1, #weight do
    local row, sum = weight[o], bias and bias[o] or 0
    for i = 1, #x do
      sum = sum + row[i] * x[i]
    end
    out[o] = sum
  end
  return out
end

local function gelu_tanh(x)
  return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3)))
end

-- erf by its series (|x| is small in these tests); enough for 1e-12.
local compat = require("tricycle.compat")
local gelu_exact = require("helpers.op_reference").gelu

local function add(a, b)
  local out = {}
  for i = 1, #a do
    out[i] = a[i] + b[i]
  end
  return out
end

-- Causal multi-head attention over one sequence: qkv[t] has 3C entries q|k|v.
local function attention(qkv, n_head, causal)
  local T = #qkv
  local C = compat.idiv(#qkv[1], 3)
  local D = compat.idiv(C, n_head)
  local scale = 1 / math.sqrt(D)
  local out = {}
  for t = 1, T do
    out[t] = {}
  end
  for h = 0, n_head - 1 do
    for t = 1, T do
      local last = causal and t or T
      local scores, max = {}, -math.huge
      for s = 1, last do
        local dot = 0
        for d = 1, D do
          dot = dot + qkv[t][h * D + d] * qkv[s][C + h * D + d]
        end
        scores[s] = dot * scale
        if scores[s] > max then
          max = scores[s]
        end
      end
      local total = 0
      for s = 1, last do
        scores[s] = math.exp(scores[s] - max)
        total = total + scores[s]
      end
      for d = 1, D do
        local sum = 0
        for s = 1, last do
          sum = sum + scores[s] / total * qkv[s][2 * C + h * D + d]
        end
        out[t][h * D + d] = sum
      end
    end
  end
  return out
end
reference.attention = attention
reference.layer_norm = layer_norm
reference.linear = linear
reference.gelu_tanh = gelu_tanh
reference.gelu_exact = gelu_exact

--- logits[b][t][v] for ids[b][t] (0-based ids), and the mean cross-entropy
-- when targets (0-based) are given.
function reference.forward(p, config, ids, targets)
  local eps = config.eps or 1e-5
  local gelu = config.gelu == "none" and gelu_exact or gelu_tanh
  local logits, loss, count = {}, 0, 0
  for b = 1, #ids do
    local x = {}
    for t = 1, #ids[b] do
      x[t] = add(p["wte.weight"][ids[b][t] + 1], p["wpe.weight"][t])
    end
    for l = 1, config.n_layer do
      local prefix = "h." .. l .. "."
      local function w(name)
        return p[prefix .. name]
      end
      local qkv = {}
      for t = 1, #x do
        qkv[t] = linear(layer_norm(x[t], w("ln_1.weight"), w("ln_1.bias"), eps), w("attn.c_attn.weight"),
          w("attn.c_attn.bias"))
      end
      local attended = attention(qkv, config.n_head, true)
      for t = 1, #x do
        x[t] = add(x[t], linear(attended[t], w("attn.c_proj.weight"), w("attn.c_proj.bias")))
      end
      for t = 1, #x do
        local hidden = linear(layer_norm(x[t], w("ln_2.weight"), w("ln_2.bias"), eps), w("mlp.c_fc.weight"),
          w("mlp.c_fc.bias"))
        for i = 1, #hidden do
          hidden[i] = gelu(hidden[i])
        end
        x[t] = add(x[t], linear(hidden, w("mlp.c_proj.weight"), w("mlp.c_proj.bias")))
      end
    end
    logits[b] = {}
    for t = 1, #x do
      local final = layer_norm(x[t], p["ln_f.weight"], p["ln_f.bias"], eps)
      local row = linear(final, p["wte.weight"], nil)
      logits[b][t] = row
      if targets then
        local max = -math.huge
        for v = 1, #row do
          if row[v] > max then
            max = row[v]
          end
        end
        local total = 0
        for v = 1, #row do
          total = total + math.exp(row[v] - max)
        end
        loss = loss - (row[targets[b][t] + 1] - max - math.log(total))
        count = count + 1
      end
    end
  end
  if targets then
    return logits, loss / count
  end
  return logits
end

-- Nested table entry at a 1-based flat (row-major) index.
local function locate(value, flat)
  if type(value[1]) ~= "table" then
    return value, flat
  end
  local inner = 1
  local probe = value[1]
  while type(probe) == "table" do
    inner = inner * #probe
    probe = probe[1]
  end
  local row = compat.idiv((flat - 1), inner) + 1
  return locate(value[row], (flat - 1) % inner + 1)
end

--- d loss / d p[name] at a 1-based flat index, by central differences.
function reference.numeric_grad(p, config, ids, targets, name, flat, h)
  h = h or 1e-6
  local container, i = locate(p[name], flat)
  local saved = container[i]
  container[i] = saved + h
  local _, plus = reference.forward(p, config, ids, targets)
  container[i] = saved - h
  local _, minus = reference.forward(p, config, ids, targets)
  container[i] = saved
  return (plus - minus) / (2 * h)
end

return reference
