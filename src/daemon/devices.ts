/**
 * tsxend's endpoints for a domain's virtual devices (docs/devices.md): what xm block-attach /
 * block-detach / block-list and network-attach / network-detach / network-list ask for.
 *
 *   GET  /api/v1/domains/:d/block                       -> { devices }
 *   POST /api/v1/domains/:d/block-attach {uname, dev, mode} -> { devices }
 *   POST /api/v1/domains/:d/block-detach {dev}          -> { devices }
 *   GET  /api/v1/domains/:d/network                     -> { devices }
 *   POST /api/v1/domains/:d/network-attach {spec}       -> { devices }   spec: "mac=..., bridge=..."
 *   POST /api/v1/domains/:d/network-detach {vif}        -> { devices }   vif: index or MAC
 */
import { isAbsolute, resolve } from "node:path";
import type { DomainConfig } from "../tools/config.js";
import { type DomainManager, type ManagedDomain, ToolstackError } from "../tools/domains.js";

function text(v: unknown, what: string): string {
  if (typeof v !== "string" || v === "") throw new ToolstackError(`the request needs "${what}" (a string)`);
  return v;
}

/**
 * Serves a device endpoint of domain d, or returns undefined when `action` is not one.
 * Throws ToolstackError for a bad request.
 */
export function deviceRequest(
  m: DomainManager,
  method: string,
  action: string,
  d: ManagedDomain,
  body: Record<string, unknown>,
): { devices: unknown[] } | undefined {
  if (action === "block" && method === "GET") return { devices: m.blockList(d) };
  if (action === "network" && method === "GET") return { devices: m.networkList(d) };
  if (method !== "POST") return undefined;
  if (action === "block-attach") {
    const uname = text(body.uname, "uname");
    // The daemon resolves nothing against its own directory: xm sends absolute paths.
    const path = uname.replace(/^file:/, "");
    if (uname.startsWith("file:") && !isAbsolute(path))
      throw new ToolstackError(`the image path must be absolute (xm resolves it), not "${path}"`);
    return { devices: m.blockAttach(d, uname, text(body.dev, "dev"), text(body.mode, "mode")) };
  }
  if (action === "block-detach") return { devices: m.blockDetach(d, text(body.dev, "dev")) };
  if (action === "network-attach")
    return { devices: m.networkAttach(d, typeof body.spec === "string" ? body.spec : "") };
  if (action === "network-detach") return { devices: m.networkDetach(d, text(body.vif, "vif")) };
  return undefined;
}

/** A configuration's disk images relative to the configuration file's directory (as its kernel). */
export function resolveDiskPaths(config: DomainConfig, base: string): void {
  for (const disk of config.disks ?? []) disk.path = resolve(base, disk.path);
}
