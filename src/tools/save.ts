/**
 * Save and restore of a domain (xm save / xm restore), after xc_linux_save/xc_linux_restore.
 *
 * A PV guest's memory holds machine frame numbers: in its page tables, in its p2m list
 * (start_info.mfn_list) and in start_info.shared_info. Saving canonicalises them (MFN -> PFN,
 * via the M2P table); restoring allocates new frames and rewrites them (PFN -> new MFN), then
 * re-validates the page tables through the page-type rules by pinning them again (L1s, then
 * L2s) and taking the base pointer, so a corrupt image can never install an unchecked mapping.
 *
 * The guest is not asked to cooperate: the toolstack pauses it and saves it as it stands
 * (every register including the FPU, callbacks, trap table, GDT and LDT, event channels,
 * timers, shared_info). A guest must keep machine frame numbers only where the toolstack can
 * find them (page tables, the p2m list, start_info), as Linux does after its suspend handshake.
 *
 * The image: "TSXENSAV", u32 version, u32 header length, a JSON header, the pages in
 * ascending PFN order, and a SHA-256 of all that. Restore refuses any image whose length or
 * digest is wrong before touching the hypervisor.
 */
import { createHash } from "node:crypto";
import { type FileHandle, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CpuContext } from "../cpu/context.js";
import { _PAGE_PRESENT } from "../public/arch_x86_32.js";
import { SharedInfo } from "../public/xen.js";
import { abiByName } from "../xen/abi.js";
import { setGdt } from "../xen/descriptor_tables.js";
import { type Domain, DomainState, type Vcpu } from "../xen/domain.js";
import {
  ECS_FREE,
  ECS_INTERDOMAIN,
  ECS_IPI,
  ECS_PIRQ,
  ECS_RESERVED,
  ECS_UNBOUND,
  ECS_VIRQ,
} from "../xen/event_channel.js";
import { PGT_l1_page_table, PGT_l2_page_table, PGT_pinned, PGT_type_mask } from "../xen/frame_table.js";
import { grantTableOf } from "../xen/grant_table.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import { ptwrFlushAll } from "../xen/ptwr.js";
import type { DomainConfig } from "./config.js";

const MAGIC = "TSXENSAV";
const VERSION = 1;
const PAGE = 4096;
/** L2 slots the guest owns; Xen's own slots (1008 on) are rebuilt by validation. */
const GUEST_L2_SLOTS = 1008;
/** Canonical frame numbers for frames that are not the guest's pages. */
const PFN_SHARED_INFO = 0xffffe;
const PFN_UNKNOWN = 0xfffff;
/**
 * The grant table's shared frames: PFN_GRANT_TABLE + index. XenLinux maps them in its fixmap
 * (gnttab_init) and keeps them mapped while it runs, as it does shared_info.
 */
const PFN_GRANT_TABLE = 0xffff0;
const GRANT_FRAMES_MAX = PFN_SHARED_INFO - PFN_GRANT_TABLE;
const M2P_MAX_PFN = 1 << 20;

/** Everything but the pages. */
export interface ImageHeader {
  name: string;
  config: DomainConfig;
  abi: string;
  /** System time at save, ns (timers are kept relative to it). */
  savedAtNs: number;
  maxPages: number;
  /** PFNs present, ascending; page k of the body is pfns[k]. */
  pfns: number[];
  l1: number[];
  l2: number[];
  pinned: number[];
  sharedInfo: string;
  /** The grant table's shared frames, concatenated (absent from images made before them). */
  grantTable?: string;
  startInfoVa: number;
  startInfoPfn: number;
  /** The page of shared_info's arch.pfn_to_mfn_frame_list (PFNs in the image); -1: none. */
  frameListPfn?: number;
  /** PFN of each page of the p2m list, the byte offset of entry 0 in the first, entries. */
  p2mPfns: number[];
  p2mOffset: number;
  p2mEntries: number;
  vcpus: SavedVcpu[];
  evtchn: { size: number; state: number[]; a: number[]; b: number[] };
  domain: Record<string, unknown>;
  console: string;
}

