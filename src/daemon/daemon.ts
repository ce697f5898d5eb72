/**
 * tsxend: one long-running process that owns the machine, the hypervisor and the toolstack,
 * serving the HTTP + WebSocket API of docs/api.md. Loopback only unless told otherwise, and
 * then only with a token.
 */
import { randomBytes } from "node:crypto";
import { readFile, rename, unlink } from "node:fs/promises";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, isAbsolute, resolve } from "node:path";
import { type WebSocket, WebSocketServer } from "ws";
import { bridgeOf } from "../tools/backends/bridge.js";
import { PasstUplink, type UplinkSpec } from "../tools/backends/passt.js";
import { type ConfigValue, parseDomainConfig, parseOverride } from "../tools/config.js";
import { DomainManager, ToolstackError } from "../tools/domains.js";
import { applyDelta, changedPages, encodeDelta } from "../tools/migrate.js";
import {
  captureDomain,
  decodeImage,
  encodeImage,
  type ImageHeader,
  readImageFile,
  restoreDomain,
  SaveError,
  writeImageFile,
} from "../tools/save.js";
import { xcReadConsole } from "../tools/xc.js";
import { Hypervisor } from "../xen/hypervisor.js";
import { XEN_VERSION_NAME } from "../xen/version.js";
import { closeDebugStub, closeDebugStubOf, openDebugStub } from "./debug.js";
import { deviceRequest, resolveDiskPaths } from "./devices.js";
import { Guard, type Need, type Refusal } from "./guard.js";
import { DaemonLog, defaultLogFile } from "./log.js";
import { tsxendUrl } from "./port.js";
import { type Pacing, RunLoop } from "./runloop.js";
import { StateDir } from "./state.js";
import { defaultStateDir, loadOrCreateToken, tokenFile } from "./token.js";
import { BUNDLED_GUEST, sendWebFile, WEB_DIR } from "./web-files.js";

export interface DaemonOptions {
  host: string;
  port: number;
  /** The token clients must send; default: the token file of stateDir (made when absent). */
  token?: string;
  /** tsxend's state directory (its token file); default defaultStateDir(). */
  stateDir?: string;
  /** More names clients may reach tsxend by (--allow-host), besides loopback and --listen. */
  allowHosts?: string[];
  machineMemoryMiB: number;
  cpus: number;
  scheduler: string;
  pacing: Pacing;
  /** Realtime pacing: the run loop's timer slop in ms (runloop.ts TIMER_SLOP_MS by default). */
  timerSlopMs?: number;
  /** The slop once no domain has done I/O for a while (runloop.ts IDLE_SLOP_MS by default). */
  idleSlopMs?: number;
  /** How long "a while" is, in ms (runloop.ts QUIET_MS by default; tests shorten it). */
  quietMs?: number;
  /**
   * What close() does with running domains: save them into the state directory (restored at
   * the next start, as Xen's xendomains did) or destroy them. Set (tsxen daemon sets it), the
   * daemon also takes the state directory for itself and restores what it holds at listen().
   * Unset (a daemon inside a test), domains are destroyed and nothing is restored.
   */
  onStop?: "save" | "destroy";
  /** Daemon messages, unstamped (default: stamped on stderr). */
  log?: (line: string) => void;
  /** The log file, each line stamped (default: tsxend.log in the state directory; null: none). */
  logFile?: string | null;
  /** A bridge connected to the outside world through passt, with its port forwards (--uplink). */
  uplink?: UplinkSpec;
  /** Where the dashboard's files are (default: dist/web). */
  webDir?: string;
}

const API = "/api/v1";
/** Live migration: pre-copy rounds at most, the wait between them, few enough pages to stop. */
const LIVE_ROUNDS = 8;
const LIVE_ROUND_MS = 50;
const LIVE_FINAL_PAGES = 64;
/** An incoming live migration not heard from for this long is dropped; at most this many at once. */
const LIVE_SESSION_MS = 60_000;
const LIVE_SESSIONS_MAX = 4;
/** The dashboard's files (dist/web), by path. */
const DASHBOARD: Record<string, string> = {
  "/": "dashboard.html",
  "/dashboard.js": "dashboard.js",
  "/xterm.css": "xterm.css",
};
/** What browsers ask for unbidden: answered with nothing rather than an API error. */
const NO_CONTENT = new Set(["/favicon.ico"]);
const MAX_BODY = 1 << 20;

export class Daemon {
  readonly hv: Hypervisor;
  readonly manager: DomainManager;
  private readonly loop: RunLoop;
  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly log: (line: string) => void;
  /** tsxend.log: what log() said, stamped (xm log reads it). */
  private readonly logFile: DaemonLog;
  /** The journal of image files being written, and the domains kept over a restart. */
  private readonly state: StateDir;
  /** Host, Origin, token and body type of every request (src/daemon/guard.ts). */
  private readonly guard: Guard;
  /** Saves and restores under way: shutdown waits for them. */
  private readonly pending = new Set<Promise<unknown>>();
  private closing = false;
  /** The bridge's passt (--uplink), from listen() to close(). */
  uplink: PasstUplink | null = null;
  /** When this tsxend began: Domain-0's start in xm uptime. */
  private readonly startedMs = Date.now();
  /** Live migrations arriving here: the image so far, by session. */
  private readonly incoming = new Map<string, { header: ImageHeader; body: Uint8Array; touched: number }>();

