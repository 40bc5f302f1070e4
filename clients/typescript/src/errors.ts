import type { ErrorCode } from "./types.js";

/**
 * What the server refused, or why it could not be reached: `code` is the server's stable error
 * code (SPEC section 7: `INVALID_SQL`, `UNAUTHORIZED`, …) or `CONNECTION_FAILED`; `status` is the
 * HTTP status when the error came from an HTTP answer.
 */
export class KalamError extends Error {
  /** The error code, e.g. `TABLE_NOT_FOUND`. */
  readonly code: ErrorCode;
  /** The HTTP status (400, 401, …); undefined for WebSocket errors and network failures. */
  readonly status: number | undefined;
  /** The server's longer description, when it sent one. */
  readonly details: string | undefined;

  constructor(code: ErrorCode, message: string, status?: number, details?: string) {
    super(`${code}: ${message}`);
    this.name = "KalamError";
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/** The server could not be reached or the connection broke (code `CONNECTION_FAILED`). */
export class ConnectionError extends KalamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CONNECTION_FAILED", message);
    this.name = "ConnectionError";
    if (options?.cause !== undefined) {
      (this as { cause?: unknown }).cause = options.cause;
    }
  }
}

/** Whether `e` is a {@link KalamError} (also across copies of this package). */
export function isKalamError(e: unknown): e is KalamError {
  return e instanceof KalamError || (e instanceof Error && typeof (e as KalamError).code === "string");
}
