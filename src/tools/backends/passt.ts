/**
 * The outside world for a bridge: a port connected to passt (Debian package `passt`), the
 * user-mode network QEMU and libvirt use. passt needs no root: it terminates the guest's
 * TCP, UDP and ICMP in ordinary sockets of its own, answers ARP and DHCP itself, maps its
 * gateway address to the host's loopback (so guests reach the host's services, tsxend among
 * them) and listens on host ports it forwards to the guest.
 *
 * tsxend runs one passt per uplink, in the foreground (-f), on a UNIX socket in a private
 * directory, in one-off mode (-1: it quits when its one client goes, so even a tsxend killed
 * with SIGKILL leaves no passt behind), and speaks QEMU's stream framing to it: each Ethernet
 * frame is preceded by its length, 4 bytes big-endian.
 *
 * passt serves one guest: it hands out one address by DHCP and sends to the last MAC it heard
 * from. So the uplink belongs to one vif at a time: the first whose DHCP request reaches it
 * (until that vif leaves the bridge). Frames of other vifs are not passed to passt (they are
 * counted as refused); guest-to-guest traffic on the bridge is unaffected.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ETH_FRAME_LEN, ETH_HLEN } from "../../public/netif.js";
import { type Bridge, type BridgePort, macKey } from "./bridge.js";

/** What the guest is told by passt's DHCP (QEMU's user-network addresses, which users know). */
export const UPLINK_NET = Object.freeze({
  guest: "10.0.2.15",
  gateway: "10.0.2.2",
  prefix: 24,
  mtu: 1500,
});

/** One port forward: a host port passt listens on, to a port of the guest's. */
export interface PortForward {
  proto: "tcp" | "udp";
  /** The host address passt binds (127.0.0.1 unless the forward names one). */
  hostAddr: string;
  hostPort: number;
  guestPort: number;
}

/** tsxend's --uplink and its --forward entries. */
export interface UplinkSpec {
  bridge: string;
  forwards: PortForward[];
}

/**
 * "tcp:8080:80" (host port 8080 on 127.0.0.1 to the guest's 80), "tcp:0.0.0.0:8080:80" (on
 * every host address), "udp:5353:53". Throws an Error saying what is wrong.
 */
export function parseForward(text: string): PortForward {
  const m = /^(tcp|udp):(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)$/.exec(text.trim());
  if (m === null)
    throw new Error(`--forward "${text}": write tcp:HOSTPORT:GUESTPORT or tcp:HOSTADDR:HOSTPORT:GUESTPORT`);
  const port = (s: string): number => {
    const n = Number(s);
    if (n < 1 || n > 65535) throw new Error(`--forward "${text}": ${s} is not a port (1..65535)`);
    return n;
  };
  const addr = m[2] ?? "127.0.0.1";
  if (addr.split(".").some((x) => Number(x) > 255))
    throw new Error(`--forward "${text}": ${addr} is not an IPv4 address`);
  return { proto: m[1] as "tcp" | "udp", hostAddr: addr, hostPort: port(m[3]), guestPort: port(m[4]) };
}

/** An uplink of a bridge name with forwards in --forward's syntax; throws on bad input. */
export function parseUplink(bridge: string, forwards: readonly string[] = []): UplinkSpec {
  if (!/^[A-Za-z0-9][\w.-]{0,14}$/.test(bridge))
    throw new Error(`--uplink: "${bridge}" is not a bridge name`);
  const fs = forwards.map(parseForward);
  for (const [i, f] of fs.entries())
    if (fs.findIndex((g) => g.proto === f.proto && g.hostPort === f.hostPort) !== i)
      throw new Error(`--forward: host port ${f.proto}:${f.hostPort} is forwarded twice`);
  return { bridge, forwards: fs };
}

/** tsxend's --uplink BRIDGE with its --forward entries (which need an uplink). */
export function uplinkOption(
  bridge: string | undefined,
  forwards: readonly string[] = [],
): UplinkSpec | undefined {
  if (bridge === undefined) {
    if (forwards.length > 0) throw new Error("--forward needs --uplink BRIDGE (the bridge passt serves)");
    return undefined;
  }
  return parseUplink(bridge, forwards);
}

/** The uplink's counters. */
export interface UplinkStats {
  /** Frames (and bytes) passed to passt, and taken from it onto the bridge. */
  toPasst: number;
  toPasstBytes: number;
  fromPasst: number;
  fromPasstBytes: number;
  /** Frames from passt dropped as runts (under 14 bytes) or oversized (over 1514). */
  badFrames: number;
  /** Frames of vifs other than the uplink's owner, not passed to passt. */
  refused: number;
  /** Frames to passt dropped because its socket was not taking them (a full queue). */
  dropped: number;
}