interface SavedVcpu {
  fields: Record<string, unknown>;
  context: Record<string, unknown>;
  fpu: Record<string, unknown>;
  basePfn: number;
  /** Per-domain GDT PTEs that map the guest's own frames: [index, pfn, flags]. */
  gdt: [number, number, number][];
  timerRemainingNs: number;
  blocked: boolean;
}

/** A bad image or a domain that cannot be saved, said plainly. */
export class SaveError extends Error {
  override name = "SaveError";
}

// ------------------------------------------------------------------ field snapshots

/** Fields the save handles itself (machine frames, scheduler state, references). */
const VCPU_SKIP = new Set([
  "domain",
  "id",
  "context",
  "baseMfn",
  "timerDeadline",
  "blocked",
  "processor",
  "avt",
  "evt",
  "sleepTick",
  "shadowLdtMapCount",
]);

function snapshot(obj: object, skip: ReadonlySet<string> = new Set()): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(obj)) {
    if (skip.has(k)) continue;
    if (typeof val === "number" || typeof val === "boolean") out[k] = val;
    else if (ArrayBuffer.isView(val) && !(val instanceof DataView)) {
      out[k] = { $bytes: Buffer.from(val.buffer, val.byteOffset, val.byteLength).toString("base64") };
    }
  }
  return out;
}

function applySnapshot(obj: object, rec: Record<string, unknown>): void {
  const target = obj as Record<string, unknown>;
  for (const [k, val] of Object.entries(rec)) {
    const cur = target[k];
    if (
      (typeof cur === "number" && typeof val === "number") ||
      (typeof cur === "boolean" && typeof val === "boolean")
    ) {
      target[k] = val;
    } else if (ArrayBuffer.isView(cur) && val !== null && typeof val === "object" && "$bytes" in val) {
      const bytes = Buffer.from(String((val as { $bytes: string }).$bytes), "base64");
      const view = new Uint8Array(cur.buffer, cur.byteOffset, cur.byteLength);
      if (bytes.length !== view.length)
        throw new SaveError(`image field ${k} has ${bytes.length} bytes, expected ${view.length}`);
      view.set(bytes);
    }
  }
}

// ------------------------------------------------------------------ machine frames

function readM2p(hv: Hypervisor, mfn: number): number {
  const l1 = hv.m2pL1Frame();
  const pte = hv.read32(l1 * PAGE + (mfn >>> 10) * 4);
  if ((pte & _PAGE_PRESENT) === 0) return -1;
  return hv.read32((pte >>> 12) * PAGE + (mfn & 1023) * 4);
}

/** Walks the vcpu's page tables: the machine frame mapping va, or -1. */
function translate(hv: Hypervisor, baseMfn: number, va: number): number {
  const pde = hv.read32(baseMfn * PAGE + (va >>> 22) * 4);
  if ((pde & _PAGE_PRESENT) === 0) return -1;
  const pte = hv.read32((pde >>> 12) * PAGE + ((va >>> 12) & 1023) * 4);
  if ((pte & _PAGE_PRESENT) === 0) return -1;
  return pte >>> 12;
}

// ------------------------------------------------------------------ save

/**
 * Captures a paused domain into an image (synchronously: nothing runs meanwhile). The domain
 * is left as it was; the caller destroys it once the image is safely on disk.
 */
