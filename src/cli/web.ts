/**
 * `tsxen web`: serves the browser build (dist/web, made by `npm run build:web`) over HTTP on
 * loopback, so a browser on this machine can run guests in the page. Only the build's own
 * files are served.
 */
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { Command } from "commander";
import { listenError } from "../daemon/port.js";
import { sendWebFile, WEB_DIR } from "../daemon/web-files.js";

const FILES: Record<string, string> = {
  "/": "index.html",
  "/index.html": "index.html",
  "/tsxen.js": "tsxen.js",
  "/xterm.css": "xterm.css",
  "/hello.elf": "hello.elf",
};

/** Starts the server; resolves once it listens (port 0: any free port, see server.address()). */
export function serveWeb(port: number, host: string, dir = WEB_DIR): Promise<Server> {
  if (!existsSync(join(dir, "tsxen.js"))) {
    return Promise.reject(new Error(`the browser build is missing (${dir}): run npm run build:web`));
  }
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const file = FILES[path];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (file === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`no such file: ${path}\n`);
      return;
    }
    sendWebFile(res, dir, file, req.method === "HEAD");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

export function registerWeb(program: Command): void {
  program
    .command("web")
    .description("serve the browser build (run guests in a web page) on loopback")
    .option("--port <N>", "TCP port", "8080")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .action(async (opts: { port: string; host: string }) => {
      if (!/^\d+$/.test(opts.port) || Number(opts.port) > 65535) {
        process.stderr.write(`tsxen: --port must be a TCP port number, not "${opts.port}"\n`);
        process.exitCode = 2;
        return;
      }
      try {
        await serveWeb(Number(opts.port), opts.host);
        process.stdout.write(
          `tsxen web: open http://${opts.host}:${opts.port}/ in a browser (Ctrl-C stops)\n`,
        );
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        process.stderr.write(
          `tsxen: ${err.syscall === "listen" ? listenError(err, opts.host, opts.port) : err.message}\n`,
        );
        process.exitCode = 2;
      }
    });
}
