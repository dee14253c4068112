local compat = require("tricycle.compat")
local wide = require("helpers.wide")
-- Printing tensors: bounded in time and memory for every shape and dtype,
-- and exactly PyTorch-like for the shapes it always printed.
local tc = require("tricycle")

local DTYPES = { "float32", "float64", "int32", "int64", "uint8", "bool" }

describe("printing tensors", function()
  it("prints an empty tensor with a huge dim at once, in every dtype (before: a table entry per row, never done)",
    function()
      local shapes = { { 100000000, 0 }, { 1099511627776, 0, 524288 } }
      if compat.has_integers then
        shapes[#shapes + 1], shapes[#shapes + 2] = { wide(59), 0 }, { 0, wide(59) }
      else -- (sizes past 2^53 are refused by name there)
        local ok, message = pcall(tc.empty, { wide(59), 0 })
        assert.is_false(ok)
        assert.truthy(message:find("empty: the integer 576460752303423488 is past 2^53", 1, true), message)
      end
      for _, dtype in ipairs(DTYPES) do
        local suffix = (dtype == "float32" or dtype == "int64") and "" or (", dtype=" .. dtype)
        for _, shape in ipairs(shapes) do
          local t = tc.empty(shape, { dtype = dtype })
          local start = os.clock()
          local text = tostring(t)
          assert.is_true(os.clock() - start < 5, "printing does not finish (a guard, not a timing)")
          assert.are.equal("tensor([], size={" .. table.concat(shape, ", ") .. "}" .. suffix .. ")", text)
        end
      end
    end)

  it("shows at most three entries at each end of every dim of a large tensor", function()
    assert.are.equal([=[
tensor([[[   0,    1,    2, ...,    8,    9,   10],
         [  11,   12,   13, ...,   19,   20,   21],
         [  22,   23,   24, ...,   30,   31,   32],
         ...,
         [  88,   89,   90, ...,   96,   97,   98],
         [  99,  100,  101, ...,  107,  108,  109],
         [ 110,  111,  112, ...,  118,  119,  120]],

        [[ 121,  122,  123, ...,  129,  130,  131],
         [ 132,  133,  134, ...,  140,  141,  142],
         [ 143,  144,  145, ...,  151,  152,  153],
         ...,
         [ 209,  210,  211, ...,  217,  218,  219],
         [ 220,  221,  222, ...,  228,  229,  230],
         [ 231,  232,  233, ...,  239,  240,  241]],

        [[ 242,  243,  244, ...,  250,  251,  252],
         [ 253,  254,  255, ...,  261,  262,  263],
         [ 264,  265,  266, ...,  272,  273,  274],
         ...,
         [ 330,  331,  332, ...,  338,  339,  340],
         [ 341,  342,  343, ...,  349,  350,  351],
         [ 352,  353,  354, ...,  360,  361,  362]],

        ...,

        [[ 968,  969,  970, ...,  976,  977,  978],
         [ 979,  980,  981, ...,  987,  988,  989],
         [ 990,  991,  992, ...,  998,  999, 1000],
         ...,
         [1056, 1057, 1058, ..., 1064, 1065, 1066],
         [1067, 1068, 1069, ..., 1075, 1076, 1077],
         [1078, 1079, 1080, ..., 1086, 1087, 1088]],

        [[1089, 1090, 1091, ..., 1097, 1098, 1099],
         [1100, 1101, 1102, ..., 1108, 1109, 1110],
         [1111, 1112, 1113, ..., 1119, 1120, 1121],
         ...,
         [1177, 1178, 1179, ..., 1185, 1186, 1187],
         [1188, 1189, 1190, ..., 1196, 1197, 1198],
         [1199, 1200, 1201, ..., 1207, 1208, 1209]],

        [[1210, 1211, 1212, ..., 1218, 1219, 1220],
         [1221, 1222, 1223, ..., 1229, 1230, 1231],
         [1232, 1233, 1234, ..., 1240, 1241, 1242],
         ...,
         [1298, 1299, 1300, ..., 1306, 1307, 1308],
         [1309, 1310, 1311, ..., 1317, 1318, 1319],
         [1320, 1321, 1322, ..., 1328, 1329, 1330]]])]=], tostring(tc.arange(11 * 11 * 11):reshape(11, 11, 11)))
    assert.are.equal([=[
tensor([[false, false, false],
        [false, false, false],
        [false, false, false],
        ...,
        [ true,  true,  true],
        [ true,  true,  true],
        [ true,  true,  true]], dtype=bool)]=], tostring(tc.arange(3000):reshape(1000, 3):gt(1500)))
    assert.are.equal([=[
tensor([[[0.0000, 0.2500],
         [0.5000, 0.7500],
         [1.0000, 1.2500]],

        [[1.5000, 1.7500],
         [2.0000, 2.2500],
         [2.5000, 2.7500]]])]=], tostring(tc.arange(12):reshape(2, 3, 2):to("float32") / 4))
  end)

  it("keeps the text of a large tensor short whatever its size", function()
    for _, shape in ipairs({ { 4194304 }, { 2048, 2048 }, { 7, 7, 7, 7, 7 }, { 1, 1, 1, 1, 1, 1, 1, 2000 } }) do
      local text = tostring(tc.zeros(shape))
      local kept = 1
      for _, size in ipairs(shape) do
        kept = kept * math.min(size, 6)
      end
      local _, zeros = text:gsub("0%.", "")
      assert.are.equal(kept, zeros)
    end
  end)

  it("prints a 0-dim tensor of every dtype", function()
    assert.are.equal("tensor(false, dtype=bool)", tostring(tc.tensor(false, { dtype = "bool" })))
    assert.are.equal("tensor(7, dtype=uint8)", tostring(tc.tensor(7, { dtype = "uint8" })))
    assert.are.equal("tensor(2.5000, dtype=float64)", tostring(tc.tensor(2.5, { dtype = "float64" })))
  end)
end)