export function captureDomain(
  hv: Hypervisor,
  d: Domain,
  config: DomainConfig,
  startInfoVa: number,
  consoleHistory: Uint8Array,
): Uint8Array {
  if (d.privileged)
    throw new SaveError(`domain ${d.name} is privileged; only unprivileged domains can be saved`);
  // The image records the revision; start_info's layout follows it (abi.md §2.6).
  const StartInfo = d.abi.startInfo;
  if (d.state !== DomainState.Running && !(d.state === DomainState.Shutdown && d.shutdownCode === 2)) {
    throw new SaveError(`domain ${d.name} has stopped; only a running (or suspended) domain can be saved`);
  }
  ptwrFlushAll(hv, d);
  for (const v of d.vcpus) if (hv.current === v && v.context) v.context.save(hv.cpu);
  const ft = hv.frames;
  const mem = hv.mem.bytes;
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);

  // The pseudo-physical number of each of the domain's frames, from the M2P table.
  const mfnToPfn = new Map<number, number>();
  const usedPfns = new Set<number>();
  for (const mfn of d.pages) {
    const pfn = readM2p(hv, mfn);
    if (pfn < 0 || pfn >= M2P_MAX_PFN || usedPfns.has(pfn)) {
      throw new SaveError(
        `frame ${mfn} of domain ${d.name} has no pseudo-physical number of its own (M2P says ${pfn}); the guest's M2P entries are inconsistent`,
      );
    }
    mfnToPfn.set(mfn, pfn);
    usedPfns.add(pfn);
  }
  const grantMfns = grantTableOf(d)?.sharedMfns ?? [];
  const canon = (mfn: number, strict: boolean, where: string): number => {
    if (mfn === d.sharedInfoMfn) return PFN_SHARED_INFO;
    const g = grantMfns.indexOf(mfn);
    if (g >= 0 && g < GRANT_FRAMES_MAX) return PFN_GRANT_TABLE + g;
    const pfn = mfnToPfn.get(mfn);
    if (pfn !== undefined) return pfn;
    if (strict)
      throw new SaveError(
        `cannot save ${d.name}: ${where} maps machine frame ${mfn}, which is not the domain's`,
      );
    return PFN_UNKNOWN;
  };

  const pfns = [...usedPfns].sort((a, b) => a - b);
  const pfnIndex = new Map<number, number>();
  for (const [k, pfn] of pfns.entries()) pfnIndex.set(pfn, k);
  const pfnToMfn = new Map<number, number>();
  for (const [mfn, pfn] of mfnToPfn) pfnToMfn.set(pfn, mfn);
  const l1: number[] = [];
  const l2: number[] = [];
  const pinned: number[] = [];
  const body = new Uint8Array(pfns.length * PAGE);
  const bodyView = new DataView(body.buffer);
  pfns.forEach((pfn, k) => {
    const mfn = pfnToMfn.get(pfn) as number;
    body.set(mem.subarray(mfn * PAGE, (mfn + 1) * PAGE), k * PAGE);
    const ti = ft.typeInfo[mfn];
    const type = ti & PGT_type_mask;
    if (type !== PGT_l1_page_table && type !== PGT_l2_page_table) return;
    (type === PGT_l1_page_table ? l1 : l2).push(pfn);
    if (ti & PGT_pinned) pinned.push(pfn);
    // A table with type references is in use and must translate exactly; a stale one
    // keeps what translates and loses the rest (it must be rewritten before reuse anyway).
    const live = (ti & 0x1ffff) !== 0 || (ti & PGT_pinned) !== 0;
    const slots = type === PGT_l1_page_table ? 1024 : GUEST_L2_SLOTS;
    for (let i = 0; i < 1024; i++) {
      const off = k * PAGE + i * 4;
      const e = bodyView.getUint32(off, true);
      if (i >= slots) {
        bodyView.setUint32(off, 0, true);
        continue;
      }
      if ((e & _PAGE_PRESENT) === 0) continue;
      const c = canon(e >>> 12, live, `the page table at pfn ${pfn} (entry ${i})`);
      const flags = c === PFN_UNKNOWN ? e & 0xfff & ~_PAGE_PRESENT : e & 0xfff;
      bodyView.setUint32(off, ((c << 12) | flags) >>> 0, true);
    }
  });

  const v0 = d.vcpus[0];
  const base = v0.baseMfn;
  // start_info and the p2m list: their machine frames become PFNs.
  // A guest that publishes its p2m list in shared_info (arch.pfn_to_mfn_frame_list, as
  // XenLinux does once it has copied start_info and freed the builder's list) is saved by
  // that list, as xc_linux_save did; start_info's page may hold anything by then.
  const frameListMfn = view.getUint32(d.sharedInfoMfn * PAGE + SharedInfo.pfn_to_mfn_frame_list, true);
  const frameListPfn = frameListMfn === 0 ? -1 : (mfnToPfn.get(frameListMfn) ?? -1);
  const siMfn = frameListPfn >= 0 ? -1 : translate(hv, base, startInfoVa);
  const startInfoPfn = siMfn < 0 ? -1 : (mfnToPfn.get(siMfn) ?? -1);
  let p2mPfns: number[] = [];
  let p2mOffset = 0;
  let p2mEntries = 0;
  if (frameListPfn >= 0) {
    const flOff = (pfnIndex.get(frameListPfn) as number) * PAGE;
    for (let j = 0; j < PAGE / 4 && p2mPfns.length * 1024 < d.maxPages; j++) {
      const pfn = mfnToPfn.get(bodyView.getUint32(flOff + j * 4, true));
      if (pfn === undefined) break;
      p2mPfns.push(pfn);
      bodyView.setUint32(flOff + j * 4, pfn, true);
    }
    p2mEntries = Math.min(p2mPfns.length * 1024, d.maxPages);
  } else if (startInfoPfn >= 0) {
    const siOff = (pfnIndex.get(startInfoPfn) as number) * PAGE + (startInfoVa & 0xfff);
    const siMa = siMfn * PAGE + (startInfoVa & 0xfff);
    bodyView.setUint32(siOff + StartInfo.shared_info, PFN_SHARED_INFO * PAGE, true);
    const listVa = view.getUint32(siMa + StartInfo.mfn_list, true);
    p2mEntries = view.getUint32(siMa + StartInfo.nr_pages, true);
    p2mOffset = listVa & 0xfff;
    const nPages = Math.ceil((p2mOffset + p2mEntries * 4) / PAGE);
    for (let i = 0; i < nPages; i++) {
      const mfn = translate(hv, base, (listVa & ~0xfff) + i * PAGE);
      const pfn = mfn < 0 ? undefined : mfnToPfn.get(mfn);
      if (pfn === undefined)
        throw new SaveError(`cannot save ${d.name}: its p2m list (start_info.mfn_list) is not mapped`);
      p2mPfns.push(pfn);
    }
  } else {
    p2mPfns = [];
  }
  forEachP2mEntry(p2mPfns, p2mOffset, p2mEntries, (pfn, off) => {
    const at = (pfnIndex.get(pfn) as number) * PAGE + off;
    const e = bodyView.getUint32(at, true);
    const c = mfnToPfn.get(e) ?? PFN_UNKNOWN;
    bodyView.setUint32(at, c, true);
  });

  const vcpus: SavedVcpu[] = d.vcpus.map((v) => saveVcpu(hv, v, mfnToPfn, canon));
  const t = d.evtchn;
  const header: ImageHeader = {
    name: config.name,
    config,
    abi: d.abi.name,
    savedAtNs: hv.nowNs(),
    maxPages: d.maxPages,
    pfns,
    l1,
    l2,
    pinned,
    sharedInfo: Buffer.from(mem.subarray(d.sharedInfoMfn * PAGE, (d.sharedInfoMfn + 1) * PAGE)).toString(
      "base64",
    ),
    grantTable: Buffer.concat(grantMfns.map((m) => mem.subarray(m * PAGE, (m + 1) * PAGE))).toString(
      "base64",
    ),
    startInfoVa,
    startInfoPfn,
    frameListPfn,
    p2mPfns,
    p2mOffset,
    p2mEntries,
    vcpus,
    evtchn: {
      size: t.size,
      state: [...t.state.subarray(0, t.size)],
      a: [...t.a.subarray(0, t.size)],
      b: [...t.b.subarray(0, t.size)],
    },
    domain: { vmAssist: d.vmAssist, bvt: { ...d.bvt } },
    console: Buffer.from(consoleHistory).toString("base64"),
  };
  return encodeImage(header, body);
}

