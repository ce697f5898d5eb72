/**
 * The structure-aware page-table fuzzer (issue 12, point 4). Two domains run the guest
 * guests/fuzz/ptfuzz.c: a victim that fills its memory and blocks, and an attacker that
 * executes one operation at a time through the real route (hypercalls by int $0x82, plain
 * stores under the writable-page-table assist, mov to CR3 from ring 1). The driver generates
 * each operation from the live machine (which frames are page tables, pinned, writable, in a
 * writable-page-table window, the current base pointer) so most are nearly valid, and mutates
 * them: foreign and Xen frames, off-by-one frames and slots, flipped RW/PSE/PRESENT/USER bits.
 *
 * Oracles: the frame table's invariants (checkInvariants) after every attacker hypercall and
 * after every other operation; the attacker's live address space as the MMU walks it (only its
 * own frames, writable only when typed writable); no internal error and no exception out of the
 * hypervisor; at the end, the victim's memory and Xen's M2P unchanged. A violation is shrunk by
 * delta debugging over the recorded operations, each candidate replayed on a fresh machine.
 */
import { readFileSync } from "node:fs";
import { CR4_PSE, EAX, EBX, ECX, EDX, ESI } from "../src/cpu/regs.js";
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_USER,
} from "../src/public/arch_x86_32.js";
import {
  GntMap,
  GnttabMapGrantRefMar,
  GnttabOp,
  GnttabUnmapGrantRefMar,
  Gtf,
} from "../src/public/grant_table.js";
import {
  DomId,
  HypercallMar,
  MemOp,
  MMUEXT_DOMID_SHIFT,
  MmuExtMar,
  MmuMar,
  MulticallEntryMar,
  UvmfMar,
  VmAssistType,
} from "../src/public/xen.js";
import { dom0Of } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { xcDomainUnpause } from "../src/tools/xc.js";
import { type Domain, DomainState } from "../src/xen/domain.js";
import {
  PGT_count_mask,
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_type_mask,
  PGT_va_mask,
  PGT_va_unknown,
  PGT_writable_page,
} from "../src/xen/frame_table.js";
import { grantTableOf } from "../src/xen/grant_table.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";

/** xen_version's command for the executor's fetch (FUZZ_MAGIC in guests/fuzz/ptfuzz.c). */
const FUZZ_MAGIC = 0x46555a5a;
/** Operation kinds (enum in guests/fuzz/ptfuzz.c). */
export const OpKind = Object.freeze({ hypercall: 1, store: 2, load: 3, cr3: 4, copy: 5 } as const);
const POOL_PAGES = 40;
/** Words of payload after kind and a[7] in the guest's one-page operation. */
const PAYLOAD_WORDS = 1016;
const PAYLOAD_OFFSET = 32;
const KERNEL_BASE = 0xc0000000;
/** L2 slots 256..259: the driver's own VA window (the executor lives at slot 768). */
const PLAY_SLOT = 256;
const PLAY_SLOTS = 4;
const KERNEL_SLOT = 768;
const PTE_RW = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
const PTE_RO = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
/** The victim's grant references (written as the victim's kernel would). */
const REF_RO = 1;
const REF_RW = 2;
const REF_TRANSFER = [3, 4, 5, 6];
/** Machine and domain sizes: small, so the invariant check after every call stays cheap. */
const MACHINE_MIB = 12;
/** Virtual time a session may take: a base and ten times what an operation takes (about 3 µs). */
const SESSION_NS = 1e8;
const OP_NS = 3e4;
const DOMAIN_MIB = 4;

/** One operation as the executor receives it. */
export interface FuzzOp {
  kind: number;
  /** a[0..6]; for a hypercall a[0] is the number and a[1..5] its arguments. */
  a: number[];
  /** Payload words (hypercall argument structures), written after a[]. */
  payload: number[];
  /** What the generator meant, for the printed sequence. */
  desc: string;
}

export interface Violation {
  /** Index of the operation after which it was seen (-1: before any). */
  index: number;
  /** Which oracle saw it: kept while shrinking. */
  kind: "invariant" | "live mapping" | "internal error" | "victim or Xen memory" | "machine";
  message: string;
}

export interface SessionResult {
  ops: FuzzOp[];
  /** Operations the executor reported as executed. */
  executed: number;
  violation: Violation | null;
  /** How the attacker ended: "done", or why it crashed. */
  end: string;
  stats: Map<string, number>;
}

// ---------------------------------------------------------------------------------------------
// Random numbers

