--- Tables of the GPT benchmark (bench/gpt_bench.lua): the ours-vs-PyTorch
-- lines, the sgemm comparison and model FLOP utilisation, as markdown.
local M = {}

local function fmt(value, pattern)
  if value == nil then return "-" end
  return (pattern or "%.1f"):format(value)
end

local function ratio(a, b)
  if a == nil or b == nil or b == 0 then return nil end
  return a / b
end

--- Rate in tokens/s of a line's result (training or generation), or nil.
function M.rate(result)
  if not result then return nil end
  return result.tokens_per_s or result.tok_per_s_median
end

--- Model FLOPs of one training step (PaLM appendix B / nanoGPT's estimate_mfu):
-- 6 N per token for the matmuls of forward and backward, N = parameters less
-- the position embedding (a lookup; the tied token embedding counts once, as
-- the head's matmul), plus 12 L T C per token for attention's QK^T and AV
-- (forward and backward, the causal mask not discounted); B T tokens a step.
function M.step_flops(cfg, params)
  local tokens = cfg.batch * cfg.ctx
  local n = params - cfg.ctx * cfg.n_embd
  return 6 * n * tokens + 12 * cfg.n_layer * cfg.ctx * cfg.n_embd * tokens
end

M.flops_formula = "FLOPs/step = 6 (P - T C) B T + 12 L T C B T  (P parameters, T C the position embedding, "
  .. "L layers, T context, C width, B batch; PaLM/nanoGPT convention)"

--- The ours-vs-PyTorch table of `lines` ({name, ours, torch} each).
function M.lines_table(lines)
  local out = {
    "| line | ours tok/s | PyTorch tok/s | ours/PyTorch | our peak RSS MiB | PyTorch peak RSS MiB |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, line in ipairs(lines) do
    local ours, torch = M.rate(line.ours), M.rate(line.torch)
    out[#out + 1] = ("| %s | %s | %s | %s | %s | %s |"):format(line.name, fmt(ours), fmt(torch),
      fmt(ratio(ours, torch), "%.2f"), fmt(line.ours and line.ours.peak_rss_mib_self),
      fmt(line.torch and line.torch.peak_rss_mib_self))
  end
  return table.concat(out, "\n")
end

--- The sgemm table: one row per shape, raw OpenBLAS and tc matmul per thread count.
function M.sgemm_table(shapes, sgemm, thread_counts)
  local header = { "| GEMM (M×K·K×N, transposes, batch) | use |" }
  local rule = { "| --- | --- |" }
  for _, t in ipairs(thread_counts) do
    header[#header + 1] = (" OpenBLAS %dT | tc.matmul %dT | ratio %dT |"):format(t, t, t)
    rule[#rule + 1] = " ---: | ---: | ---: |"
  end
  local out = { table.concat(header), table.concat(rule) }
  for _, shape in ipairs(shapes) do
    local row = { ("| %s×%s·%s×%s %s%s ×%s | %s |"):format(shape.m, shape.k, shape.k, shape.n, shape.ta, shape.tb,
      shape.batch, shape.use) }
    for _, t in ipairs(thread_counts) do
      local raw = sgemm[t] and sgemm[t].raw[shape.spec]
      local ours = sgemm[t] and sgemm[t].ours[shape.spec]
      row[#row + 1] = (" %s | %s | %s |"):format(fmt(raw), fmt(ours), fmt(ratio(ours, raw), "%.2f"))
    end
    out[#out + 1] = table.concat(row)
  end
  return table.concat(out, "\n")
end

--- The MFU table: per training line, model GFLOP/s and the share of the
-- sgemm ceiling at the same thread count, ours and PyTorch.
function M.mfu_table(rows)
  local out = {
    "| line | GFLOP/step | sgemm ceiling GFLOP/s | ours GFLOP/s | ours MFU | PyTorch GFLOP/s | PyTorch MFU |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, r in ipairs(rows) do
    local function pct(x) return x and ("%.1f%%"):format(100 * x) or "-" end
    out[#out + 1] = ("| %s | %.2f | %s | %s | %s | %s | %s |"):format(r.name, r.step_gflop, fmt(r.ceiling),
      fmt(r.ours_gflops), pct(r.ours_mfu), fmt(r.torch_gflops), pct(r.torch_mfu))
  end
  return table.concat(out, "\n")
end

return M
