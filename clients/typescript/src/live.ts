import { ConnectionError, KalamError } from "./errors.js";
import type {
  ChangeMessage,
  ClientMessage,
  ErrorMessage,
  InitialDataBatchMessage,
  Row,
  Seq,
  ServerMessage,
  SubscribeOptionsWire,
  SubscriptionAckMessage,
} from "./types.js";

/** Options of {@link KalamClient.subscribe}. */
export interface SubscribeOptions {
  /** Resume after this `_seq` (exclusive) instead of loading the current rows. */
  fromSeq?: Seq;
  /** Rows per initial data batch, 1 to 10,000 (server default 1,000). */
  batchSize?: number;
  /** Initial data: only the newest n matching rows. Ignored when resuming. */
  lastRows?: number;
}

/** The connection dropped; the client reconnects after `retryInMs` and resumes. */
export interface DisconnectedEvent {
  type: "disconnected";
  error: KalamError;
  retryInMs: number;
}

/** The client reconnected and re-subscribed, from `fromSeq` when it had seen a row version. */
export interface ReconnectedEvent {
  type: "reconnected";
  fromSeq: Seq | undefined;
}

/** What `onEvent` receives: the server's messages for this subscription, and the client's own
 * `disconnected`/`reconnected` notices. An `error` ends the subscription. */
export type SubscriptionEvent =
  | SubscriptionAckMessage
  | InitialDataBatchMessage
  | ChangeMessage
  | ErrorMessage
  | DisconnectedEvent
  | ReconnectedEvent;

/** The handle {@link KalamClient.subscribe} returns. */
export interface Subscription {
  /** The subscription id on the connection (`s1`, `s2`, …). */
  readonly id: string;
  /** The newest `_seq` delivered so far: where a reconnect resumes. */
  readonly lastSeq: Seq | undefined;
  /** Whether it still runs (not unsubscribed, not ended by an error). */
  readonly active: boolean;
  /** Settles when the first initial data is complete (`status: "ready"`): writes after that
   * arrive as changes. Rejects with a {@link KalamError} if the subscription ends first. */
  readonly ready: Promise<void>;
  /** Ends it (idempotent). */
  unsubscribe(): void;
}

/** The subset of the WHATWG WebSocket this client uses; the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** Drops the connection at once, without a closing handshake (`ws` has it; browsers do not). */
  terminate?(): void;
}

/** A WebSocket constructor (`globalThis.WebSocket`, or `ws`'s `WebSocket` in Node < 22). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Milliseconds to wait before reconnect attempt `attempt` (0-based). */
export type ReconnectDelay = (attempt: number) => number;

/** The default: 100 ms doubling to 5 s. */
export const defaultReconnectDelay: ReconnectDelay = (attempt) => Math.min(5000, 100 * 2 ** Math.min(attempt, 6));

/** What a live connection needs from its client. */
export interface LiveHost {
  /** `ws://host:port/v1/ws`. */
  wsUrl: string;
  /** A fresh or cached login token; `renew` forces a new login. */
  token(renew: boolean): Promise<string>;
  /** Whether a new login could help after an `auth_error` (the client has credentials). */
  canRenew(): boolean;
  webSocket(): Promise<WebSocketConstructor>;
  reconnectDelay: ReconnectDelay;
  /** Milliseconds between pings; a connection silent for two of them is taken as dead. */
  pingIntervalMs: number;
}

interface SubState {
  id: string;
  sql: string;
  options: SubscribeOptions;
  onEvent: (e: SubscriptionEvent) => void;
  lastSeq: Seq | undefined;
  active: boolean;
  /** Whether a `subscribe` for it was sent on an earlier connection. */
  sent: boolean;
  /** Settles `ready`. */
  loaded: (error?: KalamError) => void;
}

const OPEN = 1;

/** The larger of two `_seq` values (numbers or decimal strings), exactly. */
function maxSeq(a: Seq | undefined, b: Seq | undefined): Seq | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  try {
    return BigInt(b) > BigInt(a) ? b : a;
  } catch {
    return a; // not a whole number: never a resume point
  }
}

