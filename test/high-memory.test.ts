/**
 * Machine memory above 2 GiB (issue 15.3): a 4095 MiB machine, with guests whose every frame
 * lies above 2 GiB (bit 31 of their machine addresses set), some of them near 4 GiB. The
 * hello and conformance guests run there (page tables, mmu_update, grant tables, event
 * channels, console, dom0's buffers all on high frames) and print what they print in a small
 * machine, beside a victim below 2 GiB whose frames are the high ones' aliases modulo 2 GiB and
 * whose memory stays as it was. The machine's memory is backed lazily: the test asserts the
 * host commits little of it.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { DEVICE_WINDOW_FRAME, MAX_MACHINE_MIB, MachineMemory } from "../src/machine/memory.js";
import { parseDomainConfig } from "../src/tools/config.js";
import { dom0Of } from "../src/tools/dom0.js";
import { DomainManager } from "../src/tools/domains.js";
import { launchDomain } from "../src/tools/launch.js";
import { captureDomain, restoreDomain } from "../src/tools/save.js";
import { xcDomainDestroy, xcPhysInfo } from "../src/tools/xc.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { buildGuests, guestPath } from "./support/guests.js";
import { memoryHash } from "./support/memory.js";

const PAGE = 4096;
/** The first frame above 2 GiB: its machine address has bit 31 set. */
const HIGH = 0x80000;

/** Frees every frame of a withheld set back to the heap. */
function release(mem: MachineMemory, frames: Int32Array): void {
  for (const f of frames) mem.freeFrame(f);
}

/**
 * A guest's console and how its run ended, in machine hv (the domain destroyed afterwards).
 * self: the domid it will get (domids go round: the one after the last), on its command line
 * for the guests that need it (conf_grant_table's grants to itself).
 */
function runGuest(
  hv: Hypervisor,
  out: Map<number, string>,
  path: string,
  self: number,
): { text: string; kind: string; why: string; frames: number[] } {
  const { domain } = launchDomain(hv, {
    name: "guest",
    image: readFileSync(path),
    memoryMiB: 16,
    cmdline: `self=${self}`,
  });
  assert.equal(domain.id, self);
  const frames = [...domain.pages];
  const r = hv.run(hv.nowNs() + 10e9);
  const text = out.get(domain.id) ?? "";
  xcDomainDestroy(dom0Of(hv), domain.id);
  return { text, kind: r.kind, why: r.kind === "crashed" ? r.why : "", frames };
}

/**
 * A machine with dom0 (above 2 GiB when dom0High) and the victim, domain 1: it fills its memory
 * with a pattern and blocks for good.
 */
function victimMachine(
  memoryMiB: number,
  dom0High: boolean,
): { hv: Hypervisor; out: Map<number, string>; victim: Domain } {
  const out = new Map<number, string>();
  const hv = new Hypervisor({
    memoryMiB,
    // The per-hypercall check walks all 2^20 frames each time; the test checks after each guest.
    checkInvariants: false,
    onConsole: (d, b) => void out.set(d.id, (out.get(d.id) ?? "") + Buffer.from(b).toString("latin1")),
  });
  // Compiled blocks from the first run: their inlined memory accesses meet high frames too.
  if (dom0High) hv.cpu.blockThreshold = 1;
  // dom0 (and its buffers, where the toolstack writes) above 2 GiB too.
  const low = dom0High ? hv.mem.withhold(0, HIGH) : new Int32Array(0);
  const dom0 = dom0Of(hv).domain;
  release(hv.mem, low);
  assert.ok(!dom0High || [...dom0.pages].every((f) => f >= HIGH));
  const victim = launchDomain(hv, {
    name: "victim",
    image: readFileSync(guestPath("hostile_victim")),
    memoryMiB: 4,
  }).domain;
  const r = hv.run(5e9);
  assert.equal(r.kind, "idle", out.get(victim.id));
  assert.match(out.get(victim.id) ?? "", /VICTIM ready/);
  return { hv, out, victim };
}

/** What a conformance guest's run says, without the numbers (machine addresses) of a crash's reason. */
const verdict = (r: { text: string; kind: string; why: string }): string =>
  `${r.kind} ${r.why.replace(/0x[0-9a-f]+|\d+/g, "#")}\n${r.text
    .split("\n")
    .filter((l) => /^(PASS|FAIL|DONE|EXPECT)/.test(l))
    .join("\n")}`;

