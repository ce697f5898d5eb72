/**
 * A bridge's uplink through passt (src/tools/backends/passt.ts), driven by a test port that
 * speaks raw Ethernet frames: QEMU's stream framing and its bad frames against a fake passt,
 * then the real passt: DHCP, ARP and ICMP to the gateway, TCP to a server on this machine's
 * loopback through the gateway, and a port forward from the host to the "guest". Traffic goes
 * only to this machine. The real-passt part skips, saying why, when passt is not installed.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Bridge, type BridgePort } from "../src/tools/backends/bridge.js";
import {
  PasstUplink,
  parseForward,
  parseUplink,
  StreamUplink,
  UPLINK_NET,
} from "../src/tools/backends/passt.js";
import { parseDomainConfig } from "../src/tools/config.js";
import { startDaemon } from "./helpers/daemon.js";
import { pidGone, until } from "./helpers/domain-shell.js";
import { guestPath } from "./support/guests.js";

const GUEST_MAC = "00:16:3e:00:00:01";
const OTHER_MAC = "00:16:3e:00:00:02";

// ------------------------------------------------------------------ frames

const macBytes = (m: string): number[] => m.split(":").map((x) => Number.parseInt(x, 16));
const ipBytes = (a: string): number[] => a.split(".").map(Number);
const ipString = (b: Uint8Array, off: number): string => Array.from(b.subarray(off, off + 4)).join(".");

function sum16(b: Uint8Array, acc = 0): number {
  for (let i = 0; i < b.length; i += 2) acc += (b[i] << 8) | (b[i + 1] ?? 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}
const checksum = (b: Uint8Array, acc = 0): number => ~sum16(b, acc) & 0xffff;

function ether(dst: string, src: string, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(macBytes(dst), 0);
  f.set(macBytes(src), 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

function ipv4(src: string, dst: string, proto: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  p[8] = 64;
  p[9] = proto;
  p.set(ipBytes(src), 12);
  p.set(ipBytes(dst), 16);
  dv.setUint16(10, checksum(p.subarray(0, 20)));
  p.set(payload, 20);
  return p;
}

/** The sum of the TCP/UDP pseudo-header. */
function pseudo(src: string, dst: string, proto: number, len: number): number {
  return sum16(new Uint8Array([...ipBytes(src), ...ipBytes(dst), 0, proto, len >> 8, len & 0xff]));
}

function udp(src: string, sport: number, dst: string, dport: number, data: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint16(4, u.length);
  u.set(data, 8);
  dv.setUint16(6, checksum(u, pseudo(src, dst, 17, u.length)) || 0xffff);
  return ipv4(src, dst, 17, u);
}

const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 } as const;

interface Seg {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  data: Uint8Array;
}

function tcp(s: Seg): Uint8Array {
  const t = new Uint8Array(20 + s.data.length);
  const dv = new DataView(t.buffer);
  dv.setUint16(0, s.sport);
  dv.setUint16(2, s.dport);
  dv.setUint32(4, s.seq >>> 0);
  dv.setUint32(8, s.ack >>> 0);
  t[12] = 5 << 4;
  t[13] = s.flags;
  dv.setUint16(14, 65535);
  t.set(s.data, 20);
  dv.setUint16(16, checksum(t, pseudo(s.src, s.dst, 6, t.length)));
  return ipv4(s.src, s.dst, 6, t);
}

/** The IPv4 packet of an Ethernet frame: [protocol, header offset, payload offset] or null. */
function ipOf(f: Uint8Array): { proto: number; src: string; dst: string; l4: number } | null {
  if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return null;
  return { proto: f[23], src: ipString(f, 26), dst: ipString(f, 30), l4: 14 + (f[14] & 15) * 4 };
}

function tcpOf(f: Uint8Array): Seg | null {
  const ip = ipOf(f);
  if (ip === null || ip.proto !== 6) return null;
  const dv = new DataView(f.buffer, f.byteOffset + ip.l4);
  const off = ip.l4 + (f[ip.l4 + 12] >> 4) * 4;
  const total = new DataView(f.buffer, f.byteOffset).getUint16(16);
  return {
    src: ip.src,
    dst: ip.dst,
    sport: dv.getUint16(0),
    dport: dv.getUint16(2),
    seq: dv.getUint32(4),
    ack: dv.getUint32(8),
    flags: f[ip.l4 + 13],
    data: f.slice(off, 14 + total),
  };
}

