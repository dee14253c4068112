--- tricycle in LÖVE 11 (LuaJIT): a GPT trained by scripts/train_shakespeare.lua
-- writes text live as you type a prompt (a few tokens per frame, within a
-- time budget, so no frame waits for the model), and a second scene where a
-- small policy network learns to balance a pole between frames.
--
--   make LUA=luajit module
--   love examples/love --checkpoint out/shakespeare/checkpoint.safetensors
--
-- Type a prompt and press Enter; Tab switches scenes; Escape quits.
-- --auto N types a prompt (--prompt, default "ROMEO:"), runs N frames of the
-- writing scene and --balance-frames M of the other, screenshots both and
-- writes frame times and the text to --out DIR (results.txt, writer.png,
-- balance.png), then quits: spec/love_spec.lua runs it under xvfb-run.
local FRAME_SECONDS = 1 / 60
-- the share of a frame the model may use: generation or training stops
-- taking steps once this much of the frame is spent
local MODEL_BUDGET_SECONDS = 0.006

local source = love.filesystem.getSource()
local root = source:match("^(.*)/examples/love/?$") or (source .. "/../..")
local build = os.getenv("TRICYCLE_BUILD") or (root .. "/build")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. source .. "/?.lua;" .. package.path
package.cpath = build .. "/luajit/?.so;" .. package.cpath

local tc, writer, balance
local options = { prompt = "ROMEO:", balance_frames = 0 }
local scene = "writer"
local typed = ""
local status = ""
local stats = { frame = 0, work = {}, interval = {}, tokens = 0 }
local auto
local next_frame, frame_start, last_start

local function parse_arguments(args)
  local i = 1
  while i <= #args do
    local name, value = args[i], args[i + 1]
    if name == "--checkpoint" then
      options.checkpoint = value
    elseif name == "--auto" then
      options.auto = tonumber(value)
    elseif name == "--balance-frames" then
      options.balance_frames = tonumber(value)
    elseif name == "--out" then
      options.out = value
    elseif name == "--prompt" then
      options.prompt = value
    else
      error(("tricycle demo: unknown argument %s (valid: --checkpoint, --auto, --balance-frames, --out, --prompt)")
        :format(tostring(name)), 0)
    end
    if value == nil then
      error(("tricycle demo: %s needs a value"):format(name), 0)
    end
    i = i + 2
  end
  if options.auto and (options.auto < 1 or not options.out) then
    error("tricycle demo: --auto needs a frame count >= 1 and --out DIR", 0)
  end
end

local function load_writer(path)
  local state = tc.checkpoint.load(path)
  local config = state.config
  if type(config) ~= "table" or not state.tokenizer then
    error(("%s holds no GPT config and tokenizer; not a train_shakespeare.lua checkpoint?"):format(path), 0)
  end
  local model = tc.nn.GPT({
    vocab_size = config.vocab_size, context_length = config.context_length, n_layer = config.n_layer,
    n_head = config.n_head, n_embd = config.n_embd, bias = config.bias ~= false,
    tie_weights = config.tie_weights ~= false,
  })
  model:load_state_dict(state.model)
  model:eval()
  local tokenizer = require("tricycle.tokenizer").deserialize(state.tokenizer)
  return require("writer").new(tc, model, tokenizer, { temperature = 0.8, tokens_per_frame = 4, max_tokens = 600 }),
    config
end

function love.load(args)
  parse_arguments(args or {})
  local core_path = build .. "/luajit/tricycle/core.so"
  if not io.open(core_path, "rb") then
    error(("%s is missing: build the LuaJIT module with `make LUA=luajit module` in %s"):format(core_path, root), 0)
  end
  tc = require("tricycle")
  -- host settings: sleep between frames, keep garbage small
  tc.configure({ thread_spin = 100, collect_floor = 8 * 1024 * 1024 })
  tc.start_threads()
  tc.manual_seed(1337)
  if not options.checkpoint then
    error("tricycle demo: pass --checkpoint PATH (a scripts/train_shakespeare.lua checkpoint)", 0)
  end
  local config
  writer, config = load_writer(options.checkpoint)
  status = ("GPT %d layers x %d, context %d, %s"):format(config.n_layer, config.n_embd, config.context_length,
    options.checkpoint:match("[^/]*$"))
  balance = require("balance").new(tc, { carts = 16, hidden = 32, lr = 0.01 })
  love.keyboard.setKeyRepeat(true)
  if options.auto then
    auto = { typing = options.prompt, frame = 0 }
  end
  next_frame = love.timer.getTime()
end

local function start_writing()
  writer:start(typed)
  typed = ""
end

function love.textinput(text)
  if scene == "writer" then
    typed = typed .. text
  end
end

function love.keypressed(key)
  if key == "escape" then
    love.event.quit()
  elseif key == "tab" then
    scene = scene == "writer" and "balance" or "writer"
  elseif scene == "writer" and key == "return" then
    start_writing()
  elseif scene == "writer" and key == "backspace" then
    typed = typed:sub(1, -2)
  end
end