describe("machine memory above 2 GiB", () => {
  it(`${MAX_MACHINE_MIB} MiB: the CPU reaches the top RAM frame by either form of its address; the device window is not RAM`, () => {
    const before = process.memoryUsage().rss;
    const mem = new MachineMemory(MAX_MACHINE_MIB, 0x101);
    const cpu = new Cpu(mem.bytes);
    assert.equal(mem.nrFrames, MAX_MACHINE_MIB * 256);
    assert.equal(mem.ramEnd, DEVICE_WINDOW_FRAME);
    const top = mem.ramEnd * PAGE - 8; // 0xfdfffff8
    cpu.physWrite32(top, 0x12345678);
    assert.equal(mem.read32(top), 0x12345678);
    assert.equal(cpu.physRead32(top | 0), 0x12345678, "the int32 form (negative) names the same word");
    assert.equal(mem.read32(top | 0), 0x12345678);
    cpu.physWrite16((top + 5) | 0, 0xbeef);
    assert.equal(cpu.physRead16(top + 5), 0xbeef);
    assert.equal(cpu.physRead8(top + 6), 0xbe);
    // Nothing aliased into the low 2 GiB.
    assert.equal(mem.read32(top - 0x80000000), 0);
    assert.equal(cpu.physRead32(0xfffffffc), -1, "beyond the end reads as open bus");
    // The heap never hands out a frame of the device window.
    const all = mem.withhold(0, mem.nrFrames);
    assert.equal(all.length, DEVICE_WINDOW_FRAME - 0x101);
    assert.equal(
      all.reduce((m, f) => Math.max(m, f), 0),
      DEVICE_WINDOW_FRAME - 1,
    );
    assert.equal(mem.allocFrame(), -1);
    assert.throws(() => mem.freeFrame(DEVICE_WINDOW_FRAME), /not an allocated frame/);
    release(mem, all);
    assert.equal(mem.freeFrames, DEVICE_WINDOW_FRAME - 0x101);
    // The host backs frames as they are written: 4 GiB of machine costs it far less.
    assert.ok(process.memoryUsage().rss - before < 256 * 2 ** 20, "the machine's memory is committed lazily");
  });

  it("guests whose frames are all above 2 GiB run as in a small machine; a victim below is untouched", () => {
    const { hv, out, victim } = victimMachine(MAX_MACHINE_MIB, true);
    const mem = hv.mem;
    assert.equal(
      xcPhysInfo(dom0Of(hv)).totalPages,
      DEVICE_WINDOW_FRAME,
      "physinfo: RAM ends at the device window",
    );
    const vFrames = [...victim.pages].sort((a, b) => a - b);
    assert.ok(vFrames[vFrames.length - 1] < HIGH);
    const victimHash = memoryHash(hv, victim);

    // Guests get the victim's frames + 2 GiB (their aliases, were bit 31 dropped anywhere),
    // then the last frames below the device window, near 4 GiB: as many as a 16 MiB domain
    // needs beyond the band, and a few for its Xen-heap pages and reservations.
    const band = vFrames[0] + HIGH;
    const lowHeld = mem.withhold(0, band);
    const above = mem.withhold(band + vFrames.length, mem.ramEnd);
    const firstTop = mem.ramEnd - (16 * 256 + 32 - mem.freeFrames);
    // Freed in the order withheld, so the heap hands them out lowest first again.
    release(
      mem,
      above.filter((f) => f >= firstTop),
    );
    const held = [lowHeld, above.filter((f) => f < firstTop)];
    const dir = buildGuests();
    const guests = [
      "hello",
      ...readdirSync(dir)
        .filter((f) => f.startsWith("conf_") && f.endsWith(".elf") && !f.includes("_priv"))
        .map((f) => f.replace(/\.elf$/, ""))
        .sort(),
    ];
    const seen = new Set<number>();
    const high = new Map<string, ReturnType<typeof runGuest>>();
    for (const [i, g] of guests.entries()) {
      const r = runGuest(hv, out, guestPath(g), 2 + i);
      for (const f of r.frames) seen.add(f);
      assert.ok(
        r.frames.every((f) => f >= HIGH),
        `${g}: every frame above 2 GiB`,
      );
      assert.deepEqual(checkInvariants(hv).slice(0, 5), [], `${g}: memory invariants`);
      high.set(g, r);
    }
    const frames = [...seen];
    assert.ok(
      frames.some((f) => vFrames.includes(f - HIGH)),
      "some guest frames are the victim's aliases",
    );
    assert.ok(
      frames.some((f) => f >= DEVICE_WINDOW_FRAME - 64),
      "some guest frames lie within 256 KiB of the device window (0xfe000000)",
    );
    assert.equal(memoryHash(hv, victim), victimHash, "the victim's memory is unchanged");
    for (const h of held) release(mem, h);

    // The same guests in a small machine print the same checks with the same verdicts.
    const small = victimMachine(64, false);
    for (const [i, g] of guests.entries()) {
      const h = high.get(g);
      assert.ok(h);
      const s = runGuest(small.hv, small.out, guestPath(g), 2 + i);
      if (g === "hello") {
        assert.equal(h.kind, "shutdown", h.text);
        // hello prints shared_info's machine address: the high one has bit 31 set.
        assert.match(h.text, /shared_info=[89a-f][0-9a-f]{7} /);
        assert.equal(h.text.replace(/shared_info=\S+/, ""), s.text.replace(/shared_info=\S+/, ""));
        continue;
      }
      assert.match(h.text, /DONE passed=\d+ failed=0/, `${g}: ${h.text}`);
      assert.equal(verdict(h), verdict(s), g);
    }
  });

  it("a domain saved from frames below 2 GiB restores above and counts on; saved there, restores below", () => {
    const out: string[] = [];
    let mgr: DomainManager | null = null;
    const hv = new Hypervisor({
      memoryMiB: MAX_MACHINE_MIB,
      checkInvariants: false,
      onConsole: (d, b) => {
        out.push(Buffer.from(b).toString("latin1"));
        mgr?.consoleOutput(d, b);
      },
    });
    mgr = new DomainManager(hv);
    const m0 = mgr;
    const kernel = guestPath("ev_counter");
    const config = parseDomainConfig("c.cfg", `kernel = "${kernel}"\nmemory = 8\nname = "c"\n`);
    m0.create(config, { kernel: readFileSync(kernel) });
    const counts = (): number[] => [...out.join("").matchAll(/^counter: (\d+)$/gm)].map((x) => Number(x[1]));
    /** Runs a while, saves, destroys, and restores with frames on the other side of 2 GiB held back. */
    const moveAcross = (hold: [number, number]): Domain => {
      hv.run(hv.nowNs() + 350e6);
      const m = m0.find("c");
      m0.pause(m);
      const image = captureDomain(hv, m.domain, m.config, m.startInfoVa, new Uint8Array());
      m0.destroy(m);
      const held = hv.mem.withhold(hold[0], hold[1]);
      const { domain, header } = restoreDomain(hv, image, (d) => m0.discard(d));
      release(hv.mem, held);
      m0.adopt(domain, header.config, null, header.startInfoVa);
      assert.deepEqual(checkInvariants(hv).slice(0, 5), []);
      return domain;
    };
    const up = moveAcross([0, HIGH]);
    assert.ok(
      [...up.pages].every((f) => f >= HIGH),
      "restored above 2 GiB",
    );
    const atUp = counts().length;
    const down = moveAcross([HIGH, hv.mem.ramEnd]);
    assert.ok(
      [...down.pages].every((f) => f < HIGH),
      "restored below 2 GiB",
    );
    assert.ok(counts().length >= atUp + 2, out.join(""));
    hv.run(hv.nowNs() + 350e6);
    assert.deepEqual(checkInvariants(hv).slice(0, 5), []);
    const c = counts();
    assert.ok(c.length >= atUp + 4, out.join(""));
    assert.deepEqual(
      c,
      c.map((_, i) => i + 1),
      "the count goes on across both moves",
    );
    assert.doesNotMatch(out.join(""), /FAIL/);
  });
});

