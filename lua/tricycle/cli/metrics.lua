--- tricycle.cli.metrics: the files a run writes as it goes: JSON Lines logs
-- (one record, a JSON object, per line) and whole files replaced
-- atomically. JSON is read and written by the engine's src/json.c (through
-- tricycle.core, loaded on first use), and files go through its files.c:
-- regular files only, atomic replacement for write_atomic.
--
-- A record's numbers that are not finite (a loss gone to NaN, an infinite
-- gradient norm) are written as null, which reads back as an absent field,
-- so such a line is kept instead of stopping the run. A last line without
-- its newline that is not valid JSON (an append cut short by a full disk or
-- a crash) is left out when reading; any other invalid line is an error
-- naming the file and the line.
local compat = require("tricycle.compat")
local M = {}

local function core()
  return require("tricycle.core")
end

--- Calls core[name](...) and raises its error at the level of whoever
-- called the caller, as that caller's own.
local function call(name, ...)
  local results = compat.pack(pcall(core()[name], ...))
  if not results[1] then
    error(results[2], 3)
  end
  return compat.unpack(results, 2, results.n)
end

--- One record (a table with string keys) as one line of JSON, without the
-- newline: keys sorted, numbers that read back as the same value.
function M.json_line(record)
  return call("json_line", record, "cli.json_line")
end

--- Appends one record as a line to path (a regular file, created when
-- missing).
function M.append_jsonl(path, record)
  local line = call("json_line", record, "cli.append_jsonl")
  call("append_file", path, line .. "\n", "cli.append_jsonl")
end

--- The records of a JSON Lines file, in order ({} when there is no file).
function M.read_jsonl(path)
  if call("file_kind", path, "cli.read_jsonl") == nil then
    return {}
  end
  local text = call("read_file", path, nil, "cli.read_jsonl")
  return call("json_lines", text, "cli.read_jsonl", ("'%s'"):format(path))
end

--- Rewrites the log at path (atomically) with only the records up to
-- last_step (a record without a step counts as step 0): what a run resumed
-- from the checkpoint of last_step has logged.
function M.keep_records_through(path, last_step)
  local kept = {}
  for _, record in ipairs(M.read_jsonl(path)) do
    if (record.step or 0) <= last_step then
      kept[#kept + 1] = call("json_line", record, "cli.keep_records_through")
    end
  end
  call("write_file", path, #kept > 0 and (table.concat(kept, "\n") .. "\n") or "", "cli.keep_records_through")
end

--- Writes text to path atomically, with the engine's writer (tc.io.write_file:
-- temporary file beside it, fsync, rename; modes kept, links followed).
function M.write_atomic(path, text)
  call("write_file", path, text, "cli.write_atomic")
end

return M
