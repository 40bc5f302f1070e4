// The web console (console/ in the repository, served by the binary at `/`), driven end to end in
// headless Chromium by playwright-core: log in, create a table, insert, see the grid, subscribe,
// write from another session and see the rows change. It lives beside the client's tests because
// it needs the same server harness, and uses the client as "the other session".
// Screenshots go to $KALAMDB_ARTIFACTS (default test-artifacts/).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium, type Browser, type Page } from "playwright-core";

import { KalamClient } from "../src/index.js";
import { Server, waitFor } from "./server.js";

const artifacts = process.env["KALAMDB_ARTIFACTS"] ?? "test-artifacts";
/** How long a step may wait for the page (ms). */
const STEP_MS = 20_000;

let server: Server;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(artifacts, `console-${name}.png`), fullPage: true });
}

/** Types `sql` into the editor and runs it with Ctrl+Enter. */
async function run(sql: string): Promise<void> {
  await page.fill("#sql-editor", sql);
  await page.press("#sql-editor", "Control+Enter");
  await page.waitForFunction(() => !document.querySelector("#sql-status")?.textContent?.startsWith("Running"), null, {
    timeout: STEP_MS,
  });
}

const text = (selector: string) => page.locator(selector).innerText({ timeout: STEP_MS });

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  server = await Server.start();
  browser = await chromium.launch({
    executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium",
    // Root in a container has no sandbox; the rest keeps Chromium off the (closed) network.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the console is served from the binary with a strict policy", async () => {
  const answer = await fetch(`${server.url}/`);
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(answer.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  assert.equal(answer.headers.get("x-frame-options"), "DENY");
  assert.match(await answer.text(), /<script type="module" src="\/console\/console.js">/);
  const script = await fetch(`${server.url}/console/console.js`);
  assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
});

test("log in, create, insert, browse, query, fail, recall, watch live, see jobs", async () => {
  const other = new KalamClient({ url: server.url }); // another session, as root
  await page.goto(server.url);

  // Wrong credentials are shown with their code; then root (no password from loopback) gets in.
  await page.fill("#login-user", "nobody");
  await page.fill("#login-password", "nothing");
  await page.click("#login-submit");
  await page.waitForSelector("#login-error:not([hidden])");
  assert.match(await text("#login-error"), /^UNAUTHORIZED: /);
  await shot("01-login");
  await page.fill("#login-user", "root");
  await page.fill("#login-password", "");
  await page.click("#login-submit");
  await page.waitForSelector("#app-view:not([hidden])");
  assert.equal(await text("#whoami"), "root (system)");

  // Create a table: the browser lists it.
  await run("CREATE NAMESPACE shop;\nCREATE USER TABLE shop.orders (id BIGINT PRIMARY KEY, item TEXT, qty INT);");
  assert.match(await text("#sql-status"), /^2 statements · [\d.]+ ms on the server · \d+ ms in all$/);
  await page.waitForSelector('#browser button[data-table="shop.orders"]');

  // Insert (a value that looks like HTML must stay text), then open the table from the browser.
  await run("INSERT INTO shop.orders VALUES (1, 'tea', 2), (2, '<img src=x onerror=alert(1)>', 1);");
  assert.match(await text("#sql-results .caption"), /2 rows affected$/);
  await page.click('#browser button[data-table="shop.orders"]');
  await page.waitForFunction(() => document.querySelector("#sql-editor") instanceof HTMLTextAreaElement
    && (document.querySelector("#sql-editor") as HTMLTextAreaElement).value === "SELECT * FROM shop.orders LIMIT 100;");
  await page.waitForSelector("#sql-results table.grid");
  assert.equal(await text("#sql-results .caption"), "2 rows");
  const headers = await page.locator("#sql-results th").allInnerTexts();
  assert.deepEqual(headers.map((h) => h.replace(/\s+/g, " ").trim()), ["id BIGINT", "item TEXT", "qty INT"]);
  const cells = await page.locator("#sql-results tbody tr").evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)),
  );
  assert.deepEqual(cells, [["1", "tea", "2"], ["2", "<img src=x onerror=alert(1)>", "1"]]);
  assert.equal(await page.locator("#sql-results img").count(), 0, "data is never HTML");
  await shot("02-grid");

  // An error shows its code.
  await run("SELECT * FROM shop.nope;");
  assert.match(await text("#sql-error"), /^TABLE_NOT_FOUND: /);
  await shot("03-error");

  // History: newest first, recalled by a click and by Ctrl+Up.
  const history = await page.locator("#history button").allInnerTexts();
  assert.deepEqual(history.slice(0, 2), ["SELECT * FROM shop.nope;", "SELECT * FROM shop.orders LIMIT 100;"]);
  await page.click("#history li:nth-child(2) button");
  assert.equal(await page.inputValue("#sql-editor"), "SELECT * FROM shop.orders LIMIT 100;");
  await page.fill("#sql-editor", "");
  await page.press("#sql-editor", "Control+ArrowUp");
  assert.equal(await page.inputValue("#sql-editor"), "SELECT * FROM shop.nope;");

  // Live: subscribe, then another session inserts, updates, deletes.
  await page.click('.tab[data-tab="live"]');
  await page.fill("#live-sql", "SELECT id, item, qty FROM shop.orders");
  await page.click("#live-subscribe");
  await page.waitForFunction(() => document.querySelector("#live-status")?.textContent === "Live · 2 rows");
  await other.sql("INSERT INTO shop.orders VALUES (3, 'coffee', 5)");
  await page.waitForSelector("#live-grid tr.row-inserted >> text=coffee");
  await other.sql("UPDATE shop.orders SET qty = 7 WHERE id = 1");
  await page.waitForSelector("#live-grid tr.row-updated >> text=7");
  await other.sql("DELETE FROM shop.orders WHERE id = 2");
  await page.waitForSelector("#live-grid tr.row-deleted");
  await shot("04-live");
  const liveRows = await page.locator("#live-grid tbody tr").evaluateAll((rows) =>
    rows.map((r) => [r.className, ...[...r.querySelectorAll("td")].map((td) => td.textContent)]),
  );
  // The grid shows each row's `_seq` (its version) last.
  assert.ok(liveRows.every((r) => /^\d+$/.test(r[4] ?? "")), "every row shows its _seq");
  assert.deepEqual(liveRows.map((r) => r.slice(0, 4)), [
    ["row-updated", "1", "tea", "7"],
    ["row-deleted", "2", "<img src=x onerror=alert(1)>", "1"],
    ["row-inserted", "3", "coffee", "5"],
  ]);
  assert.deepEqual(
    (await page.locator("#live-log li").allInnerTexts()).map((l) => l.split(" ")[0]),
    ["delete", "update", "insert"],
  );
  assert.equal(await text("#live-status"), "Live · 2 rows");

  // Jobs: a flush shows up, and reaches `completed`.
  await other.sql("FLUSH TABLE shop.orders");
  await page.click('.tab[data-tab="jobs"]');
  await waitFor("the flush to complete in the jobs list", async () => {
    await page.click("#jobs-refresh");
    await page.waitForFunction(() => document.querySelector("#jobs-status")?.textContent !== "Loading…");
    const statuses = await page.locator("#jobs-grid td.job-completed").count();
    return statuses > 0 ? true : undefined;
  });
  const job = await page.locator("#jobs-grid tbody tr").first().evaluate((r) => [...r.querySelectorAll("td")].map((td) => td.textContent));
  assert.deepEqual(job.slice(1, 5), ["flush", "shop", "orders", "completed"]);
  await shot("05-jobs");

  // Log out: back to the form, and the token is gone.
  await page.click("#logout");
  await page.waitForSelector("#login-view:not([hidden])");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.deepEqual(pageErrors, [], "no script error on the page");
});

test("a user sees only what the role allows, and refusals show their code", async () => {
  const root = new KalamClient({ url: server.url });
  await root.sql("CREATE USER 'ana' WITH PASSWORD 'ana-pw'");
  await page.goto(server.url);
  await page.fill("#login-user", "ana");
  await page.fill("#login-password", "ana-pw");
  await page.click("#login-submit");
  await page.waitForSelector("#app-view:not([hidden])");
  assert.equal(await text("#whoami"), "ana (user)");
  // The browser lists the tables (a user may read system.tables); root's rows stay root's.
  await page.click('#browser button[data-table="shop.orders"]');
  await page.waitForSelector("#sql-results table.grid");
  assert.equal(await text("#sql-results .caption"), "0 rows");
  await run("CREATE NAMESPACE mine;");
  assert.match(await text("#sql-error"), /^PERMISSION_DENIED: /);
  await shot("06-user-refused");
  assert.deepEqual(pageErrors, [], "no script error on the page");
});
