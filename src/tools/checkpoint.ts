/**
 * Exact in-process checkpoints of a running machine: everything reachable from some roots (the
 * hypervisor, its CPU and clock, domains, frame table, event channels, grant tables, timers,
 * scheduler, console rings, the toolstack's session) is recorded field by field, and restoring
 * puts every one of those objects back as it was, in place. Objects keep their identity, so the
 * machine frame numbers, the clock and every reference held from outside (the debugger's) stay
 * valid, and running on from a restored checkpoint is the same run as running on from where it
 * was taken. (The save image of save.ts is another thing: one domain, canonical frame numbers,
 * restored into a new machine.)
 *
 * Memory is the bulk: every typed array's bytes are kept per ArrayBuffer, and a large buffer
 * (machine memory, the TLB) in pages shared with the previous checkpoint where unchanged, so a
 * checkpoint costs its changed pages and a compare of the rest. Functions are kept as
 * references (their closures are not state the machine keeps: the hypervisor's host callbacks);
 * a caller with state in a closure hands it over as an extra root. Module side tables
 * (WeakMaps keyed by a hypervisor or domain) are reached through `more`.
 * Imports nothing of Node.js.
 */
import { Domain } from "../xen/domain.js";
import { domainIdState } from "../xen/domain_ctl.js";
import { grantTableOf } from "../xen/grant_table.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import { controlRegistry } from "./control_if.js";
import { bootedDom0, Dom0 } from "./dom0.js";

/** Buffers at least this large are kept in pages shared between checkpoints. */
const PAGED_MIN = 64 * 1024;
const PAGE = 4096;

export interface CheckpointOptions {
  /** Fields neither saved nor restored, per object: caches their owner keeps consistent, host hooks. */
  skip?: ReadonlyMap<object, ReadonlySet<string>>;
  /** Objects reached only through module side tables (WeakMaps keyed by o). */
  more?: (o: object) => readonly object[];
}

type FieldRecord =
  | {
      kind: "object";
      o: Record<string, unknown>;
      /** Its own fields, then the accessors of its class (state kept in #private fields). */
      keys: string[];
      own: number;
      /** Object.keys(o).length when taken, skipped fields included (a skipped name may be an accessor). */
      count: number;
      vals: unknown[];
      skip: ReadonlySet<string> | undefined;
    }
  | { kind: "array"; o: unknown[]; vals: unknown[] }
  | { kind: "map"; o: Map<unknown, unknown>; flat: unknown[] }
  | { kind: "set"; o: Set<unknown>; vals: unknown[] };

interface BufferRecord {
  buffer: ArrayBufferLike;
  start: number;
  end: number;
  /** Small buffers: a copy of [start, end). */
  copy: Uint8Array | null;
  /** Large ones: the pages of [start, end), each shared with older checkpoints when equal. */
  pages: Uint8Array[] | null;
}

export class Checkpoint {
  constructor(
    readonly fields: readonly FieldRecord[],
    readonly buffers: readonly BufferRecord[],
    /** Bytes this checkpoint holds that the one it was taken after does not (new pages, copies, fields). */
    readonly ownBytes: number,
    /** Of those, the fields' (8 bytes a value). */
    readonly fieldBytes: number,
  ) {}
}

const ZERO_PAGE = new Uint8Array(PAGE);

const accessorCache = new WeakMap<object, string[]>();

/**
 * The get/set accessor pairs of o's class and its bases: a class keeps state in #private
 * fields behind them, which no walk can see, so they are recorded through the getter and
 * restored through the setter.
 */
function accessorsOf(o: object): string[] {
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === null || proto === Object.prototype) return [];
  let names = accessorCache.get(proto);
  if (names === undefined) {
    names = [];
    for (let p: object | null = proto; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(p)))
        if (d.get !== undefined && d.set !== undefined && !names.includes(k)) names.push(k);
    }
    accessorCache.set(proto, names);
  }
  return names;
}

