/**
 * Exact in-process checkpoints (src/tools/checkpoint.ts) of tsxen run's machine
 * (SessionMachine): restored, a checkpoint gives the same run as going on from where it was
 * taken, instruction for instruction (the same state hash and console bytes after M more
 * instructions), for the debug target, a guest with timers, events and typed input, and,
 * gated on TSXEN_XENLINUX, XenLinux; and reverse-continue under gdb's target (DebugTarget)
 * seeks from the nearest checkpoint, replaying far fewer instructions than from boot, to the
 * same last writer.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { DebugTarget } from "../src/tools/debug_target.js";
import { InputLog, machineStateHash, SessionMachine } from "../src/tools/replay.js";
import { GuestSession } from "../src/tools/session.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

const LOUD = process.env.TSXEN_CHECKPOINT_FIGURES === "1";

interface Run {
  machine: SessionMachine;
  /** Every console byte the machine wrote, in order (kept in its checkpoints). */
  console: { chunks: Uint8Array[] };
}

/** A SessionMachine booting elf as tsxen run does, its console collected. */
function machineFor(
  elf: string,
  opts: {
    memoryMiB?: number;
    machineMiB?: number;
    cmdline?: string;
    every?: number;
    keep?: number;
    /** The CPU's epoch for its retired counts moved this often (Cpu.rebaseAt). */
    rebaseAt?: number;
  } = {},
  log = new InputLog({ tsxenRecord: 1, kernelSha256: "", options: {} }),
): Run {
  const image = readFileSync(elf);
  const console = { chunks: [] as Uint8Array[] };
  const out = (b: Uint8Array): void => void console.chunks.push(Uint8Array.from(b));
  const make = (): GuestSession => {
    console.chunks.length = 0;
    const hv = new Hypervisor({ memoryMiB: opts.machineMiB ?? 128, onConsole: (_d, b) => out(b) });
    if (opts.rebaseAt !== undefined) hv.cpu.rebaseAt = opts.rebaseAt;
    return new GuestSession(hv, {
      name: "guest",
      image,
      memoryMiB: opts.memoryMiB ?? 16,
      cmdline: opts.cmdline ?? "",
      onConsole: out,
      onNote: () => {},
    });
  };
  const machine = new SessionMachine(make, log, {
    checkpointEvery: opts.every ?? Number.MAX_SAFE_INTEGER,
    checkpointKeep: opts.keep,
    hostState: [console],
  });
  return { machine, console };
}

function consoleText(r: Run): string {
  return Buffer.concat(r.console.chunks).toString("latin1");
}

/** Runs until at least `count` more instructions have retired (or the guest ends). */
async function runFor(r: Run, count: number): Promise<void> {
  const m = r.machine;
  const want = m.hv.cpu.retiredTotal + count;
  await m.approach(want);
  // approach stops short of a position; the rest one slice at a time.
  while (m.hv.cpu.retiredTotal < want && m.slice() === null) {}
}

/**
 * N instructions, a checkpoint, M more (hash and console noted), restore, M again: the same
 * hash, console and position; the checkpoint's cost in ms and bytes.
 */
async function sameRunTwice(r: Run, n: number, mCount: number, what: string): Promise<void> {
  const m = r.machine;
  await runFor(r, n);
  const at = m.hv.cpu.retiredTotal;
  const hashAt = machineStateHash(m.hv);
  const cps = m.checkpoints;
  assert.ok(cps !== null);
  const point = m.checkpointHere();
  await runFor(r, mCount);
  const first = {
    hash: machineStateHash(m.hv),
    text: consoleText(r),
    retired: m.hv.cpu.retiredTotal,
    ns: m.hv.nowNs(),
  };
  // The guest ran all M, or until it waits idle for input; one that shut down or crashed
  // would compare little.
  const end = m.lastEnd;
  assert.ok(end === null || end.kind === "idle", `${what}: ended: ${end?.text}`);
  assert.ok(first.retired >= at + mCount || end?.kind === "idle", `${what}: ran on`);
  assert.notEqual(first.hash, hashAt, `${what}: the M instructions changed the machine`);
  const t0 = performance.now();
  m.rewindTo(at);
  const restoreMs = performance.now() - t0;
  assert.equal(m.hv.cpu.retiredTotal, at, `${what}: back at the checkpoint`);
  assert.equal(machineStateHash(m.hv), hashAt, `${what}: the state restored`);
  await runFor(r, mCount);
  assert.equal(m.hv.cpu.retiredTotal, first.retired, `${what}: the same position after M`);
  assert.equal(m.hv.nowNs(), first.ns, `${what}: the same virtual time`);
  assert.equal(consoleText(r), first.text, `${what}: the same console bytes`);
  assert.equal(machineStateHash(m.hv), first.hash, `${what}: the same state hash`);
  if (LOUD)
    console.log(
      `${what}: checkpoint at ${at} took ${point.ms.toFixed(1)} ms, ${point.checkpoint.ownBytes} bytes (${cps.bytes} for all ${cps.points.length}); restore ${restoreMs.toFixed(1)} ms`,
    );
}