local function quantiles(values)
  local sorted = {}
  for i, v in ipairs(values) do
    sorted[i] = v
  end
  table.sort(sorted)
  local function q(p)
    return sorted[math.max(1, math.min(#sorted, math.ceil(p * #sorted)))] or 0
  end
  return q(0.5), q(0.9), q(0.99), sorted[#sorted] or 0
end

local function capture(path)
  love.graphics.captureScreenshot(function(image)
    local file = assert(io.open(path, "wb"))
    file:write(image:encode("png"):getString())
    file:close()
  end)
end

local function write_results()
  local file = assert(io.open(options.out .. "/results.txt", "w"))
  local m, p90, p99, most = quantiles(stats.work)
  file:write(("writer_frames %d\n"):format(#stats.work))
  file:write(("work_ms median %.3f p90 %.3f p99 %.3f max %.3f\n"):format(m * 1e3, p90 * 1e3, p99 * 1e3, most * 1e3))
  m, p90, p99, most = quantiles(stats.interval)
  file:write(("interval_ms median %.3f p90 %.3f p99 %.3f max %.3f\n"):format(m * 1e3, p90 * 1e3, p99 * 1e3,
    most * 1e3))
  file:write(("generated_tokens %d\n"):format(stats.tokens))
  local order = {}
  for i = 1, #stats.work do
    order[i] = i
  end
  table.sort(order, function(a, b) return stats.work[a] > stats.work[b] end)
  file:write("slowest_frames")
  for k = 1, math.min(5, #order) do
    file:write((" %d:%.2fms"):format(order[k], stats.work[order[k]] * 1e3))
  end
  file:write("\n")
  file:write(("balance_frames %d updates %d mean_length_first %.1f last %.1f\n"):format(stats.balance_frames or 0,
    balance.updates, balance.history[1] or 0, balance:last_length()))
  file:write("text ", (writer.prompt .. writer.generated):gsub("\n", "\\n"), "\n")
  file:close()
end

-- The automatic mode: types the prompt a character per frame, presses
-- Enter, records, screenshots and quits.
local function drive_auto()
  auto.frame = auto.frame + 1
  if #auto.typing > 0 then
    love.textinput(auto.typing:sub(1, 1))
    auto.typing = auto.typing:sub(2)
    if #auto.typing == 0 then
      love.keypressed("return")
    end
  end
  if auto.frame == options.auto then
    capture(options.out .. "/writer.png")
  elseif auto.frame == options.auto + 1 then
    if options.balance_frames > 0 then
      love.keypressed("tab")
    else
      auto.finished = true
    end
  elseif auto.frame == options.auto + 1 + options.balance_frames then
    capture(options.out .. "/balance.png")
    stats.balance_frames = options.balance_frames
  elseif auto.frame > options.auto + 1 + options.balance_frames then
    auto.finished = true
  end
  if auto.finished then
    write_results()
    love.event.quit()
  end
end

function love.update()
  -- pace at 60 frames per second; what follows is the frame's work
  local now = love.timer.getTime()
  if now < next_frame then
    love.timer.sleep(next_frame - now)
  end
  next_frame = math.max(next_frame + FRAME_SECONDS, love.timer.getTime())
  frame_start = love.timer.getTime()
  if last_start then
    stats.last_interval = frame_start - last_start
  end
  last_start = frame_start
  if auto then
    drive_auto()
  end
  if scene == "writer" then
    stats.tokens = stats.tokens + writer:update(MODEL_BUDGET_SECONDS, love.timer.getTime)
  else
    balance:update(MODEL_BUDGET_SECONDS, love.timer.getTime)
  end
  tc.park_threads() -- the workers sleep until the next frame's first kernel
end

local function draw_writer()
  local g = love.graphics
  g.setColor(0.6, 0.8, 1)
  g.print("Type a prompt, Enter to write; Tab: the learning scene; Esc: quit   " .. status, 20, 12)
  g.setColor(1, 1, 1)
  local text = writer.prompt .. writer.generated
  if #text > 1500 then
    text = "..." .. text:sub(-1500)
  end
  g.printf(text, 20, 44, g.getWidth() - 40)
  g.setColor(0.9, 0.9, 0.5)
  g.print("> " .. typed .. ((love.timer.getTime() % 1 < 0.5) and "_" or ""), 20, g.getHeight() - 58)
  g.setColor(0.6, 0.6, 0.6)
  local m, _, p99 = quantiles(stats.work)
  g.print(("%d tokens%s   frame work median %.2f ms, p99 %.2f ms"):format(writer.count,
    writer.running and " (writing)" or "", m * 1e3, p99 * 1e3), 20, g.getHeight() - 30)
end

function love.draw()
  if scene == "writer" then
    draw_writer()
  else
    love.graphics.setColor(0.6, 0.8, 1)
    love.graphics.print("A policy (4-32-2 MLP) learns to balance the pole between frames (REINFORCE, 16 carts); "
      .. "Tab: back", 20, 12)
    balance:draw(20, 40, love.graphics.getWidth() - 40, love.graphics.getHeight() - 60)
  end
  local work = love.timer.getTime() - frame_start
  if scene == "writer" and (not auto or auto.frame <= options.auto) then
    stats.work[#stats.work + 1] = work
    if stats.last_interval then
      stats.interval[#stats.interval + 1] = stats.last_interval
    end
  end
end
