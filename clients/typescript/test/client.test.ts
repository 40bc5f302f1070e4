import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  ConnectionError,
  KalamClient,
  KalamError,
  type Row,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionEvent,
} from "../src/index.js";
import { freePort, Server, waitFor } from "./server.js";

/** A subscription whose events are kept in order. */
function watch(client: KalamClient, sql: string, options = {}): { sub: Subscription; events: SubscriptionEvent[] } {
  const events: SubscriptionEvent[] = [];
  const sub = client.subscribe(sql, options, (e) => events.push(e));
  return { sub, events };
}

/** The rows delivered as initial data or changes of `kind`, in order. */
function rows(events: SubscriptionEvent[], kind: "initial" | "insert" | "update" | "delete"): Row[] {
  return events.flatMap((e) => {
    if (kind === "initial" && e.type === "initial_data_batch") return e.rows;
    if (e.type !== "change" || e.change_type !== kind) return [];
    return (kind === "delete" ? e.old_values : e.rows) ?? [];
  });
}

function ids(list: Row[]): unknown[] {
  return list.map((r) => r["id"]);
}

function isError(code: string, status?: number) {
  return (e: unknown) => {
    assert.ok(e instanceof KalamError, `not a KalamError: ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.status, status);
    return true;
  };
}

describe("KalamClient against the real server", () => {
  let server: Server;
  let root: KalamClient;
  const clients: KalamClient[] = [];
  const client = (options = {}) => {
    const c = new KalamClient({ url: server.url, ...options });
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await Server.start();
    root = client();
    await root.sql(
      "CREATE NAMESPACE app; " +
        "CREATE USER TABLE app.todos (id BIGINT PRIMARY KEY, title TEXT, done BOOLEAN DEFAULT false); " +
        "CREATE USER 'ana' WITH PASSWORD 'ana-pw'; CREATE USER 'ben' WITH PASSWORD 'ben-pw'",
    );
  });

  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  test("login, sql with params, rows as objects, typed errors", async () => {
    const health = await root.health();
    assert.equal(health.status, "healthy");

    const ana = client();
    const login = await ana.login("ana", "ana-pw");
    assert.equal(login.token_type, "Bearer");
    assert.equal(login.expires_in, 3600);
    assert.equal(ana.accessToken, login.access_token);

    const inserted = await ana.sql("INSERT INTO app.todos (id, title) VALUES ($1, $2), ($3, $4)", [1, "milk", 2, "it's bread"]);
    assert.equal(inserted.results[0]?.row_count, 2);
    assert.equal(typeof inserted.took, "number");
    const answer = await ana.sql("SELECT id, title FROM app.todos WHERE id >= $1 ORDER BY id", [2]);
    assert.deepEqual(answer.results[0]?.schema?.map((f) => [f.name, f.data_type]), [["id", "BIGINT"], ["title", "TEXT"]]);
    assert.deepEqual(answer.results[0]?.rows, [[2, "it's bread"]]);
    assert.deepEqual(await ana.query("SELECT id, title, done FROM todos ORDER BY id", [], { namespace: "app" }), [
      { id: 1, title: "milk", done: false },
      { id: 2, title: "it's bread", done: false },
    ]);

    // Basic auth from the options: ben's partition is his own.
    const ben = client({ username: "ben", password: "ben-pw" });
    assert.deepEqual(await ben.query("SELECT COUNT(*) AS n FROM app.todos"), [{ n: 0 }]);

    await assert.rejects(ana.sql("SELEC 1"), isError("INVALID_SQL", 400));
    await assert.rejects(ana.sql("SELECT * FROM app.nope"), isError("TABLE_NOT_FOUND", 400));
    await assert.rejects(ana.sql("CREATE NAMESPACE mine"), isError("PERMISSION_DENIED", 403));
    await assert.rejects(ana.sql("INSERT INTO app.todos (id) VALUES ($1)", ["not a number"]), isError("SQL_EXECUTION_ERROR", 400));
    await assert.rejects(client().login("ana", "wrong"), isError("UNAUTHORIZED", 401));
    // A token given without credentials is never swapped for root's.
    await assert.rejects(client({ token: "not-a-token" }).sql("SELECT 1"), isError("UNAUTHORIZED", 401));
    const nowhere = new KalamClient({ url: `http://127.0.0.1:${await freePort()}` });
    await assert.rejects(nowhere.sql("SELECT 1"), (e) => e instanceof ConnectionError && e.code === "CONNECTION_FAILED");
  });

  test("subscribe: initial data in batches, each kind of change, only the user's rows", async () => {
    const ana = client({ username: "ana", password: "ana-pw" });
    await root.sql("CREATE USER TABLE app.tasks (id BIGINT PRIMARY KEY, title TEXT, done BOOLEAN DEFAULT false)");
    await ana.sql("INSERT INTO app.tasks (id, title) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')");

    const { sub, events } = watch(ana, "SELECT id, title FROM app.tasks WHERE done = false", { batchSize: 2 });
    await sub.ready;
    const ack = events[0];
    assert.equal(ack?.type, "subscription_ack");
    assert.equal(ack.type === "subscription_ack" && ack.total_rows, 5);
    const batches = events.filter((e) => e.type === "initial_data_batch");
    assert.deepEqual(
      batches.map((b) => b.type === "initial_data_batch" && [b.batch_control.batch_num, b.batch_control.status, b.rows.length]),
      [[0, "loading", 2], [1, "loading", 2], [2, "ready", 1]],
    );
    assert.deepEqual(ids(rows(events, "initial")), [1, 2, 3, 4, 5]);

    const ben = client({ username: "ben", password: "ben-pw" });
    await ana.sql("INSERT INTO app.tasks (id, title) VALUES (6, 'f')");
    await ana.sql("UPDATE app.tasks SET title = 'A' WHERE id = 1");
    await ana.sql("UPDATE app.tasks SET done = true WHERE id = 2"); // leaves the WHERE: a delete
    await ben.sql("INSERT INTO app.tasks (id, title) VALUES (7, 'ben''s')");
    await ana.sql("INSERT INTO app.tasks (id, title) VALUES (8, 'h')");
    await waitFor("ana's last insert", () => (ids(rows(events, "insert")).includes(8) ? true : undefined));
    assert.deepEqual(ids(rows(events, "insert")), [6, 8], "ben's row must never reach ana");
    assert.deepEqual(rows(events, "update").map((r) => [r["id"], r["title"]]), [[1, "A"]]);
    assert.deepEqual(ids(rows(events, "delete")), [2]);
    const lastInsert = rows(events, "insert").at(-1);
    assert.equal(sub.lastSeq, lastInsert?.["_seq"], "lastSeq is the newest _seq delivered");

    const newest = watch(ana, "SELECT id FROM app.tasks", { lastRows: 2 });
    await waitFor("last_rows data", () => newest.events.find((e) => e.type === "initial_data_batch"));
    assert.deepEqual(ids(rows(newest.events, "initial")).sort(), [2, 8], "the two newest row versions");

    // fromSeq: only the row versions written after it (the delete of 2 comes as a change).
    const sixSeq = rows(events, "insert")[0]?.["_seq"];
    assert.ok(sixSeq !== undefined && sixSeq !== null && typeof sixSeq !== "boolean" && typeof sixSeq !== "object");
    const later = watch(ana, "SELECT id, title FROM app.tasks WHERE done = false", { fromSeq: sixSeq });
    await later.sub.ready;
    await waitFor("the delete of 2", () => (rows(later.events, "delete").length ? true : undefined));
    assert.deepEqual(rows(later.events, "initial").map((r) => [r["id"], r["title"]]), [[1, "A"], [8, "h"]]);
    assert.deepEqual(ids(rows(later.events, "delete")), [2]);
    later.sub.unsubscribe();

    // Unsubscribed: nothing more reaches it, and the server forgets it.
    sub.unsubscribe();
    assert.equal(sub.active, false);
    const seen = events.length;
    await ana.sql("INSERT INTO app.tasks (id, title) VALUES (9, 'i')");
    await waitFor("the change on the other subscription", () => (ids(rows(newest.events, "insert")).includes(9) ? true : undefined));
    assert.equal(events.length, seen);
    await waitFor("one live query left", async () => {
      const [row] = await ana.query("SELECT COUNT(*) AS n FROM system.live_queries");
      return row?.["n"] === 1 ? true : undefined;
    });

    const missing = watch(ana, "SELECT * FROM app.nope");
    await assert.rejects(missing.sub.ready, isError("TABLE_NOT_FOUND"));
    const error = await waitFor("the refusal", () => missing.events.find((e) => e.type === "error"));
    assert.equal(error.type === "error" && error.code, "TABLE_NOT_FOUND");
    assert.equal(missing.sub.active, false);
  });

  test("subscriptions made at once share one connection and each gets every change once", async () => {
    for (const c of clients) c.close(); // the earlier tests' subscriptions end
    const ana = client({ username: "ana", password: "ana-pw" });
    await ana.sql("DELETE FROM app.todos");
    await waitFor("no live query left", async () => {
      const [row] = await ana.query("SELECT COUNT(*) AS n FROM system.live_queries");
      return row?.["n"] === 0 ? true : undefined;
    });
    const a = watch(ana, "SELECT id FROM app.todos");
    const b = watch(ana, "SELECT id, title FROM app.todos WHERE id > 100");
    await Promise.all([a.sub.ready, b.sub.ready]);
    await ana.sql("INSERT INTO app.todos (id, title) VALUES (101, 'x')");
    await waitFor("both changes", () => (rows(a.events, "insert").length && rows(b.events, "insert").length ? true : undefined));
    const [count] = await ana.query("SELECT COUNT(*) AS n, COUNT(DISTINCT connection_id) AS c FROM system.live_queries");
    assert.deepEqual(count, { n: 2, c: 1 });
    for (const { events } of [a, b]) {
      assert.deepEqual(events.map((e) => e.type), ["subscription_ack", "initial_data_batch", "change"]);
    }
    ana.close();
    assert.equal(a.sub.active || b.sub.active, false);
  });

  test("careless options end only their own subscription, with INVALID_PARAMETER", async () => {
    const ana = client({ username: "ana", password: "ana-pw" });
    const good = watch(ana, "SELECT id FROM app.todos");
    await good.sub.ready;
    const careless: SubscribeOptions[] = [
      { batchSize: 0 },
      { batchSize: 10_001 },
      { batchSize: 1.5 },
      { lastRows: -1 },
      { fromSeq: "not a number" },
      { fromSeq: "-1" },
      { fromSeq: "18446744073709551616" }, // one past u64
    ];
    for (const options of careless) {
      const bad = watch(ana, "SELECT id FROM app.todos", options);
      await assert.rejects(bad.sub.ready, isError("INVALID_PARAMETER"), JSON.stringify(options));
      assert.equal(bad.sub.active, false);
    }
    await ana.sql("INSERT INTO app.todos (id, title) VALUES (500, 'still live')");
    await waitFor("the good subscription's change", () => (ids(rows(good.events, "insert")).includes(500) ? true : undefined));
    const [live] = await ana.query("SELECT COUNT(*) AS n FROM system.live_queries");
    assert.equal(live?.["n"], 1, "nothing stays registered for the refused ones");
    assert.equal(good.events.filter((e) => e.type === "error").length, 0);
  });

  test("a token given without credentials that the server refuses ends the subscription", async () => {
    const stranger = client({ token: "not-a-token" });
    const { sub, events } = watch(stranger, "SELECT * FROM app.todos");
    const error = await waitFor("auth error", () => events.find((e) => e.type === "error"));
    assert.equal(error.type === "error" && error.code, "UNAUTHORIZED");
    assert.equal(sub.active, false);
  });
});

