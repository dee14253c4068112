--- Plain-Lua references of convolution and pooling for spec/op_cases.lua: loops over nested tables
-- ({N, C, H, W} values), straight from the definitions, so that nothing goes through the engine.
-- Pairs are {height, width}; an integer option means the same on both sides.
local compat = require("tricycle.compat")

local C = {}

local function pair(value, default)
  if value == nil then value = default end
  if type(value) == "table" then return value[1], value[2] end
  return value, value
end

local function out_size(size, kernel, stride, padding, dilation)
  return compat.idiv(size + 2 * padding - dilation * (kernel - 1) - 1, stride) + 1
end

-- The geometry of the windows of x under options (kernel given).
local function geometry(x, kernel, options)
  local g = { n = #x, c = #x[1], h = #x[1][1], w = #x[1][1][1] }
  g.kh, g.kw = pair(kernel)
  g.sh, g.sw = pair(options.stride, kernel)
  g.ph, g.pw = pair(options.padding, 0)
  g.dh, g.dw = pair(options.dilation, 1)
  g.oh = out_size(g.h, g.kh, g.sh, g.ph, g.dh)
  g.ow = out_size(g.w, g.kw, g.sw, g.pw, g.dw)
  return g
end

-- x[n][c] at the 0-based window position (oh, ow) and kernel offset (i, j), or nil in the padding.
local function at(x, g, n, c, oh, ow, i, j)
  local ih, iw = oh * g.sh - g.ph + i * g.dh, ow * g.sw - g.pw + j * g.dw
  if ih < 0 or ih >= g.h or iw < 0 or iw >= g.w then return nil end
  return x[n][c][ih + 1][iw + 1]
end

--- F.unfold: {N, C*kH*kW, L}; options {kernel_size =, stride = 1, padding =, dilation =, pad_value =}.
function C.im2col(options)
  return function(x)
    local g = geometry(x, options.kernel_size, { stride = options.stride or 1, padding = options.padding,
      dilation = options.dilation })
    local out = {}
    for n = 1, g.n do
      out[n] = {}
      for c = 1, g.c do
        for i = 0, g.kh - 1 do
          for j = 0, g.kw - 1 do
            local row = {}
            for oh = 0, g.oh - 1 do
              for ow = 0, g.ow - 1 do
                local v = at(x, g, n, c, oh, ow, i, j)
                row[#row + 1] = v or options.pad_value or 0
              end
            end
            out[n][#out[n] + 1] = row
          end
        end
      end
    end
    return out
  end
end

--- conv2d(x, weight, bias) with options {stride =, padding =, dilation =, groups =}.
function C.conv2d(options)
  return function(x, weight, bias)
    if type(bias) ~= "table" or bias[1] == nil then bias = nil end -- run without a bias: env comes third
    local groups = options.groups or 1
    local kernel = { #weight[1][1], #weight[1][1][1] }
    local g = geometry(x, kernel, { stride = options.stride or 1, padding = options.padding,
      dilation = options.dilation })
    local per_group_in, per_group_out = compat.idiv(g.c, groups), compat.idiv(#weight, groups)
    local out = {}
    for n = 1, g.n do
      out[n] = {}
      for o = 1, #weight do
        local group = compat.idiv(o - 1, per_group_out)
        local plane = {}
        for oh = 0, g.oh - 1 do
          local line = {}
          for ow = 0, g.ow - 1 do
            local sum = bias and bias[o] or 0
            for c = 1, per_group_in do
              for i = 0, g.kh - 1 do
                for j = 0, g.kw - 1 do
                  local v = at(x, g, n, group * per_group_in + c, oh, ow, i, j)
                  if v then sum = sum + v * weight[o][c][i + 1][j + 1] end
                end
              end
            end
            line[ow + 1] = sum
          end
          plane[oh + 1] = line
        end
        out[n][o] = plane
      end
    end
    return out
  end
end

--- conv1d(x {N, C, L}, weight {O, C/groups, k}, bias) through conv2d over {N, C, 1, L}.
function C.conv1d(options)
  local conv = C.conv2d({ stride = { 1, options.stride or 1 }, padding = { 0, options.padding or 0 },
    dilation = { 1, options.dilation or 1 }, groups = options.groups })
  return function(x, weight, bias)
    local function lift(t)
      local out = {}
      for a = 1, #t do
        out[a] = {}
        for b = 1, #t[a] do out[a][b] = { t[a][b] } end
      end
      return out
    end
    local y = conv(lift(x), lift(weight), bias)
    for n = 1, #y do
      for o = 1, #y[n] do y[n][o] = y[n][o][1] end
    end
    return y
  end
end

-- Applies reduce(list of the window's values, count of all its positions) over each window.
local function pool(x, options, reduce)
  local g = geometry(x, options.kernel_size, options)
  local out = {}
  for n = 1, g.n do
    out[n] = {}
    for c = 1, g.c do
      local plane = {}
      for oh = 0, g.oh - 1 do
        local line = {}
        for ow = 0, g.ow - 1 do
          local values = {}
          for i = 0, g.kh - 1 do
            for j = 0, g.kw - 1 do
              local v = at(x, g, n, c, oh, ow, i, j)
              if v then values[#values + 1] = v end
            end
          end
          line[ow + 1] = reduce(values, g.kh * g.kw)
        end
        plane[oh + 1] = line
      end
      out[n][c] = plane
    end
  end
  return out
end

function C.max_pool2d(options)
  return function(x)
    return pool(x, options, function(values)
      local best = -math.huge
      for _, v in ipairs(values) do best = math.max(best, v) end
      return best
    end)
  end
end

function C.avg_pool2d(options)
  return function(x)
    return pool(x, options, function(values, positions)
      local sum = 0
      for _, v in ipairs(values) do sum = sum + v end
      return sum / (options.count_include_pad == false and #values or positions)
    end)
  end
end

--- PyTorch's bins: output i averages floor(i * in / out) .. ceil((i + 1) * in / out) - 1 (0-based).
function C.adaptive_avg_pool2d(size)
  local oh, ow = pair(size)
  return function(x)
    local out = {}
    for n = 1, #x do
      out[n] = {}
      for c = 1, #x[n] do
        local h, w = #x[n][c], #x[n][c][1]
        local plane = {}
        for i = 0, oh - 1 do
          plane[i + 1] = {}
          for j = 0, ow - 1 do
            local top, bottom = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            local left, right = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            local sum = 0
            for a = top, bottom - 1 do
              for b = left, right - 1 do sum = sum + x[n][c][a + 1][b + 1] end
            end
            plane[i + 1][j + 1] = sum / ((bottom - top) * (right - left))
          end
        end
        out[n][c] = plane
      end
    end
    return out
  end
end

--- batch_norm in training over x {N, C, ...} flattened as values per (n, c): the batch's biased variance.
function C.batch_norm(eps)
  return function(x, weight, bias)
    local function values_of(t, list)
      if type(t) ~= "table" then list[#list + 1] = t return list end
      for _, v in ipairs(t) do values_of(v, list) end
      return list
    end
    local mean, var = {}, {}
    for c = 1, #x[1] do
      local all = {}
      for n = 1, #x do values_of(x[n][c], all) end
      local sum, squares = 0, 0
      for _, v in ipairs(all) do sum = sum + v end
      mean[c] = sum / #all
      for _, v in ipairs(all) do squares = squares + (v - mean[c]) ^ 2 end
      var[c] = squares / #all
    end
    local function normalise(t, c)
      if type(t) ~= "table" then
        local y = (t - mean[c]) / math.sqrt(var[c] + eps)
        return y * (weight and weight[c] or 1) + (bias and bias[c] or 0)
      end
      local out = {}
      for i, v in ipairs(t) do out[i] = normalise(v, c) end
      return out
    end
    local out = {}
    for n = 1, #x do
      out[n] = {}
      for c = 1, #x[n] do out[n][c] = normalise(x[n][c], c) end
    end
    return out
  end
end

return C
