local binpack = require("helpers.binpack")
local compat = require("tricycle.compat")
local shell = require("helpers.command")
local wide = require("helpers.wide")
-- Files under hostile conditions: loaded tensors when their file is cut or
-- rewritten in place, what atomic saves keep (modes, links, long names),
-- saves killed midway, a full disk, and the engine's plain-file helpers.
-- Errors on bad files and paths are in spec/bad_inputs/files.lua.
local tc = require("tricycle")
local tokenizer = require("tricycle.tokenizer")
local cli = require("tricycle.cli")
local scratch = require("helpers.scratch")

local q = scratch.shell_quote

--- Runs Lua code in a child process (the specs' package paths), through
-- `sh -c` with shell_prefix before it; returns its output and whether it
-- exited with status 0.
local function run_child(code, shell_prefix)
  local script = os.tmpname()
  scratch.write(script, code)
  local command = ("%s%s %s 2>&1"):format(shell_prefix or "", scratch.lua_command(), q(script))
  local output, status = shell.run("sh -c " .. q(command))
  os.remove(script)
  return output, status == 0
end

local function temporaries(dir)
  local found = {}
  for _, name in ipairs(scratch.listing(dir)) do
    if name:find(".tc-tmp-", 1, true) then
      found[#found + 1] = name
    end
  end
  return found
end

describe("loaded tensors and files changed in place", function()
  it("a tensor from tc.load keeps its values when its file is truncated or rewritten (before: SIGBUS)", function()
    -- In a child: a crash there fails this spec instead of ending the run.
    local output, ok = run_child([[
      local scratch = require("helpers.scratch")
      local shell = require("helpers.command")
      local tc = require("tricycle")
      local dir = scratch.new_dir()
      local path = dir .. "/model.safetensors"
      tc.save(path, { w = tc.arange(100000, { dtype = "float32" }), b = tc.ones({ 3000 }) })
      local tensors = tc.load(path)
      local sum = tensors.w:sum():item()
      assert(shell.execute("truncate -s 100 " .. scratch.shell_quote(path)))
      io.write(tostring(tensors.w:sum():item() == sum), " ")
      tc.save(dir .. "/small", { w = tc.zeros({ 2 }) })
      assert(shell.execute(("cp %s %s"):format(scratch.shell_quote(dir .. "/small"), scratch.shell_quote(path))))
      io.write(("%.0f %.0f"):format(tensors.w[100000]:item(), tensors.b:sum():item()))
      scratch.remove_dir(dir)
    ]])
    assert.is_true(ok, "the child failed: " .. output)
    assert.are.equal("true 99999 3000", output)
  end)

  it("an open handle reads the old file after a save renames a new one over it", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/model.safetensors"
      tc.save(path, { w = tc.tensor({ 1, 2, 3 }) })
      local file = tc.io.open(path)
      tc.save(path, { w = tc.tensor({ 7, 8 }) })
      assert.are.same({ 1, 2, 3 }, file:get("w"):totable())
      assert.are.same({ 7, 8 }, tc.load(path).w:totable())
    end)
  end)

  it("an open handle refuses a file changed in place, and a new handle reads it", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/model.safetensors"
      tc.save(path, { w = tc.tensor({ 1, 2, 3 }) })
      local file = tc.io.open(path)
      tc.save(dir .. "/new", { w = tc.tensor({ 4, 5, 6, 7 }) })
      assert(shell.execute(("cp %s %s"):format(q(dir .. "/new"), q(path))))
      local ok, message = pcall(file.get, file, "w")
      assert.is_false(ok)
      assert.truthy(message:find("changed since it was opened", 1, true), message)
      local again = tc.io.open(path)
      assert.are.same({ 4, 5, 6, 7 }, again:get("w"):totable())
    end)
  end)

  it("loads F16, BF16 and misaligned tensors into memory of their own", function()
    scratch.in_dir(function(dir)
      local header = '{"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},'
        .. '"f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},'
        .. '"h":{"dtype":"F16","shape":[2],"data_offsets":[11,15]},'
        .. '"b":{"dtype":"BF16","shape":[1],"data_offsets":[15,17]}}'
      local data = "\1\2\3" .. binpack.pack("<ff", 0.5, -4) .. binpack.pack("<I2I2", 0x3C00, 0xC100)
        .. binpack.pack("<I2", 0x4049)
      local path = scratch.write(dir .. "/mixed.safetensors", scratch.safetensors(header, data))
      local t = tc.load(path)
      assert.are.same({ 1, 2, 3 }, t.u:totable())
      assert.are.same({ 0.5, -4 }, t.f:totable())
      assert.are.same({ 1, -2.5 }, t.h:totable())
      assert.are.equal(3.140625, t.b:totable()[1])
      t.f:fill_(9)
      assert.are.same({ 0.5, -4 }, tc.load(path).f:totable())
    end)
  end)

  it("loads a crafted {2^60, 0} tensor and prints it", function()
    scratch.in_dir(function(dir)
      local path = scratch.write(dir .. "/empty.safetensors",
        scratch.safetensors('{"e":{"dtype":"F32","shape":[1152921504606846976,0],"data_offsets":[0,0]}}'))
      local e = tc.load(path).e
      if not compat.has_integers then -- (the size is past 2^53 there: the shape is refused by name)
        assert.are.equal(0, e:numel())
        local ok, message = pcall(function() return e.shape end)
        assert.is_false(ok)
        assert.truthy(message:find("the integer 1152921504606846976 is past 2^53", 1, true), message)
        return
      end
      assert.are.same({ wide(60), 0 }, e.shape)
      assert.are.equal("tensor([], size={1152921504606846976, 0})", tostring(e))
    end)
  end)
end)