test("a subscription resumes across server restarts without gaps or duplicates", async () => {
  const server = await Server.start();
  const originalPort = server.port;
  const root = new KalamClient({ url: server.url });
  await root.sql(
    "CREATE NAMESPACE app; CREATE USER TABLE app.feed (id BIGINT PRIMARY KEY, body TEXT); " +
      "CREATE USER 'ana' WITH PASSWORD 'ana-pw'",
  );
  const ana = new KalamClient({ url: server.url, username: "ana", password: "ana-pw", reconnectDelay: () => 50 });
  try {
    const { sub, events } = watch(ana, "SELECT id, body FROM app.feed");
    const inserted = () => ids([...rows(events, "initial"), ...rows(events, "insert")]);
    await waitFor("the (empty) initial data", () => events.find((e) => e.type === "initial_data_batch"));
    await ana.sql("INSERT INTO app.feed VALUES (1, 'one'); INSERT INTO app.feed VALUES (2, 'two')");
    await waitFor("rows 1 and 2", () => (inserted().length === 2 ? true : undefined));
    const resumePoint = sub.lastSeq;
    assert.notEqual(resumePoint, undefined);

    await server.kill(); // a crash
    await waitFor("the client to notice", () => events.find((e) => e.type === "disconnected"));

    // Meanwhile the data directory is served on another port, so these writes surely happen
    // while the client is away: it must get them from its resume, not live.
    server.port = await freePort();
    await server.launch();
    const elsewhere = new KalamClient({ url: server.url, username: "ana", password: "ana-pw" });
    await elsewhere.sql("INSERT INTO app.feed VALUES (3, 'three'); UPDATE app.feed SET body = 'ONE' WHERE id = 1");
    await elsewhere.sql("INSERT INTO app.feed VALUES (4, 'four')");
    await server.kill("SIGTERM");

    server.port = originalPort;
    await server.launch();
    const back = await waitFor("the resume", () => events.find((e) => e.type === "reconnected"));
    assert.deepEqual(back, { type: "reconnected", fromSeq: resumePoint });
    await waitFor("rows 3 and 4", () => (inserted().includes(4) ? true : undefined));
    await ana.sql("INSERT INTO app.feed VALUES (5, 'five')");
    await waitFor("row 5, live", () => (inserted().includes(5) ? true : undefined));

    // Row 1 comes back once, as its new version; every other row once; nothing twice.
    const delivered = [...rows(events, "initial"), ...rows(events, "insert"), ...rows(events, "update")];
    assert.deepEqual(delivered.map((r) => [r["id"], r["body"]]).sort(), [
      [1, "ONE"],
      [1, "one"],
      [2, "two"],
      [3, "three"],
      [4, "four"],
      [5, "five"],
    ]);
    const seqs = delivered.map((r) => BigInt(r["_seq"] as number | string));
    assert.equal(new Set(seqs).size, seqs.length, "no row version twice");
    assert.equal(sub.active, true);
  } finally {
    ana.close();
    await server.stop();
  }
});

