-- tricycle.cli's modules on their own: JSON Lines logs (escapes, nesting,
-- files written before, torn and broken lines), the option lists the parser
-- checks, programs' exits, and every bench and script answering bad usage
-- with exit status 2 through the one parser.
local module_dir = require("helpers.module_dir")
local lua_command = require("helpers.interpreter")
local compat = require("tricycle.compat")
local shell = require("helpers.command")
local number_type = require("helpers.number_type")
local cli = require("tricycle.cli")
local scratch = require("helpers.scratch")

local build = os.getenv("TRICYCLE_BUILD") or "build"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a command with no input; returns its exit code, stdout and stderr.
local function run(command)
  return scratch.in_dir(function(dir)
    local full = ("TRICYCLE_BUILD=%s %s < /dev/null > %s 2> %s"):format(shell_quote(build), command,
      shell_quote(dir .. "/out"), shell_quote(dir .. "/err"))
    local _, code = shell.execute(full)
    local function slurp(name)
      local f = assert(io.open(dir .. "/" .. name, "rb"))
      local text = f:read("a")
      f:close()
      return text
    end
    return code, slurp("out"), slurp("err")
  end)
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no error")
  return tostring(err)
end

describe("cli.metrics (JSON Lines)", function()
  it("round-trips strings with quotes, backslashes, controls and non-ASCII text", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/log.jsonl"
      local record = {
        step = 3, text = 'say "hi", then {go}: a\\b\n\ttab\r\0nul\1 é 😀 \u{2028}', ['key "quoted"'] = true,
      }
      cli.append_jsonl(path, record)
      cli.append_jsonl(path, { step = 4, text = "plain" })
      assert.are.same({ record, { step = 4, text = "plain" } }, cli.read_jsonl(path))
    end)
  end)

  it("writes escapes a strict reader accepts and one record per line", function()
    local line = cli.json_line({ a = 'q"\\\n', b = 1, c = 0.1 })
    assert.are.equal('{"a":"q\\"\\\\\\n","b":1,"c":0.1}', line)
    assert.is_nil(line:find("\n", 1, true))
    assert.are.same({ a = 'q"\\\n', b = 1, c = 0.1 }, require("tricycle").json_decode(line))
  end)

  it("reads every valid record: escapes, unicode escapes, nesting, blank and CRLF lines", function()
    scratch.in_dir(function(dir)
      -- before: the pattern reader cut "a\"b" at the escaped quote, kept \u00e9 as
      -- six characters, split "x, y" at its comma and could not read nested values
      local path = scratch.write(dir .. "/log.jsonl", table.concat({
        '{"name":"a\\"b","step":1}',
        '{"text":"x, y} z","u":"\\u00e9\\ud83d\\ude00","slash":"\\/"}',
        "",
        "   ",
        '{"nested":{"list":[1,2.5,null,{"deep":[true,false]}]},"empty":{}}\r',
        '  {"spaced" : 1 }  ',
      }, "\n") .. "\n")
      local records = cli.read_jsonl(path)
      assert.are.equal(4, #records)
      assert.are.same({ name = 'a"b', step = 1 }, records[1])
      assert.are.same({ text = "x, y} z", u = "é😀", slash = "/" }, records[2])
      assert.are.same({ nested = { list = { 1, 2.5, nil, { deep = { true, false } } } }, empty = {} }, records[3])
      assert.are.equal(2.5, records[3].nested.list[2])
      assert.are.same({ spaced = 1 }, records[4])
    end)
  end)

  it("reads the metrics files the earlier writer made", function()
    scratch.in_dir(function(dir)
      -- the earlier encoder's text, byte for byte: "%.17g" numbers, floats with
      -- integer values without a point, non-finite numbers as null
      local path = scratch.write(dir .. "/metrics.jsonl", table.concat({
        '{"loss":2.5,"lr":0.0030000000000000001,"step":10,"tokens_per_second":23145.678899999999}',
        '{"step":250,"val_bpc":2.2999999999999998,"val_loss":1.6000000000000001}',
        '{"grad_norm":null,"loss":null,"lr":1,"step":11}',
        '{"step":3,"text":"say \\"hi\\"\\n\\tnow é"}',
      }, "\n") .. "\n")
      assert.are.same({
        { loss = 2.5, lr = 3e-3, step = 10, tokens_per_second = 23145.6789 },
        { step = 250, val_bpc = 2.3, val_loss = 1.6 },
        { lr = 1, step = 11 },
        { step = 3, text = 'say "hi"\n\tnow é' },
      }, cli.read_jsonl(path))
    end)
  end)

  it("keeps a record whose numbers are not finite, as null", function()
    scratch.in_dir(function(dir)
      local path = dir .. "/metrics.jsonl"
      cli.append_jsonl(path, { step = 1, loss = 0 / 0, grad_norm = math.huge, low = -math.huge, lr = 0.5 })
      assert.are.equal('{"grad_norm":null,"loss":null,"low":null,"lr":0.5,"step":1}\n', scratch.read(path))
      assert.are.same({ { step = 1, lr = 0.5 } }, cli.read_jsonl(path))
    end)
  end)

  it("numbers read back as the same values and subtypes", function()
    local values = { 0.1, 1 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 2.0, 3, compat.min_integer }
    for _, v in ipairs(values) do
      local back = require("tricycle").json_decode(cli.json_line({ v = v })).v
      assert.are.equal(v, back)
      assert.are.equal(number_type(v), number_type(back), tostring(v))
    end
  end)

  it("leaves out a last line cut short, and keep_records_through rewrites the log without it", function()
    scratch.in_dir(function(dir)
      local path = scratch.write(dir .. "/metrics.jsonl",
        '{"step":1,"loss":3}\n{"step":2,"loss":2}\n{"step":3,"val_loss":2.5}\n{"step":4,"lo')
      assert.are.same({ { step = 1, loss = 3 }, { step = 2, loss = 2 }, { step = 3, val_loss = 2.5 } },
        cli.read_jsonl(path))
      cli.keep_records_through(path, 2)
      assert.are.equal('{"loss":3,"step":1}\n{"loss":2,"step":2}\n', scratch.read(path))
      cli.append_jsonl(path, { step = 3, loss = 1.5 })
      assert.are.same({ { step = 1, loss = 3 }, { step = 2, loss = 2 }, { step = 3, loss = 1.5 } },
        cli.read_jsonl(path))
      cli.keep_records_through(path, 0)
      assert.are.equal("", scratch.read(path))
      assert.are.same({}, cli.read_jsonl(path))
    end)
  end)

  it("names the file and the line of a broken line that is not the last", function()
    scratch.in_dir(function(dir)
      local path = scratch.write(dir .. "/metrics.jsonl", '{"step":1}\n\n{"step":2,}\n{"step":3}\n')
      local message = error_of(cli.read_jsonl, path)
      assert.truthy(message:find("cli.read_jsonl: '" .. path .. "' line 3 is not valid JSON: at byte 10", 1, true),
        message)
      -- a last line that ends with its newline was written whole: broken is an error
      scratch.write(path, '{"step":1}\n{"step":2\n')
      message = error_of(cli.read_jsonl, path)
      assert.truthy(message:find("line 2 is not valid JSON", 1, true), message)
    end)
  end)
end)

