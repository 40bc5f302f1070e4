import { ConnectionError, KalamError } from "./errors.js";
import {
  defaultReconnectDelay,
  LiveConnection,
  type ReconnectDelay,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionEvent,
  type WebSocketConstructor,
} from "./live.js";
import type {
  HealthcheckResponse,
  LoginResponse,
  Row,
  SqlErrorResponse,
  SqlRequest,
  SqlSuccessResponse,
  Value,
} from "./types.js";

/** How a {@link KalamClient} reaches and authenticates to a server. */
export interface ClientOptions {
  /** The server's base URL; default `http://127.0.0.1:8080`. */
  url?: string;
  /** A login token to use as it is (`Authorization: Bearer`). */
  token?: string;
  /** Credentials: sent as Basic auth until {@link KalamClient.login}, and used to log in again
   * when a token expires. Without credentials or token the client acts as `root` with no
   * password, which the server accepts only from loopback while root has none. */
  username?: string;
  password?: string;
  /** The WebSocket implementation; default `globalThis.WebSocket`, else the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Milliseconds before reconnect attempt n (0-based); default 100 ms doubling to 5 s. */
  reconnectDelay?: ReconnectDelay;
  /** Milliseconds between pings on the WebSocket (default 15,000); a connection that stays
   * silent for two intervals is dropped and resumed, so a lost network is noticed. */
  pingIntervalMs?: number;
}

/** Options of one {@link KalamClient.sql} call. */
export interface SqlOptions {
  /** The default namespace for unqualified table names. */
  namespace?: string;
}

/**
 * A KalamDB client: SQL over HTTP (`POST /v1/api/sql`), login for a token, and live
 * subscriptions over one WebSocket that reconnects by itself and resumes from the last `_seq`
 * each subscription delivered.
 *
 * Errors are {@link KalamError}s carrying the server's code (or {@link ConnectionError}).
 */
export class KalamClient {
  /** The base URL, without a trailing slash. */
  readonly url: string;
  private token: string | undefined;
  private username: string | undefined;
  private password: string | undefined;
  private readonly live: LiveConnection;
  private readonly wsCtor: WebSocketConstructor | undefined;
  /** Whether the options gave a token (then, without credentials, the client never logs in). */
  private readonly tokenGiven: boolean;

