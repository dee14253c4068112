--- tricycle.models: ready-made model families and their checkpoint formats.
-- Each entry loads on first use: tc.models.gpt2.load(path, config),
-- tc.models.llama.load(folder, overrides).
local families = { gpt2 = "tricycle.models.gpt2", llama = "tricycle.models.llama" }

return setmetatable({}, {
  __index = function(models, key)
    local name = families[key]
    if not name then
      return nil
    end
    local loaded = require(name)
    rawset(models, key, loaded)
    return loaded
  end,
})
