#!/usr/bin/env node
// Khronos glTF validator CLI: prints one JSON report per input, one per line (JSON Lines).
//
//   node validate-gltf.mjs [--max-issues N] FILE...    ('-' reads a GLB/glTF from stdin)
//   node validate-gltf.mjs --serve                     (long-lived: one report per request)
//
// --serve keeps one Node process (and the validator's loaded code) for many inputs: each
// request on stdin is a little-endian uint32 max-issues, a uint32 byte length and that many
// bytes; each answer is one JSON line on stdout, the report or {"error": "..."} for an input
// the validator cannot read. It exits when stdin closes.
//
// Exit status: 0 when no input has errors, 1 when any has, 2 on bad usage or an input the
// validator cannot read at all. The report is the validator's own object (issues.numErrors,
// numWarnings, numInfos, numHints, messages[]), with "uri" naming the input.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import validator from "gltf-validator";

function usage(message) {
  process.stderr.write(`${message}\nusage: validate-gltf.mjs [--max-issues N] FILE...\n`);
  process.exit(2);
}

function validate(bytes, uri, maxIssues) {
  return validator.validateBytes(new Uint8Array(bytes), {
    uri,
    maxIssues,
    // Everything lives inside the GLB; an external reference is itself a defect.
    externalResourceFunction: (ref) => Promise.reject(new Error(`external resource ${ref}`)),
  });
}

async function serve() {
  const HEADER = 8;
  let pending = Buffer.alloc(0);
  for await (const chunk of process.stdin) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= HEADER) {
      const maxIssues = pending.readUInt32LE(0);
      const length = pending.readUInt32LE(4);
      if (pending.length < HEADER + length) break;
      const bytes = pending.subarray(HEADER, HEADER + length);
      pending = pending.subarray(HEADER + length);
      let line;
      try {
        const report = await validate(bytes, "stdin.glb", maxIssues);
        report.uri = "stdin.glb";
        line = JSON.stringify(report);
      } catch (error) {
        line = JSON.stringify({ error: `validator could not read the input: ${error}` });
      }
      process.stdout.write(`${line}\n`);
    }
  }
}

const args = process.argv.slice(2);
if (args.length === 1 && args[0] === "--serve") {
  await serve();
  process.exit(0);
}
let maxIssues = 0; // 0 = unlimited
const files = [];
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === "--max-issues") {
    maxIssues = Number.parseInt(args[i + 1] ?? "", 10);
    if (!Number.isInteger(maxIssues) || maxIssues < 0) usage("--max-issues needs a count");
    i += 1;
  } else if (args[i] === "-h" || args[i] === "--help") {
    usage("Validate glTF 2.0 / GLB files with the Khronos glTF validator.");
  } else {
    files.push(args[i]);
  }
}
if (files.length === 0) usage("no input given");

let anyErrors = false;
for (const file of files) {
  const bytes = file === "-" ? readFileSync(0) : readFileSync(file);
  const uri = file === "-" ? "stdin.glb" : basename(file);
  try {
    const report = await validate(bytes, uri, maxIssues);
    report.uri = uri;
    anyErrors ||= report.issues.numErrors > 0;
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } catch (error) {
    process.stderr.write(`${uri}: validator could not read the input: ${error}\n`);
    process.exit(2);
  }
}
process.exit(anyErrors ? 1 : 0);