  /** @throws {KalamError} `INVALID_PARAMETER` for a `pingIntervalMs` under 50. */
  constructor(options: ClientOptions = {}) {
    const pingIntervalMs = options.pingIntervalMs ?? 15_000;
    if (!(pingIntervalMs >= 50)) {
      throw new KalamError("INVALID_PARAMETER", `pingIntervalMs must be at least 50, got ${pingIntervalMs}`);
    }
    this.url = (options.url ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
    this.token = options.token;
    this.username = options.username;
    this.password = options.password;
    this.wsCtor = options.WebSocket;
    this.tokenGiven = options.token !== undefined;
    this.live = new LiveConnection({
      wsUrl: `${this.url.replace(/^http/, "ws")}/v1/ws`,
      token: (renew) => this.liveToken(renew),
      canRenew: () => this.canLogin,
      webSocket: () => this.webSocket(),
      reconnectDelay: options.reconnectDelay ?? defaultReconnectDelay,
      pingIntervalMs,
    });
  }

  /** Whether the client may log in by itself (it has credentials, or acts as root). */
  private get canLogin(): boolean {
    return this.username !== undefined || !this.tokenGiven;
  }

  /** The token in use, if any (after {@link login} or from the options). */
  get accessToken(): string | undefined {
    return this.token;
  }

  /** `GET /v1/api/healthcheck`. */
  async health(): Promise<HealthcheckResponse> {
    return (await this.request("GET", "/v1/api/healthcheck", undefined, false)) as HealthcheckResponse;
  }

  /**
   * Logs in (`POST /v1/api/auth/login`) and uses the token for every later call, HTTP and
   * WebSocket, and the credentials to log in again when it expires. Without arguments, the
   * credentials of the options (or root with no password).
   *
   * @throws {KalamError} `UNAUTHORIZED` on wrong credentials.
   */
  async login(username?: string, password?: string): Promise<LoginResponse> {
    const body = {
      username: username ?? this.username ?? "root",
      password: password ?? (username === undefined ? this.password : undefined) ?? "",
    };
    const answer = (await this.request("POST", "/v1/api/auth/login", body, false)) as LoginResponse;
    this.token = answer.access_token;
    this.username = body.username;
    this.password = body.password;
    return answer;
  }

  /**
   * Runs one or more `;`-separated statements; `params` bind `$1`, `$2`, … (values, never
   * spliced into SQL). Resolves with one result per statement and the server time `took` (ms).
   *
   * @throws {KalamError} with the server's code (`INVALID_SQL`, `PERMISSION_DENIED`, …) and status.
   */
  async sql(sql: string, params?: Value[], options: SqlOptions = {}): Promise<SqlSuccessResponse> {
    const body: SqlRequest = { sql };
    if (params !== undefined) body.params = params;
    if (options.namespace !== undefined) body.namespace = options.namespace;
    return (await this.request("POST", "/v1/api/sql", body, true)) as SqlSuccessResponse;
  }

  /** Runs a query and returns the rows of its last statement as objects keyed by column name. */
  async query<T extends Row = Row>(sql: string, params?: Value[], options?: SqlOptions): Promise<T[]> {
    const answer = await this.sql(sql, params, options);
    const last = answer.results[answer.results.length - 1];
    const schema = last?.schema ?? [];
    return (last?.rows ?? []).map((values) => {
      const row: Row = {};
      schema.forEach((f, i) => (row[f.name] = values[i] ?? null));
      return row as T;
    });
  }

  /**
   * Subscribes to `SELECT … FROM ns.t [WHERE …]`: `onEvent` gets `subscription_ack`, the initial
   * data in `initial_data_batch`es, then every `change`, in `_seq` order. When the connection
   * drops, `onEvent` gets `disconnected`; the client reconnects (backoff) and resubscribes from
   * the last `_seq` it delivered (`reconnected`), so no change is lost or repeated. An `error`
   * event ends the subscription (refused, table dropped, killed…).
   *
   * @returns a handle whose `unsubscribe()` ends it.
   */
  subscribe(sql: string, options: SubscribeOptions, onEvent: (event: SubscriptionEvent) => void): Subscription {
    return this.live.subscribe(sql, options, onEvent);
  }

  /** Ends every subscription and closes the WebSocket. */
  close(): void {
    this.live.close();
  }

  private async liveToken(renew: boolean): Promise<string> {
    if (this.token === undefined || renew) await this.login();
    return this.token ?? "";
  }

  private async webSocket(): Promise<WebSocketConstructor> {
    if (this.wsCtor) return this.wsCtor;
    const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (global) return global;
    const ws = await import("ws");
    return ws.WebSocket as unknown as WebSocketConstructor;
  }

  private authorization(): string | undefined {
    if (this.token !== undefined) return `Bearer ${this.token}`;
    if (this.username !== undefined) {
      return `Basic ${base64(`${this.username}:${this.password ?? ""}`)}`;
    }
    return undefined;
  }

  private async request(method: string, path: string, body: unknown, auth: boolean, retried = false): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    const authorization = auth ? this.authorization() : undefined;
    if (authorization !== undefined) headers["authorization"] = authorization;
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (e) {
      throw new ConnectionError(`cannot reach ${this.url}: ${(e as Error).message}`, { cause: e });
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new KalamError("INTERNAL_ERROR", `not JSON (HTTP ${response.status}): ${text.slice(0, 200)}`, response.status);
    }
    if (!response.ok) {
      const error = (json as Partial<SqlErrorResponse>).error;
      if (response.status === 401 && auth && !retried && this.token !== undefined && this.canLogin) {
        // An expired or revoked token: log in again once and retry.
        await this.login();
        return this.request(method, path, body, auth, true);
      }
      throw new KalamError(
        error?.code ?? "INTERNAL_ERROR",
        error?.message ?? `HTTP ${response.status}`,
        response.status,
        error?.details,
      );
    }
    return json;
  }
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
