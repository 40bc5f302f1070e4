/**
 * KalamDB's TypeScript client: `new KalamClient({url})`, then `login`, `sql`/`query` with
 * params, and `subscribe` for live rows that survive reconnects. The wire types of SPEC section 7
 * are exported as they are.
 */
export { KalamClient, type ClientOptions, type SqlOptions } from "./client.js";
export { ConnectionError, KalamError, isKalamError } from "./errors.js";
export {
  defaultReconnectDelay,
  type DisconnectedEvent,
  type ReconnectDelay,
  type ReconnectedEvent,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionEvent,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./live.js";
export type * from "./types.js";
