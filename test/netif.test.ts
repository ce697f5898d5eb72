/**
 * Virtual networks end to end: two test frontends (guests/events/netfront.c) on one bridge,
 * served by dom0's netback (src/tools/backends/netback.ts) with page flipping on receive; one
 * pings the other and then sends every bad frame, which must be refused and counted.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { bridgeOf } from "../src/tools/backends/bridge.js";
import { netbackOf } from "../src/tools/backends/netback.js";
import { parseDomainConfig, parseVifSpec } from "../src/tools/config.js";
import type { ManagedDomain } from "../src/tools/domains.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { managedMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";

describe("netif: vif entries", () => {
  it("parses mac= and bridge=, and says what is wrong", () => {
    assert.deepEqual(parseVifSpec("mac=00:16:3E:01:02:03, bridge=br1"), {
      mac: "00:16:3e:01:02:03",
      bridge: "br1",
    });
    const r = parseVifSpec("");
    assert.match(r.mac, /^00:16:3e(:[0-9a-f]{2}){3}$/);
    assert.equal(r.bridge, "xenbr0");
    assert.throws(() => parseVifSpec("mac=00:16:3e:01:02"), /mac must look like/);
    assert.throws(() => parseVifSpec("mac=01:16:3e:01:02:03"), /multicast/);
    assert.throws(() => parseVifSpec("bridge=a b"), /not a bridge name/);
    assert.throws(() => parseVifSpec("rate=10Mb/s"), /not "rate"/);
    const c = parseDomainConfig("n.cfg", `kernel = "k"\nnics = 2\nvif = ['mac=00:16:3e:00:00:01']\n`);
    assert.equal(c.vifs?.length, 2);
    assert.equal(c.vifs?.[0].mac, "00:16:3e:00:00:01");
    assert.throws(
      () =>
        parseDomainConfig(
          "n.cfg",
          `kernel = "k"\nvif = ['mac=00:16:3e:00:00:01', 'mac=00:16:3e:00:00:01']\n`,
        ),
      /n\.cfg:2: two vifs have the MAC/,
    );
  });
});

describe("netif: two test frontends on a bridge", () => {
  it("negotiate, exchange frames by page flipping, and refuse bad frames", () => {
    const kernel = readFileSync(guestPath("ev_netfront"));
    const { hv, manager, text } = managedMachine();
    const make = (name: string, mac: string, role: string): ManagedDomain => {
      const cfg = parseDomainConfig(
        `${name}.cfg`,
        `kernel = "netfront"\nname = "${name}"\nmemory = 4\nextra = "role=${role}"\non_poweroff = "preserve"\nvif = ['mac=${mac}, bridge=xenbr0']\n`,
      );
      return manager.find(manager.create(cfg, { kernel }).id);
    };
    const pong = make("pong", "00:16:3e:00:00:0b", "pong");
    const ping = make("ping", "00:16:3e:00:00:0a", "ping");
    assert.deepEqual(
      bridgeOf(manager.dom0, "xenbr0").portNames().sort(),
      [`vif${ping.domain.id}.0`, `vif${pong.domain.id}.0`].sort(),
    );
    const done = (id: number): boolean => /DONE passed=\d+ failed=\d+/.test(text.get(id) ?? "");
    const end = hv.nowNs() + 60e9;
    while (!(done(ping.domain.id) && done(pong.domain.id)) && hv.nowNs() < end) {
      const r = hv.run(hv.nowNs() + 5e6);
      if (r.kind === "idle") break;
    }
    for (const [d, n] of [
      [ping, 18],
      [pong, 7],
    ] as const) {
      const t = text.get(d.domain.id) ?? "";
      assert.deepEqual(
        t.split("\n").filter((l) => l.startsWith("FAIL")),
        [],
        t,
      );
      assert.match(t, new RegExp(`DONE passed=${n} failed=0`), t);
    }
    assert.deepEqual(checkInvariants(hv), []);

    const back = netbackOf(manager.dom0);
    const a = back.status(ping.domain.id, 0);
    const b = back.status(pong.domain.id, 0);
    // ping: 8 pings, the 14-byte and page-end frames and the bye went out; 5 bad frames were
    // refused; then its garbage indices disconnected it.
    assert.equal(a?.connected, false);
    assert.equal(a?.stats.txErrors, 5);
    assert.equal(a?.stats.txPackets, 11);
    assert.equal(b?.connected, true);
    assert.equal(b?.stats.txErrors, 0);
    // pong took the 8 pings, the two small frames and the bye; it answered 8 pongs.
    assert.equal(b?.stats.rxPackets, 11);
    assert.ok((a?.stats.rxPackets ?? 0) >= NPONGS + 1, `ping received ${a?.stats.rxPackets}`);
    assert.deepEqual(
      manager.networkList(pong).map((v) => [v.vif, v.mac, v.bridge, v.state]),
      [[`vif${pong.domain.id}.0`, "00:16:3e:00:00:0b", "xenbr0", "connected"]],
    );

    // Destroying both lets go of every mapping: no page of theirs stays with dom0.
    manager.destroy(ping);
    manager.destroy(pong);
    assert.deepEqual(bridgeOf(manager.dom0, "xenbr0").portNames(), []);
    assert.equal(hv.domains.has(ping.domain.id) || hv.domains.has(pong.domain.id), false);
    assert.deepEqual(checkInvariants(hv), []);
  });
});

const NPONGS = 8;