function rowsSeq(rows: Row[] | undefined): Seq | undefined {
  let seq: Seq | undefined;
  for (const r of rows ?? []) {
    const s = r["_seq"];
    if (typeof s === "number" || typeof s === "string") seq = maxSeq(seq, s);
  }
  return seq;
}

/**
 * One WebSocket shared by a client's subscriptions: opened on the first subscribe, closed when
 * the last one ends, reopened after a drop with every live subscription resumed from the last
 * `_seq` it delivered (SPEC section 7: `from_seq` resumes without gaps or duplicates).
 */
export class LiveConnection {
  private readonly subs = new Map<string, SubState>();
  private socket: WebSocketLike | undefined;
  private authed = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;
  private closed = false;
  private renewToken = false;
  /** A `connect` is under way (fetching a token): no second one may start. */
  private connecting = false;
  /** Pings the server and watches that it answers (see {@link LiveHost.pingIntervalMs}). */
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  /** When the server was last heard from (ms since the epoch). */
  private lastHeard = 0;

  constructor(private readonly host: LiveHost) {}

  subscribe(sql: string, options: SubscribeOptions, onEvent: (e: SubscriptionEvent) => void): Subscription {
    if (this.closed) throw new KalamError("INVALID_PARAMETER", "the client is closed");
    let loaded: (error?: KalamError) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      loaded = (error) => (error ? reject(error) : resolve());
    });
    ready.catch(() => {}); // a caller who never awaits `ready` gets no unhandled rejection
    const state: SubState = {
      id: `s${this.nextId++}`,
      sql,
      options,
      onEvent,
      lastSeq: undefined,
      active: true,
      sent: false,
      loaded,
    };
    this.subs.set(state.id, state);
    if (this.authed) this.sendSubscribe(state);
    else this.ensureConnecting();
    return {
      id: state.id,
      get lastSeq() {
        return state.lastSeq;
      },
      get active() {
        return state.active;
      },
      ready,
      unsubscribe: () => this.unsubscribe(state),
    };
  }

  /** Ends every subscription and the connection; nothing reconnects afterwards. */
  close(): void {
    this.closed = true;
    for (const s of this.subs.values()) {
      s.active = false;
      s.loaded(new KalamError("LIVE_QUERY_KILLED", "the client was closed"));
    }
    this.subs.clear();
    this.shutdown();
  }

  private unsubscribe(state: SubState): void {
    if (!state.active) return;
    state.active = false;
    state.loaded(new KalamError("LIVE_QUERY_KILLED", "unsubscribed before its initial data was complete"));
    this.subs.delete(state.id);
    if (this.authed) this.send({ type: "unsubscribe", subscription_id: state.id });
    if (this.subs.size === 0) this.shutdown();
  }

  private shutdown(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.forget(1000, "done");
  }

  /** Detaches and closes the current socket, if any. */
  private forget(code: number, reason: string): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const socket = this.socket;
    this.socket = undefined;
    this.authed = false;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      if (code === 1000 || !socket.terminate) socket.close(code, reason);
      else socket.terminate();
    }
  }

  private ensureConnecting(): void {
    if (this.socket || this.connecting || this.timer !== undefined || this.closed) return;
    this.connecting = true;
    void this.connect().finally(() => (this.connecting = false));
  }

  private async connect(): Promise<void> {
    let token: string;
    let Ctor: WebSocketConstructor;
    try {
      token = await this.host.token(this.renewToken);
      this.renewToken = false;
      Ctor = await this.host.webSocket();
    } catch (e) {
      if (e instanceof KalamError && e.code === "UNAUTHORIZED") return this.fail(e);
      return this.dropped(e instanceof KalamError ? e : new ConnectionError(String(e), { cause: e }));
    }
    if (this.closed || this.subs.size === 0) return;
    const socket = new Ctor(this.host.wsUrl);
    this.socket = socket;
    const hello: ClientMessage = { type: "authenticate", token };
    socket.onopen = () => socket.send(JSON.stringify(hello));
    socket.onmessage = (ev) => {
      this.lastHeard = Date.now();
      this.receive(String(ev.data));
    };
    socket.onerror = () => {};
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.forget(1000, "closed");
      this.dropped(new ConnectionError(`connection closed (${ev.code ?? "no code"}${ev.reason ? `: ${ev.reason}` : ""})`));
    };
    this.lastHeard = Date.now();
    const every = this.host.pingIntervalMs;
    this.heartbeat = setInterval(() => {
      if (this.socket !== socket) return;
      if (Date.now() - this.lastHeard > 2 * every) {
        // No answer to two pings (a half-open connection: a lost network, a frozen server).
        this.forget(4000, "no answer to ping");
        this.dropped(new ConnectionError(`no answer from the server for ${2 * every} ms`));
      } else if (socket.readyState === OPEN) {
        socket.send(JSON.stringify({ type: "ping" } satisfies ClientMessage));
      }
    }, every);
  }

  /** The connection broke: tell every subscription, then try again after the backoff delay. */
  private dropped(error: KalamError): void {
    if (this.closed || this.subs.size === 0) return;
    const retryInMs = this.host.reconnectDelay(this.attempt++);
    for (const s of this.subs.values()) s.onEvent({ type: "disconnected", error, retryInMs });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ensureConnecting();
    }, retryInMs);
  }

  /** Authentication cannot succeed: every subscription ends with `error`. */
  private fail(error: KalamError): void {
    const subs = [...this.subs.values()];
    this.subs.clear();
    this.shutdown();
    for (const s of subs) {
      s.active = false;
      s.loaded(error);
      s.onEvent({ type: "error", subscription_id: s.id, code: error.code, message: error.message });
    }
  }

  private receive(text: string): void {
    let msg: ServerMessage;
    try {
      msg = JSON.parse(text) as ServerMessage;
    } catch {
      return;
    }
    switch (msg.type) {
      case "auth_success":
        this.authed = true;
        this.attempt = 0;
        for (const s of this.subs.values()) {
          if (s.sent) {
            s.onEvent({ type: "reconnected", fromSeq: s.lastSeq ?? s.options.fromSeq });
          }
          this.sendSubscribe(s);
        }
        return;
      case "auth_error":
        // An expired or revoked token: one new login, if the client has credentials.
        if (this.host.canRenew() && !this.renewToken) {
          this.renewToken = true;
          return; // the server closes the socket; `onclose` reconnects with a new token
        }
        this.fail(new KalamError(msg.code, msg.message, 401));
        return;
      case "pong":
        return;
      default:
        break;
    }
    const state = msg.subscription_id === undefined ? undefined : this.subs.get(msg.subscription_id);
    if (!state) return;
    if (msg.type === "initial_data_batch") {
      // Only a complete load is a resume point: an interrupted one starts over.
      if (msg.batch_control.status === "ready") {
        state.lastSeq = maxSeq(state.lastSeq, msg.batch_control.last_seq);
        state.loaded();
      }
    } else if (msg.type === "change") {
      state.lastSeq = maxSeq(state.lastSeq, maxSeq(rowsSeq(msg.rows), rowsSeq(msg.old_values)));
    } else if (msg.type === "error") {
      state.active = false;
      state.loaded(new KalamError(msg.code, msg.message));
      this.subs.delete(state.id);
    }
    state.onEvent(msg);
    if (this.subs.size === 0) this.shutdown();
  }

  private sendSubscribe(s: SubState): void {
    const options: SubscribeOptionsWire = {};
    if (s.options.batchSize !== undefined) options.batch_size = s.options.batchSize;
    const from = s.lastSeq ?? s.options.fromSeq;
    if (from !== undefined) options.from_seq = from;
    else if (s.options.lastRows !== undefined) options.last_rows = s.options.lastRows;
    this.send({ type: "subscribe", subscription: { id: s.id, sql: s.sql, options } });
    s.sent = true;
  }

  private send(msg: ClientMessage): void {
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(msg));
  }
}
