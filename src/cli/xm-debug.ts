/**
 * `xm debug <domain> [--port P]`: asks tsxend for a gdb stub on loopback for the domain
 * (src/daemon/debug.ts) and says how to reach it. gdb stops the domain when it connects.
 */
import type { Command } from "commander";
import { type Connection, request, XmError } from "./xm-client.js";

export function registerDebugCommand(
  xm: Command,
  conn: () => Connection,
  run: <A extends unknown[]>(fn: (...args: A) => Promise<void>) => (...args: A) => Promise<void>,
): void {
  xm.command("debug")
    .description("open a gdb stub for a domain on tsxend's loopback (gdb: target remote HOST:PORT)")
    .argument("<domain>", "domain name or id")
    .option("--port <P>", "the TCP port (default: a free one)")
    .action(
      run(async (dom: string, o: { port?: string }) => {
        let port: number | undefined;
        if (o.port !== undefined) {
          port = Number(o.port);
          if (!/^\d{1,5}$/.test(o.port) || port > 65535)
            throw new XmError(`the port must be a number from 0 to 65535, not "${o.port}"`);
        }
        const r = await request<{ host: string; port: number }>(
          conn(),
          "POST",
          `/domains/${encodeURIComponent(dom)}/debug`,
          port === undefined ? {} : { port },
        );
        process.stdout.write(
          `gdb stub for ${dom} on ${r.host}:${r.port}\n  gdb -ex 'target remote ${r.host}:${r.port}' KERNEL\n`,
        );
      }),
    );
}