function forEachP2mEntry(
  pages: number[],
  offset: number,
  entries: number,
  fn: (pfn: number, byteOffset: number) => void,
): void {
  for (let i = 0; i < entries; i++) {
    const at = offset + i * 4;
    fn(pages[Math.floor(at / PAGE)], at % PAGE);
  }
}

function saveVcpu(
  hv: Hypervisor,
  v: Vcpu,
  mfnToPfn: Map<number, number>,
  canon: (mfn: number, strict: boolean, where: string) => number,
): SavedVcpu {
  const ctx = v.context ?? new CpuContext();
  const d = v.domain;
  const gdt: [number, number, number][] = [];
  for (let i = 0; i < 16; i++) {
    const pte = hv.read32(d.perdomainMfn * PAGE + (v.id * 32 + i) * 4);
    if ((pte & _PAGE_PRESENT) === 0) continue;
    const pfn = mfnToPfn.get(pte >>> 12);
    if (pfn !== undefined) gdt.push([i, pfn, pte & 0xfff]);
  }
  const now = hv.nowNs();
  return {
    fields: snapshot(v, VCPU_SKIP),
    context: snapshot(ctx, new Set(["fpu", "cr3"])),
    fpu: snapshot(ctx.fpu),
    basePfn: v.baseMfn === 0 ? -1 : canon(v.baseMfn, true, "the base page table"),
    gdt,
    timerRemainingNs: v.timerDeadline < 0 ? -1 : Math.max(0, v.timerDeadline - now),
    blocked: v.blocked,
  };
}

