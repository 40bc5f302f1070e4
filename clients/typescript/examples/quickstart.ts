import { KalamClient } from "@kalamdb/client";

const db = new KalamClient({ url: process.env["KALAMDB_URL"] ?? "http://127.0.0.1:8080" });
await db.login("root", ""); // root needs no password from this machine until one is set
await db.sql("CREATE NAMESPACE IF NOT EXISTS demo");
await db.sql("CREATE USER TABLE IF NOT EXISTS demo.notes (id BIGINT PRIMARY KEY, body TEXT)");

// Live rows: the current ones, then every change (resumed by itself after a disconnect).
const sub = db.subscribe("SELECT id, body FROM demo.notes", { batchSize: 100 }, (event) => {
  if (event.type === "initial_data_batch") console.log("initial", event.rows.length);
  if (event.type === "change") {
    console.log(event.change_type, JSON.stringify(event.rows ?? event.old_values));
    sub.unsubscribe();
  }
});
await sub.ready; // the current rows are in: what follows arrives as changes

await db.sql("INSERT INTO demo.notes (id, body) VALUES ($1, $2)", [Date.now(), "hello"]);
const newest = await db.query("SELECT id, body FROM demo.notes ORDER BY id DESC LIMIT 1");
console.log("query", JSON.stringify(newest));