/** A DHCP client message (RFC 2131) of a type (1 DISCOVER, 3 REQUEST), broadcast. */
function dhcp(mac: string, type: number, xid: number, extra: number[] = []): Uint8Array {
  const b = new Uint8Array(300);
  const dv = new DataView(b.buffer);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1; // Ethernet
  b[2] = 6;
  dv.setUint32(4, xid);
  dv.setUint16(10, 0x8000); // answer by broadcast
  b.set(macBytes(mac), 28);
  dv.setUint32(236, 0x63825363);
  b.set([53, 1, type, 55, 3, 1, 3, 6, ...extra, 255], 240);
  return ether("ff:ff:ff:ff:ff:ff", mac, 0x0800, udp("0.0.0.0", 68, "255.255.255.255", 67, b));
}

/** A DHCP server's answer in a frame: its type, the address offered and its options. */
function dhcpReply(
  f: Uint8Array,
  xid: number,
): { type: number; yiaddr: string; opts: Map<number, Uint8Array> } | null {
  const ip = ipOf(f);
  if (ip === null || ip.proto !== 17) return null;
  const dv = new DataView(f.buffer, f.byteOffset);
  if (dv.getUint16(ip.l4) !== 67 || dv.getUint16(ip.l4 + 2) !== 68) return null;
  const b = f.subarray(ip.l4 + 8);
  const bdv = new DataView(b.buffer, b.byteOffset, b.length);
  if (b[0] !== 2 || bdv.getUint32(4) !== xid || bdv.getUint32(236) !== 0x63825363) return null;
  const opts = new Map<number, Uint8Array>();
  for (let i = 240; i < b.length && b[i] !== 255; ) {
    if (b[i] === 0) {
      i++;
      continue;
    }
    opts.set(b[i], b.slice(i + 2, i + 2 + b[i + 1]));
    i += 2 + b[i + 1];
  }
  return { type: opts.get(53)?.[0] ?? 0, yiaddr: ipString(b, 16), opts };
}

function arpRequest(mac: string, ip: string, target: string): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, 1], 0);
  a.set(macBytes(mac), 8);
  a.set(ipBytes(ip), 14);
  a.set(ipBytes(target), 24);
  return ether("ff:ff:ff:ff:ff:ff", mac, 0x0806, a);
}

// ------------------------------------------------------------------ a port of raw frames