describe("machine memory: frames freed to be scrubbed", () => {
  it("are zeroed when handed out again (one at a time, in a run, withheld), and others keep their bytes", () => {
    const m = new MachineMemory(8);
    const fill = (f: number, v: number): void => void m.bytes.fill(v, f * 4096, (f + 1) * 4096);
    const zero = (f: number): boolean => m.bytes.subarray(f * 4096, (f + 1) * 4096).every((b) => b === 0);
    const a = m.allocFrame();
    const b = m.allocFrame();
    fill(a, 0x11);
    fill(b, 0x22);
    // Only the last word written: the scrub must not stop at a zero prefix.
    m.bytes[b * 4096 + 4095] = 0x33;
    m.freeFrame(a, true);
    m.freeFrame(b);
    assert.equal(zero(a), false, "a frame to be scrubbed keeps its bytes while it is free");
    assert.equal(m.allocFrame(), b, "frames come back last freed first");
    assert.equal(m.bytes[b * 4096 + 4095], 0x33, "a frame freed without scrub keeps its bytes");
    assert.equal(m.allocFrame(), a);
    assert.ok(zero(a), "zeroed when handed out");
    // A run of frames (allocContiguous) and withheld frames.
    const run = [m.allocFrame(), m.allocFrame(), m.allocFrame()];
    for (const f of run) {
      fill(f, 0x44);
      m.bytes[f * 4096 + 4095] = 0x55;
      m.freeFrame(f, true);
    }
    const low = Math.min(...run);
    const first = m.allocContiguous(2);
    assert.ok(first >= 0);
    for (const f of [first, first + 1]) if (run.includes(f)) assert.ok(zero(f), `frame ${f} of the run`);
    const rest = run.filter((f) => f !== first && f !== first + 1);
    const held = m.withhold(low, low + 3);
    for (const f of rest) {
      assert.ok([...held].includes(f));
      assert.ok(zero(f), `withheld frame ${f}`);
    }
  });
});
