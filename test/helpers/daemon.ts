/** Test helper: a real tsxend in this process, on a free loopback port, quiet. */
import { Daemon, type DaemonOptions } from "../../src/daemon/daemon.js";

export async function startDaemon(
  opts: Partial<DaemonOptions> = {},
): Promise<{ daemon: Daemon; port: number }> {
  const daemon = new Daemon({
    host: "127.0.0.1",
    port: 0,
    machineMemoryMiB: 128,
    cpus: 1,
    scheduler: "bvt",
    pacing: "realtime",
    log: () => {},
    ...opts,
  });
  const { port } = await daemon.listen();
  return { daemon, port };
}
