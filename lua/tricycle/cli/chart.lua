--- tricycle.cli.chart: SVG line charts (the loss curves of the training
-- scripts), written without any library.
local compat = require("tricycle.compat")
local check_options = require("tricycle.options").check_options

local M = {}

local function nice_step(range, count)
  local raw = range / count
  local magnitude = 10 ^ math.floor(math.log(raw, 10))
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    if raw <= m * magnitude then
      return m * magnitude
    end
  end
  return 10 * magnitude
end

local function escape_xml(s)
  return (tostring(s):gsub("[<>&\"]", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;" }))
end

--- An SVG line chart. series: list of {name =, color =, points = {{x, y}, ...}}.
-- options: title, x_label, y_label, width (640), height (400).
function M.svg_chart(series, options)
  options = options or {}
  check_options("cli.svg_chart", options, { "title", "x_label", "y_label", "width", "height" })
  local W, H = options.width or 640, options.height or 400
  local left, right, top, bottom = 64, 16, 36, 48
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do
      local x, y = p[1], p[2]
      if y == y and y ~= math.huge and y ~= -math.huge then
        xmin, xmax = math.min(xmin, x), math.max(xmax, x)
        ymin, ymax = math.min(ymin, y), math.max(ymax, y)
      end
    end
  end
  if xmin > xmax then
    xmin, xmax, ymin, ymax = 0, 1, 0, 1
  end
  if xmax == xmin then
    xmax = xmin + 1
  end
  if ymax == ymin then
    ymin, ymax = ymin - 0.5, ymax + 0.5
  end
  local ystep = nice_step(ymax - ymin, 5)
  ymin = math.floor(ymin / ystep) * ystep
  ymax = math.ceil(ymax / ystep) * ystep
  local xstep = nice_step(xmax - xmin, 6)
  local pw, ph = W - left - right, H - top - bottom
  local function sx(x)
    return left + (x - xmin) / (xmax - xmin) * pw
  end
  local function sy(y)
    return top + (1 - (y - ymin) / (ymax - ymin)) * ph
  end
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = fmt:format(...)
  end
  add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
    .. 'font-family="sans-serif" font-size="12">', W, H, W, H)
  add('<rect width="%d" height="%d" fill="white"/>', W, H)
  if options.title then
    add('<text x="%d" y="20" text-anchor="middle" font-size="14">%s</text>', compat.idiv(W, 2),
      escape_xml(options.title))
  end
  local y = ymin
  while y <= ymax + ystep * 1e-6 do
    add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>', left, sy(y), W - right, sy(y))
    add('<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>', left - 6, sy(y),
      ("%.4g"):format(y))
    y = y + ystep
  end
  local x = math.ceil(xmin / xstep) * xstep
  while x <= xmax + xstep * 1e-6 do
    add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>', sx(x), top, sx(x), H - bottom)
    add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', sx(x), H - bottom + 16, ("%.6g"):format(x))
    x = x + xstep
  end
  add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>', left, top, pw, ph)
  if options.x_label then
    add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', left + pw / 2, H - 10, escape_xml(options.x_label))
  end
  if options.y_label then
    add('<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>', top + ph / 2,
      top + ph / 2, escape_xml(options.y_label))
  end
  for k, s in ipairs(series) do
    local coords = {}
    for _, p in ipairs(s.points) do
      if p[2] == p[2] and p[2] ~= math.huge and p[2] ~= -math.huge then
        coords[#coords + 1] = ("%.1f,%.1f"):format(sx(p[1]), sy(p[2]))
      end
    end
    local color = s.color or ({ "#1f77b4", "#d62728", "#2ca02c", "#9467bd" })[(k - 1) % 4 + 1]
    if #coords == 1 then
      local cx, cy = coords[1]:match("([^,]+),([^,]+)")
      add('<circle cx="%s" cy="%s" r="3" fill="%s"/>', cx, cy, color)
    elseif #coords > 1 then
      add('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>', color, table.concat(coords, " "))
    end
    local legend_y = top + 12 + 16 * (k - 1)
    add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>', W - right - 130, legend_y,
      W - right - 110, legend_y, color)
    add('<text x="%d" y="%d" dominant-baseline="middle">%s</text>', W - right - 104, legend_y, escape_xml(s.name))
  end
  add("</svg>")
  return table.concat(out, "\n") .. "\n"
end

--- The loss chart of a metrics log: the records' `loss` (train) and
-- `val_loss` (validation) against their `step`.
function M.loss_chart(records, title)
  local train_points, validation_points = {}, {}
  for _, record in ipairs(records) do
    if record.loss then
      train_points[#train_points + 1] = { record.step, record.loss }
    end
    if record.val_loss then
      validation_points[#validation_points + 1] = { record.step, record.val_loss }
    end
  end
  return M.svg_chart({
    { name = "train", points = train_points },
    { name = "validation", points = validation_points },
  }, { title = title, x_label = "step", y_label = "loss" })
end

return M
