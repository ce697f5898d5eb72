/**
 * The browser build's files (dist/web, made by scripts/build-web.ts) as HTTP answers: the
 * page that runs guests in the browser (`tsxen web`) and tsxend's dashboard. Only the
 * build's own files are served, by name.
 */
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** dist/web, beside dist/src (this module is dist/src/daemon/web-files.js). */
export const WEB_DIR = fileURLToPath(new URL("../../web/", import.meta.url));
/** The bundled demo guest (guests/hello.elf, rebuilt and compared by npm test). */
export const BUNDLED_GUEST = fileURLToPath(new URL("../../../guests/hello.elf", import.meta.url));

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  elf: "application/octet-stream",
};

/**
 * Answers a GET/HEAD for file (a name in dir) with its bytes, or a 500 naming the problem
 * (a build that is missing names the command that makes it). edit: changes a text file's
 * content before it is sent.
 */
export function sendWebFile(
  res: ServerResponse,
  dir: string,
  file: string,
  head: boolean,
  edit?: (text: string) => string,
): void {
  let body: Buffer;
  try {
    body = readFileSync(join(dir, file));
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    res.writeHead(missing ? 404 : 500, { "content-type": "text/plain; charset=utf-8" });
    res.end(missing ? `${file} is not built (${dir}): run npm run build:web\n` : `${(e as Error).message}\n`);
    return;
  }
  if (edit !== undefined) body = Buffer.from(edit(body.toString("utf8")));
  res.writeHead(200, { "content-type": TYPES[file.split(".").pop() ?? ""], "cache-control": "no-cache" });
  res.end(head ? undefined : body);
}