describe("checkpoints: a restored machine runs the same run", () => {
  it("the debug target: N, checkpoint, M; restore; M again gives the same hash and console", async () => {
    const r = machineFor(guestPath("dbg_target"), { cmdline: "spin" });
    await sameRunTwice(r, 1500, 200_000, "dbg_target");
    assert.match(consoleText(r), /dbg: watched=11 counter=112 version=30000\n/);
  });

  it("a guest with timers, events and the FPU (ev_counter): the same ticks after a restore", async () => {
    const r = machineFor(guestPath("ev_counter"));
    // Past several 100 ms ticks; M spans some more (timer events, console lines).
    await sameRunTwice(r, 3_000_000, 3_000_000, "ev_counter");
    assert.ok(consoleText(r).split("\n").length > 3, consoleText(r));
  });

  it("the CPU's retired counts from an epoch moved every 100 instructions: the same figures", async () => {
    const figures = async (rebaseAt?: number) => {
      const r = machineFor(guestPath("ev_counter"), { rebaseAt });
      await sameRunTwice(r, 50_000, 100_000, "ev_counter");
      const hv = r.machine.hv;
      return {
        retired: hv.cpu.retiredTotal,
        ns: hv.nowNs(),
        hash: machineStateHash(hv),
        rebases: hv.cpu.rebases,
      };
    };
    const a = await figures();
    const b = await figures(100);
    assert.equal(a.rebases, 0);
    // One a run (the count restored with the CPU at the rewind): the machine's runs, pinned.
    assert.equal(b.rebases, 466);
    assert.deepEqual({ ...b, rebases: 0 }, a);
  });

  it("typed input: the log cursor is restored with the machine (ev_ctrl_shell)", async () => {
    const log = new InputLog({ tsxenRecord: 1, kernelSha256: "", options: {} });
    const r0 = machineFor(guestPath("ev_ctrl_shell"));
    // Where the shell prompts, type two lines a little apart: their stamps are the log.
    for (let i = 0; !consoleText(r0).includes("ctrl> "); i++) {
      assert.ok(i < 500, "the shell prompts within 5 s of guest time");
      // It runs (idle once it waits for a line) until it prompts; never ends.
      const end = r0.machine.slice();
      assert.ok(end === null || end.kind === "idle", `the shell ended: ${end?.text}`);
    }
    r0.machine.input(new TextEncoder().encode("echo one\n"));
    for (let i = 0; i < 5; i++) r0.machine.slice();
    r0.machine.input(new TextEncoder().encode("echo two\n"));
    for (const e of r0.machine.log.events) log.add(e);
    const r = machineFor(guestPath("ev_ctrl_shell"), {}, log);
    r.machine.inputClosed = true;
    const firstInput = log.events[0].retired;
    // The checkpoint before the first input; M takes both in.
    await sameRunTwice(r, firstInput - 1000, log.events[1].retired - firstInput + 2_000_000, "ev_ctrl_shell");
    assert.match(consoleText(r), /ctrl> echo one\none\nctrl> echo two\ntwo\n/);
    assert.equal(r.machine.pendingInputs, 0);
    assert.equal(r.machine.divergence, null);
  });

  it("takes them every K instructions, keeping at most a fixed number (old ones thinned)", async () => {
    const r = machineFor(guestPath("ev_counter"), { every: 500_000, keep: 6 });
    await runFor(r, 8_000_000);
    const ps = r.machine.checkpoints?.points ?? [];
    assert.equal(ps.length, 6);
    assert.equal(ps[0].retired, 0, "the boot stays");
    const gaps = ps.slice(1).map((p, i) => p.retired - ps[i].retired);
    assert.ok(
      gaps.every((g) => g >= 500_000),
      `${gaps}`,
    );
    // Thinned where old: the gaps shrink towards now.
    assert.ok(gaps[1] > gaps.at(-1)!, `${gaps}`);
    assert.ok(r.machine.hv.cpu.retiredTotal - ps.at(-1)!.retired < 2_000_000);
  });
});

describe("checkpoints under gdb's writes", () => {
  it("registers and memory written back as they are (gdb's G) keep them coming; a real change stops them", async () => {
    const r = machineFor(guestPath("ev_counter"), { every: 200_000, keep: 64 });
    const t = new DebugTarget(r.machine);
    t.attach();
    const m = r.machine;
    const count = (): number => m.checkpoints?.points.length ?? 0;
    await runFor(r, 500_000);
    const v = m.domain.vcpus[0];
    // Every register as it is, eflags with IF flipped (a bit gdb cannot set), a stack word as it is.
    for (let n = 0; n < 32; n++) assert.ok(t.writeRegister(v, n, t.register(v, n)), `register ${n}`);
    const flags = t.register(v, 9);
    flags[1] ^= 0x02;
    assert.ok(t.writeRegister(v, 9, flags));
    const esp = t.registers(v)[4];
    const word = t.readMemory(v, esp, 4);
    assert.ok(word.length === 4 && t.writeMemory(v, esp, word));
    const before = count();
    await runFor(r, 800_000);
    assert.ok(count() >= before + 3, `checkpoints go on: ${before} -> ${count()}`);
    // A real change (eax + 1): the run is off its record, no checkpoint is taken of it.
    const eax = t.register(v, 0);
    eax[0] ^= 1;
    assert.ok(t.writeRegister(v, 0, eax));
    const off = count();
    await runFor(r, 800_000);
    assert.equal(count(), off, "none off the record");
  });
});