describe("cli.args option lists", function()
  it("applies defaults to the options not given, and keeps the others as given", function()
    local options = { { name = "steps", type = "integer", default = 10 }, { name = "out", default = "x" },
      { name = "quick", type = "flag", default = false }, { name = "lr", type = "number" } }
    local values = cli.parse({ "--out", "y" }, options)
    assert.are.same({ steps = 10, out = "y", quick = false }, values)
    assert.are.same({ steps = 3, out = "x", quick = true }, (cli.parse({ "--steps=3", "--quick" }, options)))
    assert.truthy(cli.help("prog", nil, options):find("(default 10)", 1, true))
    assert.is_nil(cli.help("prog", nil, options):find("default false", 1, true))
  end)

  it("gives every remaining word to a last positional with many = true", function()
    local values, rest = cli.parse({ "a", "--n", "2", "b", "c" }, { { name = "n", type = "integer" } },
      { { name = "FIRST", required = true }, { name = "MORE", many = true } })
    assert.are.same({ n = 2 }, values)
    assert.are.same({ "a", "b", "c" }, rest)
  end)

  it("takes a negative number as an option's value and as a positional", function()
    local values, rest = cli.parse({ "--lr", "-1e-3", "-5" }, { { name = "lr", type = "number" } },
      { { name = "N" } })
    assert.are.equal(-1e-3, values.lr)
    assert.are.same({ "-5" }, rest)
  end)

  it("makes the help of an empty option list (before: a format error)", function()
    assert.are.equal("usage: prog\n\noptions:\n  -h, --help  show this help and exit\n", cli.help("prog", nil, {}))
  end)
end)