/** A length in the stream above this cannot be a frame: the stream is broken, not the frame. */
const MAX_STREAM_FRAME = 65536 + ETH_HLEN;
/** Bytes queued to passt beyond which frames are dropped, as a full NIC queue drops them. */
const MAX_QUEUED = 1 << 20;
/** How long passt may take to open its socket. */
const START_MS = 5000;
/** The user passt drops to when started as root ("nobody" on Debian); its directory is given to it. */
const NOBODY = 65534;

/** A bridge port speaking QEMU's stream framing over a connected socket (to passt). */
export class StreamUplink implements BridgePort {
  readonly name: string;
  readonly stats: UplinkStats = {
    toPasst: 0,
    toPasstBytes: 0,
    fromPasst: 0,
    fromPasstBytes: 0,
    badFrames: 0,
    refused: 0,
    dropped: 0,
  };
  /** The MAC (lower-case, colons) of the vif the uplink serves, once one asked for DHCP. */
  owner: string | null = null;
  private pending: Buffer = Buffer.alloc(0);
  private closed = false;

  constructor(
    private readonly bridge: Bridge,
    private readonly socket: Socket,
    private readonly log: (m: string) => void,
    private readonly onClose: () => void = () => {},
  ) {
    this.name = `passt@${bridge.name}`;
    socket.on("data", (b) => this.input(b));
    socket.on("error", (e) => this.gone(`its socket failed: ${e.message}`));
    socket.on("close", () => this.gone("it closed its socket"));
    bridge.attach(this);
  }

  /** A frame from the bridge: to passt if it is the owner's (or claims the uplink by DHCP). */
  deliver(frame: Uint8Array): void {
    if (this.closed || frame.length < ETH_HLEN || frame.length > ETH_FRAME_LEN) return;
    const src = macKey(frame, 6);
    if (src !== this.owner) {
      const ownerGone = this.owner !== null && !this.bridge.knows(this.owner, this);
      if (!isDhcpClient(frame) || (this.owner !== null && !ownerGone)) {
        this.stats.refused++;
        return;
      }
      if (this.owner !== null)
        this.log(`${this.name}: ${this.owner} left the bridge; ${src} takes the uplink`);
      this.owner = src;
    }
    if (this.socket.writableLength > MAX_QUEUED) {
      this.stats.dropped++;
      return;
    }
    const out = Buffer.allocUnsafe(4 + frame.length);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, 4);
    this.socket.write(out);
    this.stats.toPasst++;
    this.stats.toPasstBytes += frame.length;
  }

  /** Takes the port off its bridge and closes the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bridge.detach(this);
    this.socket.destroy();
  }

  /** Bytes from passt: whole frames go onto the bridge; runts and oversized ones are counted. */
  private input(b: Buffer): void {
    this.pending = this.pending.length === 0 ? b : Buffer.concat([this.pending, b]);
    let at = 0;
    while (!this.closed && this.pending.length - at >= 4) {
      const len = this.pending.readUInt32BE(at);
      if (len > MAX_STREAM_FRAME) {
        this.gone(`it sent a ${len}-byte frame length: the stream is out of step`);
        break;
      }
      if (this.pending.length - at - 4 < len) break;
      const frame = this.pending.subarray(at + 4, at + 4 + len);
      at += 4 + len;
      if (len < ETH_HLEN || len > ETH_FRAME_LEN) {
        this.stats.badFrames++;
        continue;
      }
      this.stats.fromPasst++;
      this.stats.fromPasstBytes += len;
      try {
        // The bridge's ports may keep it: a copy, not a view of the stream's buffer.
        this.bridge.send(this, Uint8Array.prototype.slice.call(frame));
      } catch (e) {
        // A port's failure is its own: the stream (and tsxend) carry on.
        this.log(`${this.name}: a frame from passt was not delivered: ${(e as Error).message}`);
      }
    }
    this.pending = this.pending.subarray(at);
  }

  private gone(why: string): void {
    if (this.closed) return;
    this.log(`${this.name}: ${why}; the bridge has no uplink now`);
    this.close();
    this.onClose();
  }
}

/** passt could not be started (missing, refused, or silent): the message says why. */
export class UplinkError extends Error {}

/** A running passt and its port on the bridge. */
export class PasstUplink {
  private stopped = false;

