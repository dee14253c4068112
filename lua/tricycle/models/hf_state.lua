--- What tricycle.models.gpt2 and tricycle.models.llama share when they read
-- a Hugging Face state: the list of what keeps it from fitting the model.
local shape_string = require("tricycle.nn.module").shape_string

local hf_state = {}

--- What keeps `state` (name -> tensor) from fitting `shapes` (name ->
-- shape), in Hugging Face's names: "missing keys: ...; unexpected keys:
-- ...; mis-shaped keys: ..." (each list sorted), or nil when it fits.
-- ignored(name), when given, is true for the names a checkpoint may hold
-- that the model does not use.
function hf_state.problems(state, shapes, ignored)
  local missing, unexpected, mismatched = {}, {}, {}
  for name, shape in pairs(shapes) do
    local tensor = state[name]
    if tensor == nil then
      missing[#missing + 1] = name
    elseif shape_string(tensor.shape) ~= shape_string(shape) then
      mismatched[#mismatched + 1] = ("%s (checkpoint %s, model %s)"):format(name, shape_string(tensor.shape),
        shape_string(shape))
    end
  end
  for name in pairs(state) do
    if not shapes[name] and not (ignored and ignored(name)) then
      unexpected[#unexpected + 1] = name
    end
  end
  local problems = {}
  for _, part in ipairs({ { "missing keys", missing }, { "unexpected keys", unexpected },
    { "mis-shaped keys", mismatched } }) do
    if #part[2] > 0 then
      table.sort(part[2])
      problems[#problems + 1] = part[1] .. ": " .. table.concat(part[2], ", ")
    end
  end
  return #problems > 0 and table.concat(problems, "; ") or nil
end

return hf_state