describe("cli.program", function()
  -- A program whose exits and output are recorded instead of ending the process.
  local function recording_program(spec)
    local record = { out = {}, err = {} }
    local function sink(list)
      return { write = function(self, ...)
        for _, s in ipairs({ ... }) do list[#list + 1] = s end
        return self
      end, flush = function() end }
    end
    spec.stdout, spec.stderr = sink(record.out), sink(record.err)
    spec.exit = function(code)
      record.code = code
      error("exited", 0)
    end
    return cli.program(spec), record
  end

  local OPTIONS = { { name = "steps", type = "integer", help = "how many" },
    { name = "preset", type = "choice", choices = { "cpu", "gpu" } } }

  local function outcome(argv)
    local program, record = recording_program({ name = "prog", usage = "prog [--steps N]", options = OPTIONS,
      description = "Does things." })
    local ok, values = pcall(program.parse, program, argv)
    return ok, values, record.code, table.concat(record.out), table.concat(record.err)
  end

  it("returns the values when the command line is good", function()
    local ok, values, code = outcome({ "--steps", "4" })
    assert.is_true(ok)
    assert.is_nil(code)
    assert.are.same({ steps = 4 }, values)
  end)

  it("prints the help and exits 0 on --help, even beside a bad option", function()
    for _, argv in ipairs({ { "--help" }, { "-h" }, { "--steps", "x", "--help" } }) do
      local ok, _, code, out, err = outcome(argv)
      assert.is_false(ok)
      assert.are.equal(0, code)
      assert.are.equal("", err)
      assert.truthy(out:find("^usage: prog %[%-%-steps N%]\n\nDoes things%.\n\noptions:\n"), out)
      assert.truthy(out:find("--preset cpu|gpu", 1, true), out)
    end
  end)

  it("exits 2 naming the option and the value, with the usage line and a hint", function()
    local cases = {
      { { "--steps" }, "prog: --steps needs a value" },
      { { "--steps", "many" }, "prog: --steps expects an integer, got 'many'" },
      { { "--steps=2.5" }, "prog: --steps expects an integer, got '2.5'" },
      { { "--preset", "tpu" }, "prog: --preset expects one of cpu, gpu, got 'tpu'" },
      { { "--stepz", "1" }, "prog: unknown option --stepz" },
      { { "--no-steps" }, "prog: unknown option --no-steps" },
      { { "-s" }, "prog: unknown option -s" },
      { { "extra" }, "prog: unexpected argument 'extra'" },
    }
    for _, case in ipairs(cases) do
      local ok, _, code, out, err = outcome(case[1])
      assert.is_false(ok)
      assert.are.equal(2, code, table.concat(case[1], " "))
      assert.are.equal("", out)
      assert.are.equal(case[2] .. "\nusage: prog [--steps N]\n(--help lists every option)\n", err)
    end
  end)

  it("fail exits 1 and fail_usage 2, each with the program's name", function()
    local program, record = recording_program({ name = "prog", usage = "prog" })
    assert.is_false(pcall(program.fail, program, "no such file"))
    assert.are.equal(1, record.code)
    assert.are.equal("prog: no such file\n", table.concat(record.err))
    record.err[1], record.err[2], record.err[3], record.err[4], record.err[5] = nil, nil, nil, nil, nil
    assert.is_false(pcall(program.fail_usage, program, "--out is required"))
    assert.are.equal(2, record.code)
    assert.truthy(table.concat(record.err):find("^prog: %-%-out is required\nusage: prog\n"))
  end)
end)

local core_built = io.open(build .. "/" .. module_dir .. "/tricycle/core.so", "rb")
if core_built then
  core_built:close()
end
local command_it = core_built and it or pending

describe("the command lines of the scripts and benches", function()
  local programs = {
    "scripts/train_shakespeare.lua", "scripts/train_gpt2.lua", "scripts/generate.lua", "scripts/prepare_data.lua",
  }
  local bench_files = assert(io.popen("ls bench/*.lua"))
  for path in bench_files:lines() do
    -- common.lua and gpt_report.lua are pieces the benches load, not programs
    if path ~= "bench/common.lua" and path ~= "bench/gpt_report.lua" then
      programs[#programs + 1] = path
    end
  end
  bench_files:close()

  command_it("every one refuses an unknown option with exit status 2 and answers --help with 0", function()
    assert.is_true(#programs >= 10)
    for _, path in ipairs(programs) do
      local name = path:match("([%w_]+)%.lua$")
      local code, out, err = run(lua_command .. " " .. path .. " --no-such-option")
      assert.are.equal(2, code, path .. ": " .. err)
      assert.are.equal("", out, path)
      assert.truthy(err:find(name .. ": unknown option --no-such-option\nusage: ", 1, true), path .. ": " .. err)
      code, out = run(lua_command .. " " .. path .. " --help")
      assert.are.equal(0, code, path)
      assert.truthy(out:find("^usage: "), path .. ": " .. out)
      assert.truthy(out:find("-h, --help", 1, true), path)
    end
  end)

  command_it("values are checked by type and named in the message", function()
    local cases = {
      { "scripts/train_shakespeare.lua --steps", "train_shakespeare: --steps needs a value" },
      { "scripts/train_shakespeare.lua --lr=fast", "train_shakespeare: --lr expects a finite number, got 'fast'" },
      { "scripts/train_gpt2.lua --model 2B", "train_gpt2: --model expects one of 124M, 350M, 774M, 1.5B, got '2B'" },
      { "scripts/generate.lua ck.safetensors extra", "generate: unexpected argument 'extra'" },
      { "bench/gpt_line.lua --config D", "gpt_line: --config expects one of A, B, C, got 'D'" },
      { "bench/gpt_line.lua --steps 0", "gpt_line: --steps must be positive, got 0" },
      { "bench/gpt_bench.lua --threads 1,x", "gpt_bench: --threads expects a list of positive integers, got '1,x'" },
      { "bench/gpt_bench.lua --configs A,Z", "gpt_bench: --configs expects a list of A, B and C, got 'A,Z'" },
      { "bench/matmul_line.lua --reps lots", "matmul_line: --reps expects an integer, got 'lots'" },
      { "bench/matmul_line.lua --shapes 1,2", "matmul_line: --shapes: '1,2' is not M,K,N,TA,TB,BATCH" },
      { "bench/io_bench.lua --child load", "io_bench: --child MODE and PATH go together" },
      { "bench/tokenizer_bench.lua extra", "tokenizer_bench: unexpected argument 'extra'" },
    }
    for _, case in ipairs(cases) do
      local code, _, err = run(lua_command .. " " .. case[1])
      assert.are.equal(2, code, case[1] .. ": " .. err)
      assert.truthy(err:find(case[2] .. "\nusage: ", 1, true), case[1] .. ": " .. err)
    end
  end)
end)
