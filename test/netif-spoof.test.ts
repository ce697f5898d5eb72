/**
 * MAC spoofing on a bridge: a hostile netfront (guests/events/netfront.c, role=spoof) sends
 * from its neighbour's MAC, and from broadcast and multicast MACs, beside the victim (role=pong)
 * and a host port on the bridge that pings the victim. netback drops every such frame at the
 * vif (counted as txSpoofed), so the bridge keeps the victim's MAC on the victim's port: the
 * victim gets every ping and the attacker none of them. A third domain (the hostile victim of
 * test/hostile.test.ts) sits blocked beside them; its memory is hashed before and after.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type BridgePort, bridgeOf, macKey } from "../src/tools/backends/bridge.js";
import { netbackOf } from "../src/tools/backends/netback.js";
import { parseDomainConfig } from "../src/tools/config.js";
import type { ManagedDomain } from "../src/tools/domains.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { managedMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";
import { memoryHash } from "./support/memory.js";

const VICTIM_MAC = "00:16:3e:00:00:0b";
const ATTACKER_MAC = "00:16:3e:00:00:0a";
const HOST_MAC = [0x00, 0x16, 0x3e, 0xee, 0xee, 0xee];
const ETHERTYPE = 0x88b5;

/** netfront.c's test frame: its `kind` and sequence number, payload bytes from fillbyte(). */
function testFrame(dst: number[], kind: string, seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(HOST_MAC, 6);
  f[12] = ETHERTYPE >> 8;
  f[13] = ETHERTYPE & 0xff;
  f.set(Buffer.from("tsxen"), 14);
  f[19] = kind.charCodeAt(0);
  new DataView(f.buffer).setUint32(20, seq, true);
  for (let i = 24; i < len; i++) f[i] = (seq * 29 + i * 3 + 7) & 0xff;
  return f;
}

const kindOf = (f: Uint8Array): string => (f.length >= 20 ? String.fromCharCode(f[19]) : "");
const macBytes = (mac: string): number[] => mac.split(":").map((x) => Number.parseInt(x, 16));

describe("netif: a vif sending from another vif's MAC", () => {
  it("is dropped and counted at netback; the victim keeps its frames", { timeout: 120_000 }, () => {
    const { hv, manager, text } = managedMachine();
    const kernel = readFileSync(guestPath("ev_netfront"));
    const make = (name: string, body: string, image = kernel): ManagedDomain =>
      manager.find(
        manager.create(
          parseDomainConfig(`${name}.cfg`, `kernel = "k"\nname = "${name}"\nmemory = 4\n${body}`),
          { kernel: image },
        ).id,
      );
    const bystander = make("bystander", "", readFileSync(guestPath("hostile_victim")));
    const steps = (until: () => boolean, what: string): void => {
      const end = hv.nowNs() + 30e9;
      while (!until()) {
        assert.ok(hv.nowNs() < end, `${what}: ${[...text.values()].join("\n")}`);
        hv.run(hv.nowNs() + 2e6);
      }
    };
    steps(() => /VICTIM ready/.test(text.get(bystander.domain.id) ?? ""), "the bystander fills its memory");
    const hashBefore = memoryHash(hv, bystander.domain);

    const victim = make(
      "victim",
      `extra = "role=pong"\non_poweroff = "preserve"\nvif = ['mac=${VICTIM_MAC}']\n`,
    );
    const attacker = make(
      "attacker",
      `extra = "role=spoof"\non_poweroff = "preserve"\nvif = ['mac=${ATTACKER_MAC}']\n`,
    );
    const bridge = bridgeOf(manager.dom0, "xenbr0");
    const got: Uint8Array[] = [];
    const host: BridgePort = { name: "host", deliver: (f) => void got.push(f.slice()) };
    bridge.attach(host);
    const out = (d: ManagedDomain): string => text.get(d.domain.id) ?? "";

    steps(() => /SPOOFED/.test(out(attacker)), "the attacker spoofs");
    // Eight pings from the host to the victim's MAC, one at a time, each answered.
    const victimMac = macBytes(VICTIM_MAC);
    const sizes = [60, 64, 128, 200, 512, 1000, 1500, 1514];
    for (const [seq, len] of sizes.entries()) {
      bridge.send(host, testFrame(victimMac, "P", seq, len));
      const answered = (): boolean =>
        got.some((f) => kindOf(f) === "O" && new DataView(f.buffer).getUint32(20, true) === seq);
      steps(answered, `the victim answers ping ${seq}`);
      const pong = got.find((f) => kindOf(f) === "O" && new DataView(f.buffer).getUint32(20, true) === seq);
      assert.equal(pong?.length, len);
      assert.equal(macKey(pong ?? new Uint8Array(12), 6), VICTIM_MAC);
    }
    bridge.send(host, testFrame(victimMac, "B", 99, 60));
    bridge.send(host, testFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], "E", 0, 60));
    steps(() => /DONE/.test(out(attacker)) && /DONE/.test(out(victim)), "both finish");

    // The attacker's frames never reached the host; the victim saw every ping, the attacker none.
    assert.deepEqual(got.filter((f) => kindOf(f) === "S").length, 0, "no spoofed frame crossed the bridge");
    assert.match(out(victim), /DONE passed=7 failed=0/, out(victim));
    assert.match(out(attacker), /DONE passed=11 failed=0/, out(attacker));
    const sent = Number(/SPOOF sent=(\d+)/.exec(out(attacker))?.[1]);
    assert.ok(sent > 6, out(attacker));
    const back = netbackOf(manager.dom0);
    const a = back.status(attacker.domain.id, 0)?.stats;
    const v = back.status(victim.domain.id, 0)?.stats;
    assert.equal(a?.txSpoofed, sent, "every frame not from the attacker's own MAC was dropped and counted");
    assert.equal(a?.txPackets, 0, "the attacker never sent from its own MAC");
    assert.equal(a?.txErrors, 0);
    assert.equal(v?.txSpoofed, 0);
    // The eight pings, the bye and the host's broadcast END (sent while the victim still listens).
    assert.equal(v?.rxPackets, sizes.length + 2, "the victim took every frame for it");
    assert.equal(memoryHash(hv, bystander.domain), hashBefore, "the bystander's memory is unchanged");
    assert.deepEqual(checkInvariants(hv), []);
    bridge.detach(host);
    manager.destroy(attacker);
    manager.destroy(victim);
    assert.deepEqual(checkInvariants(hv), []);
  });
});