test("an expired token is renewed by a new login, over HTTP and on a live subscription", async () => {
  const server = await Server.start({ KALAMDB_JWT_EXPIRY_SECS: "1" });
  const root = new KalamClient({ url: server.url });
  await root.sql(
    "CREATE NAMESPACE app; CREATE USER TABLE app.log (id BIGINT PRIMARY KEY); CREATE USER 'ana' WITH PASSWORD 'ana-pw'",
  );
  const ana = new KalamClient({ url: server.url, username: "ana", password: "ana-pw", reconnectDelay: () => 50 });
  try {
    const first = (await ana.login()).access_token;
    const { sub, events } = watch(ana, "SELECT id FROM app.log");
    await sub.ready;
    // The server ends the connection when the token expires; the client logs in again and resumes.
    const dropped = await waitFor("the expiry", () => events.find((e) => e.type === "disconnected"));
    assert.equal(dropped.type === "disconnected" && dropped.error.code, "CONNECTION_FAILED");
    await waitFor("the resume", () => events.find((e) => e.type === "reconnected"));
    assert.notEqual(ana.accessToken, first, "a new token");
    await root.sql("EXECUTE AS USER 'ana' (INSERT INTO app.log VALUES (1))");
    await waitFor("the change after the renewal", () => (ids(rows(events, "insert")).includes(1) ? true : undefined));
    assert.equal(sub.active, true);
    // Over HTTP, an expired token is a 401 that the client answers with one new login.
    const token = ana.accessToken;
    await waitFor("the new token to expire", async () => {
      const r = await fetch(`${server.url}/v1/api/sql`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql: "SELECT 1" }),
      });
      return r.status === 401 ? true : undefined;
    });
    assert.deepEqual(await ana.query("SELECT id FROM app.log"), [{ id: 1 }]);
    assert.notEqual(ana.accessToken, token);
  } finally {
    ana.close();
    await server.stop();
  }
});