interface NodeBuffer extends Uint8Array {
  compare(target: Uint8Array, targetStart: number, targetEnd: number, start: number, end: number): number;
}
/** Node's Buffer where there is one: its compare is a memcmp, quicker than a loop over bytes. */
const nodeBuffer = (
  globalThis as { Buffer?: { from(b: ArrayBufferLike, off: number, n: number): NodeBuffer } }
).Buffer;

/** Compares pages of one buffer with pages kept elsewhere. */
class PageComparer {
  private readonly fast: NodeBuffer | undefined;
  constructor(readonly bytes: Uint8Array) {
    this.fast = nodeBuffer?.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Whether page p of the buffer holds the bytes of page. */
  same(p: number, page: Uint8Array): boolean {
    const off = p * PAGE;
    if (this.fast !== undefined) return this.fast.compare(page, 0, PAGE, off, off + PAGE) === 0;
    for (let i = 0; i < PAGE; i++) if (this.bytes[off + i] !== page[i]) return false;
    return true;
  }
}

/**
 * Records everything reachable from roots. prev: the checkpoint before (its unchanged pages
 * are shared, not copied).
 */
export function captureCheckpoint(
  roots: readonly object[],
  opts: CheckpointOptions = {},
  prev: Checkpoint | null = null,
): Checkpoint {
  const seen = new Set<object>();
  const fields: FieldRecord[] = [];
  const ranges = new Map<ArrayBufferLike, { start: number; end: number }>();
  const stack: unknown[] = [...roots];
  let fieldBytes = 0;
  const push = (v: unknown): void => {
    if (typeof v === "object" && v !== null && !seen.has(v)) stack.push(v);
  };
  while (stack.length > 0) {
    const o = stack.pop() as object;
    if (seen.has(o)) continue;
    seen.add(o);
    if (ArrayBuffer.isView(o)) {
      // A view is fixed; its bytes are its buffer's, recorded once per buffer over every view.
      const r = ranges.get(o.buffer);
      const end = o.byteOffset + o.byteLength;
      if (r === undefined) ranges.set(o.buffer, { start: o.byteOffset, end });
      else {
        r.start = Math.min(r.start, o.byteOffset);
        r.end = Math.max(r.end, end);
      }
      continue;
    }
    if (o instanceof Map) {
      const flat: unknown[] = [];
      for (const [k, v] of o) {
        flat.push(k, v);
        push(k);
        push(v);
      }
      fields.push({ kind: "map", o, flat });
      fieldBytes += flat.length * 8;
    } else if (o instanceof Set) {
      const vals = [...o];
      for (const v of vals) push(v);
      fields.push({ kind: "set", o, vals });
      fieldBytes += vals.length * 8;
    } else if (Array.isArray(o)) {
      const vals = o.slice();
      for (const v of vals) push(v);
      if (!Object.isFrozen(o)) fields.push({ kind: "array", o, vals });
      fieldBytes += vals.length * 8;
    } else if (o instanceof ArrayBuffer || o instanceof Promise || o instanceof WeakMap) {
      // Reached directly, not through a view: nothing a machine keeps there.
    } else {
      const skip = opts.skip?.get(o);
      const kept = (k: string): boolean => skip === undefined || !skip.has(k);
      const all = Object.keys(o);
      const own = all.filter(kept);
      const keys = [...own, ...accessorsOf(o).filter(kept)];
      const rec = o as Record<string, unknown>;
      const vals = keys.map((k) => rec[k]);
      for (const v of vals) push(v);
      if (!Object.isFrozen(o))
        fields.push({ kind: "object", o: rec, keys, own: own.length, count: all.length, vals, skip });
      fieldBytes += vals.length * 8;
    }
    if (opts.more !== undefined) for (const x of opts.more(o)) push(x);
  }
  const prevBuffers = new Map(prev?.buffers.map((b) => [b.buffer, b]) ?? []);
  const buffers: BufferRecord[] = [];
  let ownBytes = fieldBytes;
  for (const [buffer, { start, end }] of ranges) {
    const bytes = new Uint8Array(buffer, start, end - start);
    if (bytes.length < PAGED_MIN || bytes.length % PAGE !== 0) {
      buffers.push({ buffer, start, end, copy: bytes.slice(), pages: null });
      ownBytes += bytes.length;
      continue;
    }
    const old = prevBuffers.get(buffer);
    const oldPages = old?.pages !== null && old?.start === start && old.end === end ? old.pages : null;
    const pages: Uint8Array[] = new Array(bytes.length / PAGE);
    const fresh: number[] = [];
    const cmp = new PageComparer(bytes);
    for (let i = 0; i < pages.length; i++) {
      const was = oldPages?.[i];
      if (was !== undefined && cmp.same(i, was)) pages[i] = was;
      else if (cmp.same(i, ZERO_PAGE)) pages[i] = ZERO_PAGE;
      else fresh.push(i);
    }
    // The changed pages in one allocation.
    const store = new Uint8Array(fresh.length * PAGE);
    fresh.forEach((p, j) => {
      store.set(bytes.subarray(p * PAGE, (p + 1) * PAGE), j * PAGE);
      pages[p] = store.subarray(j * PAGE, (j + 1) * PAGE);
    });
    ownBytes += store.length + pages.length * 8;
    buffers.push({ buffer, start, end, copy: null, pages });
  }
  return new Checkpoint(fields, buffers, ownBytes, fieldBytes);
}

/**
 * Puts every recorded object and buffer back as it was. pageRestored(buffer, offset) is told
 * of each page of a large buffer whose bytes changed (the CPU drops what it decoded there).
 */
export function restoreCheckpoint(
  cp: Checkpoint,
  pageRestored: (buffer: ArrayBufferLike, offset: number) => void = () => {},
): void {
  for (const b of cp.buffers) {
    const bytes = new Uint8Array(b.buffer, b.start, b.end - b.start);
    if (b.copy !== null) {
      bytes.set(b.copy);
      continue;
    }
    const pages = b.pages ?? [];
    const cmp = new PageComparer(bytes);
    for (let i = 0; i < pages.length; i++) {
      if (cmp.same(i, pages[i])) continue;
      bytes.set(pages[i], i * PAGE);
      pageRestored(b.buffer, b.start + i * PAGE);
    }
  }
  for (const f of cp.fields) {
    switch (f.kind) {
      case "object": {
        const o = f.o;
        if (Object.keys(o).length !== f.count) {
          // A field added since (a lazily made one): gone again, as it was.
          const kept = new Set(f.keys.slice(0, f.own));
          for (const k of Object.keys(o)) if (!kept.has(k) && !f.skip?.has(k)) delete o[k];
        }
        for (let i = 0; i < f.keys.length; i++) if (o[f.keys[i]] !== f.vals[i]) o[f.keys[i]] = f.vals[i];
        break;
      }
      case "array":
        f.o.length = 0;
        for (const v of f.vals) f.o.push(v);
        break;
      case "map":
        f.o.clear();
        for (let i = 0; i < f.flat.length; i += 2) f.o.set(f.flat[i], f.flat[i + 1]);
        break;
      case "set":
        f.o.clear();
        for (const v of f.vals) f.o.add(v);
        break;
    }
  }
}

// ------------------------------------------------------------------ a machine's checkpoints

/** One checkpoint of a machine, at an instruction boundary, with its owner's cursor. */
export interface MachinePoint<T> {
  retired: number;
  ns: number;
  checkpoint: Checkpoint;
  extra: T;
  /** Host time the capture took, ms. */
  ms: number;
}

/** How the hypervisor's objects are recorded: its CPU's caches and the debugger's hooks are not. */
function machineOptions(hv: Hypervisor): CheckpointOptions {
  return {
    skip: new Map<object, ReadonlySet<string>>([
      // Decoded instructions follow memory (restore drops those of each page it changes).
      // fetchPage is a view of the fetch window, which restore drops.
      [hv.cpu, new Set(["dc", "codePage", "hostDebug", "fetchPage"])],
      [hv, new Set(["debugHook"])],
    ]),
    more: (o) => {
      const out: object[] = [];
      if (o === hv) {
        const ids = domainIdState(hv);
        const dom0 = bootedDom0(hv);
        if (ids !== undefined) out.push(ids);
        if (dom0 !== undefined) out.push(dom0);
      } else if (o instanceof Domain) {
        const gt = grantTableOf(o);
        if (gt !== undefined) out.push(gt);
      } else if (o instanceof Dom0) {
        const r = controlRegistry(o);
        if (r !== undefined) out.push(r);
      }
      return out;
    },
  };
}

/**
 * A machine's checkpoints along one run: taken every `every` instructions, at most `keep` of
 * them (when there are more, one is dropped where they are densest for their age, so recent
 * ones stay close together and old ones thin out; the first, the boot, stays).
 */
export class MachineCheckpoints<T> {
  readonly points: MachinePoint<T>[] = [];

