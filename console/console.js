// The KalamDB web console: log in, run SQL, browse tables, watch a live query, list jobs.
// Plain browser JavaScript served by `kalamdb serve` from the binary itself (src/server/console.rs);
// it speaks the public API only (POST /v1/api/auth/login, POST /v1/api/sql, GET /v1/ws) and
// writes data into the page as text, never as HTML.

const TOKEN_KEY = "kalamdb.console.token";
const HISTORY_KEY = "kalamdb.console.history";
const MAX_HISTORY = 100;
/** Rows drawn per result grid; the rest are counted, not drawn. */
const MAX_GRID_ROWS = 1000;
/** Live log lines kept. */
const MAX_LOG_LINES = 200;
/** How long a deleted row stays on screen, struck through, before it goes (ms). */
const DELETED_ROW_MS = 5000;
const SYSTEM_TABLES = ["namespaces", "tables", "table_schemas", "users", "storages", "jobs", "live_queries"];

const $ = (id) => document.getElementById(id);

/** An error the server answered with (or CONNECTION_FAILED). */
class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// ---------------------------------------------------------------------------------------------
// Session

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The claims of a JWT (sub, role, exp), or null when it cannot be read. */
function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

async function api(path, body) {
  const headers = { "content-type": "application/json" };
  const jwt = token();
  if (jwt && !path.endsWith("/login")) headers.authorization = `Bearer ${jwt}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  } catch (e) {
    throw new ApiError("CONNECTION_FAILED", `cannot reach the server: ${e.message}`);
  }
  const json = await response.json().catch(() => null);
  if (!response.ok) {
    const err = json?.error ?? { code: `HTTP_${response.status}`, message: response.statusText };
    if (response.status === 401 && !path.endsWith("/login")) {
      logout(`${err.code}: ${err.message}`);
    }
    throw new ApiError(err.code, err.message, response.status);
  }
  return json;
}

const sql = (text) => api("/v1/api/sql", { sql: text });

async function login(event) {
  event.preventDefault();
  $("login-error").hidden = true;
  try {
    const answer = await api("/v1/api/auth/login", {
      username: $("login-user").value,
      password: $("login-password").value,
    });
    sessionStorage.setItem(TOKEN_KEY, answer.access_token);
    $("login-password").value = "";
    showApp();
  } catch (e) {
    showError("login-error", e);
  }
}

function logout(reason) {
  stopLive();
  sessionStorage.removeItem(TOKEN_KEY);
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  if (typeof reason === "string") {
    $("login-error").textContent = reason;
    $("login-error").hidden = false;
  }
}

function showApp() {
  const c = claims(token());
  $("whoami").textContent = c ? `${c.sub} (${c.role})` : "";
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  showTab("sql");
  renderHistory();
  loadBrowser();
  $("sql-editor").focus();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function showError(id, e) {
  const box = $(id);
  box.textContent = e instanceof ApiError ? `${e.code}: ${e.message}` : String(e);
  box.hidden = false;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cell(value) {
  const td = el("td");
  if (value === null || value === undefined) {
    td.append(el("span", "null", "NULL"));
  } else if (typeof value === "object") {
    td.textContent = JSON.stringify(value);
  } else {
    td.textContent = String(value);
    if (typeof value === "number") td.className = "num";
  }
  return td;
}

/** A table of `columns` ([{name, data_type}]) and `rows` (arrays in column order). */
function grid(columns, rows) {
  const table = el("table", "grid");
  const head = el("tr");
  for (const c of columns) {
    const th = el("th", null, c.name);
    if (c.data_type) th.append(el("small", null, ` ${c.data_type}`));
    head.append(th);
  }
  table.appendChild(el("thead")).append(head);
  const body = table.appendChild(el("tbody"));
  for (const values of rows.slice(0, MAX_GRID_ROWS)) {
    const tr = el("tr");
    for (const v of values) tr.append(cell(v));
    body.append(tr);
  }
  return table;
}

function plural(n, word) {
  return `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------------------------------------
// SQL editor and history

function history() {
  try {
    const list = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((s) => typeof s === "string") : [];
  } catch {
    return [];
  }
}

function remember(text) {
  const list = [text, ...history().filter((s) => s !== text)].slice(0, MAX_HISTORY);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
  renderHistory();
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  for (const text of history()) {
    const item = el("li");
    const button = el("button", "link", text.length > 80 ? `${text.slice(0, 79)}…` : text);
    button.title = text;
    button.addEventListener("click", () => {
      showTab("sql");
      $("sql-editor").value = text;
      $("sql-editor").focus();
    });
    item.append(button);
    list.append(item);
  }
}

/** Position in the history while stepping with Ctrl+↑/↓ (-1: the editor's own text). */
let historyStep = -1;

function stepHistory(delta) {
  const list = history();
  const next = Math.max(-1, Math.min(list.length - 1, historyStep + delta));
  if (next === historyStep) return;
  historyStep = next;
  $("sql-editor").value = next === -1 ? "" : list[next];
}

async function runSql() {
  const text = $("sql-editor").value.trim();
  if (!text) return;
  historyStep = -1;
  remember(text);
  $("sql-error").hidden = true;
  $("sql-status").textContent = "Running…";
  const results = $("sql-results");
  results.replaceChildren();
  const started = performance.now();
  try {
    const answer = await sql(text);
    const total = performance.now() - started;
    for (const [i, r] of answer.results.entries()) {
      const block = el("div", "result");
      const caption = el("div", "caption");
      if (r.schema) {
        const shown = Math.min(r.rows.length, MAX_GRID_ROWS);
        caption.textContent = shown < r.row_count ? `${plural(r.row_count, "row")} (showing ${shown})` : plural(r.row_count, "row");
        block.append(caption, grid(r.schema, r.rows));
      } else {
        caption.textContent = `${r.message ?? "OK"} · ${plural(r.row_count, "row")} affected`;
        block.append(caption);
      }
      block.dataset.statement = String(i + 1);
      results.append(block);
    }
    $("sql-status").textContent =
      `${plural(answer.results.length, "statement")} · ${answer.took.toFixed(1)} ms on the server · ${total.toFixed(0)} ms in all`;
    if (/\b(CREATE|DROP|ALTER)\b/i.test(text)) loadBrowser();
  } catch (e) {
    $("sql-status").textContent = `Failed after ${(performance.now() - started).toFixed(0)} ms`;
    showError("sql-error", e);
  }
}

// ---------------------------------------------------------------------------------------------
// Table browser

async function loadBrowser() {
  const tree = $("browser");
  try {
    const [namespaces, tables] = (
      await sql(
        "SELECT name FROM system.namespaces ORDER BY name; " +
          "SELECT namespace_id, table_name, table_type FROM system.tables ORDER BY namespace_id, table_name",
      )
    ).results;
    const byNamespace = new Map(namespaces.rows.map(([name]) => [name, []]));
    for (const [ns, name, type] of tables.rows) {
      if (!byNamespace.has(ns)) byNamespace.set(ns, []);
      byNamespace.get(ns).push([name, type]);
    }
    byNamespace.set("system", SYSTEM_TABLES.map((t) => [t, "SYSTEM"]));
    tree.replaceChildren();
    for (const [ns, list] of byNamespace) {
      const item = el("li", "namespace");
      item.append(el("span", "ns-name", ns));
      const children = el("ul");
      for (const [name, type] of list) {
        const t = el("li", "table");
        const button = el("button", "link", name);
        button.dataset.table = `${ns}.${name}`;
        button.addEventListener("click", () => openTable(`${ns}.${name}`));
        t.append(button, el("small", "type", type));
        children.append(t);
      }
      item.append(children);
      tree.append(item);
    }
  } catch (e) {
    tree.replaceChildren(el("li", "error", e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)));
  }
}

