-- tricycle.data.CausalLMDataset: windows, determinism, the split, memory,
-- the evaluation pass and resuming.
local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local tc = require("tricycle")
local data = require("tricycle.data")

-- tokens[i] = (i - 1) * 7 % 1000 for a known content at every position
local function make_tokens(n)
  local ids = {}
  for i = 1, n do
    ids[i] = ((i - 1) * 7) % 1000
  end
  return ids
end

-- The absolute position of a window, recovered from its content: positions
-- p and p + 1 hold p*7 % 1000 and (p+1)*7 % 1000; with n <= 1000 the first
-- value alone identifies p (7 is invertible mod 1000).
local function position_of(value, n)
  for p = 0, n - 1 do
    if (p * 7) % 1000 == value then
      return p
    end
  end
  error("no position holds " .. value)
end

describe("CausalLMDataset", function()
  it("re-exports the tokenizers", function()
    assert.are.equal(require("tricycle.tokenizer").BPETokenizer, data.BPETokenizer)
    assert.are.equal(require("tricycle.tokenizer").CharTokenizer, data.CharTokenizer)
  end)

  it("gives x, y int64 [B, T] with y shifted by one, every window inside the training part", function()
    local n = 1000
    local ids = make_tokens(n)
    local ds = data.CausalLMDataset({ tokens = ids, context_length = 8, batch_size = 5, seed = 3 })
    assert.are.equal(900, ds:split_size("train"))
    assert.are.equal(100, ds:split_size("validation"))
    for _ = 1, 20 do
      local x, y = ds:batch()
      assert.are.equal("int64", x.dtype)
      assert.are.equal("int64", y.dtype)
      assert.are.same({ 5, 8 }, x.shape)
      assert.are.same({ 5, 8 }, y.shape)
      local xs, ys = x:totable(), y:totable()
      for b = 1, 5 do
        local p = position_of(xs[b][1], n)
        -- targets reach at most position p + 8, which must be in the first 900
        assert.is_true(p >= 0 and p + 8 <= 899, "window at " .. p .. " leaves the training part")
        for t = 1, 8 do
          assert.are.equal(ids[p + t], xs[b][t])
          assert.are.equal(ids[p + t + 1], ys[b][t])
        end
      end
    end
  end)

  it("is deterministic for a seed, different for another, and leaves the engine RNG alone", function()
    local ids = make_tokens(1000)
    local function draw(seed)
      local ds = data.CausalLMDataset({ tokens = ids, context_length = 4, batch_size = 8, seed = seed })
      local out = {}
      for x in ds:batches(5) do
        out[#out + 1] = x:totable()
      end
      return out
    end
    tc.manual_seed(123)
    local before = { tc.rng_state() }
    local a = draw(1)
    assert.are.same(before, { tc.rng_state() })
    assert.are.same(a, draw(1))
    assert.are_not.same(a, draw(2))
  end)

  it("draws offsets spread over the whole training part", function()
    local n = 1000
    local ds = data.CausalLMDataset({ tokens = make_tokens(n), context_length = 4, batch_size = 50, seed = 9 })
    local low, high, seen = math.huge, -math.huge, {}
    for _ = 1, 20 do
      local x = ds:batch():totable()
      for b = 1, 50 do
        local p = position_of(x[b][1], n)
        low, high = math.min(low, p), math.max(high, p)
        seen[p] = true
      end
    end
    local distinct = 0
    for _ in pairs(seen) do
      distinct = distinct + 1
    end
    -- 1000 draws over 896 starts: both ends reached and most starts seen
    assert.is_true(low < 20 and high > 875, ("range %d..%d"):format(low, high))
    assert.is_true(distinct > 500, "only " .. distinct .. " distinct starts")
  end)

  it("keeps training and validation windows disjoint", function()
    local n = 1000
    local ds = data.CausalLMDataset({ tokens = make_tokens(n), context_length = 6, batch_size = 16, seed = 1,
      split = { train = 0.8 } })
    for _ = 1, 10 do
      for _, row in ipairs(ds:batch("train"):totable()) do
        local p = position_of(row[1], n)
        assert.is_true(p + 6 < 800)
      end
      for _, row in ipairs(ds:batch("validation"):totable()) do
        local p = position_of(row[1], n)
        assert.is_true(p >= 800 and p + 6 <= 999)
      end
    end
    for x, y in ds:evaluation_batches() do
      local xs, ys = x:totable(), y:totable()
      for b = 1, #xs do
        assert.is_true(position_of(xs[b][1], n) >= 800)
        assert.is_true(position_of(ys[b][6], n) <= 999)
      end
    end
  end)

  it("the evaluation pass covers every validation target once, in order, deterministically", function()
    local n = 1000
    local ids = make_tokens(n)
    local ds = data.CausalLMDataset({ tokens = ids, context_length = 7, batch_size = 4, seed = 5 })
    -- validation: positions 900..999; windows of 8 tokens at 900, 907, ... ; (100 - 1) // 7 = 14 windows
    assert.are.equal(14, ds:evaluation_windows())
    local targets, batches, windows = {}, 0, 0
    local state = ds:state()
    for x, y, count in ds:evaluation_batches() do
      batches = batches + 1
      windows = windows + count
      assert.are.equal(count, x:size(1))
      for _, row in ipairs(y:totable()) do
        for _, v in ipairs(row) do
          targets[#targets + 1] = position_of(v, n)
        end
      end
      for b, row in ipairs(x:totable()) do
        assert.are.equal(ids[position_of(row[1], n) + 2], y:totable()[b][1])
      end
    end
    assert.are.equal(4, batches) -- 4 + 4 + 4 + 2
    assert.are.equal(14, windows)
    assert.are.equal(98, #targets)
    for k, p in ipairs(targets) do
      assert.are.equal(900 + k, p)
    end
    -- the pass draws nothing from the random stream
    assert.are.same(state, ds:state())
    -- and a prefix of it on request
    local count = 0
    for _ in ds:evaluation_batches({ max_batches = 2 }) do
      count = count + 1
    end
    assert.are.equal(2, count)
  end)

  it("resumes the random stream from state()", function()
    local ids = make_tokens(1000)
    local a = data.CausalLMDataset({ tokens = ids, context_length = 4, batch_size = 3, seed = 77 })
    a:batch(); a:batch()
    local saved = a:state()
    local expected = { a:batch():totable(), a:batch():totable() }
    local b = data.CausalLMDataset({ tokens = ids, context_length = 4, batch_size = 3, seed = 1 })
    b:set_state(saved)
    assert.are.same(expected, { b:batch():totable(), b:batch():totable() })
  end)

  it("accepts int32/int64 tensors and packed strings with the same windows", function()
    local ids = make_tokens(500)
    local packed = binpack.pack("<" .. string.rep("i4", #ids), compat.unpack(ids))
    local sources = {
      ids,
      packed,
      tc.tensor(ids, { dtype = "int64" }),
      tc.tensor(ids, { dtype = "int32" }),
    }
    local reference
    for _, tokens in ipairs(sources) do
      local ds = data.CausalLMDataset({ tokens = tokens, context_length = 5, batch_size = 4, seed = 2 })
      local x, y = ds:batch()
      assert.are.equal("int64", x.dtype)
      local got = { x:totable(), y:totable() }
      reference = reference or got
      assert.are.same(reference, got)
    end
  end)

  it("does not keep a Lua value per token", function()
    local n = 1000000
    collectgarbage("collect")
    local ds
    do
      local packed = {}
      for i = 1, compat.idiv(n, 1000) do
        local chunk = {}
        for j = 1, 1000 do
          chunk[j] = ((i - 1) * 1000 + j) % 50000
        end
        packed[i] = binpack.pack("<" .. string.rep("i4", 1000), compat.unpack(chunk))
      end
      packed = table.concat(packed)
      collectgarbage("collect")
      local before = collectgarbage("count")
      ds = data.CausalLMDataset({ tokens = packed, context_length = 64, batch_size = 8, seed = 1 })
      for _ = 1, 5 do
        ds:batch()
      end
      collectgarbage("collect")
      local growth_kib = collectgarbage("count") - before
      -- a table per token would be tens of MiB; one tensor is a few hundred bytes of Lua memory
      assert.is_true(growth_kib < 512, ("Lua memory grew by %.0f KiB"):format(growth_kib))
    end
    assert.are.equal(n, ds.num_tokens)
    -- from a Lua table: the table is the caller's; the dataset keeps none
    ds = nil
    collectgarbage("collect")
    local before = collectgarbage("count")
    local ids = {}
    for i = 1, n do
      ids[i] = i % 50000
    end
    ds = data.CausalLMDataset({ tokens = ids, context_length = 64, batch_size = 8, seed = 1 })
    ids = nil -- luacheck: ignore
    collectgarbage("collect")
    local growth_kib = collectgarbage("count") - before
    assert.is_true(growth_kib < 512, ("Lua memory grew by %.0f KiB"):format(growth_kib))
    assert.are.equal(n, ds.num_tokens)
  end)

  it("rejects bad options with clear errors", function()
    local ids = make_tokens(100)
    local function message(options)
      local ok, err = pcall(data.CausalLMDataset, options)
      assert.is_false(ok)
      return err
    end
    assert.truthy(message({ tokens = ids, context_length = 0, batch_size = 1 }):find("context_length"))
    assert.truthy(message({ tokens = ids, context_length = 4, batch_size = 1.5 }):find("batch_size"))
    assert.truthy(message({ tokens = ids, context_length = 95, batch_size = 1 }):find("training part has 90 tokens"))
    assert.truthy(message({ tokens = { 1, -2, 3 }, context_length = 1, batch_size = 1, split = { train = 1 } })
      :find("tokens%[2%]"))
    assert.truthy(message({ tokens = tc.zeros({ 10 }), context_length = 1, batch_size = 1 }):find("int32 or int64"))
  end)
end)