/** The image of a header and its page body: framing, JSON header, pages, SHA-256. */
export function encodeImage(header: ImageHeader, body: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const head = Buffer.alloc(16);
  head.write(MAGIC, 0, "latin1");
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  const out = new Uint8Array(16 + json.length + body.length + 32);
  out.set(head, 0);
  out.set(json, 16);
  out.set(body, 16 + json.length);
  const digest = createHash("sha256")
    .update(out.subarray(0, out.length - 32))
    .digest();
  out.set(digest, out.length - 32);
  return out;
}

// ------------------------------------------------------------------ decode

/** Checks an image's framing and digest and returns its header and page body. */
export function decodeImage(bytes: Uint8Array): { header: ImageHeader; body: Uint8Array } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 16 || buf.toString("latin1", 0, 8) !== MAGIC)
    throw new SaveError("this is not a tsxen save image (no TSXENSAV signature)");
  const version = buf.readUInt32LE(8);
  if (version !== VERSION)
    throw new SaveError(
      `save image version ${version} is not supported (this tsxen reads version ${VERSION})`,
    );
  const jsonLen = buf.readUInt32LE(12);
  if (16 + jsonLen + 32 > buf.length)
    throw new SaveError(
      `the save image is truncated (${buf.length} bytes; its header alone needs ${16 + jsonLen + 32})`,
    );
  let header: ImageHeader;
  try {
    header = JSON.parse(buf.toString("utf8", 16, 16 + jsonLen)) as ImageHeader;
  } catch {
    throw new SaveError("the save image's header is damaged");
  }
  if (!Array.isArray(header.pfns)) throw new SaveError("the save image's header is damaged (no page list)");
  const want = 16 + jsonLen + header.pfns.length * PAGE + 32;
  if (buf.length !== want) {
    throw new SaveError(
      buf.length < want
        ? `the save image is truncated: ${buf.length} of ${want} bytes (${Math.floor((buf.length - 16 - jsonLen) / PAGE)} of ${header.pfns.length} pages)`
        : `the save image has ${buf.length - want} bytes of trailing garbage`,
    );
  }
  const digest = createHash("sha256")
    .update(buf.subarray(0, buf.length - 32))
    .digest();
  if (!digest.equals(buf.subarray(buf.length - 32)))
    throw new SaveError("the save image is corrupt (its SHA-256 does not match)");
  return { header, body: bytes.subarray(16 + jsonLen, buf.length - 32) };
}

// ------------------------------------------------------------------ restore

/**
 * Builds a new domain from an image and leaves it running where it stopped. On any failure
 * the half-built domain is handed to `discard` and a SaveError thrown.
 */