/** A bridge port standing for a guest: it sends frames and keeps those it receives. */
class RawPort implements BridgePort {
  readonly got: Uint8Array[] = [];
  constructor(
    readonly name: string,
    private readonly bridge: Bridge,
  ) {
    bridge.attach(this);
  }
  deliver(frame: Uint8Array): void {
    this.got.push(frame.slice());
  }
  send(frame: Uint8Array): void {
    this.bridge.send(this, frame);
  }
  /** Waits (at most ms) for a received frame that pick accepts, from index `from`. */
  async wait<T>(what: string, pick: (f: Uint8Array) => T | null, ms = 5000, from = 0): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      for (let i = from; i < this.got.length; i++) {
        const x = pick(this.got[i]);
        if (x !== null) return x;
      }
      if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms (${this.got.length} frames)`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** PasstUplink.start with $TSXEN_PASST naming bin (restored after). */
async function startWith(bin: string): Promise<PasstUplink> {
  const saved = process.env.TSXEN_PASST;
  process.env.TSXEN_PASST = bin;
  try {
    return await PasstUplink.start(new Bridge("br-x"), parseUplink("br-x"), () => {});
  } finally {
    if (saved === undefined) delete process.env.TSXEN_PASST;
    else process.env.TSXEN_PASST = saved;
  }
}

describe("passt uplink: options", () => {
  it("parses --forward and --uplink, and says what is wrong", () => {
    assert.deepEqual(parseForward("tcp:8080:80"), {
      proto: "tcp",
      hostAddr: "127.0.0.1",
      hostPort: 8080,
      guestPort: 80,
    });
    assert.deepEqual(parseForward("udp:0.0.0.0:5353:53"), {
      proto: "udp",
      hostAddr: "0.0.0.0",
      hostPort: 5353,
      guestPort: 53,
    });
    assert.throws(() => parseForward("tcp:8080"), /tcp:HOSTPORT:GUESTPORT/);
    assert.throws(() => parseForward("sctp:1:2"), /tcp:HOSTPORT:GUESTPORT/);
    assert.throws(() => parseForward("tcp:70000:80"), /70000 is not a port/);
    assert.throws(() => parseForward("tcp:1.2.3.256:80:80"), /not an IPv4 address/);
    assert.throws(() => parseUplink("a b"), /not a bridge name/);
    assert.throws(() => parseUplink("xenbr0", ["tcp:8080:80", "tcp:8080:81"]), /forwarded twice/);
    assert.equal(parseUplink("xenbr0", ["tcp:8080:80", "udp:8080:80"]).forwards.length, 2);
  });

  it("names the package when passt is not installed", async () => {
    await assert.rejects(startWith("/nonexistent/passt"), /not installed .*Debian package passt/);
  });
});

describe("passt uplink: a passt that will not start", () => {
  it("says what passt said, and why", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsxen-bad-passt-"));
    const fake = join(dir, "passt");
    writeFileSync(fake, '#!/bin/sh\necho "External interface not usable" >&2\nexit 1\n', { mode: 0o755 });
    try {
      await assert.rejects(
        startWith(fake),
        /passt exited \(status 1\) before it took a connection: External interface not usable \(passt needs a network interface with a default route/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("passt uplink: stream framing against a fake passt", () => {
  let dir = "";
  let server: Server;
  let peer: Socket;
  let fromUplink = Buffer.alloc(0);
  let uplink: StreamUplink;
  const bridge = new Bridge("br-fake");
  const logs: string[] = [];
  let closed = 0;
  const a = new RawPort("vifA", bridge);
  const b = new RawPort("vifB", bridge);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tsxen-fake-passt-"));
    const path = join(dir, "s");
    const accepted = new Promise<Socket>((resolve) => {
      server = createServer((s) => resolve(s));
    });
    await new Promise<void>((r) => server.listen(path, r));
    const sock = connect(path);
    await new Promise<void>((r) => sock.once("connect", () => r()));
    peer = await accepted;
    peer.on("data", (d) => {
      fromUplink = Buffer.concat([fromUplink, d]);
    });
    uplink = new StreamUplink(
      bridge,
      sock,
      (m) => logs.push(m),
      () => closed++,
    );
  });
  after(() => {
    uplink.close();
    peer.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The frames the uplink wrote to "passt", unframed. */
  function written(): Buffer[] {
    const out: Buffer[] = [];
    for (let at = 0; at + 4 <= fromUplink.length; ) {
      const n = fromUplink.readUInt32BE(at);
      out.push(fromUplink.subarray(at + 4, at + 4 + n));
      at += 4 + n;
    }
    return out;
  }

  it("passes only the vif that asked for DHCP first, framed with its length", async () => {
    const arp = arpRequest(GUEST_MAC, "10.0.2.15", UPLINK_NET.gateway);
    a.send(arp); // not DHCP: no claim yet
    assert.equal(uplink.stats.refused, 1);
    const discover = dhcp(GUEST_MAC, 1, 7);
    a.send(discover);
    assert.equal(uplink.owner, GUEST_MAC);
    b.send(dhcp(OTHER_MAC, 1, 8)); // a second guest's DHCP: the uplink is taken
    a.send(arp);
    assert.equal(uplink.stats.refused, 2);
    await until("two frames at passt", () => written().length === 2, 3000);
    assert.deepEqual(
      written().map((f) => Buffer.from(f).toString("hex")),
      [discover, arp].map((f) => Buffer.from(f).toString("hex")),
    );
    assert.equal(uplink.stats.toPasst, 2);
    assert.equal(uplink.stats.toPasstBytes, discover.length + arp.length);
  });

  it("puts passt's frames on the bridge and drops runts and oversized ones, counting them", async () => {
    const frame = (n: number, dst = GUEST_MAC): Buffer => {
      const f = Buffer.alloc(4 + n);
      f.writeUInt32BE(n, 0);
      if (n >= 14) f.set(ether(dst, "02:fc:00:00:00:01", 0x88b5, new Uint8Array(n - 14)), 4);
      return f;
    };
    const gotA = a.got.length;
    const gotB = b.got.length;
    // One write holding a good frame, a runt, an empty one, an oversized one, a good one
    // split across two writes: the stream stays in step.
    const all = Buffer.concat([frame(60), frame(10), frame(0), frame(1515), frame(1514), frame(100)]);
    peer.write(all.subarray(0, all.length - 50));
    await new Promise((r) => setTimeout(r, 20));
    peer.write(all.subarray(all.length - 50));
    await until("three good frames", () => a.got.length - gotA === 3, 3000);
    assert.deepEqual(
      a.got.slice(gotA).map((f) => f.length),
      [60, 1514, 100],
    );
    assert.equal(uplink.stats.badFrames, 3);
    assert.equal(uplink.stats.fromPasst, 3);
    assert.equal(uplink.stats.fromPasstBytes, 60 + 1514 + 100);
    // Unicast to A's MAC: B (learned) does not see them.
    assert.equal(b.got.length, gotB);
  });

  it("a port that fails on a frame from passt costs that frame only", async () => {
    const broken: BridgePort = {
      name: "broken",
      deliver: () => {
        throw new Error("broken port");
      },
    };
    bridge.attach(broken);
    const from = a.got.length;
    const two = Buffer.alloc(2 * (4 + 60));
    for (const at of [0, 64]) {
      two.writeUInt32BE(60, at);
      two.set(ether("ff:ff:ff:ff:ff:ff", "02:fc:00:00:00:01", 0x88b5, new Uint8Array(46)), at + 4);
    }
    peer.write(two);
    await until("both broadcasts at A", () => a.got.length - from === 2, 3000);
    bridge.detach(broken);
    assert.equal(logs.filter((l) => /a frame from passt was not delivered: broken port/.test(l)).length, 2);
    assert.equal(closed, 0);
  });

  it("a frame length no frame can have ends the uplink, logged", async () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(0x7fffffff, 0);
    peer.write(bad);
    await until("the uplink closed", () => closed === 1, 3000);
    assert.match(logs.join("\n"), /2147483647-byte frame length: the stream is out of step/);
    assert.deepEqual(bridge.portNames().sort(), ["vifA", "vifB"]);
  });
});

const passtMissing =
  spawnSync(process.env.TSXEN_PASST || "passt", ["--version"], { stdio: "ignore" }).error !== undefined
    ? "passt is not installed (Debian package passt; .ci/run installs it)"
    : false;

/** Whether passt, dropped to nobody when root, may open ICMP echo sockets (ping_group_range). */
function pingSocketsAllowed(): boolean {
  const f = "/proc/sys/net/ipv4/ping_group_range";
  if (!existsSync(f)) return false;
  const [lo, hi] = readFileSync(f, "utf8").trim().split(/\s+/).map(Number);
  const gid = process.getuid?.() === 0 ? 65534 : (process.getgid?.() ?? -1);
  return gid >= lo && gid <= hi;
}

describe("passt uplink: the real passt", { skip: passtMissing }, () => {
  const bridge = new Bridge("br-passt");
  const guest = new RawPort("vifG", bridge);
  const other = new RawPort("vifO", bridge);
  let up: PasstUplink;
  let host: Server;
  let hostPort = 0;
  let fwdPort = 0;
  const GUEST_PORT = 8080;
  const logs: string[] = [];
  const received: string[] = [];

  before(async () => {
    // A server on this machine's loopback, which the guest reaches as the gateway.
    host = createServer((s) => {
      s.on("error", () => {});
      s.on("data", (d) => {
        received.push(d.toString());
        s.end(`world:${d.toString()}`);
      });
    });
    await new Promise<void>((r) => host.listen(0, "127.0.0.1", r));
    hostPort = (host.address() as { port: number }).port;
    // A free loopback port for the forward (passt binds it).
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    fwdPort = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    up = await PasstUplink.start(bridge, parseUplink("br-passt", [`tcp:${fwdPort}:${GUEST_PORT}`]), (m) =>
      logs.push(m),
    );
  });
  after(() => {
    up?.stop();
    host?.close();
  });

  it("offers the guest its address by DHCP and acknowledges its request", async () => {
    guest.send(dhcp(GUEST_MAC, 1, 0x1234));
    const offer = await guest.wait("DHCPOFFER", (f) => dhcpReply(f, 0x1234));
    assert.equal(offer.type, 2);
    assert.equal(offer.yiaddr, UPLINK_NET.guest);
    assert.deepEqual(Array.from(offer.opts.get(3) ?? []), ipBytes(UPLINK_NET.gateway), "router");
    assert.deepEqual(Array.from(offer.opts.get(1) ?? []), [255, 255, 255, 0], "netmask");
    const server = offer.opts.get(54) ?? new Uint8Array();
    guest.send(dhcp(GUEST_MAC, 3, 0x1235, [50, 4, ...ipBytes(offer.yiaddr), 54, 4, ...server]));
    const ack = await guest.wait("DHCPACK", (f) => dhcpReply(f, 0x1235));
    assert.equal(ack.type, 5);
    assert.equal(ack.yiaddr, UPLINK_NET.guest);
    assert.equal(up.port.owner, GUEST_MAC);
    // A second guest on the bridge is not served: passt has one guest.
    other.send(dhcp(OTHER_MAC, 1, 0x99));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(other.got.filter((f) => dhcpReply(f, 0x99) !== null).length, 0);
    assert.ok(up.stats.refused >= 1);
  });

  it("answers ARP for the gateway", async () => {
    const from = guest.got.length;
    guest.send(arpRequest(GUEST_MAC, UPLINK_NET.guest, UPLINK_NET.gateway));
    const mac = await guest.wait(
      "an ARP reply",
      (f) =>
        f[12] === 0x08 && f[13] === 0x06 && f[21] === 2 && ipString(f, 28) === UPLINK_NET.gateway
          ? Array.from(f.subarray(22, 28))
          : null,
      5000,
      from,
    );
    assert.equal(mac.length, 6);
    assert.notDeepEqual(mac, [0, 0, 0, 0, 0, 0]);
  });

  // Debian 12's passt (2023-03) maps the gateway for TCP and UDP, not for ICMP: the echo goes
  // to this machine's loopback by its own address.
  it("carries an ICMP echo to this machine's 127.0.0.1 and its reply", {
    skip: pingSocketsAllowed()
      ? false
      : "this machine's net.ipv4.ping_group_range gives passt no ICMP echo sockets",
  }, async () => {
    const gw = await gatewayMac(guest);
    const from = guest.got.length;
    const echo = new Uint8Array(18);
    echo.set([8, 0, 0, 0, 0x12, 0x34, 0, 1]);
    echo.set(Buffer.from("tsxen-ping"), 8);
    new DataView(echo.buffer).setUint16(2, checksum(echo));
    guest.send(ether(gw, GUEST_MAC, 0x0800, ipv4(UPLINK_NET.guest, "127.0.0.1", 1, echo)));
    const reply = await guest.wait(
      "an echo reply",
      (f) => {
        const ip = ipOf(f);
        return ip?.proto === 1 && f[ip.l4] === 0 ? f.slice(ip.l4 + 8, ip.l4 + 18) : null;
      },
      5000,
      from,
    );
    assert.equal(Buffer.from(reply).toString(), "tsxen-ping");
  });

  it("carries a TCP exchange to a server on the host's loopback through the gateway", async () => {
    const gw = await gatewayMac(guest);
    const me = { src: UPLINK_NET.guest, dst: UPLINK_NET.gateway, sport: 40000, dport: hostPort };
    const send = (seq: number, ack: number, flags: number, data = new Uint8Array()): void =>
      guest.send(ether(gw, GUEST_MAC, 0x0800, tcp({ ...me, seq, ack, flags, data })));
    const from = guest.got.length;
    const mine = (f: Uint8Array): Seg | null => {
      const s = tcpOf(f);
      return s !== null && s.sport === hostPort && s.dport === 40000 ? s : null;
    };
    send(1000, 0, TCP.SYN);
    const synack = await guest.wait("SYN-ACK", (f) => {
      const s = mine(f);
      return s !== null && s.flags & TCP.SYN && s.flags & TCP.ACK ? s : null;
    });
    assert.equal(synack.ack, 1001);
    assert.equal(synack.src, UPLINK_NET.gateway);
    send(1001, synack.seq + 1, TCP.ACK);
    send(1001, synack.seq + 1, TCP.ACK | TCP.PSH, Buffer.from("hello"));
    const reply = await guest.wait(
      "the server's answer",
      (f) => {
        const s = mine(f);
        return s !== null && s.data.length > 0 ? s : null;
      },
      5000,
      from,
    );
    assert.equal(Buffer.from(reply.data).toString(), "world:hello");
    assert.deepEqual(received, ["hello"]);
    send(1006, reply.seq + reply.data.length, TCP.RST);
  });

  it("forwards a host port to the guest's server", async () => {
    const from = guest.got.length;
    const client = connect(fwdPort, "127.0.0.1");
    let heard = "";
    client.on("data", (d) => {
      heard += d.toString();
    });
    client.on("error", () => {});
    try {
      const syn = await guest.wait(
        "the forwarded SYN",
        (f) => {
          const s = tcpOf(f);
          return s !== null && s.dport === GUEST_PORT && s.flags & TCP.SYN ? s : null;
        },
        5000,
        from,
      );
      assert.equal(syn.dst, UPLINK_NET.guest);
      // passt maps the host's loopback to the gateway: the connection comes from 10.0.2.2.
      assert.equal(syn.src, UPLINK_NET.gateway);
      const gw = await gatewayMac(guest);
      const me = { src: UPLINK_NET.guest, dst: syn.src, sport: GUEST_PORT, dport: syn.sport };
      guest.send(
        ether(
          gw,
          GUEST_MAC,
          0x0800,
          tcp({ ...me, seq: 5000, ack: syn.seq + 1, flags: TCP.SYN | TCP.ACK, data: new Uint8Array() }),
        ),
      );
      guest.send(
        ether(
          gw,
          GUEST_MAC,
          0x0800,
          tcp({
            ...me,
            seq: 5001,
            ack: syn.seq + 1,
            flags: TCP.ACK | TCP.PSH,
            data: Buffer.from("from-guest"),
          }),
        ),
      );
      await until("the host client hears the guest", () => heard === "from-guest", 5000);
      guest.send(
        ether(
          gw,
          GUEST_MAC,
          0x0800,
          tcp({ ...me, seq: 5011, ack: syn.seq + 1, flags: TCP.RST, data: new Uint8Array() }),
        ),
      );
    } finally {
      client.destroy();
    }
  });

  it("stops passt with the uplink: its process is gone and the port leaves the bridge", async () => {
    const pid = up.pid;
    assert.ok(pid !== undefined && pid > 0);
    up.stop();
    assert.deepEqual(bridge.portNames().sort(), ["vifG", "vifO"]);
    await until("passt to exit", () => pidGone(pid), 3000);
    assert.ok(
      logs.some((l) => /br-passt: uplink through passt \(pid \d+\), guest 10\.0\.2\.15\/24/.test(l)),
      logs.join("\n"),
    );
  });
});

/** The gateway's MAC, as ARP gives it. */
async function gatewayMac(port: RawPort): Promise<string> {
  const from = port.got.length;
  port.send(arpRequest(GUEST_MAC, UPLINK_NET.guest, UPLINK_NET.gateway));
  const mac = await port.wait(
    "the gateway's ARP reply",
    (f) => (f[12] === 0x08 && f[13] === 0x06 && f[21] === 2 ? Array.from(f.subarray(22, 28)) : null),
    5000,
    from,
  );
  return mac.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

describe("passt uplink: our C netfront through netback and passt", { skip: passtMissing }, () => {
  it("takes a DHCP offer and the gateway's ARP answer, received by page flipping", async () => {
    const d = await startDaemon({ pacing: "realtime", uplink: parseUplink("xenbr0") });
    try {
      const m = d.daemon.manager;
      const cfg = parseDomainConfig(
        "/nonexistent/dhcp.cfg",
        `kernel = "netfront"\nname = "dhcp"\nmemory = 4\nextra = "role=dhcp"\non_poweroff = "preserve"\nvif = ['mac=${GUEST_MAC}, bridge=xenbr0']\n`,
      );
      const dom = m.find(m.create(cfg, { kernel: readFileSync(guestPath("ev_netfront")) }).id);
      const text = (): string => Buffer.from(m.consoleHistory(dom)).toString("latin1");
      await until("the guest's checks", () => /DONE passed=\d+ failed=\d+/.test(text()), 30_000);
      const out = text();
      assert.deepEqual(
        out.split("\n").filter((l) => l.startsWith("FAIL")),
        [],
        out,
      );
      assert.match(
        out,
        new RegExp(`^OFFER yiaddr=${UPLINK_NET.guest} router=${UPLINK_NET.gateway}$`, "m"),
        out,
      );
      assert.match(out, /^ROUTER mac=(?!00:00:00:00:00:00)[0-9a-f]{2}(:[0-9a-f]{2}){5}$/m, out);
      assert.equal(d.daemon.uplink?.port.owner, GUEST_MAC);
      const vif = m.networkList(dom)[0];
      assert.ok(vif.rxPackets >= 2, `the guest received ${vif.rxPackets} frames`);
      assert.equal(vif.txErrors, 0);
    } finally {
      await d.daemon.close();
    }
  });
});