test("a connection that stops answering is dropped after two pings and resumed", async () => {
  const server = await Server.start();
  const root = new KalamClient({ url: server.url });
  await root.sql("CREATE NAMESPACE app; CREATE SHARED TABLE app.feed (id BIGINT PRIMARY KEY)");
  const watcher = new KalamClient({ url: server.url, pingIntervalMs: 100, reconnectDelay: () => 50 });
  try {
    assert.throws(() => new KalamClient({ pingIntervalMs: 0 }), isError("INVALID_PARAMETER"));
    const { sub, events } = watch(watcher, "SELECT id FROM app.feed");
    await sub.ready;
    server.signal("SIGSTOP"); // the socket stays open; nothing answers
    const dropped = await waitFor("the silence to be noticed", () => events.find((e) => e.type === "disconnected"));
    assert.match(dropped.type === "disconnected" ? dropped.error.message : "", /no answer from the server for 200 ms/);
    server.signal("SIGCONT");
    await waitFor("the resume", () => events.find((e) => e.type === "reconnected"));
    await root.sql("INSERT INTO app.feed VALUES (1)");
    await waitFor("the change", () => (ids(rows(events, "insert")).includes(1) ? true : undefined));
    assert.deepEqual(ids([...rows(events, "initial"), ...rows(events, "insert")]), [1]);
  } finally {
    server.signal("SIGCONT");
    watcher.close();
    await server.stop();
  }
});
