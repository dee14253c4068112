-- Bad inputs: tricycle.cli. JSON Lines records and logs that have no
-- correct reading or writing, option lists with mistakes in them (the
-- program's own code: plain errors naming the entry, not usage errors), and
-- options tables of the progress line and the chart. Usage errors of a
-- command line are UsageError values, tested in spec/cli_spec.lua.
local cli = require("tricycle.cli")
local scratch = require("helpers.scratch")

--- cli.read_jsonl of a file holding text.
local function read_log(text)
  return function()
    scratch.in_dir(function(dir)
      cli.read_jsonl(scratch.write(dir .. "/metrics.jsonl", text))
    end)
  end
end

local function parse_with(option)
  return function()
    cli.parse({}, { option })
  end
end

return {
  -- ---- JSON Lines
  { "cli.read_jsonl of a line with a trailing comma (before: read as a record)",
    read_log('{"step":1}\n{"step":2,}\n'),
    { "cli.read_jsonl", "metrics.jsonl' line 2 is not valid JSON", "at byte 10" } },
  { "cli.read_jsonl of a line of plain text (before: read as an empty record)", read_log("loss went down\n"),
    { "cli.read_jsonl", "line 1 is not valid JSON" } },
  { "cli.read_jsonl of an array line (before: read as an empty record)", read_log('{"step":1}\n[1, 2]\n'),
    { "cli.read_jsonl", "line 2 holds an array, not a record (a JSON object)" } },
  { "cli.read_jsonl of a null line", read_log("\nnull\n"),
    { "cli.read_jsonl", "line 2 holds null, not a record" } },
  { "cli.read_jsonl of a string with a raw newline split over two lines", read_log('{"text":"a\nb"}\n'),
    { "cli.read_jsonl", "line 1 is not valid JSON", "unterminated string" } },
  { "cli.read_jsonl of invalid UTF-8 (before: read as it was)", read_log('{"text":"\xff"}\n'),
    { "cli.read_jsonl", "line 1 is not valid JSON", "invalid UTF-8" } },
  { "cli.read_jsonl of a duplicated key (before: the last one won)", read_log('{"step":1,"step":2}\n'),
    { "cli.read_jsonl", "line 1 is not valid JSON", "step" } },
  { "cli.read_jsonl of a directory", function()
    scratch.in_dir(function(dir)
      cli.read_jsonl(dir)
    end)
  end, { "cli.read_jsonl", "is a directory" } },
  { "cli.append_jsonl of a list (before: wrote [1,2], read back as {})", function()
    scratch.in_dir(function(dir)
      cli.append_jsonl(dir .. "/log.jsonl", { 1, 2 })
    end)
  end, { "cli.append_jsonl: argument 1 (record) must be a table with string keys (a JSON object), got a list" } },
  { "cli.append_jsonl of a number (before: wrote 5, read back as {})", function()
    scratch.in_dir(function(dir)
      cli.append_jsonl(dir .. "/log.jsonl", 5)
    end)
  end, { "cli.append_jsonl: argument 1 (record) must be a table, got number" } },
  { "cli.append_jsonl of a string that is not UTF-8 (before: wrote a line no JSON reader takes)", function()
    scratch.in_dir(function(dir)
      cli.append_jsonl(dir .. "/log.jsonl", { step = 1, text = "caf\xe9" })
    end)
  end, { "cli.append_jsonl", "not valid UTF-8", "(at text)" } },
  { "cli.json_line of a function value (before: written as null)", function()
    cli.json_line({ step = 1, callback = print })
  end, { "cli.json_line", "a function has no JSON form", "(at callback)" } },
  { "cli.json_line of a table with mixed keys (before: keys written as text)", function()
    cli.json_line({ step = 1, [2] = "x" })
  end, { "cli.json_line", "mixing key types" } },
  { "cli.json_line of a cycle (before: stack overflow)", function()
    local record = { step = 1 }
    record.self = record
    cli.json_line(record)
  end, { "cli.json_line", "nest too deeply" } },
  { "cli.keep_records_through of a broken log", function()
    scratch.in_dir(function(dir)
      cli.keep_records_through(scratch.write(dir .. "/metrics.jsonl", '{"step":1}\n{oops}\n'), 1)
    end)
  end, { "cli.read_jsonl", "line 2 is not valid JSON" } },
  { "cli.write_atomic into a missing folder", function()
    cli.write_atomic("/nonexistent-folder/loss.svg", "<svg/>")
  end, { "cli.write_atomic", "/nonexistent-folder/loss.svg" } },

  -- ---- option lists
  { "cli.parse with a misspelt key in an option (before: ignored)",
    parse_with({ name = "steps", typ = "integer" }),
    { "cli.parse: option 1: unknown option 'typ'", "valid: choices, default, help, metavar, name, type" } },
  { "cli.parse with an unknown type (before: read as a string)", parse_with({ name = "steps", type = "int" }),
    { "cli.parse: option 1 (steps): type must be one of", "got 'int'" } },
  { "cli.parse with a choice without choices (before: 'attempt to index a nil value' once given)",
    parse_with({ name = "preset", type = "choice" }),
    { "cli.parse: option 1 (preset): a choice needs choices" } },
  { "cli.parse with choices on a string option", parse_with({ name = "preset", choices = { "a" } }),
    { "cli.parse: option 1 (preset): choices go with type = \"choice\", not 'string'" } },
  { "cli.parse with a default of the wrong type", parse_with({ name = "steps", type = "integer", default = 2.5 }),
    { "cli.parse: option 1 (steps): default 2.5 is not a value of type integer" } },
  { "cli.parse with a default outside the choices",
    parse_with({ name = "mode", type = "choice", choices = { "a", "b" }, default = "c" }),
    { "cli.parse: option 1 (mode): default 'c' is not a value of type choice" } },
  { "cli.parse with a name that is not a word", parse_with({ name = "--steps" }),
    { "cli.parse: option 1: name must be a word", "got '--steps'" } },
  { "cli.parse with a name given twice (before: the last one won)", function()
    cli.parse({}, { { name = "steps" }, { name = "steps", type = "integer" } })
  end, { "cli.parse: option 2: name 'steps' is given twice" } },
  { "cli.parse with an option that is not a table", function()
    cli.parse({}, { "steps" })
  end, { "cli.parse: option 1 must be a table", "got string" } },
  { "cli.parse with many = true on a positional that is not the last", function()
    cli.parse({}, {}, { { name = "A", many = true }, { name = "B" } })
  end, { "cli.parse: positional 1 (A): only the last positional takes many = true" } },
  { "cli.parse with a misspelt key in a positional (before: ignored)", function()
    cli.parse({}, {}, { { name = "FILE", requried = true } })
  end, { "cli.parse: positional 1: unknown option 'requried'", "valid: many, name, required" } },
  { "cli.parse of an argv holding a number (before: 'attempt to index a number value')", function()
    cli.parse({ "--quick", 5 }, { { name = "quick", type = "flag" } })
  end, { "cli.parse: argv[2] must be a string, got number" } },
  { "cli.parse without a list of options (before: 'attempt to index a nil value')", function()
    cli.parse({})
  end, { "cli.parse: argument 'options' must be a list of options, got nil" } },
  { "cli.help with a misspelt key in an option", function()
    cli.help("prog", nil, { { name = "steps", hlep = "steps" } })
  end, { "cli.help: option 1: unknown option 'hlep'" } },
  { "cli.program with a misspelt key", function()
    cli.program({ name = "prog", usage = "prog", option = {} })
  end, { "cli.program: unknown option 'option'", "options" } },
  { "cli.program without a usage line", function()
    cli.program({ name = "prog" })
  end, { "cli.program: usage must be a string, got nil" } },

  -- ---- the progress line and the chart
  { "cli.Progress.new with a misspelt key (before: ignored)", function()
    cli.Progress.new({ total = 10, evry = 5 })
  end, { "cli.Progress.new: unknown option 'evry'", "every" } },
  { "cli.Progress.new without a total (before: error in the first update)", function()
    cli.Progress.new({ terminal = false })
  end, { "cli.Progress.new: total must be a non-negative integer, got nil" } },
  { "cli.svg_chart with a misspelt key (before: ignored)", function()
    cli.svg_chart({}, { titel = "loss" })
  end, { "cli.svg_chart: unknown option 'titel'", "title" } },
}
