/**
 * The real `kalamdb serve` binary for the tests: `KALAMDB_BIN` names it (`cargo xtask clients`
 * builds it and sets it). Each server gets a fresh data directory and a free loopback port.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Polls `check` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One server process on `dataDir`. */
export class Server {
  private child: ChildProcess | undefined;

  private constructor(
    readonly dataDir: string,
    public port: number,
    private readonly env: Record<string, string>,
  ) {}

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts a server on a new data directory, with `KALAMDB_*` settings `env`, and waits until
   * it answers. */
  static async start(env: Record<string, string> = {}): Promise<Server> {
    const server = new Server(mkdtempSync(join(tmpdir(), "kalamdb-ts-")), await freePort(), env);
    await server.launch();
    return server;
  }

  /** Starts the binary on this data directory and port (its log goes to `<dataDir>.log`). */
  async launch(): Promise<void> {
    const binary = process.env["KALAMDB_BIN"];
    if (!binary) throw new Error("set KALAMDB_BIN to the kalamdb binary (cargo xtask clients does)");
    const log = openSync(`${this.dataDir}.log`, "a");
    const child = spawn(binary, ["serve", "--data-dir", this.dataDir, "--bind", `127.0.0.1:${this.port}`], {
      stdio: ["ignore", log, log],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    await waitFor(`the server on port ${this.port}`, async () => {
      if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}; see ${this.dataDir}.log`);
      try {
        return (await fetch(`${this.url}/v1/api/healthcheck`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    }, 60_000);
  }

  /** Kills the process (SIGKILL by default: a crash) and waits for it to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the process: its connections stay open, unanswered. */
  signal(signal: "SIGSTOP" | "SIGCONT"): void {
    this.child?.kill(signal);
  }

  /** Stops the server and deletes its data. */
  async stop(): Promise<void> {
    await this.kill("SIGTERM");
    rmSync(this.dataDir, { recursive: true, force: true });
    rmSync(`${this.dataDir}.log`, { force: true });
  }
}