  constructor(
    readonly every: number,
    readonly keep: number,
  ) {
    if (!(every > 0) || !Number.isInteger(keep) || keep < 2)
      throw new RangeError("checkpoints need a positive interval and room for two");
  }

  /** The last checkpoint at or before position retired. */
  nearest(retired: number): MachinePoint<T> | undefined {
    let best: MachinePoint<T> | undefined;
    for (const p of this.points) if (p.retired <= retired) best = p;
    return best;
  }

  /** Whether one is due at the machine's position (none within `every` before it). */
  due(hv: Hypervisor): boolean {
    const p = this.nearest(hv.cpu.retiredTotal);
    return p === undefined || hv.cpu.retiredTotal - p.retired >= this.every;
  }

  /** Records the machine (everything reachable from roots and hv) as it is now. */
  take(hv: Hypervisor, roots: readonly object[], extra: T): MachinePoint<T> {
    const t0 = performance.now();
    const retired = hv.cpu.retiredTotal;
    const prev = this.nearest(retired);
    const checkpoint = captureCheckpoint([hv, ...roots], machineOptions(hv), prev?.checkpoint ?? null);
    const point = { retired, ns: hv.nowNs(), checkpoint, extra, ms: performance.now() - t0 };
    const at = this.points.findIndex((p) => p.retired >= retired);
    if (at < 0) this.points.push(point);
    else this.points.splice(at, this.points[at].retired === retired ? 1 : 0, point);
    this.thin(retired);
    return point;
  }