function openTable(name) {
  $("live-sql").value = `SELECT * FROM ${name}`;
  showTab("sql");
  $("sql-editor").value = `SELECT * FROM ${name} LIMIT 100;`;
  runSql();
}

// ---------------------------------------------------------------------------------------------
// Live view: one subscription, rows kept by applying each change (docs/live-queries.md).

let live = null;

function stopLive() {
  if (!live) return;
  const { ws } = live;
  live = null;
  ws.onclose = null;
  ws.close(1000, "stopped");
  $("live-subscribe").disabled = false;
  $("live-stop").disabled = true;
}

function subscribe() {
  stopLive();
  const query = $("live-sql").value.trim().replace(/;\s*$/, "");
  if (!query) return;
  $("live-error").hidden = true;
  $("live-grid").replaceChildren();
  $("live-log").replaceChildren();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/ws`);
  const state = { ws, query, columns: [], rows: [], body: null };
  live = state;
  $("live-subscribe").disabled = true;
  $("live-stop").disabled = false;
  $("live-status").textContent = "Connecting…";
  ws.onopen = () => ws.send(JSON.stringify({ type: "authenticate", token: token() }));
  ws.onmessage = (event) => {
    if (live === state) onLiveMessage(state, JSON.parse(event.data));
  };
  ws.onclose = () => {
    if (live !== state) return;
    live = null;
    $("live-status").textContent = "Disconnected";
    $("live-subscribe").disabled = false;
    $("live-stop").disabled = true;
  };
}

function onLiveMessage(state, msg) {
  switch (msg.type) {
    case "auth_success":
      state.ws.send(JSON.stringify({ type: "subscribe", subscription: { id: "console", sql: state.query } }));
      $("live-status").textContent = "Subscribing…";
      break;
    case "auth_error":
    case "error":
      showError("live-error", new ApiError(msg.code, msg.message));
      $("live-status").textContent = "Ended";
      stopLive();
      break;
    case "subscription_ack": {
      state.columns = msg.schema.map((f) => f.name);
      const table = grid(msg.schema, []);
      state.body = table.querySelector("tbody");
      $("live-grid").replaceChildren(table);
      $("live-status").textContent = `Loading ${plural(msg.total_rows, "row")}…`;
      break;
    }
    case "initial_data_batch":
      for (const row of msg.rows) addLiveRow(state, row, null);
      if (msg.batch_control.status === "ready") liveStatus(state);
      break;
    case "change":
      applyChange(state, msg);
      liveStatus(state);
      break;
    default:
      break;
  }
}

function liveStatus(state) {
  const shown = state.rows.filter((r) => !r.deleted).length;
  $("live-status").textContent = `Live · ${plural(shown, "row")}`;
}

function addLiveRow(state, values, mark) {
  const tr = el("tr", mark ? `row-${mark}` : "");
  const row = { values, tr, deleted: false };
  fillRow(state, row);
  state.rows.push(row);
  state.body.append(tr);
  return row;
}

function fillRow(state, row) {
  row.tr.replaceChildren(...state.columns.map((c) => cell(row.values[c])));
}

/** Whether `row` is the one `old` describes: every column `old` names except `_seq` matches. */
function sameRow(row, old) {
  return Object.entries(old).every(([k, v]) => k === "_seq" || !(k in row.values) || JSON.stringify(row.values[k]) === JSON.stringify(v));
}

function applyChange(state, msg) {
  const shown = state.rows.filter((r) => !r.deleted);
  const rows = msg.rows ?? [];
  const olds = msg.old_values ?? [];
  if (msg.change_type === "insert") {
    for (const values of rows) addLiveRow(state, values, "inserted");
  } else if (msg.change_type === "update") {
    rows.forEach((values, i) => {
      const old = olds[i] ?? {};
      // `old_values` of an update carry the previous `_seq` of the row.
      const row = shown.find((r) => String(r.values._seq) === String(old._seq)) ?? shown.find((r) => sameRow(r, old));
      if (!row) return addLiveRow(state, values, "updated");
      row.values = values;
      row.tr.className = "";
      void row.tr.offsetWidth; // restart the highlight
      row.tr.className = "row-updated";
      fillRow(state, row);
    });
  } else if (msg.change_type === "delete") {
    for (const old of olds) {
      const row = shown.find((r) => sameRow(r, old));
      if (!row) continue;
      row.deleted = true;
      row.tr.className = "row-deleted";
      setTimeout(() => {
        row.tr.remove();
        state.rows = state.rows.filter((r) => r !== row);
      }, DELETED_ROW_MS);
    }
  }
  const log = $("live-log");
  for (const values of msg.change_type === "delete" ? olds : rows) {
    const columns = Object.fromEntries(Object.entries(values).filter(([k]) => k !== "_seq"));
    const line = el("li", `log-${msg.change_type}`, `${msg.change_type} ${JSON.stringify(columns)} (_seq ${values._seq})`);
    log.prepend(line);
  }
  while (log.children.length > MAX_LOG_LINES) log.lastChild.remove();
}

// ---------------------------------------------------------------------------------------------
// Jobs

async function loadJobs() {
  $("jobs-error").hidden = true;
  $("jobs-status").textContent = "Loading…";
  try {
    const [r] = (
      await sql(
        "SELECT job_id, job_type, namespace_id, table_name, status, created_at, finished_at, result, error_message " +
          "FROM system.jobs ORDER BY created_at DESC LIMIT 200",
      )
    ).results;
    const table = grid(r.schema, r.rows);
    const statusColumn = r.schema.findIndex((c) => c.name === "status");
    for (const tr of table.querySelectorAll("tbody tr")) {
      tr.children[statusColumn]?.classList.add(`job-${tr.children[statusColumn].textContent}`);
    }
    $("jobs-grid").replaceChildren(table);
    $("jobs-status").textContent = plural(r.row_count, "job");
  } catch (e) {
    $("jobs-status").textContent = "";
    showError("jobs-error", e);
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of ["sql", "live", "jobs"]) $(`tab-${panel}`).hidden = panel !== name;
  if (name === "jobs") loadJobs();
}

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
  $("sql-run").addEventListener("click", runSql);
  $("sql-editor").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      runSql();
    } else if ((e.key === "ArrowUp" || e.key === "ArrowDown") && e.ctrlKey) {
      e.preventDefault();
      stepHistory(e.key === "ArrowUp" ? 1 : -1);
    }
  });
  $("browser-refresh").addEventListener("click", loadBrowser);
  $("live-subscribe").addEventListener("click", subscribe);
  $("live-stop").addEventListener("click", () => {
    stopLive();
    $("live-status").textContent = "Stopped";
  });
  $("jobs-refresh").addEventListener("click", loadJobs);
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  const c = token() && claims(token());
  if (c && typeof c.exp === "number" && c.exp * 1000 > Date.now()) showApp();
  else logout();
}

start();