/** xorshift32 with a non-zero state: deterministic for a seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (Math.imul(seed >>> 0 || 1, 0x9e3779b1) ^ 0x5bd1e995) >>> 0 || 1;
    for (let i = 0; i < 4; i++) this.next();
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  /** An index chosen by weight. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = this.next() % total;
    for (let i = 0; i < weights.length; i++) {
      if (r < weights[i]) return i;
      r -= weights[i];
    }
    return weights.length - 1;
  }
}

/** The seed of session k of a run with seed s. */
export function sessionSeed(seed: number, k: number): number {
  return (Math.imul(seed >>> 0, 0x01000193) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0;
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

// ---------------------------------------------------------------------------------------------
// The machine

let imageCache: Uint8Array | null = null;

/** The two domains on a fresh machine: the victim built, run until it blocks, and hashed. */
class Machine {
  readonly hv: Hypervisor;
  readonly victim: Domain;
  readonly attacker: Domain;
  /** Attacker PFN -> MFN as built. */
  readonly attackerP2m: number[];
  readonly victimP2m: number[];
  /** Attacker frames the executor itself needs (image, stack, page tables, op page). */
  readonly core = new Set<number>();
  readonly baseL2: number;
  readonly kernelL1: number;
  readonly m2pL1: number;
  readonly m2pFrames: number[] = [];
  /** Victim frames and their bytes at the start (the RW-granted page excluded). */
  private readonly victimCopy = new Map<number, Uint8Array>();
  private readonly m2pCopy = new Map<number, number>();
  private readonly m2pL1Copy: Uint8Array;
  readonly victimGrantRw: number;
  readonly victimGrantRo: number;

  constructor(image: Uint8Array) {
    const hv = new Hypervisor({ memoryMiB: MACHINE_MIB, checkInvariants: false });
    this.hv = hv;
    const v = launchDomain(hv, { name: "victim", image, memoryMiB: DOMAIN_MIB, cmdline: "victim=1" });
    this.victim = v.domain;
    this.victimP2m = pfnToMfn(v.image.m2p);
    const r = hv.run(5e8);
    if (r.kind !== "idle") throw new Error(`the victim did not settle (${r.kind})`);
    const a = launchDomain(hv, { name: "attacker", image, memoryMiB: DOMAIN_MIB, paused: true });
    this.attacker = a.domain;
    this.attackerP2m = pfnToMfn(a.image.m2p);
    this.baseL2 = a.image.l2Mfn;
    this.kernelL1 = hv.read32(this.baseL2 * 4096 + KERNEL_SLOT * 4) >>> 12;
    this.m2pL1 = hv.m2pL1Frame();
    for (let i = 0; i < 1024; i++) {
      const e = hv.read32(this.m2pL1 * 4096 + i * 4);
      if (e & _PAGE_PRESENT) this.m2pFrames.push(e >>> 12);
    }
    // The victim grants one pool page read-only, one read-write and accepts transfers.
    const poolPfn = (POOL_VA - KERNEL_BASE) >>> 12;
    this.victimGrantRo = this.victimP2m[poolPfn];
    this.victimGrantRw = this.victimP2m[poolPfn + 1];
    const gt = grantTableOf(this.victim);
    if (gt === undefined) throw new Error("the victim has no grant table");
    const grant = (ref: number, flags: number, frame: number): void => {
      hv.write32(gt.sharedMfn * 4096 + ref * 8 + 4, frame);
      hv.write32(gt.sharedMfn * 4096 + ref * 8, ((this.attacker.id << 16) | flags) >>> 0);
    };
    grant(REF_RO, Gtf.permit_access | Gtf.readonly, this.victimGrantRo);
    grant(REF_RW, Gtf.permit_access, this.victimGrantRw);
    for (const ref of REF_TRANSFER) grant(ref, Gtf.accept_transfer, 0);
    this.victim.maxPages += REF_TRANSFER.length;
    for (const mfn of this.victim.pages) {
      if (mfn !== this.victimGrantRw)
        this.victimCopy.set(mfn, hv.mem.bytes.slice(mfn * 4096, mfn * 4096 + 4096));
      this.m2pCopy.set(mfn, hv.getM2p(mfn));
    }
    for (let f = 0; f < hv.frames.nrFrames; f++)
      if (hv.frames.owner[f] === DomId.XEN && hv.frames.count[f] > 0) this.m2pCopy.set(f, hv.getM2p(f));
    this.m2pL1Copy = hv.mem.bytes.slice(this.m2pL1 * 4096, this.m2pL1 * 4096 + 4096);
    const poolFirst = poolPfn;
    this.attackerP2m.forEach((mfn, pfn) => {
      if (pfn < poolFirst || pfn >= poolFirst + POOL_PAGES) this.core.add(mfn);
    });
    xcDomainUnpause(dom0Of(hv), this.attacker.id);
  }

  /** The victim's memory and Xen's M2P as they were at the start: what differs. */
  unchanged(): string[] {
    const out: string[] = [];
    const hv = this.hv;
    for (const [mfn, copy] of this.victimCopy) {
      if (hv.frames.owner[mfn] !== this.victim.id)
        out.push(`victim frame ${mfn} now owned by ${hv.frames.owner[mfn]}`);
      else if (Buffer.compare(copy, hv.mem.bytes.subarray(mfn * 4096, mfn * 4096 + 4096)) !== 0)
        out.push(`victim frame ${mfn} changed`);
    }
    for (const [mfn, value] of this.m2pCopy)
      if (hv.getM2p(mfn) !== value)
        out.push(`M2P[${mfn}] changed from ${hex(value)} to ${hex(hv.getM2p(mfn))}`);
    if (
      Buffer.compare(this.m2pL1Copy, hv.mem.bytes.subarray(this.m2pL1 * 4096, this.m2pL1 * 4096 + 4096)) !== 0
    )
      out.push(`the M2P's L1 frame ${this.m2pL1} changed`);
    return out;
  }

  /**
   * The attacker's address space as the MMU walks it from CR3 (slots below Xen's): every
   * present entry maps a frame the attacker owns, or a frame the victim granted it; writable
   * only when typed writable (the one writable-page-table alias excepted); page-table levels
   * are validated tables of the attacker.
   */
  mmuView(): string[] {
    const hv = this.hv;
    const ft = hv.frames;
    const a = this.attacker;
    const v = a.vcpus[0];
    const cr3 = hv.current === v ? hv.cpu.cr3 : (v.context?.cr3 ?? 0);
    const l2 = cr3 >>> 12;
    const out: string[] = [];
    if (!ft.isRam(l2)) return [`CR3 ${hex(cr3)} is not RAM`];
    const aliases = new Map<number, number>();
    for (const s of hv.ptwr.slots) if (s.l1va !== 0) aliases.set(s.pteMa, s.l1Mfn);
    const pse = (hv.cpu.cr4 & CR4_PSE) !== 0;
    const frameOk = (t: number, rw: boolean, ma: number, i: number, j: number): void => {
      const what = (): string => `VA ${hex(((i << 22) | (j << 12)) >>> 0)}`;
      if (!ft.isRam(t)) {
        out.push(`${what()} maps non-RAM frame ${hex(t)}`);
        return;
      }
      const owner = ft.owner[t];
      if (owner === a.id) {
        if (rw && (ft.typeInfo[t] & PGT_type_mask) !== PGT_writable_page && aliases.get(ma) !== t)
          out.push(`${what()} maps frame ${t} (type ${hex(ft.typeInfo[t])}) writable`);
        return;
      }
      if (owner === this.victim.id && (t === this.victimGrantRw || (t === this.victimGrantRo && !rw))) return;
      out.push(`${what()} maps frame ${t} owned by ${owner}${rw ? " writable" : ""}`);
    };
    const typeOf = (f: number): number => ft.typeInfo[f] & PGT_type_mask;
    for (let i = 0; i < 1008; i++) {
      const pdeMa = l2 * 4096 + i * 4;
      const pde = hv.read32(pdeMa);
      if ((pde & _PAGE_PRESENT) === 0) continue;
      const t = pde >>> 12;
      if (pse && pde & _PAGE_PSE) {
        out.push(`L2 ${l2}[${i}] = ${hex(pde)} is a live superpage`);
        continue;
      }
      if (!ft.isRam(t)) {
        out.push(`L2 ${l2}[${i}] = ${hex(pde)} points outside RAM`);
        continue;
      }
      const tt = typeOf(t);
      if (ft.owner[t] !== a.id || (tt !== PGT_l1_page_table && tt !== PGT_l2_page_table)) {
        out.push(
          `L2 ${l2}[${i}] = ${hex(pde)}: frame ${t} owned by ${ft.owner[t]} is not a page table (${hex(ft.typeInfo[t])})`,
        );
        continue;
      }
      const pdeRw = (pde & _PAGE_RW) !== 0;
      if (tt === PGT_l2_page_table && pdeRw) out.push(`L2 ${l2}[${i}] maps L2 ${t} writable`);
      // Through a linear (L2 as L1) entry, Xen's own slots show its tables read-only, as in Xen.
      const last = tt === PGT_l2_page_table ? 1008 : 1024;
      for (let j = 0; j < last; j++) {
        const ma = t * 4096 + j * 4;
        const pte = hv.read32(ma);
        if ((pte & _PAGE_PRESENT) === 0) continue;
        frameOk(pte >>> 12, pdeRw && (pte & _PAGE_RW) !== 0, ma, i, j);
      }
    }
    return out;
  }
}

/** The pool's VA: the guest's `pool` array, from the ELF's symbol table (set by loadImage). */
let POOL_VA = 0;

/** The value of a global symbol of an ELF32 image (the guests are linked with their symbols). */
export function elfSymbol(image: Uint8Array, name: string): number {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const shoff = dv.getUint32(0x20, true);
  const shentsize = dv.getUint16(0x2e, true);
  const shnum = dv.getUint16(0x30, true);
  const sh = (i: number, field: number): number => dv.getUint32(shoff + i * shentsize + field, true);
  for (let i = 0; i < shnum; i++) {
    if (sh(i, 4) !== 2) continue; // SHT_SYMTAB
    const strOff = sh(sh(i, 24), 16);
    for (let off = sh(i, 16); off < sh(i, 16) + sh(i, 20); off += 16) {
      let at = strOff + dv.getUint32(off, true);
      let sym = "";
      while (image[at] !== 0) sym += String.fromCharCode(image[at++]);
      if (sym === name) return dv.getUint32(off + 4, true);
    }
  }
  throw new Error(`the guest image has no symbol ${name}`);
}

function pfnToMfn(m2p: ReadonlyArray<readonly [number, number]>): number[] {
  const out: number[] = [];
  for (const [mfn, pfn] of m2p) out[pfn] = mfn;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The generator

/** Builds hypercall argument structures in the payload and returns their guest VAs. */
class Payload {
  readonly words: number[] = [];
  constructor(private readonly opVa: number) {}
  /** Appends words; returns their VA. */
  put(ws: readonly number[]): number {
    const va = this.opVa + PAYLOAD_OFFSET + this.words.length * 4;
    this.words.push(...ws);
    return va >>> 0;
  }
  /** Reserves n zero words. */
  reserve(n: number): number {
    return this.put(new Array<number>(n).fill(0));
  }
}

/** A hypercall to issue alone or inside a multicall. */
interface Call {
  nr: number;
  args: number[];
  desc: string;
}

class Generator {
  private readonly queue: FuzzOp[] = [];
  private readonly m: Machine;
  private readonly r: Rng;
  constructor(
    m: Machine,
    r: Rng,
    private readonly opVa: number,
  ) {
    this.m = m;
    this.r = r;
  }

  next(): FuzzOp {
    while (this.queue.length === 0) this.template();
    return this.queue.shift() as FuzzOp;
  }

  // ---- the machine, read live

  private get hv(): Hypervisor {
    return this.m.hv;
  }
  private typeOf(f: number): number {
    return this.hv.frames.typeInfo[f] & PGT_type_mask;
  }
  /** The attacker's current base L2 (what CR3 holds). */
  private currentL2(): number {
    const v = this.m.attacker.vcpus[0];
    return v.baseMfn;
  }
  /** Attacker frames other than the executor's own. */
  private poolFrames(): number[] {
    const out: number[] = [];
    for (const f of this.m.attacker.pages) if (!this.m.core.has(f)) out.push(f);
    return out;
  }
  /** The attacker's frames in use as this type (type count above 0). */
  private framesOfType(type: number): number[] {
    const ft = this.hv.frames;
    const out: number[] = [];
    for (const f of this.m.attacker.pages) {
      const ti = ft.typeInfo[f];
      if ((ti & PGT_type_mask) === type && (ti & PGT_count_mask) !== 0) out.push(f);
    }
    return out;
  }
  /**
   * An entry index of table f: the executor's own L1 and L2 are changed only where the pool
   * and the driver's window are (they map the executor's code and stack), now and then anywhere.
   */
  private index(f: number): number {
    const r = this.r;
    if (f === this.m.kernelL1 && r.chance(0.97)) return ((POOL_VA >>> 12) & 1023) + r.int(POOL_PAGES);
    if (this.typeOf(f) === PGT_l2_page_table) return this.slot();
    return r.chance(0.6) ? r.int(8) : r.int(1024);
  }
  private poolVa(k: number): number {
    return (POOL_VA + k * 4096) >>> 0;
  }
  /** The frame the kernel mapping of pool page k points at now (-1 when not present). */
  private poolMfn(k: number): number {
    const pte = this.hv.read32(this.m.kernelL1 * 4096 + ((this.poolVa(k) >>> 12) & 1023) * 4);
    return pte & _PAGE_PRESENT ? pte >>> 12 : -1;
  }
  /** The kernel VA of an attacker frame, when the bootstrap mapping still points at it. */
  private kernelVaOf(f: number): number {
    const pfn = this.m.attackerP2m.indexOf(f);
    if (pfn < 0) return 0;
    const va = (KERNEL_BASE + pfn * 4096) >>> 0;
    const pte = this.hv.read32(this.m.kernelL1 * 4096 + pfn * 4);
    return pte >>> 12 === f ? va : 0;
  }
  private playVa(): number {
    return (((PLAY_SLOT + this.r.int(PLAY_SLOTS)) << 22) | (this.r.int(1024) << 12)) >>> 0;
  }

  /** A frame to point an entry at: mostly the attacker's own, sometimes anything but. */
  private target(): number {
    const r = this.r;
    const m = this.m;
    switch (r.weighted([50, 10, 8, 6, 4, 4, 4])) {
      case 0: {
        const p = this.poolFrames();
        return p.length > 0 ? r.pick(p) : m.baseL2;
      }
      case 1: {
        const pts = [...this.framesOfType(PGT_l1_page_table), ...this.framesOfType(PGT_l2_page_table)];
        return pts.length > 0 ? r.pick(pts) : m.baseL2;
      }
      case 2:
        return r.pick([m.victimGrantRo, m.victimGrantRw, r.pick([...m.victim.pages])]);
      case 3:
        return r.pick([
          m.m2pL1,
          r.pick(m.m2pFrames),
          m.victim.sharedInfoMfn,
          m.attacker.sharedInfoMfn,
          m.attacker.perdomainMfn,
          m.victim.vcpus[0].baseMfn,
          grantTableOf(m.victim)?.sharedMfn ?? 0,
        ]);
      case 4:
        return (this.target() + (r.chance(0.5) ? 1 : -1)) >>> 0;
      case 5:
        return r.pick([0, 0x100, this.hv.frames.nrFrames, this.hv.frames.nrFrames - 1, 0xfffff]);
      default:
        return r.pick([...m.core]);
    }
  }

  /** A frame the attacker may map as the entry asks: writable only if not a page table. */
  private validPte(): number {
    const r = this.r;
    const p = this.poolFrames();
    if (p.length === 0) return 0;
    const f = r.pick(p);
    const t = this.typeOf(f);
    const table =
      (t === PGT_l1_page_table || t === PGT_l2_page_table) &&
      (this.hv.frames.typeInfo[f] & PGT_count_mask) !== 0;
    return (f << 12) | (table || r.chance(0.3) ? PTE_RO : PTE_RW);
  }

  /** Flips one bit of an entry now and then (RW, PSE, PRESENT, USER and the rest). */
  private mutate(e: number, p = 0.15): number {
    if (!this.r.chance(p)) return e >>> 0;
    const bits = [_PAGE_RW, _PAGE_PSE, _PAGE_PRESENT, _PAGE_USER, 0x8, 0x10, 0x100, 0x200, 0x800];
    return (e ^ this.r.pick(bits)) >>> 0;
  }
  private pte(f: number): number {
    return this.mutate((f << 12) | (this.r.chance(0.35) ? PTE_RO : PTE_RW));
  }
  private pde(f: number): number {
    return this.mutate((f << 12) | PTE_RW, 0.2);
  }
  /** An L2 slot: mostly the driver's window, sometimes off by one at Xen's boundary. */
  private slot(): number {
    const r = this.r;
    switch (r.weighted([170, 1, 12, 12])) {
      case 0:
        return PLAY_SLOT + r.int(PLAY_SLOTS);
      case 1:
        return KERNEL_SLOT;
      case 2:
        return r.pick([1007, 1008, 1019, 1023, PLAY_SLOT - 1, PLAY_SLOT + PLAY_SLOTS]);
      default:
        return r.int(1024);
    }
  }

  // ---- emitting

  private push(kind: number, a: number[], payload: number[], desc: string): void {
    while (a.length < 7) a.push(0);
    this.queue.push({ kind, a: a.map((x) => x >>> 0), payload, desc });
  }
  private store(va: number, value: number, desc: string): void {
    this.push(OpKind.store, [va, value], [], `store ${hex(value)} at ${hex(va)} (${desc})`);
  }
  /** One hypercall on its own. */
  private call(build: (p: Payload) => Call): void {
    const p = new Payload(this.opVa);
    const c = build(p);
    this.push(OpKind.hypercall, [c.nr, ...c.args], p.words, c.desc);
  }

  // ---- hypercall builders

  private mmuUpdate(p: Payload, reqs: Array<[number, number]>, desc: string): Call {
    const list = p.put(reqs.flat());
    const done = p.reserve(1);
    return { nr: HypercallMar.mmu_update, args: [list, reqs.length, done], desc: `mmu_update ${desc}` };
  }
  private ext(cmd: number, ptr: number, arg = 0): [number, number] {
    return [((ptr & ~3) | MmuMar.EXTENDED_COMMAND) >>> 0, (cmd | (arg << 8)) >>> 0];
  }
  private uva(va: number, pte: number): Call {
    const flags = this.r.pick([0, UvmfMar.INVLPG, UvmfMar.FLUSH_TLB, UvmfMar.INVLPG]);
    return {
      nr: HypercallMar.update_va_mapping,
      args: [va, pte, flags],
      desc: `update_va_mapping(${hex(va)}, ${hex(pte)}, ${flags})`,
    };
  }

  /** Map a frame at a VA (update_va_mapping or the PTE by mmu_update). */
  private mapCall(p: Payload, va: number, pte: number): Call {
    if (this.r.chance(0.6)) return this.uva(va, pte);
    const l2 = this.r.chance(0.85) ? this.currentL2() : this.target();
    const pde = this.hv.frames.isRam(l2) ? this.hv.read32(l2 * 4096 + (va >>> 22) * 4) : 0;
    const l1 = pde & _PAGE_PRESENT ? pde >>> 12 : this.target();
    const j = l1 === this.m.kernelL1 && va >>> 22 !== KERNEL_SLOT ? this.index(l1) : (va >>> 12) & 1023;
    const ma = (l1 * 4096 + j * 4) >>> 0;
    return this.mmuUpdate(p, [[ma, pte]], `pte ${hex(ma)} = ${hex(pte)} (va ${hex(va)})`);
  }
  /** An L2 entry by mmu_update. */
  private hookCall(p: Payload): Call {
    const r = this.r;
    const l2s = this.framesOfType(PGT_l2_page_table);
    const l2 = r.chance(0.6)
      ? this.currentL2()
      : r.chance(0.8) && l2s.length > 0
        ? r.pick(l2s)
        : this.target();
    const s = this.slot();
    const l1s = this.framesOfType(PGT_l1_page_table);
    const f = r.chance(0.5) && l1s.length > 0 ? r.pick(l1s) : this.target();
    const val = r.chance(0.1) ? 0 : this.pde(f);
    const ma = (l2 * 4096 + s * 4) >>> 0;
    return this.mmuUpdate(p, [[ma, val]], `L2 ${l2}[${s}] = ${hex(val)}`);
  }
  private pinCall(p: Payload): Call {
    const r = this.r;
    const cmd = r.pick([
      MmuExtMar.PIN_L1_TABLE,
      MmuExtMar.PIN_L1_TABLE,
      MmuExtMar.PIN_L2_TABLE,
      MmuExtMar.PIN_L2_TABLE,
      MmuExtMar.UNPIN_TABLE,
    ]);
    const typed = [...this.framesOfType(PGT_l1_page_table), ...this.framesOfType(PGT_l2_page_table)];
    const f = r.chance(0.5) && typed.length > 0 ? r.pick(typed) : this.target();
    const name = Object.entries(MmuExtMar).find(([, n]) => n === cmd)?.[0];
    return this.mmuUpdate(p, [this.ext(cmd, f * 4096)], `${name} ${f}`);
  }
  private baseptrCall(p: Payload): Call {
    const f = this.l2Choice();
    return this.mmuUpdate(p, [this.ext(MmuExtMar.NEW_BASEPTR, f * 4096)], `NEW_BASEPTR ${f}`);
  }
  /**
   * An L2 to switch to: typed ones that map the executor, the boot one, anything but an L2 of
   * the attacker's that would unmap the executor (that only kills the attacker, now and then).
   */
  private l2Choice(): number {
    const r = this.r;
    const mapsExecutor = (f: number): boolean =>
      this.hv.frames.isRam(f) &&
      (this.hv.read32(f * 4096 + KERNEL_SLOT * 4) & ~0xfff) >>> 0 === (this.m.kernelL1 << 12) >>> 0;
    const l2s = this.framesOfType(PGT_l2_page_table).filter(mapsExecutor);
    switch (r.weighted([60, 30, 10])) {
      case 0:
        return l2s.length > 0 ? r.pick(l2s) : this.m.baseL2;
      case 1:
        return this.m.baseL2;
      default: {
        const f = this.target();
        const own = this.hv.frames.isRam(f) && this.hv.frames.owner[f] === this.m.attacker.id;
        return !own || mapsExecutor(f) || r.chance(0.02) ? f : this.m.baseL2;
      }
    }
  }
  private memopCall(p: Payload): Call {
    const r = this.r;
    const order = r.weighted([90, 6, 4]) === 0 ? 0 : r.pick([1, 2, 32, 0xffffffff]);
    if (r.chance(0.4)) {
      const n = 1 + r.int(2);
      const list = p.reserve(n);
      return {
        nr: HypercallMar.dom_mem_op,
        args: [MemOp.increase_reservation, list, n, order, DomId.SELF],
        desc: `increase_reservation ${n} order ${order}`,
      };
    }
    const typed = [...this.framesOfType(PGT_l1_page_table), ...this.framesOfType(PGT_l2_page_table)];
    const f =
      r.chance(0.3) && typed.length > 0 ? r.pick(typed) : r.chance(0.1) ? this.currentL2() : this.target();
    const list = p.put([f]);
    const dom = r.chance(0.9) ? DomId.SELF : r.pick([this.m.victim.id, 0, 0xffff]);
    return {
      nr: HypercallMar.dom_mem_op,
      args: [MemOp.decrease_reservation, list, 1, order, dom],
      desc: `decrease_reservation ${f} order ${order} dom ${hex(dom)}`,
    };
  }
  private grantCall(p: Payload): Call {
    const r = this.r;
    const va = r.chance(0.7) ? this.playVa() : this.poolVa(r.int(POOL_PAGES));
    const which = r.weighted([50, 30, 20]);
    if (which === 0) {
      const ref = r.pick([REF_RO, REF_RW, REF_RW, REF_RO, 0, REF_TRANSFER[0], 511, 512, 0xffff]);
      const dom = r.chance(0.85) ? this.m.victim.id : r.pick([DomId.SELF, this.m.attacker.id, 0, 0x7fff]);
      let flags = GntMap.host_map | (r.chance(0.5) ? GntMap.readonly : 0);
      if (r.chance(0.1)) flags |= GntMap.device_map;
      if (r.chance(0.05)) flags = r.int(16);
      const M = GnttabMapGrantRefMar;
      const w = new Array<number>(M.SIZE / 4).fill(0);
      w[M.host_virt_addr / 4] = va;
      w[M.dom / 4] = dom | (ref << 16);
      w[M.flags / 4] = flags;
      const uop = p.put(w);
      return {
        nr: HypercallMar.grant_table_op,
        args: [GnttabOp.map_grant_ref, uop, 1],
        desc: `grant map ref ${ref} of dom ${dom} at ${hex(va)} flags ${flags}`,
      };
    }
    if (which === 1) {
      const U = GnttabUnmapGrantRefMar;
      const w = new Array<number>(U.SIZE / 4).fill(0);
      const handle = r.chance(0.8) ? r.int(4) : r.pick([1023, 1024, 0xffff]);
      w[U.host_virt_addr / 4] = r.chance(0.9) ? va : 0;
      w[U.dev_bus_addr / 4] = r.chance(0.9) ? 0 : this.target() << 12;
      w[U.handle / 4] = handle;
      const uop = p.put(w);
      return {
        nr: HypercallMar.grant_table_op,
        args: [GnttabOp.unmap_grant_ref, uop, 1],
        desc: `grant unmap handle ${handle} at ${hex(va)}`,
      };
    }
    // MMUEXT_TRANSFER_PAGE: ref bits 7:0 in ptr bits 9:2, bits 15:8 in val bits 15:8.
    const ref = r.chance(0.9) ? r.pick(REF_TRANSFER) : r.pick([REF_RO, 0, 511, 0x1ff]);
    const f = this.target();
    const dom = r.chance(0.9) ? this.m.victim.id : r.pick([this.m.attacker.id, DomId.XEN, 0]);
    const req: [number, number] = [
      ((f << 12) | ((ref & 0xff) << 2) | MmuMar.EXTENDED_COMMAND) >>> 0,
      (MmuExtMar.TRANSFER_PAGE | (ref & 0xff00) | (dom << MMUEXT_DOMID_SHIFT)) >>> 0,
    ];
    return this.mmuUpdate(p, [req], `TRANSFER_PAGE ${f} to dom ${dom} ref ${ref}`);
  }
  private miscCall(p: Payload): Call {
    const r = this.r;
    switch (r.int(9)) {
      case 0:
        return this.mmuUpdate(p, [this.ext(MmuExtMar.TLB_FLUSH, 0)], "TLB_FLUSH");
      case 1: {
        const va = this.playVa();
        return this.mmuUpdate(p, [this.ext(MmuExtMar.INVLPG, va)], `INVLPG ${hex(va)}`);
      }
      case 2: {
        const va = r.chance(0.7) ? this.poolVa(r.int(POOL_PAGES)) : this.playVa();
        const ents = r.pick([0, 1, 16, 512, 8192]);
        return this.mmuUpdate(p, [this.ext(MmuExtMar.SET_LDT, va, ents)], `SET_LDT ${hex(va)} ${ents}`);
      }
      case 3: {
        // A foreign domain for the rest of the batch (refused unless DOMID_IO), then a write.
        const dom = r.pick([this.m.victim.id, DomId.IO, DomId.XEN, DomId.SELF]);
        const f = this.target();
        const l1s = this.framesOfType(PGT_l1_page_table);
        const l1 = l1s.length > 0 ? r.pick(l1s) : this.m.kernelL1;
        return this.mmuUpdate(
          p,
          [
            [MmuMar.EXTENDED_COMMAND, (MmuExtMar.SET_FOREIGNDOM | (dom << MMUEXT_DOMID_SHIFT)) >>> 0],
            [(l1 * 4096 + this.index(l1) * 4) >>> 0, this.pte(f)],
          ],
          `SET_FOREIGNDOM ${dom} then a PTE to ${f}`,
        );
      }
      case 4: {
        const f = this.target();
        return this.mmuUpdate(p, [this.ext(MmuExtMar.REASSIGN_PAGE, f * 4096)], `REASSIGN_PAGE ${f}`);
      }
      case 5: {
        // MMU_MACHPHYS_UPDATE: the M2P entry of a frame (only the attacker's own may change).
        const f = this.target();
        const pfn = r.int(2048);
        return this.mmuUpdate(
          p,
          [[((f << 12) | MmuMar.MACHPHYS_UPDATE) >>> 0, pfn]],
          `MACHPHYS ${f} = ${pfn}`,
        );
      }
      case 6: {
        const va = this.playVa();
        const dom = r.pick([this.m.victim.id, DomId.SELF, this.m.attacker.id, DomId.IO]);
        const pte = this.pte(this.target());
        return {
          nr: HypercallMar.update_va_mapping_otherdomain,
          args: [va, pte, UvmfMar.INVLPG, dom],
          desc: `update_va_mapping_otherdomain(${hex(va)}, ${hex(pte)}, dom ${dom})`,
        };
      }
      case 7: {
        const frames = [this.target()];
        const list = p.put(frames);
        const entries = r.pick([0, 1, 296, 512, 8192]);
        return {
          nr: HypercallMar.set_gdt,
          args: [list, entries],
          desc: `set_gdt([${frames}], ${entries})`,
        };
      }
      default: {
        const en = r.chance(0.85) ? 0 : 1;
        return {
          nr: HypercallMar.vm_assist,
          args: [en, VmAssistType.writable_pagetables],
          desc: `vm_assist(${en ? "disable" : "enable"}, writable_pagetables)`,
        };
      }
    }
  }

  // ---- templates

  private template(): void {
    const r = this.r;
    const k = r.int(POOL_PAGES);
    switch (r.weighted([10, 10, 8, 8, 6, 8, 20, 8, 8, 6, 6, 6, 8])) {
      case 0: {
        // Map something in the driver's window, or remap a pool page.
        const va = r.chance(0.8) ? this.playVa() : this.poolVa(k);
        const pte = this.pte(this.target());
        this.call((p) => this.mapCall(p, va, pte));
        break;
      }
      case 1:
        this.call((p) => this.hookCall(p));
        break;
      case 2: {
        // The pool page read-only (ready to be a page table) or writable again.
        const f = this.poolMfn(k);
        if (f < 0) break;
        const pte = r.chance(0.8) ? (f << 12) | PTE_RO : (f << 12) | PTE_RW;
        this.call((p) => this.mapCall(p, this.poolVa(k), pte));
        break;
      }
      case 3:
        this.call((p) => this.pinCall(p));
        break;
      case 4:
        this.buildL2(k);
        break;
      case 5:
        this.buildL1(k);
        break;
      case 6:
        this.ptwrStores();
        break;
      case 7: {
        const va = r.chance(0.7) ? this.playVa() : this.poolVa(k);
        if (r.chance(0.5)) this.store(va, r.next(), "touch");
        else this.push(OpKind.load, [va], [], `load ${hex(va)}`);
        break;
      }
      case 8: {
        const f = this.l2Choice();
        if (r.chance(0.6)) this.push(OpKind.cr3, [f * 4096], [], `mov ${hex(f * 4096)} to cr3`);
        else this.call((p) => this.baseptrCall(p));
        break;
      }
      case 9:
        this.call((p) => this.memopCall(p));
        break;
      case 10:
        this.call((p) => this.grantCall(p));
        break;
      case 11:
        this.call((p) => this.miscCall(p));
        break;
      default:
        this.multicall();
    }
  }

  /** A writable pool page filled as an L2 that maps the executor, made read-only, pinned. */
  private buildL2(k: number): void {
    const r = this.r;
    const va = this.poolVa(k);
    const f = this.poolMfn(k);
    if (f < 0) return;
    this.store(va + KERNEL_SLOT * 4, (this.m.kernelL1 << 12) | PTE_RW, `L2 ${f} maps the executor`);
    const l1s = this.framesOfType(PGT_l1_page_table);
    for (let i = r.int(3); i > 0; i--) {
      const s = this.slot();
      const t = l1s.length > 0 && r.chance(0.7) ? r.pick(l1s) : this.target();
      this.store(va + s * 4, this.pde(t), `L2 ${f}[${s}]`);
    }
    this.call((p) => this.mapCall(p, va, (f << 12) | PTE_RO));
    if (r.chance(0.8))
      this.call((p) => this.mmuUpdate(p, [this.ext(MmuExtMar.PIN_L2_TABLE, f * 4096)], `PIN_L2_TABLE ${f}`));
  }

  /** A writable pool page filled as an L1, made read-only, pinned or hooked. */
  private buildL1(k: number): void {
    const r = this.r;
    const va = this.poolVa(k);
    const f = this.poolMfn(k);
    if (f < 0) return;
    for (let i = 1 + r.int(4); i > 0; i--) {
      const j = r.chance(0.7) ? r.int(8) : r.int(1024);
      this.store(va + j * 4, this.pte(this.target()), `L1 ${f}[${j}]`);
    }
    this.call((p) => this.mapCall(p, va, (f << 12) | PTE_RO));
    if (r.chance(0.5))
      this.call((p) => this.mmuUpdate(p, [this.ext(MmuExtMar.PIN_L1_TABLE, f * 4096)], `PIN_L1_TABLE ${f}`));
    else {
      const l2s = this.framesOfType(PGT_l2_page_table);
      const l2 = r.chance(0.6) || l2s.length === 0 ? this.currentL2() : r.pick(l2s);
      const s = this.slot();
      this.call((p) =>
        this.mmuUpdate(p, [[(l2 * 4096 + s * 4) >>> 0, this.pde(f)]], `L2 ${l2}[${s}] = L1 ${f}`),
      );
    }
  }

  /** Plain stores into a page table through its read-only mapping: the ptwr route. */
  private ptwrStores(): void {
    const r = this.r;
    const ft = this.hv.frames;
    const l1s = this.framesOfType(PGT_l1_page_table);
    // Tables hooked at one known slot get a window; the others are emulated store by store.
    const hooked = l1s.filter((f) => (ft.typeInfo[f] & PGT_va_mask) >>> 0 < PGT_va_unknown >>> 0);
    const tables =
      hooked.length > 0 && r.chance(0.7)
        ? hooked
        : r.chance(0.85) && l1s.length > 0
          ? l1s
          : this.framesOfType(PGT_l2_page_table);
    if (tables.length === 0) return;
    const f = r.pick(tables);
    const va = this.kernelVaOf(f) || (r.chance(0.5) ? this.playVa() : 0);
    if (va === 0) return;
    for (let i = 1 + r.int(3); i > 0; i--) {
      const j = this.index(f);
      const cur = this.hv.read32(f * 4096 + j * 4);
      let value: number;
      if (r.chance(0.3) && cur & _PAGE_PRESENT) value = this.mutate(cur, 1);
      else value = r.chance(0.1) ? 0 : r.chance(0.9) ? this.validPte() : this.pte(this.target());
      this.store((va & ~0xfff) + j * 4, value, `table ${f}[${j}] was ${hex(cur)}`);
    }
    // Then maybe something that depends on the table being consistent.
    const ext = (cmd: number, name: string): void =>
      this.call((p) => this.mmuUpdate(p, [this.ext(cmd, f * 4096)], `${name} ${f} with the window open`));
    switch (r.int(10)) {
      case 0:
        this.push(OpKind.cr3, [this.l2Choice() * 4096], [], "mov to cr3 with the window open");
        break;
      case 1:
        this.call((p) => this.baseptrCall(p));
        break;
      case 2:
        ext(MmuExtMar.UNPIN_TABLE, "UNPIN_TABLE");
        break;
      case 3:
        this.call((p) => ({
          nr: HypercallMar.dom_mem_op,
          args: [MemOp.decrease_reservation, p.put([f]), 1, 0, DomId.SELF],
          desc: `decrease_reservation ${f} with the window open`,
        }));
        break;
      case 4:
        this.call((p) => this.grantCall(p));
        break;
      case 5:
        this.call((p) => this.hookCall(p));
        break;
      case 6:
        this.multicall();
        break;
      default:
    }
  }

  /** Two to four hypercalls in one multicall batch. */
  private multicall(): void {
    const r = this.r;
    const p = new Payload(this.opVa);
    const n = 2 + r.int(3);
    const E = MulticallEntryMar;
    const list = p.reserve((n * E.SIZE) / 4);
    const builders: Array<(p: Payload, k: number) => Call> = [
      (p, k) => this.mapCall(p, r.chance(0.7) ? this.playVa() : this.poolVa(k), this.pte(this.target())),
      (p) => this.hookCall(p),
      (p) => this.pinCall(p),
      (p) => this.baseptrCall(p),
      (p) => this.memopCall(p),
      (p) => this.grantCall(p),
      (_p, k) => {
        const f = this.poolMfn(k);
        return this.uva(this.poolVa(k), f < 0 ? 0 : (f << 12) | PTE_RO);
      },
    ];
    const calls: Call[] = [];
    for (let i = 0; i < n; i++) {
      const k = r.int(POOL_PAGES);
      calls.push(r.pick(builders)(p, k));
    }
    const base = (list - this.opVa - PAYLOAD_OFFSET) / 4;
    calls.forEach((c, i) => {
      p.words[base + (i * E.SIZE) / 4] = c.nr;
      c.args.forEach((x, k) => {
        p.words[base + (i * E.SIZE + E.args) / 4 + k] = x >>> 0;
      });
    });
    this.push(
      OpKind.hypercall,
      [HypercallMar.multicall, list, n],
      p.words,
      `multicall [${calls.map((c) => c.desc).join("; ")}]`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// A session: one machine, one program

export interface SessionOptions {
  /** Generate this many operations (ignored when replaying). */
  ops: number;
  seed: number;
  /** Replay these operations instead of generating. */
  replay?: readonly FuzzOp[];
  /** Called after every check with the machine (tests inject faults here). */
  tamper?: (hv: Hypervisor, index: number) => void;
}

function loadImage(path: string): Uint8Array {
  if (imageCache === null) {
    imageCache = readFileSync(path);
    POOL_VA = elfSymbol(imageCache, "pool");
  }
  return imageCache;
}

/** Runs one program on a fresh machine; the first violation stops it. */
export function runSession(imagePath: string, opts: SessionOptions): SessionResult {
  const image = loadImage(imagePath);
  const m = new Machine(image);
  const hv = m.hv;
  const rng = new Rng(opts.seed);
  const ops: FuzzOp[] = [];
  const stats = new Map<string, number>();
  const count = (k: string): void => {
    stats.set(k, (stats.get(k) ?? 0) + 1);
  };
  let gen: Generator | null = null;
  let delivered = 0;
  let executed = 0;
  let violation: Violation | null = null;
  let pending = false;
  const total = opts.replay ? opts.replay.length : opts.ops;
  const av = m.attacker.vcpus[0];

  const check = (where: string): void => {
    opts.tamper?.(hv, delivered - 1);
    if (violation !== null) return;
    const inv = checkInvariants(hv);
    const live = inv.length > 0 ? [] : m.mmuView();
    if (inv.length > 0 || live.length > 0) {
      const kind = inv.length > 0 ? "invariant" : "live mapping";
      violation = {
        index: delivered - 1,
        kind,
        message: `${where}: ${[...inv, ...live].slice(0, 4).join("; ")}`,
      };
    }
  };

  hv.afterHypercall = (v, nr) => {
    if (v !== av) return;
    const r = hv.cpu.regs;
    if (nr !== HypercallMar.xen_version || r[EBX] >>> 0 !== FUZZ_MAGIC) {
      const op = ops[delivered - 1];
      if (op !== undefined && op.kind === OpKind.hypercall)
        count(`rc ${op.a[0]} ${r[EAX] === 0 ? "ok" : "fail"}`);
      check(`after hypercall ${nr} of operation ${delivered - 1}`);
      pending = false;
      return;
    }
    // The executor's fetch: ECX = &op, EDX = operations executed, ESI = the pool.
    executed = r[EDX] >>> 0;
    if (executed !== delivered)
      throw new Error(`the executor reports ${executed} operations, ${delivered} were given`);
    if (gen === null) {
      if (r[ESI] >>> 0 !== POOL_VA)
        throw new Error(`the executor's pool is at ${hex(r[ESI])}, not ${hex(POOL_VA)}`);
      gen = new Generator(m, rng, r[ECX] >>> 0);
    }
    if (pending) check(`after operation ${delivered - 1}`);
    if (violation === null && delivered % 256 === 255) {
      const bad = m.unchanged();
      if (bad.length > 0)
        violation = {
          index: delivered - 1,
          kind: "victim or Xen memory",
          message: bad.slice(0, 4).join("; "),
        };
    }
    if (hv.ptwr.slots.some((s) => s.l1va !== 0)) count("ptwr window open");
    if (violation !== null || delivered >= total) {
      r[EAX] = 0;
      return;
    }
    const op = opts.replay ? opts.replay[delivered] : gen.next();
    const bytes = new Uint8Array(PAYLOAD_OFFSET + op.payload.length * 4);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(0, op.kind, true);
    for (let i = 0; i < op.a.length; i++) dv.setUint32(4 + i * 4, op.a[i], true);
    for (let i = 0; i < op.payload.length; i++) dv.setUint32(PAYLOAD_OFFSET + i * 4, op.payload[i], true);
    if (op.payload.length > PAYLOAD_WORDS) throw new Error("payload too large");
    if (!hv.guest.copyTo(r[ECX] >>> 0, bytes)) {
      // The executor unmapped its own operation page: the program ends here.
      count("lost its operation page");
      r[EAX] = 0;
      return;
    }
    ops.push(op);
    count(`op ${op.kind === OpKind.hypercall ? `hypercall ${op.a[0]}` : op.kind}`);
    delivered++;
    pending = op.kind !== OpKind.hypercall;
    r[EAX] = 1;
  };

  let end = "done";
  try {
    // Virtual time enough for every operation many times over: an executor whose own code the
    // program overwrote may spin or block, which is the guest's business, not a violation.
    const res = hv.run(hv.nowNs() + SESSION_NS + total * OP_NS);
    if (res.kind === "crashed") {
      end =
        res.domain === m.attacker
          ? `attacker crashed: ${res.why.split("\n")[0]}`
          : `${res.domain.name} crashed`;
      if (/internal error|fault inside the hypervisor/.test(res.why))
        violation ??= {
          index: delivered - 1,
          kind: "internal error",
          message: `${res.domain.name} crashed: ${res.why.split("\n")[0]}`,
        };
      else if (res.domain !== m.attacker)
        violation ??= {
          index: delivered - 1,
          kind: "machine",
          message: `${res.domain.name} crashed: ${res.why.split("\n")[0]}`,
        };
    } else if (res.kind === "time-limit" || res.kind === "idle") {
      end = `attacker ${res.kind === "idle" ? "blocked" : "ran out of time"}`;
    } else if (res.kind === "shutdown" && res.domain !== m.attacker) {
      violation ??= { index: delivered - 1, kind: "machine", message: `${res.domain.name} shut down` };
    }
  } catch (e) {
    violation ??= {
      index: delivered - 1,
      kind: "internal error",
      message: `exception out of the hypervisor: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`,
    };
  }
  if (violation === null && m.victim.state !== DomainState.Running)
    violation = { index: delivered - 1, kind: "machine", message: "the victim is no longer running" };
  if (violation === null) {
    const bad = m.unchanged();
    if (bad.length > 0)
      violation = {
        index: delivered - 1,
        kind: "victim or Xen memory",
        message: `at the end: ${bad.slice(0, 4).join("; ")}`,
      };
  }
  if (violation === null) {
    const bad = checkInvariants(hv);
    if (bad.length > 0)
      violation = {
        index: delivered - 1,
        kind: "invariant",
        message: `at the end: ${bad.slice(0, 4).join("; ")}`,
      };
  }
  count(end === "done" ? "session done" : end.replace(/0x[0-9a-f]+|[0-9]+/g, "N"));
  return { ops, executed: delivered, violation, end, stats };
}

// ---------------------------------------------------------------------------------------------
// Shrinking

/**
 * Delta debugging (ddmin) over the operations: the smallest subsequence found that still
 * shows a violation on a fresh machine, within a budget of replays.
 */
export function shrink(
  imagePath: string,
  ops: readonly FuzzOp[],
  budget = 600,
  tamper?: SessionOptions["tamper"],
  deadlineMs = 600_000,
): { ops: FuzzOp[]; violation: Violation; replays: number } {
  let replays = 0;
  const stop = Date.now() + deadlineMs;
  const run = (cand: readonly FuzzOp[]): Violation | null => {
    replays++;
    return runSession(imagePath, { ops: 0, seed: 0, replay: cand, tamper }).violation;
  };
  let cur = [...ops];
  let v = run(cur);
  if (v === null) throw new Error("the violation does not reproduce on a fresh machine");
  const kind = v.kind;
  // A candidate counts only if it shows the same kind of violation.
  const fails = (cand: readonly FuzzOp[]): Violation | null => {
    const cv = run(cand);
    return cv !== null && cv.kind === kind ? cv : null;
  };
  cur = cur.slice(0, v.index + 1);
  let n = 2;
  const more = (): boolean => replays < budget && Date.now() < stop;
  while (cur.length >= 2 && more()) {
    const chunk = Math.ceil(cur.length / n);
    let reduced = false;
    for (let i = 0; i < cur.length && more(); i += chunk) {
      const cand = [...cur.slice(0, i), ...cur.slice(i + chunk)];
      const cv = fails(cand);
      if (cv !== null) {
        cur = cand.slice(0, cv.index + 1);
        v = cv;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= cur.length) break;
      n = Math.min(cur.length, n * 2);
    }
  }
  return { ops: cur, violation: v, replays };
}

// ---------------------------------------------------------------------------------------------
// A run: sessions until the calls are made

export interface RunOptions {
  calls: number;
  seed: number;
  /** Operations per machine before a fresh one (default 4000). */
  sessionOps?: number;
  /** Only this session of the run (to reproduce one). */
  session?: number;
  log?: (line: string) => void;
  tamper?: SessionOptions["tamper"];
  shrinkBudget?: number;
  /** Log each violation and go on with the next machine, without shrinking. */
  keepGoing?: boolean;
  /** Called after every machine with the calls made so far. */
  progress?: (calls: number, sessions: number) => void;
}

export interface RunReport {
  calls: number;
  sessions: number;
  /** Sessions that showed a violation (more than one only with keepGoing). */
  found: number;
  stats: Map<string, number>;
  violation: null | {
    seed: number;
    session: number;
    sessionSeed: number;
    violation: Violation;
    /** The shrunk sequence and what it shows. */
    minimal: FuzzOp[];
    minimalViolation: Violation;
  };
}

export function runFuzz(imagePath: string, o: RunOptions): RunReport {
  const per = o.sessionOps ?? 4000;
  const stats = new Map<string, number>();
  let found = 0;
  let calls = 0;
  let sessions = 0;
  for (let k = o.session ?? 0; calls < o.calls; k++) {
    const seed = sessionSeed(o.seed, k);
    const res = runSession(imagePath, { ops: Math.min(per, o.calls - calls), seed, tamper: o.tamper });
    sessions++;
    calls += res.executed;
    for (const [key, n] of res.stats) stats.set(key, (stats.get(key) ?? 0) + n);
    o.progress?.(calls, sessions);
    if (res.violation !== null) {
      o.log?.(
        `violation in session ${k} (seed ${o.seed}, session seed ${seed}) after operation ${res.violation.index}:`,
      );
      o.log?.(`  ${res.violation.message}`);
      found++;
      if (o.keepGoing) {
        if (res.executed === 0) throw new Error(`session ${k} made no calls (${res.end})`);
        continue;
      }
      o.log?.(`shrinking ${res.violation.index + 1} operations...`);
      const s = shrink(imagePath, res.ops, o.shrinkBudget, o.tamper);
      return {
        calls,
        sessions,
        stats,
        found,
        violation: {
          seed: o.seed,
          session: k,
          sessionSeed: seed,
          violation: res.violation,
          minimal: s.ops,
          minimalViolation: s.violation,
        },
      };
    }
    if (o.session !== undefined) break;
    if (res.executed === 0) throw new Error(`session ${k} made no calls (${res.end})`);
  }
  return { calls, sessions, stats, found, violation: null };
}

/** The sequence as lines to print. */
export function formatOps(ops: readonly FuzzOp[]): string[] {
  return ops.map((op, i) => `  ${String(i).padStart(3)}: ${op.desc}`);
}
