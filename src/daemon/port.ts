/** tsxend's TCP port unless told otherwise (xend's was 8000); xm looks for it there. */
export const DEFAULT_PORT = 8006;

/**
 * Where a tsxend is, as an http:// base URL (no trailing slash), from what a person types:
 * a port (this machine), a host, host:port, or an http:// URL; the port defaults to
 * DEFAULT_PORT. Throws an Error naming the text otherwise.
 */
export function tsxendUrl(text: string): string {
  const t = text.trim();
  const withScheme = /^\d+$/.test(t) ? `http://127.0.0.1:${t}` : /^[a-z]+:\/\//i.test(t) ? t : `http://${t}`;
  let url: URL | null = null;
  try {
    url = new URL(withScheme);
  } catch {
    // Said below.
  }
  if (
    url === null ||
    url.protocol !== "http:" ||
    url.hostname === "" ||
    url.pathname !== "/" ||
    url.search !== "" ||
    url.username !== ""
  )
    throw new Error(`"${text}" is not a port, host, host:port or http:// URL of a tsxend`);
  // (An IPv6 hostname keeps its brackets.)
  return `http://${url.hostname}:${url.port || DEFAULT_PORT}`;
}

/** A failed listen() said with what to do: a port in use or refused names the port and --port. */
export function listenError(e: Error, host: string, port: number | string): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return `port ${port} on ${host} is already in use (by another program, or another tsxen); choose another with --port`;
    case "EACCES":
      return `port ${port} on ${host} needs privileges this user does not have; choose one above 1023 with --port`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${host}: it is not an address of this machine`;
    default:
      return `cannot listen on ${host}:${port}: ${e.message}`;
  }
}