  private thin(now: number): void {
    const ps = this.points;
    while (ps.length > this.keep) {
      let drop = 1;
      let best = Number.POSITIVE_INFINITY;
      for (let i = 1; i < ps.length - 1; i++) {
        const score = (ps[i + 1].retired - ps[i - 1].retired) / (Math.abs(now - ps[i].retired) + 1);
        if (score < best) {
          best = score;
          drop = i;
        }
      }
      ps.splice(drop, 1);
    }
  }

  /** Puts the machine back as it was at p. */
  restore(hv: Hypervisor, p: MachinePoint<T>): void {
    const cpu = hv.cpu;
    const memory = cpu.mem8.buffer;
    restoreCheckpoint(p.checkpoint, (buffer, offset) => {
      if (buffer === memory) cpu.invalidateCode(offset, PAGE);
    });
    cpu.dropFetch();
    // Fields were put back without their setters, which keep the scheduler's deadline cache.
    hv.sched.changed();
  }

  /** Drops the checkpoints after position retired (the run goes another way from there). */
  dropAfter(retired: number): void {
    const keep = this.points.filter((p) => p.retired <= retired);
    this.points.splice(0, this.points.length, ...keep);
  }

  /** Bytes held by all the checkpoints: pages shared between them counted once. */
  get bytes(): number {
    const pages = new Set<Uint8Array>();
    let n = 0;
    for (const p of this.points) {
      n += p.checkpoint.fieldBytes;
      for (const b of p.checkpoint.buffers) {
        if (b.copy !== null) n += b.copy.length;
        for (const page of b.pages ?? []) if (page !== ZERO_PAGE) pages.add(page);
      }
    }
    return n + pages.size * PAGE;
  }
}