export function restoreDomain(
  hv: Hypervisor,
  bytes: Uint8Array,
  discard: (d: Domain) => void,
): { domain: Domain; header: ImageHeader } {
  const { header, body } = decodeImage(bytes);
  const h = header;
  const n = h.pfns.length;
  for (let k = 0; k < n; k++) {
    if (
      !Number.isInteger(h.pfns[k]) ||
      h.pfns[k] < 0 ||
      h.pfns[k] >= M2P_MAX_PFN ||
      (k > 0 && h.pfns[k] <= h.pfns[k - 1])
    ) {
      throw new SaveError("the save image's page list is damaged");
    }
  }
  const abi = abiByName(String(h.abi));
  if (abi === null)
    throw new SaveError(`the save image's interface revision ${JSON.stringify(h.abi)} is unknown`);
  if (n > hv.mem.freeFrames - 8)
    throw new SaveError(
      `not enough free memory: the image needs ${(n * 4) >> 10} MiB, ${(hv.mem.freeFrames * 4) >> 10} MiB are free`,
    );
  let d: Domain;
  try {
    d = hv.createDomain(h.name, n, false, abi.name);
  } catch (e) {
    throw new SaveError(`cannot create the domain: ${(e as Error).message}`);
  }
  try {
    fillDomain(hv, d, h, body);
  } catch (e) {
    discard(d);
    throw e instanceof SaveError ? e : new SaveError(`cannot restore: ${(e as Error).message}`);
  }
  return { domain: d, header: h };
}