  private constructor(
    readonly spec: UplinkSpec,
    readonly port: StreamUplink,
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {
    live.add(this);
  }

  get stats(): UplinkStats {
    return { ...this.port.stats };
  }

  /** passt's process id (while it runs). */
  get pid(): number | undefined {
    return this.child.exitCode === null ? this.child.pid : undefined;
  }

  /**
   * Starts passt for the bridge and connects its port. passt comes from $TSXEN_PASST or
   * PATH; rejects with an Error naming the package when it is missing, or with passt's own
   * words when it would not start.
   */
  static async start(bridge: Bridge, spec: UplinkSpec, log: (m: string) => void): Promise<PasstUplink> {
    const dir = mkdtempSync(join(tmpdir(), "tsxen-passt-"));
    const socketPath = join(dir, "passt.socket");
    const args = ["-f", "-q", "-1", "-4", "-s", socketPath];
    args.push("-a", UPLINK_NET.guest, "-n", String(UPLINK_NET.prefix), "-g", UPLINK_NET.gateway);
    args.push("-m", String(UPLINK_NET.mtu));
    for (const f of spec.forwards)
      args.push(f.proto === "tcp" ? "-t" : "-u", `${f.hostAddr}/${f.hostPort}:${f.guestPort}`);
    // Started as root, passt drops to nobody before it binds its socket: the directory is
    // nobody's then (and still no one else's).
    if (process.getuid?.() === 0) {
      chownSync(dir, NOBODY, NOBODY);
      args.push("--runas", `${NOBODY}:${NOBODY}`);
    }
    const bin = process.env.TSXEN_PASST || "passt";
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    let said = "";
    child.stderr?.on("data", (b: Buffer) => {
      // Without a syslog (containers) passt says so for every line: noise.
      said = `${said}${b.toString("utf8")}`
        .split("\n")
        .filter((l) => !/^Failed to send \d+ bytes to syslog/.test(l))
        .join("\n")
        .slice(-4000);
    });
    const cleanup = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    };
    let socket: Socket;
    try {
      socket = await connectWhenReady(child, socketPath, bin, () => said);
    } catch (e) {
      cleanup();
      throw e;
    }
    let up: PasstUplink | undefined;
    const port = new StreamUplink(bridge, socket, log, () => up?.stop());
    up = new PasstUplink(spec, port, child, dir);
    child.on("exit", (code, sig) => {
      if (!up?.stopped) log(`passt for ${bridge.name} ended (${sig ?? `status ${code}`}): ${said.trim()}`);
      up?.stop();
    });
    const fw = spec.forwards.map((f) => `${f.proto}:${f.hostAddr}:${f.hostPort}->${f.guestPort}`);
    log(
      `${bridge.name}: uplink through passt (pid ${child.pid}), guest ${UPLINK_NET.guest}/${UPLINK_NET.prefix}, gateway ${UPLINK_NET.gateway} (the host)${fw.length > 0 ? `, forwards ${fw.join(", ")}` : ""}`,
    );
    return up;
  }

  /** Disconnects the port and ends passt; its directory goes too. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    this.port.close();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every passt still running, ended when this process exits however it exits normally. */
const live = new Set<PasstUplink>();
process.on("exit", () => {
  for (const u of [...live]) u.stop();
});

/** Waits (bounded) for passt's socket to accept a connection, or for passt to fail. */
function connectWhenReady(
  child: ChildProcess,
  path: string,
  bin: string,
  said: () => string,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + START_MS;
    let done = false;
    const fail = (e: Error): void => {
      if (done) return;
      done = true;
      reject(e);
    };
    child.once("error", (e: NodeJS.ErrnoException) =>
      fail(
        new UplinkError(
          e.code === "ENOENT"
            ? `the uplink needs passt, which is not installed (${bin} not found): install the Debian package passt (apt-get install passt)`
            : `cannot start ${bin}: ${e.message}`,
        ),
      ),
    );
    child.once("exit", (code, sig) => {
      // passt takes its template from the default route's interface, even with -a and -g.
      const hint = /External interface not usable/.test(said())
        ? " (passt needs a network interface with a default route on this machine)"
        : "";
      fail(
        new UplinkError(
          `passt exited (${sig ?? `status ${code}`}) before it took a connection: ${said().trim()}${hint}`,
        ),
      );
    });
    const attempt = (): void => {
      if (done) return;
      const s = connect(path);
      s.once("connect", () => {
        if (done) {
          s.destroy();
          return;
        }
        done = true;
        resolve(s);
      });
      s.once("error", () => {
        s.destroy();
        if (Date.now() > deadline)
          fail(new UplinkError(`passt did not open its socket within ${START_MS} ms: ${said().trim()}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

/** An IPv4 UDP datagram from port 68 to 67: a DHCP client's DISCOVER or REQUEST. */
function isDhcpClient(f: Uint8Array): boolean {
  // Ethernet type 0x0800, IPv4 protocol 17 (UDP); the UDP header after IHL words.
  if (f.length < ETH_HLEN + 28 || f[12] !== 0x08 || f[13] !== 0x00 || f[ETH_HLEN + 9] !== 17) return false;
  const udp = ETH_HLEN + (f[ETH_HLEN] & 0x0f) * 4;
  if (f.length < udp + 8) return false;
  return ((f[udp] << 8) | f[udp + 1]) === 68 && ((f[udp + 2] << 8) | f[udp + 3]) === 67;
}
