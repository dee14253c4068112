-- The static checks on backend tables (src/internal.h: TC_BACKEND_ENTRY,
-- TC_BACKEND_CHECK): a table made from rows X(slot, kernel) compiles when
-- its rows name every required slot of src/backend_slots.h once, with
-- kernels of their slots' types, and fails to compile when a required slot
-- is missing, a slot is named twice, or a kernel is NULL or of another
-- signature. Each case is a small C file compiled with $CC (default cc);
-- the CPU kernels serve as the kernels. spec/c/backend_test.c checks what
-- happens at run time.

local compat = require("tricycle.compat")
local compiler = os.getenv("CC") or "cc"

-- The slots in the list's order: { name =, kind = "REQUIRED" or "OPTIONAL" }.
local function slot_list()
  local file = assert(io.open("src/backend_slots.h", "r"))
  local text = file:read("a")
  file:close()
  local slots = {}
  for name, kind in text:gmatch("X%(([%w_]+), (%u+),") do
    slots[#slots + 1] = { name = name, kind = kind }
  end
  return slots
end

-- Compiles a table made from rows ("X(slot, kernel)" strings); returns
-- whether it compiled and the compiler's output.
local function compile_table(rows)
  local path = os.tmpname() .. ".c"
  local file = assert(io.open(path, "w"))
  file:write('#include "cpu/cpu_backend.h"\n',
    "#define ROWS(X) ", table.concat(rows, " "), "\n",
    'static const tc_backend table = {.name = "test", .device = TC_CPU, ROWS(TC_BACKEND_ENTRY)};\n',
    'TC_BACKEND_CHECK("test", ROWS);\n',
    "const tc_backend *test_table(void);\n",
    "const tc_backend *test_table(void) { return &table; }\n")
  file:close()
  -- the compiler runs without the sanitizer `make asan` preloads into Lua
  local command = ("env -u LD_PRELOAD %s -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only -I src %s 2>&1")
    :format(compiler, path)
  local output, status = assert(compat.popen_read(command))
  os.remove(path)
  return status == 0, output
end

-- Rows for the given slots with their CPU kernels.
local function rows_for(slots)
  local rows = {}
  for _, slot in ipairs(slots) do
    rows[#rows + 1] = ("X(%s, cpu_%s)"):format(slot.name, slot.name)
  end
  return rows
end

describe("backend tables", function()
  local slots = slot_list()
  local required = {}
  for _, slot in ipairs(slots) do
    if slot.kind == "REQUIRED" then required[#required + 1] = slot end
  end

  it("reads the slot list", function()
    assert.is_true(#slots >= 30 and #required >= 15 and #required < #slots)
    for _, slot in ipairs(slots) do
      assert.is_truthy(slot.kind == "REQUIRED" or slot.kind == "OPTIONAL")
    end
  end)

  it("compile with every required slot, or every slot", function()
    local ok, output = compile_table(rows_for(required))
    assert.is_true(ok, output)
    ok, output = compile_table(rows_for(slots))
    assert.is_true(ok, output)
  end)

  it("do not compile without a required slot", function()
    for _, missing in ipairs({ 1, compat.idiv(#required, 2), #required }) do
      local rows = rows_for(required)
      table.remove(rows, missing)
      local ok, output = compile_table(rows)
      assert.is_false(ok, "compiled without " .. required[missing].name)
      assert.matches("test backend: a required slot (backend_slots.h) has no kernel", output, 1, true)
    end
  end)

  it("do not compile with a slot named twice", function()
    local rows = rows_for(required)
    rows[#rows + 1] = "X(gemv, cpu_gemv) X(gemv, cpu_gemv)"
    local ok, output = compile_table(rows)
    assert.is_false(ok)
    assert.matches("test backend: a slot has two kernels", output, 1, true)
  end)

  -- Callers get a backend for optional slots from tc_backend_kernels (or
  -- ask tc_backend_supports), never from tc_backend_of or the context's
  -- table directly.
  it("have their optional slots called only after the check", function()
    local pipe = assert(io.popen("ls src/*.c src/cpu/*.c lua/tricycle/*.c"))
    local paths = pipe:read("a")
    pipe:close()
    local checked = 0
    for path in paths:gmatch("[^\n]+") do
      local file = assert(io.open(path, "r"))
      local text = file:read("a")
      file:close()
      checked = checked + 1
      for _, slot in ipairs(slots) do
        if slot.kind == "OPTIONAL" then
          local direct = { "tc_backend_of%b()%->" .. slot.name .. "%(", "backends%b[]%->" .. slot.name .. "%(" }
          for _, pattern in ipairs(direct) do
            assert.is_nil(text:find(pattern), ("%s calls %s without the check"):format(path, slot.name))
          end
        end
      end
    end
    assert.is_true(checked > 20)
  end)

  it("do not compile with a NULL kernel or a kernel of another signature", function()
    local rows = rows_for(required)
    rows[#rows + 1] = "X(gemv, NULL)"
    local ok, output = compile_table(rows)
    assert.is_false(ok)
    assert.matches("lvalue required", output, 1, true)
    rows[#rows] = "X(gemv, cpu_gemm)"
    ok, output = compile_table(rows)
    assert.is_false(ok)
    assert.matches("incompatible pointer type", output, 1, true)
  end)
end)
