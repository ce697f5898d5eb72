/** Test helper: a real tsxend in this process, on a free loopback port, quiet. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon, type DaemonOptions } from "../../src/daemon/daemon.js";

/** The state directories made here, removed when the test process ends. */
const made: string[] = [];
process.on("exit", () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/**
 * A daemon of its own state directory (a temporary one: never the user's), where it makes
 * its token file; the answer carries the token and the directory (for xm: TSXEN_STATE_DIR).
 */
export async function startDaemon(
  opts: Partial<DaemonOptions> = {},
): Promise<{ daemon: Daemon; port: number; token: string; stateDir: string }> {
  let stateDir = opts.stateDir;
  if (stateDir === undefined) {
    stateDir = mkdtempSync(join(tmpdir(), "tsxen-state-"));
    made.push(stateDir);
  }
  const daemon = new Daemon({
    host: "127.0.0.1",
    port: 0,
    machineMemoryMiB: 128,
    cpus: 1,
    scheduler: "bvt",
    pacing: "realtime",
    log: () => {},
    ...opts,
    stateDir,
  });
  const { port } = await daemon.listen();
  return { daemon, port, token: daemon.token, stateDir };
}

/** The headers of a JSON API call with a daemon's token. */
export function apiHeaders(token: string): Record<string, string> {
  return { "content-type": "application/json", authorization: `Bearer ${token}` };
}