/** Where writer_c's store to `watched` is, and `watched`'s address (the ELF's symbols). */
function symbol(elf: string, name: string): number {
  const line = execFileSync("nm", [elf], { encoding: "utf8" })
    .split("\n")
    .find((l) => l.endsWith(` ${name}`));
  assert.ok(line, name);
  return Number.parseInt(line, 16);
}

describe("reverse-continue from checkpoints", () => {
  it("finds the same last writers after a long run, replaying far fewer instructions than from boot", async () => {
    const elf = guestPath("dbg_target");
    const watched = symbol(elf, "watched");
    const counter = symbol(elf, "counter");
    const spinFor = 12_000_000;
    const every = 1_000_000;
    /**
     * Runs spinFor instructions (done() and then the spin loop), then reverse-continues to
     * the last write of `counter` (the spin loop's, just behind) and from there to the last
     * write of `watched` (writer_c's, near the start): each stop, the instructions replayed
     * and the host time it took.
     */
    const session = async (checkpointEvery: number) => {
      const r = machineFor(elf, { cmdline: "spin", every: checkpointEvery });
      const t = new DebugTarget(r.machine);
      t.attach();
      await runFor(r, spinFor);
      const back = async (addr: number) => {
        t.insertPoint(2, addr, 4);
        const before = r.machine.replayed;
        const t0 = performance.now();
        const stop = await t.reverseContinue();
        const ms = performance.now() - t0;
        t.removePoint(2, addr, 4);
        const eip = t.registers(r.machine.domain.vcpus[0])[8];
        return {
          stop,
          eip,
          retired: r.machine.hv.cpu.retiredTotal,
          replayed: r.machine.replayed - before,
          ms,
        };
      };
      return { spin: await back(counter), writer: await back(watched) };
    };
    const fromBoot = await session(Number.MAX_SAFE_INTEGER);
    const seek = await session(every);
    for (const k of ["spin", "writer"] as const) {
      const { stop, eip, retired } = seek[k];
      assert.deepEqual(
        { stop, eip, retired },
        { stop: fromBoot[k].stop, eip: fromBoot[k].eip, retired: fromBoot[k].retired },
        k,
      );
      assert.equal(stop.kind === "signal" && stop.watch?.type, "watch", `${k}: a watchpoint stop`);
    }
    const writerC = symbol(elf, "writer_c");
    assert.ok(
      seek.writer.eip > writerC && seek.writer.eip < writerC + 0x40,
      `in writer_c: ${seek.writer.eip.toString(16)}`,
    );
    const startK = symbol(elf, "start_kernel");
    assert.ok(seek.spin.eip > startK && seek.spin.eip < writerC + 0x1000, "in start_kernel's spin loop");
    assert.ok(seek.spin.retired > spinFor - 100, "just behind");
    // The last write just behind: from boot the whole run is replayed (twice: to look through
    // the window, then to stop there); from checkpoints at most an interval and the window each.
    assert.ok(fromBoot.spin.replayed > 2 * spinFor - 500_000, `from boot: ${fromBoot.spin.replayed}`);
    assert.ok(seek.spin.replayed < 2 * (every + 200_000 + 4096), `from checkpoints: ${seek.spin.replayed}`);
    // Near the start: every window back is stepped through either way, but from boot each
    // window replays everything before it too.
    assert.ok(
      seek.writer.replayed < fromBoot.writer.replayed / 2,
      `${seek.writer.replayed} vs ${fromBoot.writer.replayed}`,
    );
    if (LOUD)
      for (const k of ["spin", "writer"] as const)
        console.log(
          `reverse-continue to the last ${k === "spin" ? "counter++ (just behind)" : "writer_c (near boot)"} after ${spinFor}: from boot ${fromBoot[k].ms.toFixed(0)} ms, ${fromBoot[k].replayed} replayed; from checkpoints every ${every}: ${seek[k].ms.toFixed(0)} ms, ${seek[k].replayed} replayed`,
        );
  });
});

const VMLINUX = process.env.TSXEN_XENLINUX;
describe("checkpoints: XenLinux", { skip: VMLINUX === undefined && "TSXEN_XENLINUX is not set" }, () => {
  it("booting: N, checkpoint, M; restore; M again gives the same hash and console", async () => {
    const r = machineFor(VMLINUX ?? "", { memoryMiB: 64, machineMiB: 128, cmdline: "xencons=tty" });
    // Without a root it panics near 27M instructions: N and M are within its boot.
    await sameRunTwice(r, 12_000_000, 10_000_000, "XenLinux");
  });
});