describe("atomic saves", function()
  local writers = {
    ["tc.save"] = function(path) tc.save(path, { w = tc.ones({ 2 }) }) end,
    ["checkpoint.save"] = function(path) tc.checkpoint.save(path, { step = 1, rng = { 1, 2 } }) end,
    ["tokenizer:save"] = function(path) tokenizer.CharTokenizer.new("abc"):save(path) end,
    ["tc.io.write_file"] = function(path) tc.io.write_file(path, "text") end,
    ["cli.write_atomic"] = function(path) cli.write_atomic(path, "text") end,
  }

  for name, save in pairs(writers) do
    it(name .. " keeps an existing file's mode (before: 0644 for tc.save and tokenizer:save)", function()
      scratch.in_dir(function(dir)
        local path = scratch.write(dir .. "/kept", "old")
        assert(shell.execute("chmod 600 " .. q(path)))
        save(path)
        assert.are.equal("600", scratch.mode(path))
        assert(shell.execute("chmod 640 " .. q(path)))
        save(path)
        assert.are.equal("640", scratch.mode(path))
        assert.are.same({ "kept" }, scratch.listing(dir))
      end)
    end)

    it(name .. " writes through a symbolic link to its target (before: replaced the link)", function()
      scratch.in_dir(function(dir)
        -- link2 -> links/link1 -> ../real/file: relative links, resolved from the folder of each.
        assert(shell.execute(("mkdir %s %s && ln -s ../real/file %s && ln -s links/link1 %s"):format(q(dir .. "/real"),
          q(dir .. "/links"), q(dir .. "/links/link1"), q(dir .. "/link2"))))
        save(dir .. "/link2") -- a dangling chain: the target is created
        assert.is_truthy(scratch.read(dir .. "/real/file"))
        local first = scratch.read(dir .. "/real/file")
        scratch.write(dir .. "/real/file", "changed")
        save(dir .. "/link2")
        assert.are.equal(first, scratch.read(dir .. "/real/file"))
        for _, link in ipairs({ "links/link1", "link2" }) do
          assert.is_true(shell.execute("test -L " .. q(dir .. "/" .. link)), link .. " is no longer a link")
        end
        assert.are.same({ "link2", "links", "real" }, scratch.listing(dir))
        assert.are.same({ "link1" }, scratch.listing(dir .. "/links"))
        assert.are.same({ "file" }, scratch.listing(dir .. "/real"))
      end)
    end)

    local long_names = " saves to a 255-byte file name (before: 252 bytes failed: the temporary's name was too long)"
    it(name .. long_names, function()
      scratch.in_dir(function(dir)
        for _, length in ipairs({ 252, 255 }) do
          local path = dir .. "/" .. ("n"):rep(length)
          save(path)
          save(path)
          assert.is_truthy(scratch.read(path))
        end
        assert.are.equal(2, #scratch.listing(dir))
      end)
    end)
  end

  it("new files get 0666 less the umask (before: tokenizer:save forced 0644 under umask 077)", function()
    local output, ok = run_child([[
      local tc = require("tricycle")
      local scratch = require("helpers.scratch")
      local dir = scratch.new_dir()
      tc.save(dir .. "/a", { w = tc.ones({ 1 }) })
      require("tricycle.tokenizer").CharTokenizer.new("ab"):save(dir .. "/b")
      tc.io.write_file(dir .. "/c", "c")
      tc.checkpoint.save(dir .. "/d", { step = 1 })
      io.write(scratch.mode(dir .. "/a"), " ", scratch.mode(dir .. "/b"), " ", scratch.mode(dir .. "/c"), " ",
        scratch.mode(dir .. "/d"))
      scratch.remove_dir(dir)
    ]], "umask 077; ")
    assert.is_true(ok, output)
    assert.are.equal("600 600 600 600", output)
    output, ok = run_child([[
      local tc = require("tricycle")
      local scratch = require("helpers.scratch")
      local dir = scratch.new_dir()
      tc.save(dir .. "/a", { w = tc.ones({ 1 }) })
      io.write(scratch.mode(dir .. "/a"))
      scratch.remove_dir(dir)
    ]], "umask 002; ")
    assert.is_true(ok, output)
    assert.are.equal("664", output)
  end)

  it("removes temporaries whose writer is gone, and keeps a live writer's", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/model.safetensors"
      local stale = dir .. "/.model.safetensors.tc-tmp-AbC123"
      local live = dir .. "/.model.safetensors.tc-tmp-XyZ789"
      local other = dir .. "/.other.safetensors.tc-tmp-Qwe456"
      scratch.write(stale, "left by a killed save")
      scratch.write(live, "being written")
      scratch.write(other, "another target's")
      -- A live writer holds an flock on its temporary until its rename.
      local ready = dir .. "/holding"
      assert(shell.execute(("flock -x %s sh -c 'touch %s; sleep 3' >/dev/null 2>&1 &"):format(q(live), q(ready))))
      for _ = 1, 100 do
        if scratch.read(ready) then break end
        shell.execute("sleep 0.02")
      end
      assert.is_truthy(scratch.read(ready), "flock did not start")
      tc.save(path, { w = tc.ones({ 1 }) })
      assert.is_nil(scratch.read(stale))
      assert.are.equal("being written", scratch.read(live))
      assert.are.equal("another target's", scratch.read(other))
      -- Once its holder is gone, the next save removes it too.
      shell.execute(("flock -x %s true"):format(q(live)))
      tc.save(path, { w = tc.ones({ 1 }) })
      assert.is_nil(scratch.read(live))
      assert.are.same({ ".other.safetensors.tc-tmp-Qwe456", "holding", "model.safetensors" }, scratch.listing(dir))
    end)
  end)

  it("a save killed at any moment leaves the old or the new file, and the next save removes its temporary", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/model.safetensors"
      tc.save(path, { w = tc.full({ 1048576 }, -1) }, { version = "-1" })
      local script = scratch.write(dir .. "/saver.lua", ([[
        local tc = require("tricycle")
        for version = 0, math.huge do
          tc.save(%q, { w = tc.full({ 1048576 }, version) }, { version = tostring(version) })
        end
      ]]):format(path))
      local command = ("%s %s"):format(scratch.lua_command(), q(script))
      local left = 0
      for kill = 1, 30 do
        local delay = 0.02 + (kill % 6) * 0.02
        shell.execute(("sh -c %s >/dev/null 2>&1"):format(q(("%s & pid=$!; sleep %.2f; kill -9 $pid; wait $pid")
          :format(command, delay))))
        local tensors, metadata = tc.load(path) -- never torn: loads, and holds one version throughout
        local version = tonumber(metadata.version)
        assert.are.equal(version, tensors.w:min():item())
        assert.are.equal(version, tensors.w:max():item())
        left = left + #temporaries(dir)
      end
      tc.save(path, { w = tc.zeros({ 1 }) })
      assert.are.same({}, temporaries(dir))
      assert.are.same({ "model.safetensors", "saver.lua" }, scratch.listing(dir))
      -- Kills land mid-write often enough to test something (more than half
      -- of them here).
      assert.is_true(left > 0, "no kill landed while a temporary existed")
    end)
  end)

  it("a full disk (a file-size limit) fails the save with the reason and keeps the old file", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/model.safetensors"
      tc.save(path, { w = tc.tensor({ 1, 2 }) }, { version = "old" })
      -- ulimit -f counts 512-byte blocks; with SIGXFSZ ignored, write fails with EFBIG.
      local output, ok = run_child(([[
        local tc = require("tricycle")
        local saved, message = pcall(tc.save, %q, { w = tc.ones({ 100000 }) })
        io.write(tostring(saved), " ", message)
      ]]):format(path), "trap '' XFSZ; ulimit -f 16; ")
      assert.is_true(ok, output)
      assert.truthy(output:find("false safetensors save: writing '", 1, true), output)
      assert.truthy(output:find("File too large", 1, true), output)
      local tensors, metadata = tc.load(path)
      assert.are.same({ 1, 2 }, tensors.w:totable())
      assert.are.equal("old", metadata.version)
      assert.are.same({ "model.safetensors" }, scratch.listing(dir))
    end)
  end)

  it("a read-only folder fails the save and keeps the old file", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/tok"
      tokenizer.CharTokenizer.new("ab"):save(path)
      local old = scratch.read(path)
      -- Root ignores permissions; the immutable flag binds it too.
      if not shell.execute("chattr +i " .. q(dir) .. " 2>/dev/null") then
        pending("chattr +i is not available here")
        return
      end
      local ok, message = pcall(function() tokenizer.CharTokenizer.new("xyz"):save(path) end)
      shell.execute("chattr -i " .. q(dir))
      assert.is_false(ok)
      assert.truthy(message:find("save: cannot create a temporary file in '" .. dir .. "'", 1, true), message)
      assert.are.equal(old, scratch.read(path))
    end)
  end)