  constructor(private readonly opts: DaemonOptions) {
    const stateDir = opts.stateDir ?? defaultStateDir();
    this.guard = new Guard({
      listen: opts.host,
      token: opts.token ?? loadOrCreateToken(stateDir),
      tokenFile: opts.token === undefined ? tokenFile(stateDir) : null,
      allowHosts: opts.allowHosts,
    });
    this.state = new StateDir(stateDir);
    this.state.create();
    this.logFile = new DaemonLog(
      opts.logFile === undefined ? defaultLogFile(stateDir) : opts.logFile,
      opts.log === undefined ? (text) => void process.stderr.write(text) : () => {},
    );
    this.log = (line) => {
      opts.log?.(line);
      this.logFile.write(line);
    };
    if (opts.onStop !== undefined) this.state.lock();
    this.hv = new Hypervisor({
      memoryMiB: opts.machineMemoryMiB,
      cpus: opts.cpus,
      scheduler: opts.scheduler,
      onConsole: (d, bytes) => {
        this.loop.noteIo();
        this.manager.consoleOutput(d, bytes);
      },
      onLog: (m) => {
        const crash = /^domain (\d+) \(.*?\) crashed: (.*)$/s.exec(m);
        if (crash) this.manager.noteCrash(Number(crash[1]), crash[2]);
      },
    });
    this.manager = new DomainManager(this.hv);
    // What happens to domains goes to tsxend's log (xend.log), not Xen's console ring.
    this.manager.onEvent((e) => {
      if (e.kind === "stopped") this.printk(`domain ${e.id} (${e.name}) ${e.reason}: ${e.action}`);
      else if (e.kind === "restarted") this.printk(`domain ${e.name} restarted as ${e.id} (was ${e.oldId})`);
      else if (e.kind === "destroyed") this.printk(`domain ${e.id} (${e.name}) destroyed`);
      else this.printk(`domain ${e.id} (${e.name}) created`);
    });
    // A gdb stub goes with its domain (xm debug).
    this.manager.onGone((d) => closeDebugStubOf(this.hv, d, (line) => this.log(line)));
    this.loop = new RunLoop(
      this.hv,
      this.manager,
      opts.pacing,
      (e) => {
        this.log(
          `internal error in the run loop: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
      },
      opts.timerSlopMs,
      opts.idleSlopMs,
      opts.quietMs,
    );
    // Xen's first line named its version, as xen_version and XENVER_extraversion give it.
    this.hv.log(`Xen version ${XEN_VERSION_NAME} (tsxen)`);
    this.hv.log(
      `tsxen hypervisor: ${opts.machineMemoryMiB} MiB, ${opts.cpus} CPU(s), scheduler ${opts.scheduler}, ${opts.pacing} pacing`,
    );
    this.server = createServer(
      (req, res) => void this.handle(req, res).catch((e) => this.unexpected(req, res, e)),
    );
    this.server.on("upgrade", (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** A line for tsxend's log (stamped, to its file and stderr): tsxen daemon's own messages. */
  note(line: string): void {
    this.log(line);
  }

  private printk(m: string): void {
    this.log(m.replace(/\n$/, ""));
  }

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    for (const f of await this.state.cleanLeftovers())
      this.log(`removed ${f}, left by a tsxend killed mid-write`);
    await new Promise<void>((ok, fail) => {
      this.server.once("error", (e) => {
        this.state.close();
        fail(e);
      });
      this.server.listen(this.opts.port, this.opts.host, () => ok());
    });
    if (this.closing) {
      // Stopped while starting: close() has run, so nothing may start now.
      this.server.close();
      throw new Error("tsxend was stopped while starting");
    }
    const addr = this.server.address() as AddressInfo;
    this.guard.listening(addr.port);
    if (this.opts.uplink !== undefined) {
      const spec = this.opts.uplink;
      try {
        this.uplink = await PasstUplink.start(bridgeOf(this.manager.dom0, spec.bridge), spec, (m) =>
          this.log(m),
        );
      } catch (e) {
        this.server.close();
        this.state.close();
        throw e;
      }
      // Stopped while passt started: close() has run already.
      if (this.closing) this.uplink.stop();
    }
    this.loop.start();
    if (this.opts.onStop !== undefined) {
      // close() waits for it, and it stops at the next image once close() has begun.
      const restoring = this.restoreSaved();
      this.track(restoring);
      await restoring;
    }
    return addr;
  }

  /** Clean shutdown: no new requests, saves finish, guests are stopped, sockets closed. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.server.close();
    await Promise.allSettled([...this.pending]);
    await this.loop.stop();
    if (this.opts.onStop === "save") await this.saveAll();
    this.manager.destroyAll();
    closeDebugStub(this.hv);
    this.uplink?.stop();
    this.state.close();
    for (const ws of this.wss.clients) ws.close(1001, "tsxend is shutting down");
    this.server.closeAllConnections();
  }

  // ------------------------------------------------------------------ HTTP

  /** The token clients must send. */
  get token(): string {
    return this.guard.token;
  }

  /** The dashboard's address with the token, printed at start. */
  dashboardUrl(): string {
    return this.guard.dashboardUrl();
  }

  /**
   * Why a request or console upgrade is refused, or null (src/daemon/guard.ts). The
   * dashboard's files hold no data and need no token (the API calls the page makes do);
   * domain images arrive as octet-stream, everything else as JSON.
   */
  private refusal(req: IncomingMessage, upgrade: boolean): Refusal | null {
    const path = new URL(req.url ?? "/", "http://tsxend").pathname;
    const file =
      !upgrade &&
      (req.method === "GET" || req.method === "HEAD") &&
      (Object.hasOwn(DASHBOARD, path) || NO_CONTENT.has(path));
    const need: Need = {
      token: !file,
      upgrade,
      body: path.startsWith(`${API}/receive`) ? "application/octet-stream" : "application/json",
    };
    return this.guard.check(req, need);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refused = this.refusal(req, false);
    if (refused !== null) return sendJson(res, refused.status, { error: refused.message });
    // Someone is watching: timers go back to the short slop (runloop.ts IDLE_SLOP_MS).
    this.loop.noteIo();
    const path = new URL(req.url ?? "/", "http://tsxend").pathname;
    if (NO_CONTENT.has(path)) {
      res.writeHead(204).end();
      return;
    }
    const page = DASHBOARD[path];
    if (page !== undefined && (req.method === "GET" || req.method === "HEAD")) {
      sendWebFile(res, this.opts.webDir ?? WEB_DIR, page, req.method === "HEAD", (text) =>
        text.replaceAll("{{BUNDLED_KERNEL}}", BUNDLED_GUEST),
      );
      return;
    }
    try {
      if (this.closing) throw new ToolstackError("tsxend is shutting down", 503);
      const url = new URL(req.url ?? "/", "http://tsxend");
      const receive = /^\/api\/v1\/receive(?:\/live(?:\/([0-9a-f]+)\/(pages|finish))?)?$/.exec(url.pathname);
      if (req.method === "POST" && receive !== null) {
        // A migrating domain, sent by another tsxend (xm migrate): its image, or with --live
        // a first image then page deltas (src/tools/migrate.ts).
        const bytes = await readBytes(req, this.opts.machineMemoryMiB * 2 ** 20 + MAX_BODY);
        if (!url.pathname.includes("/live"))
          return sendJson(res, 201, this.adoptImage(bytes, "arrived by migration"));
        return this.receiveLive(receive[1], receive[2], bytes, res);
      }
      // xm create may carry the kernel and ramdisk themselves (the dashboard's uploads).
      const limit =
        url.pathname === "/api/v1/domains" ? this.opts.machineMemoryMiB * 2 ** 21 + MAX_BODY : MAX_BODY;
      const body = req.method === "POST" ? await readJson(req, limit) : {};
      await this.route(req.method ?? "GET", url, body, res);
    } catch (e) {
      if (!(e instanceof ToolstackError || e instanceof SaveError)) throw e;
      const status = e instanceof ToolstackError ? e.status : 400;
      if (!res.headersSent) sendJson(res, status, { error: e.message });
      else res.end(`${JSON.stringify({ error: e.message })}\n`);
    }
  }

  /**
   * The safety net under every request: an exception no handler expected is a bug, logged
   * with its stack and answered 500, and the daemon (and every domain) runs on.
   */
  private unexpected(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    this.log(
      `internal error serving ${req.method} ${req.url}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
    );
    try {
      const error = `internal error in tsxend (its log has the details): ${e instanceof Error ? e.message : String(e)}`;
      if (!res.headersSent) sendJson(res, 500, { error });
      else res.end(`${JSON.stringify({ error })}\n`);
    } catch {
      res.destroy();
    }
  }

  private async route(
    method: string,
    url: URL,
    body: Record<string, unknown>,
    res: ServerResponse,
  ): Promise<void> {
    const path = url.pathname.replace(/\/+$/, "");
    const m = this.manager;
    if (!path.startsWith(API))
      throw new ToolstackError(`no such endpoint ${path} (the API lives under ${API})`, 404);
    const parts = path.slice(API.length).split("/").filter(Boolean).map(decodeURIComponent);
    const [top, ref, action] = parts;
    if (method === "GET" && top === "info" && parts.length === 1) return sendJson(res, 200, m.physinfo());
    if (method === "GET" && top === "log" && parts.length === 1)
      return sendJson(res, 200, { file: this.logFile.file, text: this.logFile.tail() });
    if (method === "GET" && top === "dmesg" && parts.length === 1) {
      // Xen's console ring, read by dom0 with DOM0_READCONSOLE (xc_readconsolering).
      const text = xcReadConsole(this.manager.dom0, { clear: url.searchParams.get("clear") === "1" });
      return sendJson(res, 200, { text });
    }
    if (top === "sched" && ref === "bvt-ctxallow" && method === "POST") {
      m.setCtxAllow(num(body.ns, "ns"));
      return sendJson(res, 200, { ok: true });
    }
    if (top === "restore" && method === "POST" && parts.length === 1)
      return this.restore(str(body.path, "path"), res);
    if (top !== "domains") throw new ToolstackError(`no such endpoint ${path}`, 404);
    if (ref === undefined) {
      if (method === "GET") return sendJson(res, 200, { domains: this.listWithDom0() });
      if (method === "POST") return sendJson(res, 201, await this.create(body));
      throw new ToolstackError(`${method} is not allowed on ${path}`, 405);
    }
    const d = m.find(ref);
    if (action === undefined) {
      if (method === "GET") return sendJson(res, 200, m.info(d));
      if (method === "DELETE") {
        m.destroy(d);
        return sendJson(res, 200, { ok: true });
      }
      throw new ToolstackError(`${method} is not allowed on ${path}`, 405);
    }
    if (method === "GET" && action === "console")
      return sendJson(res, 200, { text: Buffer.from(m.consoleHistory(d)).toString("latin1") });
    const device = deviceRequest(m, method, action, d, body);
    if (device !== undefined) {
      this.loop.kick();
      return sendJson(res, 200, device);
    }
    if (method !== "POST") throw new ToolstackError(`${method} is not allowed on ${path}`, 405);
    switch (action) {
      case "pause":
        m.pause(d);
        break;
      case "unpause":
        m.unpause(d);
        break;
      case "shutdown":
      case "reboot":
      case "sysrq": {
        // The guest is asked over its control interface; the loop must run for it to answer.
        const t = timeoutMs(body.timeout);
        const answered =
          action === "sysrq"
            ? m.sysrq(d, str(body.key, "key"), t)
            : m.shutdown(d, action === "reboot" ? "reboot" : "poweroff", t);
        this.loop.kick();
        await answered;
        this.loop.kick();
        return sendJson(res, 200, { ok: true });
      }
      case "destroy":
        m.destroy(d);
        this.loop.kick();
        return sendJson(res, 200, { ok: true });
      case "pincpu":
        m.pinCpu(d, num(body.cpu, "cpu"));
        break;
      case "mem-max":
        m.setMaxMem(d, num(body.mib, "mib"));
        break;
      case "mem-set": {
        // The guest answers over its control interface: the loop must run meanwhile.
        const answered = m.setMemTarget(d, num(body.mib, "mib"), timeoutMs(body.timeout));
        this.loop.kick();
        await answered;
        this.loop.kick();
        break;
      }
      case "sched-bvt":
        m.setBvt(d, {
          mcuadv: num(body.mcuadv, "mcuadv"),
          warpback: num(body.warpback, "warpback"),
          warpvalue: num(body.warpvalue, "warpvalue"),
          warpl: num(body.warpl, "warpl"),
          warpu: num(body.warpu, "warpu"),
        });
        break;
      case "save":
        return this.save(d.domain.id, str(body.path, "path"), res);
      case "debug": {
        // xm debug: a gdb stub on loopback for this domain (src/daemon/debug.ts).
        const at = await openDebugStub(
          this.hv,
          d.domain,
          body.port,
          () => this.loop.kick(),
          () => {
            if (m.list().some((r) => r.id === d.domain.id)) m.destroy(d);
            this.loop.kick();
          },
          (line) => this.log(line),
        );
        return sendJson(res, 200, at);
      }
      case "migrate":
        if (body.live === true)
          return this.migrateLive(
            d.domain.id,
            str(body.to, "to"),
            typeof body.token === "string" ? body.token : undefined,
            res,
          );
        return this.migrate(
          d.domain.id,
          str(body.to, "to"),
          typeof body.token === "string" ? body.token : undefined,
          res,
        );
      default:
        throw new ToolstackError(`no such domain operation "${action}"`, 404);
    }
    this.loop.kick();
    return sendJson(res, 200, { ok: true, domain: m.info(d) });
  }

  /** xm list's Domain-0 row: the toolstack's own domain (the real one once dom0 exists). */
  private listWithDom0(): unknown[] {
    const rows: unknown[] = this.manager.list();
    const dom0 = this.hv.domains.get(0);
    rows.unshift({
      id: 0,
      name: "Domain-0",
      memKiB: dom0 ? dom0.totPages * 4 : 0,
      maxMemKiB: dom0 ? dom0.maxPages * 4 : 0,
      cpu: 0,
      state: "r-----",
      cpuTimeNs: dom0 ? dom0.vcpus[0].cpuTimeNs : 0,
      startedMs: this.startedMs,
    });
    return rows;
  }

  private async create(body: Record<string, unknown>): Promise<unknown> {
    const file = str(body.file, "file");
    const text = str(body.config, "config");
    const overrides = new Map<string, ConfigValue>();
    for (const o of Array.isArray(body.overrides) ? body.overrides : []) {
      try {
        const [k, v] = parseOverride(String(o));
        overrides.set(k, v);
      } catch (e) {
        throw new ToolstackError((e as Error).message);
      }
    }
    // Uploaded files (the dashboard): {name, data (base64)}; the configuration names them.
    const kernelUpload = upload(body.kernelUpload, "kernelUpload");
    const ramdiskUpload = upload(body.ramdiskUpload, "ramdiskUpload");
    if (kernelUpload !== undefined) overrides.set("kernel", kernelUpload.name);
    if (ramdiskUpload !== undefined) overrides.set("ramdisk", ramdiskUpload.name);
    let config: ReturnType<typeof parseDomainConfig>;
    try {
      config = parseDomainConfig(file, text, overrides);
    } catch (e) {
      throw new ToolstackError((e as Error).message);
    }
    const base = isAbsolute(file) ? dirname(file) : process.cwd();
    const kernelPath = kernelUpload === undefined ? resolve(base, config.kernel) : config.kernel;
    const kernel =
      kernelUpload?.data ??
      (await readFile(kernelPath).catch((e: Error) => {
        throw new ToolstackError(`cannot read the kernel ${kernelPath}: ${e.message.replace(/^.*?: /, "")}`);
      }));
    let ramdisk: Uint8Array | undefined = ramdiskUpload?.data;
    if (config.ramdisk !== undefined && ramdisk === undefined) {
      const p = resolve(base, config.ramdisk);
      ramdisk = await readFile(p).catch((e: Error) => {
        throw new ToolstackError(`cannot read the ramdisk ${p}: ${e.message.replace(/^.*?: /, "")}`);
      });
    }
    config.kernel = kernelPath;
    resolveDiskPaths(config, base);
    if (config.ramdisk !== undefined && ramdiskUpload === undefined)
      config.ramdisk = resolve(base, config.ramdisk);
    const info = this.manager.create(config, { kernel, ramdisk });
    this.loop.kick();
    return { domain: info, warnings: config.warnings };
  }

  /**
   * xm save: pause, capture, write atomically, then destroy (the manual: "this will stop the
   * domain ... and save its current state"). If writing fails the domain runs on.
   */
  private async save(id: number, path: string, res: ServerResponse): Promise<void> {
    if (!isAbsolute(path))
      throw new ToolstackError(`the save path must be absolute (xm resolves it), not "${path}"`);
    await this.moveOut(
      id,
      res,
      "saving",
      async (image, m, progress) => {
        await writeImageFile(path, image, progress, this.state.writes).catch((e: Error) => {
          throw new Error(
            `cannot write ${path}: ${e.message.replace(/^.*?: /, "")}; the domain keeps running`,
          );
        });
        return { ok: true, path, bytes: image.length, name: m.config.name };
      },
      () => `saved to ${path}`,
    );
  }

  /**
   * Stops a domain and captures its image for ship (a file, another tsxend): once ship has
   * resolved the domain is destroyed here and its answer ends the stream; if ship fails the
   * domain runs on (unless it was paused) and the error ends the stream.
   */
  private async moveOut(
    id: number,
    res: ServerResponse,
    phase: string,
    ship: (
      image: Uint8Array,
      m: ReturnType<DomainManager["find"]>,
      progress: (done: number, total: number) => void,
    ) => Promise<Record<string, unknown>>,
    /** What happened, for the log ("saved to FILE"), from ship's answer. */
    said: (answer: Record<string, unknown>) => string,
  ): Promise<void> {
    const m = this.manager.find(id);
    const wasPaused = m.domain.paused;
    if (!wasPaused) this.manager.pause(m);
    let image: Uint8Array;
    try {
      image = captureDomain(this.hv, m.domain, m.config, m.startInfoVa, this.manager.consoleHistory(m));
    } catch (e) {
      if (!wasPaused) this.resume(m);
      throw e;
    }
    const stream = startProgress(res);
    const work = ship(image, m, (done, total) => stream.progress(phase, done, total))
      .then((answer) => {
        // It lives on in the image (or over there): not "destroyed" in the log.
        this.manager.destroy(m, false);
        this.log(`domain ${id} (${m.config.name}) ${said(answer)}`);
        stream.done(answer);
      })
      .catch((e: Error) => {
        if (!wasPaused) this.resume(m);
        stream.done({ error: e.message });
      })
      .finally(() => this.loop.kick());
    this.track(work);
    await work;
  }

  /**
   * On stop (xendomains stop): every domain that runs (or is paused, or suspended) is saved
   * into the state directory, atomically, and destroyed; one that has stopped cannot be and
   * is destroyed. Progress goes to the log.
   */
  private async saveAll(): Promise<void> {
    const all = this.manager.list().filter((x) => x.id !== 0);
    if (all.length > 0) this.log(`saving ${all.length} domain(s) into ${this.state.domains}`);
    for (const x of all) {
      const m = this.manager.byName(x.name);
      if (m === undefined) continue;
      const what = `domain ${x.id} (${x.name})`;
      try {
        const image = captureDomain(
          this.hv,
          m.domain,
          m.config,
          m.startInfoVa,
          this.manager.consoleHistory(m),
        );
        const path = this.state.imagePath(x.id, x.name, x.state.includes("p"));
        let told = 0;
        await writeImageFile(
          path,
          image,
          (done, total) => {
            const pct = Math.floor((done * 100) / total);
            if (pct >= told + 25 || done === total) {
              told = pct;
              this.log(`saving ${what}: ${pct}%`);
            }
          },
          this.state.writes,
        );
        this.log(`saved ${what} to ${path}`);
        this.manager.destroy(m, false);
      } catch (e) {
        this.log(`cannot save ${what}, so it is lost: ${(e as Error).message}`);
        this.manager.destroy(m);
      }
    }
  }

  /** At start (xendomains start): the domains saved on stop run again; their images go. */
  private async restoreSaved(): Promise<void> {
    for (const saved of this.state.saved()) {
      if (this.closing) return;
      try {
        const { domain } = this.adoptImage(await readImageFile(saved.path, () => {}), null);
        const m = this.manager.find((domain as { id: number }).id);
        if (saved.paused) this.manager.pause(m);
        await unlink(saved.path);
        this.log(
          `restored ${saved.name} as domain ${m.domain.id}${saved.paused ? " (paused)" : ""} from ${saved.path}`,
        );
      } catch (e) {
        // Kept for a person to look at, and not tried again at every start.
        const keep = `${saved.path}.failed`;
        await rename(saved.path, keep).catch(() => {});
        this.log(
          `cannot restore ${saved.name} from ${saved.path} (kept as ${keep}): ${(e as Error).message}`,
        );
      }
    }
  }

  private async restore(path: string, res: ServerResponse): Promise<void> {
    if (!isAbsolute(path))
      throw new ToolstackError(`the image path must be absolute (xm resolves it), not "${path}"`);
    const stream = startProgress(res);
    const work = (async () => {
      let bytes: Uint8Array;
      try {
        bytes = await readImageFile(path, (done, total) => stream.progress("reading", done, total));
      } catch (e) {
        return stream.done({ error: `cannot read ${path}: ${(e as Error).message.replace(/^.*?: /, "")}` });
      }
      try {
        stream.done(this.adoptImage(bytes, `restored from ${path}`));
      } catch (e) {
        stream.done({ error: (e as Error).message });
      }
    })();
    this.track(work);
    await work;
  }

  /**
   * Restores a saved (or migrating) domain's image here; the answer names the new domain.
   * `how` ("restored from FILE") goes to the log; null: the caller says it.
   */
  private adoptImage(bytes: Uint8Array, how: string | null): { ok: true; domain: unknown } {
    const peek = peekName(bytes);
    if (peek !== null && this.manager.byName(peek) !== undefined) {
      throw new ToolstackError(
        `a domain named "${peek}" is running already; destroy it first or restore elsewhere`,
        409,
      );
    }
    const { domain, header } = restoreDomain(this.hv, bytes, (d) => this.manager.discard(d));
    const managed = this.manager.adopt(domain, header.config, null, header.startInfoVa, false);
    if (how !== null) this.log(`domain ${domain.id} (${header.config.name}) ${how}`);
    const history = Buffer.from(header.console ?? "", "base64");
    if (history.length > 0) {
      managed.console.push(history);
      managed.consoleBytes = history.length;
    }
    this.loop.kick();
    return { ok: true, domain: this.manager.info(managed) };
  }

  /**
   * xm migrate without --live, as xend did it: stop the domain, copy its image to the other
   * tsxend (POST /receive there), and destroy it here once the other side runs it. If the
   * copy fails the domain runs on here.
   */
  private async migrate(
    id: number,
    to: string,
    token: string | undefined,
    res: ServerResponse,
  ): Promise<void> {
    const target = migrationTarget(to);
    await this.moveOut(
      id,
      res,
      "sending",
      async (image, m, progress) => {
        const answer = await sendBytes(target, "/receive", image, token, progress).catch((e: Error) => {
          throw new Error(
            `cannot migrate ${m.config.name} to ${target}: ${e.message}; it keeps running here`,
          );
        });
        return { ok: true, to: target, bytes: image.length, domain: answer.domain };
      },
      () => `migrated to ${target}`,
    );
  }

  /**
   * xm migrate --live (xc_linux_save's pre-copy): the domain runs on while a whole image
   * goes over, then up to LIVE_ROUNDS rounds of the pages that changed meanwhile, until few
   * do; then it is paused, the last changed pages and the header go over, and the other
   * tsxend restores it. Its downtime is that last step only. A failure before the pause
   * costs the domain nothing; after it, the domain runs on here.
   */
  private async migrateLive(
    id: number,
    to: string,
    token: string | undefined,
    res: ServerResponse,
  ): Promise<void> {
    const target = migrationTarget(to);
    const m = this.manager.find(id);
    if (m.domain.paused)
      throw new ToolstackError(`${m.config.name} is paused; live migration moves a running domain`, 409);
    const capture = () => {
      const image = decodeImage(
        captureDomain(this.hv, m.domain, m.config, m.startInfoVa, this.manager.consoleHistory(m)),
      );
      // A copy, word-aligned for changedPages.
      return { header: image.header, body: new Uint8Array(image.body) };
    };
    const gone = () => this.manager.byName(m.config.name) !== m;
    const stream = startProgress(res);
    let paused = false;
    const work = (async () => {
      let { header, body } = capture();
      const first = await postTo(target, "/receive/live", encodeImage(header, body), token);
      const session = String(first.session);
      const rounds = [header.pfns.length];
      stream.progress("round", 1, LIVE_ROUNDS + 1);
      for (let round = 1; round <= LIVE_ROUNDS; round++) {
        await new Promise((r) => setTimeout(r, LIVE_ROUND_MS));
        if (gone()) throw new Error("it stopped during the migration");
        const next = capture();
        if (next.header.pfns.join() !== header.pfns.join())
          throw new Error("its memory changed during the migration");
        const changed = changedPages(body, next.body);
        await postTo(target, `/receive/live/${session}/pages`, encodeDelta(null, next.body, changed), token);
        ({ header, body } = next);
        rounds.push(changed.length);
        stream.progress("round", round + 1, LIVE_ROUNDS + 1);
        if (changed.length <= LIVE_FINAL_PAGES) break;
      }
      // Stop and copy what is left.
      this.manager.pause(m);
      paused = true;
      const t0 = performance.now();
      const last = capture();
      const changed = changedPages(body, last.body);
      const done = await postTo(
        target,
        `/receive/live/${session}/finish`,
        encodeDelta(last.header, last.body, changed),
        token,
      );
      const downtimeMs = Math.round(performance.now() - t0);
      this.manager.destroy(m, false);
      this.log(`domain ${id} (${m.config.name}) migrated live to ${target} (stopped for ${downtimeMs} ms)`);
      stream.done({
        ok: true,
        to: target,
        live: true,
        rounds,
        finalPages: changed.length,
        downtimeMs,
        domain: done.domain,
      });
    })()
      .catch((e: Error) => {
        if (paused) this.resume(m);
        stream.done({
          error: `cannot migrate ${m.config.name} to ${target}: ${e.message}; it keeps running here`,
        });
      })
      .finally(() => this.loop.kick());
    this.track(work);
    await work;
  }

  /** The receiving end of xm migrate --live: a first image, page deltas, the final delta. */
  private receiveLive(
    session: string | undefined,
    step: string | undefined,
    bytes: Uint8Array,
    res: ServerResponse,
  ): void {
    const now = Date.now();
    for (const [k, v] of this.incoming) if (now - v.touched > LIVE_SESSION_MS) this.incoming.delete(k);
    if (session === undefined) {
      if (this.incoming.size >= LIVE_SESSIONS_MAX)
        throw new ToolstackError(
          `${LIVE_SESSIONS_MAX} live migrations are arriving here already; try again later`,
          503,
        );
      const { header, body } = decodeImage(bytes);
      if (this.manager.byName(header.name) !== undefined)
        throw new ToolstackError(
          `a domain named "${header.name}" is running already; destroy it first or migrate elsewhere`,
          409,
        );
      const id = randomBytes(8).toString("hex");
      this.incoming.set(id, { header, body: new Uint8Array(body), touched: now });
      sendJson(res, 201, { ok: true, session: id });
      return;
    }
    const s = this.incoming.get(session);
    if (s === undefined)
      throw new ToolstackError(`no live migration ${session} is under way here (it may have timed out)`, 404);
    s.touched = now;
    const header = applyDelta(s.body, bytes);
    if (step === "pages") {
      sendJson(res, 200, { ok: true });
      return;
    }
    this.incoming.delete(session);
    if (header === null) throw new ToolstackError("the last step of a live migration carries the header");
    if (header.pfns.join() !== s.header.pfns.join())
      throw new ToolstackError("the domain's page list changed during the migration", 409);
    sendJson(res, 201, this.adoptImage(encodeImage(header, s.body), "arrived by live migration"));
  }

  /**
   * Lets a domain that a failed save or migration paused run on. A failure here (the domain
   * stopped meanwhile) is logged: it must not turn the failure handler into a second failure.
   */
  private resume(m: ReturnType<DomainManager["find"]>): void {
    if (this.manager.byName(m.config.name) !== m) return;
    try {
      this.manager.unpause(m);
    } catch (e) {
      this.log(`domain ${m.domain.id} (${m.config.name}) stays paused: ${(e as Error).message}`);
    }
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    // The caller awaits p and answers its failure; this chain only must not reject unheard.
    void p.catch(() => {}).finally(() => this.pending.delete(p));
  }

  // ------------------------------------------------------------------ consoles over WebSocket

  private upgrade(req: IncomingMessage, socket: import("node:stream").Duplex, head: Buffer): void {
    const reject = (status: number, msg: string): void => {
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${msg}\n`,
      );
    };
    // A client that resets the connection must not become an unheard 'error' event.
    socket.on("error", (e) => this.log(`console connection: ${e.message}`));
    const refused = this.refusal(req, true);
    if (refused !== null) {
      reject(refused.status, refused.message);
      return;
    }
    const url = new URL(req.url ?? "/", "http://tsxend");
    const match = /^\/api\/v1\/domains\/([^/]+)\/console$/.exec(url.pathname);
    if (match === null) {
      reject(404, "no such endpoint");
      return;
    }
    let id: number;
    try {
      id = this.manager.find(decodeURIComponent(match[1])).domain.id;
    } catch (e) {
      reject(404, (e as Error).message);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      this.attachConsole(ws, id, url.searchParams.get("history") !== "0"),
    );
  }

  private attachConsole(ws: WebSocket, id: number, history: boolean): void {
    let m: ReturnType<DomainManager["find"]>;
    let info: ReturnType<DomainManager["info"]>;
    try {
      m = this.manager.find(id);
      info = this.manager.info(m);
    } catch (e) {
      ws.close(4004, (e as Error).message.slice(0, 120));
      return;
    }
    // A malformed frame or a reset closes this console only.
    ws.on("error", (e) => this.log(`console of domain ${id}: ${e.message}`));
    if (history) ws.send(this.manager.consoleHistory(m));
    // A domain that has stopped (kept by on_poweroff/on_crash = preserve) says nothing more:
    // its history, then the console closes saying so, at once or when it stops.
    const stopped = (why: string | undefined): void =>
      ws.close(4000, `domain ${id} (${m.config.name}) has stopped${why ? `: ${why}` : ""}`.slice(0, 120));
    if (/[sc]/.test(info.state)) {
      stopped(info.crashReason ?? info.shutdownReason);
      return;
    }
    const unwatch = this.manager.watchConsole(id, (bytes) => {
      if (bytes.length === 0) ws.close(4000, `domain ${id} is gone`);
      else ws.send(bytes);
    });
    const unwatchEvents = this.manager.onEvent((e) => {
      if (e.kind === "stopped" && e.id === id) stopped(e.reason);
    });
    ws.on("close", unwatchEvents);
    // Someone reads this console: no idle slop while it is open.
    ws.on("close", this.loop.watch());
    ws.on("message", (data: Buffer) => {
      // To the guest's console as xend's console controller sent it: CMSG_CONSOLE over its
      // control interface once it uses one, else Xen's console ring (console_io read).
      this.manager.consoleInput(m, new Uint8Array(data));
      this.loop.kick();
    });
    ws.on("close", unwatch);
  }
}

// ------------------------------------------------------------------ helpers

function peekName(bytes: Uint8Array): string | null {
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const len = buf.readUInt32LE(12);
    if (16 + len > buf.length) return null;
    const h = JSON.parse(buf.toString("utf8", 16, 16 + len)) as { name?: unknown };
    return typeof h.name === "string" ? h.name : null;
  } catch {
    return null;
  }
}

/** An uploaded file in a request: {name, data} with data in base64, or nothing. */
function upload(v: unknown, what: string): { name: string; data: Uint8Array } | undefined {
  if (v === undefined || v === null) return undefined;
  const o = v as { name?: unknown; data?: unknown };
  if (typeof o !== "object" || typeof o.name !== "string" || typeof o.data !== "string")
    throw new ToolstackError(`${what} must be {name, data} with the file's bytes in base64`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(o.data)) throw new ToolstackError(`${what}.data is not base64`);
  const data = Buffer.from(o.data, "base64");
  if (data.length === 0) throw new ToolstackError(`${what} (${o.name}) is empty`);
  // The name is shown (xm list) and stands in the configuration's kernel/ramdisk line.
  const name = o.name.replace(/[^\w.+-]/g, "_").slice(0, 64) || "upload";
  return { name: `upload:${name}`, data };
}

async function readJson(req: IncomingMessage, limit = MAX_BODY): Promise<Record<string, unknown>> {
  const bytes = await readBytes(req, limit);
  if (bytes.length === 0) return {};
  try {
    const v = JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error();
    return v as Record<string, unknown>;
  } catch {
    throw new ToolstackError("the request body is not a JSON object");
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

/** A streamed answer for long operations: NDJSON progress lines, then one final line. */
function startProgress(res: ServerResponse): {
  progress: (phase: string, done: number, total: number) => void;
  done: (final: Record<string, unknown>) => void;
} {
  res.writeHead(200, { "Content-Type": "application/x-ndjson" });
  let last = -1;
  return {
    progress(phase, done, total) {
      const pct = total === 0 ? 100 : Math.floor((done * 100) / total);
      if (pct === last) return;
      last = pct;
      res.write(`${JSON.stringify({ progress: phase, done, total })}\n`);
    },
    done(final) {
      res.end(`${JSON.stringify(final)}\n`);
    },
  };
}

/** Reads a request body of at most limit bytes. */
async function readBytes(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > limit) throw new ToolstackError(`request body too large (more than ${limit} bytes)`, 413);
      chunks.push(c as Buffer);
    }
  } catch (e) {
    if (e instanceof ToolstackError) throw e;
    // The client went away mid-body (a peer killed during a migration, say).
    throw new ToolstackError(`the request body was cut off: ${(e as Error).message}`);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** The base URL of the tsxend a domain migrates to (see tsxendUrl). */
export function migrationTarget(to: string): string {
  try {
    return tsxendUrl(to);
  } catch (e) {
    throw new ToolstackError((e as Error).message);
  }
}

/** POSTs bytes to another tsxend's API path; resolves with its JSON answer (any 2xx). */
async function postTo(
  base: string,
  path: string,
  bytes: Uint8Array,
  token: string | undefined,
): Promise<Record<string, unknown>> {
  return sendBytes(base, path, bytes, token, () => {});
}

/**
 * POSTs bytes to another tsxend's API path, reporting bytes sent; resolves with its JSON
 * answer when the status is 2xx, else rejects with its error sentence.
 */
function sendBytes(
  base: string,
  path: string,
  bytes: Uint8Array,
  token: string | undefined,
  progress: (done: number, total: number) => void,
): Promise<Record<string, unknown>> {
  return new Promise((resolvePromise, reject) => {
    const headers: Record<string, string | number> = {
      "content-type": "application/octet-stream",
      "content-length": bytes.length,
    };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const req = httpRequest(`${base}${API}${path}`, { method: "POST", headers }, (res) => {
      const chunks: Buffer[] = [];
      // The other side went away mid-answer.
      res.on("error", (e) => reject(new Error(e.message)));
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let answer: Record<string, unknown> = {};
        try {
          answer = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          // Said below.
        }
        const status = res.statusCode ?? 0;
        // Only a tsxend's own "ok" means the domain arrived: anything else (a cut-off answer,
        // some other server) is a failure, and the domain runs on here.
        if (status >= 200 && status < 300 && answer?.ok === true) resolvePromise(answer);
        else
          reject(
            new Error(
              typeof answer?.error === "string"
                ? answer.error
                : `the other side answered HTTP ${status} without a tsxend's "ok"`,
            ),
          );
      });
    });
    req.on("error", (e) => reject(new Error(e.message)));
    const CHUNK = 256 * 1024;
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes.length) {
        const end = Math.min(sent + CHUNK, bytes.length);
        const more = req.write(bytes.subarray(sent, end));
        sent = end;
        progress(sent, bytes.length);
        if (!more) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    progress(0, bytes.length);
    pump();
  });
}

function str(v: unknown, what: string): string {
  if (typeof v !== "string" || v === "") throw new ToolstackError(`the request needs "${what}" (a string)`);
  return v;
}

/** The optional "timeout" of shutdown / reboot, in seconds (default SHUTDOWN_ANSWER_MS). */
function timeoutMs(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > 3600)
    throw new ToolstackError(
      `"timeout" must be a number of seconds between 0 and 3600, not ${JSON.stringify(v)}`,
    );
  return v * 1000;
}

function num(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ToolstackError(`the request needs "${what}" (a number)`);
  return v;
}