function fillDomain(hv: Hypervisor, d: Domain, h: ImageHeader, body: Uint8Array): void {
  const mem = hv.mem.bytes;
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const frames = [...d.pages];
  const pfnToMfn = new Map<number, number>();
  for (const [k, pfn] of h.pfns.entries()) pfnToMfn.set(pfn, frames[k]);
  const grantMfns = grantTableOf(d)?.sharedMfns ?? [];
  const uncanon = (pfn: number, where: string): number => {
    if (pfn === PFN_SHARED_INFO) return d.sharedInfoMfn;
    if (pfn >= PFN_GRANT_TABLE && pfn - PFN_GRANT_TABLE < grantMfns.length)
      return grantMfns[pfn - PFN_GRANT_TABLE];
    const mfn = pfnToMfn.get(pfn);
    if (mfn === undefined)
      throw new SaveError(
        `the save image is inconsistent: ${where} refers to pfn ${pfn}, which it does not contain`,
      );
    return mfn;
  };
  d.maxPages = Math.max(h.maxPages, n(h));
  h.pfns.forEach((pfn, k) => {
    const mfn = frames[k];
    mem.set(body.subarray(k * PAGE, (k + 1) * PAGE), mfn * PAGE);
    hv.setM2p(mfn, pfn);
  });
  const tables = new Set([...h.l1, ...h.l2]);
  for (const pfn of tables) {
    const mfn = uncanon(pfn, "the page-table list");
    for (let i = 0; i < 1024; i++) {
      const ma = mfn * PAGE + i * 4;
      const e = view.getUint32(ma, true);
      if ((e & _PAGE_PRESENT) === 0) continue;
      view.setUint32(
        ma,
        ((uncanon(e >>> 12, `the page table at pfn ${pfn}`) << 12) | (e & 0xfff)) >>> 0,
        true,
      );
    }
  }
  if (h.startInfoPfn >= 0) {
    const siMa = uncanon(h.startInfoPfn, "start_info") * PAGE + (h.startInfoVa & 0xfff);
    view.setUint32(siMa + d.abi.startInfo.shared_info, d.sharedInfoMfn * PAGE, true);
  }
  forEachP2mEntry(h.p2mPfns, h.p2mOffset, h.p2mEntries, (pfn, off) => {
    const ma = uncanon(pfn, "the p2m list") * PAGE + off;
    const e = view.getUint32(ma, true);
    view.setUint32(ma, e === PFN_UNKNOWN ? 0xffffffff : (pfnToMfn.get(e) ?? 0xffffffff), true);
  });
  const frameListMfn =
    h.frameListPfn !== undefined && h.frameListPfn >= 0 ? uncanon(h.frameListPfn, "the p2m frame list") : -1;
  if (frameListMfn >= 0) {
    if (h.p2mPfns.length > PAGE / 4) throw new SaveError("the save image's p2m frame list is damaged");
    for (let j = 0; j < h.p2mPfns.length; j++)
      view.setUint32(frameListMfn * PAGE + j * 4, uncanon(h.p2mPfns[j], "the p2m list"), true);
  }
  const si = Buffer.from(h.sharedInfo, "base64");
  if (si.length !== PAGE) throw new SaveError("the save image's shared_info page is damaged");
  if (h.grantTable !== undefined) {
    const gt = Buffer.from(h.grantTable, "base64");
    if (gt.length !== grantMfns.length * PAGE)
      throw new SaveError("the save image's grant table does not fit this domain's revision");
    grantMfns.forEach((m, i) => void mem.set(gt.subarray(i * PAGE, (i + 1) * PAGE), m * PAGE));
  }
  mem.set(si, d.sharedInfoMfn * PAGE);
  if (frameListMfn >= 0)
    view.setUint32(d.sharedInfoMfn * PAGE + SharedInfo.pfn_to_mfn_frame_list, frameListMfn, true);
  hv.cpu.invalidateCode(0, mem.length);
  hv.cpu.flushTlb();

  // Page types, through the same rules as the guest's own MMUEXT_PIN_*: L1s first, then L2s.
  const pinned = new Set(h.pinned);
  for (const [list, type, what] of [
    [h.l1, PGT_l1_page_table, "L1"],
    [h.l2, PGT_l2_page_table, "L2"],
  ] as const) {
    for (const pfn of list) {
      if (!pinned.has(pfn)) continue;
      if (!hv.mm.pin(uncanon(pfn, "the pin list"), d.id, type)) {
        throw new SaveError(
          `the ${what} page table at pfn ${pfn} does not validate; the image is not a consistent domain`,
        );
      }
    }
  }

  if (h.vcpus.length !== d.vcpus.length)
    throw new SaveError(`the image has ${h.vcpus.length} vcpus; this domain has ${d.vcpus.length}`);
  const now = hv.nowNs();
  h.vcpus.forEach((sv, i) => {
    const v = d.vcpus[i];
    applySnapshot(v, sv.fields);
    const ctx = new CpuContext();
    applySnapshot(ctx, sv.context);
    applySnapshot(ctx.fpu, sv.fpu);
    if (sv.basePfn >= 0) {
      const base = uncanon(sv.basePfn, "the base page table");
      if (!hv.mm.getPageAndType(base, d.id, PGT_l2_page_table))
        throw new SaveError(`the base page table (pfn ${sv.basePfn}) does not validate`);
      v.baseMfn = base;
      ctx.cr3 = base * PAGE;
    }
    // Through set_gdt's own path: at the March interface Xen's reserved descriptors live in
    // the guest's frame 0, so the saved frame holds DPL-0 entries that only set_gdt may replace.
    const gdtMfns: number[] = [];
    for (const [idx, pfn] of sv.gdt) {
      if (idx !== gdtMfns.length) throw new SaveError("the save image's GDT list is damaged");
      gdtMfns.push(uncanon(pfn, "the GDT"));
    }
    if (gdtMfns.length > 0 && setGdt(hv, v, gdtMfns) !== 0)
      throw new SaveError(`the GDT frames at pfns ${sv.gdt.map((g) => g[1]).join(", ")} do not validate`);
    v.context = ctx;
    v.timerDeadline = sv.timerRemainingNs < 0 ? -1 : now + sv.timerRemainingNs;
    v.blocked = sv.blocked;
    v.shadowLdtMapCount = 0;
  });

  // Event channels: a peer in another domain is gone, so interdomain ports become unbound
  // towards it (as when the peer closes); physical IRQs were not the domain's to keep.
  const t = d.evtchn;
  const e = h.evtchn;
  if (!Number.isInteger(e.size) || e.size < 1 || e.size > t.state.length)
    throw new SaveError("the save image's event channels are damaged");
  t.size = e.size;
  for (let port = 0; port < e.size; port++) {
    let state = e.state[port];
    const ok = [ECS_FREE, ECS_RESERVED, ECS_UNBOUND, ECS_INTERDOMAIN, ECS_PIRQ, ECS_VIRQ, ECS_IPI].includes(
      state,
    );
    if (!ok) throw new SaveError(`the save image's event channel ${port} is damaged`);
    let b = e.b[port] | 0;
    if (state === ECS_INTERDOMAIN) {
      state = ECS_UNBOUND;
      b = 0;
    }
    if (state === ECS_PIRQ) state = ECS_FREE;
    t.state[port] = state;
    t.a[port] = state === ECS_FREE ? 0 : e.a[port] | 0;
    t.b[port] = b;
  }
  const dom = h.domain as { vmAssist?: number; bvt?: Record<string, unknown> };
  if (typeof dom.vmAssist === "number") d.vmAssist = dom.vmAssist;
  if (dom.bvt) applySnapshot(d.bvt, dom.bvt);
  // The shared_info page carries the pending events; the time in it is refreshed on the
  // first schedule. A domain saved while suspended resumes from its shutdown hypercall.
  void SharedInfo;
  // Every vcpu has its context: the domain is built, as a successful SETDOMAININFO would mark
  // it (DF_CONSTRUCTED), so DOM0_UNPAUSEDOMAIN accepts it after a pause.
  d.constructed = true;
  hv.unpauseDomain(d);
}

