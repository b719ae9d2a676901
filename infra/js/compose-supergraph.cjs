// Composes Federation v2 subgraphs into a supergraph with @apollo/composition (pinned in
// package-lock.json), the library Apollo's rover and router use.
// stdin: [{"name": "...", "url": "...", "sdl": "..."}, ...]
// stdout: {"ok": true, "supergraphSdl": "...", "hints": [...]}
//      or {"ok": false, "errors": ["..."]}   (exit code 1)
// Run with NODE_PATH=var/js/node_modules (infra/install.sh installs it).
"use strict";

const { composeServices } = require("@apollo/composition");
const { parse } = require("graphql");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let report;
  try {
    const services = JSON.parse(input).map((service) => ({
      name: service.name,
      url: service.url,
      typeDefs: parse(service.sdl),
    }));
    const result = composeServices(services);
    report = result.errors
      ? { ok: false, errors: result.errors.map((error) => error.message) }
      : {
          ok: true,
          supergraphSdl: result.supergraphSdl,
          hints: (result.hints || []).map((hint) => hint.toString()),
        };
  } catch (error) {
    report = { ok: false, errors: [String(error)] };
  }
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exitCode = report.ok ? 0 : 1;
});