end)

describe("plain files through the engine", function()
  it("read_file, write_file, append_file and file_kind", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/notes.txt"
      assert.is_nil(tc.io.file_kind(path))
      tc.io.write_file(path, "one\0two")
      assert.are.equal("one\0two", tc.io.read_file(path))
      tc.io.append_file(path, "\nthree")
      assert.are.equal("one\0two\nthree", tc.io.read_file(path, { max_bytes = 13 }))
      assert.are.equal("file", tc.io.file_kind(path))
      assert.are.equal("directory", tc.io.file_kind(dir))
      assert.are.equal("character device", tc.io.file_kind("/dev/null"))
      assert.are.equal("fifo", tc.io.file_kind(scratch.mkfifo(dir .. "/pipe")))
      assert.are.equal("", tc.io.read_file(scratch.write(dir .. "/empty", "")))
    end)
  end)

  it("JSON keeps keys with NUL bytes, so checkpoints keep them (before: the key was cut and its value lost)", function()
    assert.are.equal('{"a":2,"a\\u0000b":1}', tc.json_encode({ ["a\0b"] = 1, a = 2 }))
    scratch.in_dir(function(dir)
      tc.checkpoint.save(dir .. "/ckpt", { config = { ["x\0y"] = "kept" } })
      assert.are.equal("kept", tc.checkpoint.load(dir .. "/ckpt").config["x\0y"])
    end)
  end)

  it("cli's JSON-lines log reads back what it appended", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/metrics.jsonl"
      assert.are.same({}, cli.read_jsonl(path))
      cli.append_jsonl(path, { step = 1, loss = 2.5 })
      cli.append_jsonl(path, { step = 2, note = "ok" })
      assert.are.same({ { step = 1, loss = 2.5 }, { step = 2, note = "ok" } }, cli.read_jsonl(path))
    end)
  end)
end)