function n(h: ImageHeader): number {
  return h.pfns.length;
}

// ------------------------------------------------------------------ files

/** The temporary name of an image being written to path (hidden, beside it). */
const TMP_NAME = /^\..+\.tmp-(\d+)-\d+$/;
let tmpSeq = 0;

/** fsync of a directory, so a rename or unlink in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes an image atomically: to a temporary file beside the target, synced, renamed over it,
 * and the directory synced, so a crash mid-save never leaves a partial image under the
 * target's name. A failed write removes its temporary file. With a journal directory (the
 * daemon's state directory), the temporary file's path is noted there first, so that if the
 * process is killed mid-write cleanImageLeftovers at its next start removes it.
 */
export async function writeImageFile(
  path: string,
  bytes: Uint8Array,
  progress: (done: number, total: number) => void,
  journal?: string,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Date.now()}${tmpSeq}`);
  const note = journal === undefined ? undefined : join(journal, `${process.pid}-${tmpSeq}`);
  tmpSeq++;
  if (note !== undefined) await writeSynced(note, tmp);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, "wx", 0o600);
    const CHUNK = 1 << 20;
    for (let off = 0; off < bytes.length; off += CHUNK) {
      const part = bytes.subarray(off, Math.min(bytes.length, off + CHUNK));
      await fh.write(part, 0, part.length, off);
      progress(off + part.length, bytes.length);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
    await syncDir(dir);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  } finally {
    if (note !== undefined) await unlink(note).catch(() => {});
  }
}

async function writeSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, "w", 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDir(dirname(path));
}

/**
 * Removes the temporary image files that a killed writer left (noted in journal by
 * writeImageFile), skipping those of a process still alive. Returns the files removed.
 */
export async function cleanImageLeftovers(journal: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(journal).catch(() => [] as string[])) {
    const pid = Number(/^(\d+)-\d+$/.exec(entry)?.[1] ?? Number.NaN);
    // A live writer's file (this process's too: another daemon in it may be writing).
    if (Number.isNaN(pid) || processAlive(pid)) continue;
    const tmp = await readFile(join(journal, entry), "utf8").catch(() => "");
    // Only ever a temporary image's name: the journal must not be a way to delete anything else.
    if (TMP_NAME.test(basename(tmp))) {
      const gone = await unlink(tmp).then(
        () => true,
        () => false,
      );
      if (gone) removed.push(tmp);
    }
    await unlink(join(journal, entry)).catch(() => {});
  }
  return removed;
}

/** A process with this id exists (signal 0 reaches it, or it is another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/** Reads an image file in chunks, reporting progress. */
export async function readImageFile(
  path: string,
  progress: (done: number, total: number) => void,
): Promise<Uint8Array> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    const out = new Uint8Array(size);
    const CHUNK = 1 << 20;
    for (let off = 0; off < size; ) {
      const { bytesRead } = await fh.read(out, off, Math.min(CHUNK, size - off), off);
      if (bytesRead === 0) break;
      off += bytesRead;
      progress(off, size);
    }
    return out;
  } finally {
    await fh.close();
  }
}
