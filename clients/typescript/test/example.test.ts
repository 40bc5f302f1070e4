// The quickstart (examples/quickstart.ts, also printed in the repository's README) run as a
// newcomer runs it: a Node script importing the package by its name, against a real server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { promisify } from "node:util";

import { Server } from "./server.js";

const here = new URL(".", import.meta.url);

test("the README's quickstart runs against a real server", async () => {
  const server = await Server.start();
  try {
    const script = new URL("../examples/quickstart.js", here).pathname;
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      env: { ...process.env, KALAMDB_URL: server.url },
      timeout: 60_000,
    });
    const lines = stdout.trim().split("\n").sort();
    assert.equal(lines.length, 3, stdout);
    assert.equal(lines[0], "initial 0");
    assert.match(lines[1] ?? "", /^insert \[/);
    const [inserted] = JSON.parse((lines[1] ?? "").slice("insert ".length)) as Record<string, unknown>[];
    assert.deepEqual(Object.keys(inserted ?? {}).sort(), ["_seq", "body", "id"]);
    assert.equal(inserted?.["body"], "hello");
    assert.equal(lines[2], `query [{"id":${String(inserted?.["id"])},"body":"hello"}]`);
  } finally {
    await server.stop();
  }
});

test("the README shows the quickstart as it is tested", () => {
  const example = readFileSync(new URL("../../examples/quickstart.ts", here), "utf8");
  const readme = readFileSync(new URL("../../../../README.md", here), "utf8");
  assert.ok(readme.includes(example), "README.md must contain examples/quickstart.ts verbatim");
});
