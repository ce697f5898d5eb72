/**
 * Test helper: writes small ELF32 i386 executables in memory (for the ELF reader and domain
 * builder tests), plus a gcc-built fixture guest and a seeded PRNG.
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface WSegment {
  type?: number;
  /** PF_* bits; default R|W|X. */
  flags?: number;
  vaddr: number;
  /** Default vaddr. */
  paddr?: number;
  data: Uint8Array;
  /** Default data.length. */
  memsz?: number;
}

export interface WSection {
  name: string;
  type?: number;
  data: Uint8Array;
}

export interface WElf {
  entry: number;
  segments: WSegment[];
  /** Extra sections (e.g. __xen_guest). */
  sections?: WSection[];
  /** Convenience: adds a `__xen_guest` section holding this string plus a NUL. */
  xenGuest?: string;
  type?: number;
  machine?: number;
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Build an ELF32 LE executable: ehdr, phdrs, segment data, section data, shstrtab, shdrs. */
export function writeElf32(w: WElf): Uint8Array {
  const sections: { name: string; type: number; off: number; size: number; addr: number; flags: number }[] =
    [];
  const extra = [...(w.sections ?? [])];
  if (w.xenGuest !== undefined) extra.push({ name: "__xen_guest", data: ascii(`${w.xenGuest}\0`) });
  const chunks: { off: number; data: Uint8Array }[] = [];
  let off = 52 + 32 * w.segments.length;
  const align = (a: number): void => {
    off = Math.ceil(off / a) * a;
  };
  const segOffs: number[] = [];
  w.segments.forEach((s, i) => {
    align(16);
    segOffs.push(off);
    chunks.push({ off, data: s.data });
    sections.push({ name: `.seg${i}`, type: 1, off, size: s.data.length, addr: s.vaddr, flags: 7 });
    off += s.data.length;
  });
  for (const x of extra) {
    chunks.push({ off, data: x.data });
    sections.push({ name: x.name, type: x.type ?? 1, off, size: x.data.length, addr: 0, flags: 0 });
    off += x.data.length;
  }
  // shstrtab
  let strtab = "\0";
  const nameOffs: number[] = [];
  for (const s of sections) {
    nameOffs.push(strtab.length);
    strtab += `${s.name}\0`;
  }
  const shstrName = strtab.length;
  strtab += ".shstrtab\0";
  const strBytes = ascii(strtab);
  const strOff = off;
  chunks.push({ off, data: strBytes });
  off += strBytes.length;
  align(4);
  const shoff = off;
  const shnum = sections.length + 2;
  off += shnum * 40;
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0);
  dv.setUint16(16, w.type ?? 2, true);
  dv.setUint16(18, w.machine ?? 3, true);
  dv.setUint32(20, 1, true);
  dv.setUint32(24, w.entry, true);
  dv.setUint32(28, 52, true);
  dv.setUint32(32, shoff, true);
  dv.setUint16(40, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, w.segments.length, true);
  dv.setUint16(46, 40, true);
  dv.setUint16(48, shnum, true);
  dv.setUint16(50, shnum - 1, true);
  w.segments.forEach((s, i) => {
    const o = 52 + 32 * i;
    dv.setUint32(o, s.type ?? 1, true);
    dv.setUint32(o + 4, segOffs[i]!, true);
    dv.setUint32(o + 8, s.vaddr, true);
    dv.setUint32(o + 12, s.paddr ?? s.vaddr, true);
    dv.setUint32(o + 16, s.data.length, true);
    dv.setUint32(o + 20, s.memsz ?? s.data.length, true);
    dv.setUint32(o + 24, s.flags ?? 7, true);
    dv.setUint32(o + 28, 16, true);
  });
  for (const c of chunks) out.set(c.data, c.off);
  sections.forEach((s, i) => {
    const o = shoff + 40 * (i + 1);
    dv.setUint32(o, nameOffs[i]!, true);
    dv.setUint32(o + 4, s.type, true);
    dv.setUint32(o + 8, s.flags, true);
    dv.setUint32(o + 12, s.addr, true);
    dv.setUint32(o + 16, s.off, true);
    dv.setUint32(o + 20, s.size, true);
    dv.setUint32(o + 32, 1, true);
  });
  const o = shoff + 40 * (shnum - 1);
  dv.setUint32(o, shstrName, true);
  dv.setUint32(o + 4, 3, true);
  dv.setUint32(o + 16, strOff, true);
  dv.setUint32(o + 20, strBytes.length, true);
  dv.setUint32(o + 32, 1, true);
  return out;
}

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let cached: Uint8Array | null | undefined;

/**
 * test/fixtures/xen_guest_min.c compiled with gcc -m32 at 0xC0000000, or null if no suitable
 * gcc is available (tests using it are then skipped).
 */
export function gccFixtureGuest(): Uint8Array | null {
  if (cached !== undefined) return cached;
  const src = fileURLToPath(new URL("../../../test/fixtures/xen_guest_min.c", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "tsxen-elf-"));
  const out = join(dir, "guest.elf");
  try {
    execFileSync(
      "gcc",
      [
        "-m32",
        "-ffreestanding",
        "-nostdlib",
        "-static",
        "-fno-pic",
        "-no-pie",
        "-O1",
        "-fno-asynchronous-unwind-tables",
        "-Wl,-N",
        "-Wl,-Ttext=0xC0000000",
        "-Wl,--build-id=none",
        "-o",
        out,
        src,
      ],
      { stdio: "pipe" },
    );
    cached = new Uint8Array(readFileSync(out));
  } catch {
    cached = null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return cached;
}
