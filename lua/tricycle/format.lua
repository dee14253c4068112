--- PyTorch-like text for tensors: values aligned, large tensors elided.
--
-- The work is bounded for every shape: a tensor of more than THRESHOLD
-- elements shows at most 2 * EDGE entries of each dim (PyTorch's rule), an
-- empty tensor shows no entries whatever its sizes (a shape such as
-- {2^60, 0} costs nothing), and the innermost rows are read in one piece.
local format = {}

local EDGE = 3          -- entries kept at each end of an elided dim
local THRESHOLD = 1000  -- elide when a tensor has more elements than this
local ELIDED = setmetatable({}, { __name = "elided" }) -- stands for "..."

local function kept_positions(size, elide)
  if not elide or size <= 2 * EDGE then
    local positions = {}
    for i = 1, size do positions[i] = i end
    return positions
  end
  local positions = {}
  for i = 1, EDGE do positions[#positions + 1] = i end
  positions[#positions + 1] = ELIDED
  for i = size - EDGE + 1, size do positions[#positions + 1] = i end
  return positions
end

-- The displayed values of a 1-dim t, read a piece at a time.
local function collect_row(t, elide)
  local size = t:size(1)
  if not elide or size <= 2 * EDGE then
    return t:totable()
  end
  local row = t:narrow(1, 1, EDGE):totable()
  row[#row + 1] = ELIDED
  for _, v in ipairs(t:narrow(1, size - EDGE + 1, EDGE):totable()) do
    row[#row + 1] = v
  end
  return row
end

-- Collects the displayed values (row by row) of a non-empty t as a nested
-- table.
local function collect(t, elide)
  if t:dim() == 0 then return t:item() end
  if t:dim() == 1 then return collect_row(t, elide) end
  local rows = {}
  for _, position in ipairs(kept_positions(t:size(1), elide)) do
    if position == ELIDED then
      rows[#rows + 1] = ELIDED
    else
      rows[#rows + 1] = collect(t:select(1, position), elide)
    end
  end
  return rows
end

local function each_value(node, fn)
  if node == ELIDED then return end
  if type(node) ~= "table" then
    fn(node)
    return
  end
  for _, child in ipairs(node) do
    each_value(child, fn)
  end
end

local function number_formatter(values, dtype)
  if dtype == "bool" then
    return function(v) return tostring(v) end
  end
  local floating = { float32 = true, float64 = true, bfloat16 = true, float16 = true }
  if not floating[dtype] then
    return function(v) return string.format("%d", v) end
  end
  local integral, largest, smallest = true, 0, math.huge
  for _, v in ipairs(values) do
    if v ~= v or v == math.huge or v == -math.huge then
      integral = false
    else
      if v ~= math.floor(v) then integral = false end
      local a = math.abs(v)
      if a > largest then largest = a end
      if a > 0 and a < smallest then smallest = a end
    end
  end
  local scientific = largest >= 1e8 or (smallest < 1e-4 and not integral)
  return function(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    if scientific then return string.format("%.4e", v) end
    if integral then return string.format("%.0f.", v) end
    return string.format("%.4f", v)
  end
end

local function render(node, depth, ndim, width, fmt, indent)
  if type(node) ~= "table" then
    local text = fmt(node)
    return string.rep(" ", width - #text) .. text
  end
  local parts = {}
  for _, child in ipairs(node) do
    if child == ELIDED then
      parts[#parts + 1] = "..."
    else
      parts[#parts + 1] = render(child, depth + 1, ndim, width, fmt, indent)
    end
  end
  if depth == ndim then
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  local separator = "," .. string.rep("\n", ndim - depth) .. string.rep(" ", indent + depth)
  return "[" .. table.concat(parts, separator) .. "]"
end

--- The text of a tensor, like PyTorch prints it.
function format.tensor(t)
  -- A tensor released by <close> has no fields left to show.
  if not pcall(function() return t.dtype end) then return "tensor(closed)" end
  local ok, result = pcall(function()
    local dtype = t.dtype
    local elide = t:numel() > THRESHOLD
    local data = {}
    if t:numel() > 0 then data = collect(t, elide) end
    local values = {}
    each_value(data, function(v) values[#values + 1] = v end)
    local fmt = number_formatter(values, dtype)
    local width = 0
    for _, v in ipairs(values) do
      width = math.max(width, #fmt(v))
    end
    local body
    if t:dim() == 0 then
      body = fmt(data)
    elseif t:numel() == 0 then
      body = "[]"
    else
      body = render(data, 1, t:dim(), width, fmt, #"tensor(")
    end
    local suffix = {}
    if t:numel() == 0 or (t:dim() > 0 and t:numel() == 0) then
      suffix[#suffix + 1] = "size={" .. table.concat(t.shape, ", ") .. "}"
    end
    if dtype ~= "float32" and dtype ~= "int64" then
      suffix[#suffix + 1] = "dtype=" .. dtype
    end
    if t.device ~= "cpu" then
      suffix[#suffix + 1] = "device='" .. t.device .. "'"
    end
    if t.grad_fn then
      suffix[#suffix + 1] = "grad_fn=<" .. t.grad_fn .. ">"
    elseif t.requires_grad then
      suffix[#suffix + 1] = "requires_grad=true"
    end
    local tail = #suffix > 0 and (", " .. table.concat(suffix, ", ")) or ""
    return "tensor(" .. body .. tail .. ")"
  end)
  if ok then return result end
  return "tensor(<unprintable: " .. tostring(result) .. ">)"
end

return format
