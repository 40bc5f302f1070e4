/**
 * The wire types of KalamDB's HTTP and WebSocket API (SPEC section 7), as the server sends and
 * accepts them. Field names are the JSON names.
 */

/** A value in a result row: JSON as the server encodes it. Int64/UInt64 beyond ±2^53 arrive as
 * decimal strings, timestamps as ISO-8601 UTC strings, binary as base64. */
export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

/** A row of a live message: an object keyed by column name; `_seq` is always present. */
export type Row = Record<string, Value>;

/** A `_seq` (row version): a JSON number, or a decimal string beyond 2^53. */
export type Seq = number | string;

/** Error codes of HTTP responses (status in brackets) and of WebSocket `error` messages. */
export type ErrorCode =
  | "INVALID_SQL" // 400
  | "TABLE_NOT_FOUND" // 400; on a subscription: the table was dropped
  | "NAMESPACE_NOT_FOUND" // 400
  | "ALREADY_EXISTS" // 400
  | "INVALID_PARAMETER" // 400; on the WebSocket: a message the server does not understand
  | "EMPTY_SQL" // 400
  | "SQL_EXECUTION_ERROR" // 400
  | "LIMIT_EXCEEDED" // 400 (a statement limit), or a live client that fell behind
  | "UNAUTHORIZED" // 401
  | "PERMISSION_DENIED" // 403
  | "PAYLOAD_TOO_LARGE" // 413
  | "RATE_LIMIT_EXCEEDED" // 429
  | "INTERNAL_ERROR" // 500
  | "SCHEMA_CHANGED" // a subscription's columns were dropped or renamed
  | "LIVE_QUERY_KILLED" // KILL LIVE QUERY ended a subscription
  | (string & {}); // codes added by later servers

// ---------------------------------------------------------------------------------------------
// HTTP

/** `GET /v1/api/healthcheck`. */
export interface HealthcheckResponse {
  status: "healthy";
  version: string;
  api_version: "v1";
}

/** `POST /v1/api/auth/login` body. */
export interface LoginRequest {
  username: string;
  password: string;
}

/** `POST /v1/api/auth/login` answer: an HS256 JWT valid for `expires_in` seconds. */
export interface LoginResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
}

/** `POST /v1/api/sql` body. `params` bind `$1`, `$2`, …; `namespace` is the default one. */
export interface SqlRequest {
  sql: string;
  params?: Value[];
  namespace?: string;
}

/** One column of a result: its name, SQL type (`BIGINT`, `TEXT`, …) and position. */
export interface SchemaField {
  name: string;
  data_type: string;
  index: number;
}

/** The result of one statement. Queries carry `schema` and `rows` (arrays in schema order);
 * DDL and DML carry `message` and `row_count`. */
export interface StatementResult {
  schema?: SchemaField[];
  rows?: Value[][];
  row_count: number;
  message: string | null;
}

/** The body of an error: a stable code, a message for people, optional details. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details: string;
}

/** `POST /v1/api/sql` success (200): one result per statement; `took` in milliseconds. */
export interface SqlSuccessResponse {
  status: "success";
  results: StatementResult[];
  took: number;
}

/** Any error answer of the HTTP API (4xx, 5xx). */
export interface SqlErrorResponse {
  status: "error";
  results: [];
  took: number;
  error: ErrorBody;
}

/** What `POST /v1/api/sql` answers. */
export type SqlResponse = SqlSuccessResponse | SqlErrorResponse;

// ---------------------------------------------------------------------------------------------
// WebSocket `GET /v1/ws`: client → server

/** Authenticates a connection opened without a header or `?token=` (within 3 s). */
export interface AuthenticateMessage {
  type: "authenticate";
  token: string;
}

/** Options of a subscription. `from_seq` (exclusive) resumes: every row version with a greater
 * `_seq` arrives exactly once. `batch_size`: rows per initial batch (1–10,000, default 1,000).
 * `last_rows`: only the newest n rows as initial data (not with `from_seq`). */
export interface SubscribeOptionsWire {
  last_rows?: number;
  batch_size?: number;
  from_seq?: Seq;
}

/** Starts subscription `id` (unique on the connection, 1–128 bytes) to `SELECT … FROM ns.t [WHERE …]`. */
export interface SubscribeMessage {
  type: "subscribe";
  subscription: { id: string; sql: string; options?: SubscribeOptionsWire };
}

/** Ends a subscription. */
export interface UnsubscribeMessage {
  type: "unsubscribe";
  subscription_id: string;
}

/** Answered with `pong`. */
export interface PingMessage {
  type: "ping";
}

/** Every message a client may send. */
export type ClientMessage = AuthenticateMessage | SubscribeMessage | UnsubscribeMessage | PingMessage;

// ---------------------------------------------------------------------------------------------
// WebSocket: server → client

/** The connection is authenticated. */
export interface AuthSuccessMessage {
  type: "auth_success";
  user_id: string;
  role: string;
}

/** Authentication failed, expired or was revoked; the server closes the connection. */
export interface AuthErrorMessage {
  type: "auth_error";
  code: "UNAUTHORIZED";
  message: string;
}

/** A subscription is registered: `total_rows` of initial data follow, with this `schema`. */
export interface SubscriptionAckMessage {
  type: "subscription_ack";
  subscription_id: string;
  total_rows: number;
  schema: SchemaField[];
}

/** One batch of initial data, numbered from 0; the last has `status: "ready"`. `last_seq` is the
 * resume point. */
export interface InitialDataBatchMessage {
  type: "initial_data_batch";
  subscription_id: string;
  rows: Row[];
  batch_control: {
    batch_num: number;
    has_more: boolean;
    status: "loading" | "ready";
    last_seq: Seq;
  };
}

/** A committed change: insert (`rows`), update (`rows` new, `old_values` key + changed columns),
 * delete (`old_values`). */
export interface ChangeMessage {
  type: "change";
  subscription_id: string;
  change_type: "insert" | "update" | "delete";
  rows?: Row[];
  old_values?: Row[];
}

/** An error: of one subscription (which then ends) when `subscription_id` is set, else of the
 * connection. */
export interface ErrorMessage {
  type: "error";
  subscription_id?: string;
  code: ErrorCode;
  message: string;
}

/** The answer to `ping`. */
export interface PongMessage {
  type: "pong";
}

/** Every message a server may send. */
export type ServerMessage =
  | AuthSuccessMessage
  | AuthErrorMessage
  | SubscriptionAckMessage
  | InitialDataBatchMessage
  | ChangeMessage
  | ErrorMessage
  | PongMessage;
