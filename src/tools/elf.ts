/**
 * ELF32 reader for Xen PV guest kernels, and the `__xen_guest` loader-string parser.
 *
 * `parseElf32` validates everything it reads (header, program headers, section headers, the
 * section-name string table) against the image bounds, and throws `ElfError` — never anything
 * else — naming the first problem it finds. `parseXenKernel` adds the rules of Xen's loader
 * (abi.md §4.1): a `__xen_guest` section with XEN_VER=3.0 and LOADER=generic (or
 * GUEST_OS=linux), a kernel range taken from the loadable segments' p_paddr, an entry point
 * inside it and a page-aligned v_start (VIRT_BASE, default the lowest p_paddr).
 */

import { HYPERVISOR_VIRT_START, PAGE_SIZE } from "../public/arch_x86_32.js";
import {
  XEN_GUEST_LOADER_GENERIC,
  XEN_GUEST_OS_LINUX,
  XEN_GUEST_REQUIRED_XEN_VER,
  XEN_GUEST_SECTION,
  XenGuestKey,
} from "../public/xen.js";

/** Any problem with an ELF image or its `__xen_guest` string. */
export class ElfError extends Error {
  override name = "ElfError";
}

// ELF format constants (the ELF specification, not Xen's ABI).
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const;
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;
const ELFCLASS32 = 1;
const ELFDATA2LSB = 1;
const EV_CURRENT = 1;
export const ET_EXEC = 2;
export const EM_386 = 3;
export const ELF32_EHDR_SIZE = 52;
export const ELF32_PHDR_SIZE = 32;
export const ELF32_SHDR_SIZE = 40;
export const PT_LOAD = 1;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
export const SHT_NULL = 0;
export const SHT_STRTAB = 3;
export const SHT_NOBITS = 8;
const SHN_UNDEF = 0;
const SHN_LORESERVE = 0xff00;
const PN_XNUM = 0xffff;
const U32_LIMIT = 0x1_0000_0000;

export interface Elf32Header {
  readonly type: number;
  readonly machine: number;
  readonly version: number;
  readonly entry: number;
  readonly phoff: number;
  readonly shoff: number;
  readonly flags: number;
  readonly ehsize: number;
  readonly phentsize: number;
  readonly phnum: number;
  readonly shentsize: number;
  readonly shnum: number;
  readonly shstrndx: number;
}

export interface Elf32Segment {
  /** Index in the program header table. */
  readonly index: number;
  readonly type: number;
  readonly offset: number;
  readonly vaddr: number;
  readonly paddr: number;
  readonly filesz: number;
  readonly memsz: number;
  readonly flags: number;
  readonly align: number;
}

export interface Elf32Section {
  /** Index in the section header table. */
  readonly index: number;
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly info: number;
  readonly addralign: number;
  readonly entsize: number;
}

export interface Elf32Image {
  readonly bytes: Uint8Array;
  readonly header: Elf32Header;
  readonly segments: readonly Elf32Segment[];
  /** Empty when the image has no section header table. */
  readonly sections: readonly Elf32Section[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Bytes [start, end) as a Latin-1 string (ELF names and the loader string are ASCII). */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** Parse and validate an ELF32 little-endian i386 executable. Throws `ElfError` on any problem. */
export function parseElf32(bytes: Uint8Array): Elf32Image {
  if (!(bytes instanceof Uint8Array)) throw new ElfError("ELF image is not a byte array");
  const size = bytes.length;
  if (size < ELF32_EHDR_SIZE) {
    throw new ElfError(`ELF image too small for an ELF header (${size} bytes, need ${ELF32_EHDR_SIZE})`);
  }
  for (let i = 0; i < ELF_MAGIC.length; i++) {
    if (bytes[i] !== ELF_MAGIC[i]) throw new ElfError("not an ELF image (bad magic: expected 7f 45 4c 46)");
  }
  if (bytes[EI_CLASS] !== ELFCLASS32) {
    throw new ElfError(`ELF image is not 32-bit (EI_CLASS ${bytes[EI_CLASS]}, need ELFCLASS32 = 1)`);
  }
  if (bytes[EI_DATA] !== ELFDATA2LSB) {
    throw new ElfError(`ELF image is not little-endian (EI_DATA ${bytes[EI_DATA]}, need ELFDATA2LSB = 1)`);
  }
  if (bytes[EI_VERSION] !== EV_CURRENT) {
    throw new ElfError(`ELF identification version ${bytes[EI_VERSION]} is not EV_CURRENT (1)`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number): number => dv.getUint16(o, true);
  const u32 = (o: number): number => dv.getUint32(o, true);
  const header: Elf32Header = {
    type: u16(16),
    machine: u16(18),
    version: u32(20),
    entry: u32(24),
    phoff: u32(28),
    shoff: u32(32),
    flags: u32(36),
    ehsize: u16(40),
    phentsize: u16(42),
    phnum: u16(44),
    shentsize: u16(46),
    shnum: u16(48),
    shstrndx: u16(50),
  };
  if (header.type !== ET_EXEC) {
    throw new ElfError(`ELF image is not an executable (e_type ${header.type}, need ET_EXEC = ${ET_EXEC})`);
  }
  if (header.machine !== EM_386) {
    throw new ElfError(`ELF image is not for i386 (e_machine ${header.machine}, need EM_386 = ${EM_386})`);
  }
  if (header.version !== EV_CURRENT) {
    throw new ElfError(`ELF e_version ${header.version} is not EV_CURRENT (1)`);
  }
  if (header.ehsize !== ELF32_EHDR_SIZE) {
    throw new ElfError(`ELF header size e_ehsize ${header.ehsize} is not ${ELF32_EHDR_SIZE}`);
  }

  // Program headers.
  if (header.phnum === 0) throw new ElfError("ELF image has no program headers (e_phnum 0)");
  if (header.phnum === PN_XNUM) {
    throw new ElfError("ELF extended program header numbering (e_phnum 0xffff) is not supported");
  }
  if (header.phentsize !== ELF32_PHDR_SIZE) {
    throw new ElfError(`ELF program header size e_phentsize ${header.phentsize} is not ${ELF32_PHDR_SIZE}`);
  }
  const phEnd = header.phoff + header.phnum * ELF32_PHDR_SIZE;
  if (phEnd > size) {
    throw new ElfError(
      `ELF program header table ${hex(header.phoff)}..${hex(phEnd)} extends beyond end of image (size ${hex(size)})`,
    );
  }
  const segments: Elf32Segment[] = [];
  for (let i = 0; i < header.phnum; i++) {
    const o = header.phoff + i * ELF32_PHDR_SIZE;
    const seg: Elf32Segment = {
      index: i,
      type: u32(o),
      offset: u32(o + 4),
      vaddr: u32(o + 8),
      paddr: u32(o + 12),
      filesz: u32(o + 16),
      memsz: u32(o + 20),
      flags: u32(o + 24),
      align: u32(o + 28),
    };
    if (seg.type === PT_LOAD) {
      const what = `ELF program header ${i}`;
      if (seg.offset + seg.filesz > size) {
        throw new ElfError(
          `${what}: file range ${hex(seg.offset)}..${hex(seg.offset + seg.filesz)} beyond end of image (size ${hex(size)})`,
        );
      }
      if (seg.filesz > seg.memsz) {
        throw new ElfError(`${what}: p_filesz ${hex(seg.filesz)} exceeds p_memsz ${hex(seg.memsz)}`);
      }
      if (seg.paddr + seg.memsz > U32_LIMIT) {
        throw new ElfError(
          `${what}: p_paddr ${hex(seg.paddr)} + p_memsz ${hex(seg.memsz)} wraps past the 4 GiB address space`,
        );
      }
      if (seg.vaddr + seg.memsz > U32_LIMIT) {
        throw new ElfError(
          `${what}: p_vaddr ${hex(seg.vaddr)} + p_memsz ${hex(seg.memsz)} wraps past the 4 GiB address space`,
        );
      }
    }
    segments.push(seg);
  }

  // Section headers (optional).
  const sections: Elf32Section[] = [];
  if (header.shnum !== 0) {
    if (header.shnum >= SHN_LORESERVE) {
      throw new ElfError(`ELF section count e_shnum ${hex(header.shnum)} is in the reserved range`);
    }
    if (header.shentsize !== ELF32_SHDR_SIZE) {
      throw new ElfError(`ELF section header size e_shentsize ${header.shentsize} is not ${ELF32_SHDR_SIZE}`);
    }
    const shEnd = header.shoff + header.shnum * ELF32_SHDR_SIZE;
    if (shEnd > size) {
      throw new ElfError(
        `ELF section header table ${hex(header.shoff)}..${hex(shEnd)} extends beyond end of image (size ${hex(size)})`,
      );
    }
    if (header.shstrndx === SHN_UNDEF) {
      throw new ElfError("ELF image has no section-header string table (e_shstrndx is SHN_UNDEF)");
    }
    if (header.shstrndx >= header.shnum) {
      throw new ElfError(
        `ELF section-header string table index e_shstrndx ${header.shstrndx} is not below e_shnum ${header.shnum}`,
      );
    }
    const raw: { name: number; o: number }[] = [];
    for (let i = 0; i < header.shnum; i++) {
      const o = header.shoff + i * ELF32_SHDR_SIZE;
      raw.push({ name: u32(o), o });
    }
    const strHdr = header.shoff + header.shstrndx * ELF32_SHDR_SIZE;
    const strType = u32(strHdr + 4);
    const strOff = u32(strHdr + 16);
    const strSize = u32(strHdr + 20);
    if (strType !== SHT_STRTAB) {
      throw new ElfError(
        `ELF section-header string table (section ${header.shstrndx}) has type ${strType}, not SHT_STRTAB`,
      );
    }
    if (strOff + strSize > size) {
      throw new ElfError(
        `ELF section-header string table ${hex(strOff)}..${hex(strOff + strSize)} beyond end of image (size ${hex(size)})`,
      );
    }
    for (let i = 0; i < header.shnum; i++) {
      const { name: nameOff, o } = raw[i]!;
      const sec = {
        index: i,
        name: "",
        type: u32(o + 4),
        flags: u32(o + 8),
        addr: u32(o + 12),
        offset: u32(o + 16),
        size: u32(o + 20),
        link: u32(o + 24),
        info: u32(o + 28),
        addralign: u32(o + 32),
        entsize: u32(o + 36),
      };
      if (sec.type !== SHT_NULL) {
        if (nameOff >= strSize) {
          throw new ElfError(
            `ELF section ${i}: name offset ${hex(nameOff)} beyond the string table (size ${hex(strSize)})`,
          );
        }
        const nul = bytes.indexOf(0, strOff + nameOff);
        if (nul < 0 || nul >= strOff + strSize) {
          throw new ElfError(
            `ELF section ${i}: name at offset ${hex(nameOff)} is not NUL-terminated in the string table`,
          );
        }
        sec.name = latin1(bytes, strOff + nameOff, nul);
        if (sec.type !== SHT_NOBITS && sec.offset + sec.size > size) {
          throw new ElfError(
            `ELF section ${i} (${sec.name}): file range ${hex(sec.offset)}..${hex(sec.offset + sec.size)} beyond end of image (size ${hex(size)})`,
          );
        }
      }
      sections.push(sec);
    }
  }
  return { bytes, header, segments, sections };
}

/** The first section with this name, or undefined. */
export function findSection(elf: Elf32Image, name: string): Elf32Section | undefined {
  return elf.sections.find((s) => s.name === name);
}

/** A section's bytes in the file (bounds were checked by parseElf32). */
export function sectionBytes(elf: Elf32Image, sec: Elf32Section): Uint8Array {
  if (sec.type === SHT_NOBITS || sec.type === SHT_NULL) return new Uint8Array(0);
  return elf.bytes.subarray(sec.offset, sec.offset + sec.size);
}

/**
 * The contents of the first `__xen_guest` section up to its first NUL (or its end), or
 * undefined if the image has no such section.
 */
export function readXenGuestString(elf: Elf32Image): string | undefined {
  const sec = findSection(elf, XEN_GUEST_SECTION);
  if (sec === undefined) return undefined;
  if (sec.type === SHT_NOBITS)
    throw new ElfError(`ELF section ${sec.index} (${XEN_GUEST_SECTION}) has no file contents (SHT_NOBITS)`);
  const b = sectionBytes(elf, sec);
  const nul = b.indexOf(0);
  return latin1(b, 0, nul < 0 ? b.length : nul);
}

// ---------------------------------------------------------------------------------------------
// __xen_guest (abi.md §4.1)

export interface XenGuestInfo {
  /** The string as found in the image. */
  readonly raw: string;
  /** Every item in order of first appearance; flag items (no `=`) map to undefined. */
  readonly entries: ReadonlyMap<string, string | undefined>;
  readonly xenVer: string;
  readonly loader: string | undefined;
  readonly guestOs: string | undefined;
  readonly guestVer: string | undefined;
  /** VIRT_BASE, if given: overrides v_start. */
  readonly virtBase: number | undefined;
  readonly bsdSymtab: boolean;
  readonly ptModeWritable: boolean;
}

/** Parse an unsigned number the way strtoul(s, &end, 0) does, but demanding the whole string. */
function parseCNumber(s: string): number | undefined {
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (/^0[0-7]*$/.test(s)) v = s.length === 1 ? 0 : Number.parseInt(s.slice(1), 8);
  else if (/^[1-9][0-9]*$/.test(s)) v = Number.parseInt(s, 10);
  else return undefined;
  return Number.isSafeInteger(v) && v < U32_LIMIT ? v : undefined;
}

/**
 * Parse a `__xen_guest` string: comma-separated `KEY=VALUE` or `FLAG` items. Requires
 * XEN_VER=3.0 and LOADER=generic or GUEST_OS=linux, as Xen's loaders do; parses VIRT_BASE.
 * A repeated key keeps its first value (Xen searches with strstr). Throws `ElfError`.
 */
export function parseXenGuest(raw: string): XenGuestInfo {
  const entries = new Map<string, string | undefined>();
  for (const item of raw.split(",")) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? undefined : item.slice(eq + 1);
    if (!entries.has(key)) entries.set(key, value);
  }
  const shown = JSON.stringify(raw);
  const loader = entries.get(XenGuestKey.LOADER);
  const guestOs = entries.get(XenGuestKey.GUEST_OS);
  if (loader !== XEN_GUEST_LOADER_GENERIC && guestOs !== XEN_GUEST_OS_LINUX) {
    throw new ElfError(
      `${XEN_GUEST_SECTION} has neither LOADER=${XEN_GUEST_LOADER_GENERIC} nor GUEST_OS=${XEN_GUEST_OS_LINUX}: ` +
        `will only load images built for the generic loader or Linux images (saw ${shown})`,
    );
  }
  const xenVer = entries.get(XenGuestKey.XEN_VER);
  if (!entries.has(XenGuestKey.XEN_VER)) {
    throw new ElfError(
      `${XEN_GUEST_SECTION} has no XEN_VER (need XEN_VER=${XEN_GUEST_REQUIRED_XEN_VER}) (saw ${shown})`,
    );
  }
  if (xenVer !== XEN_GUEST_REQUIRED_XEN_VER) {
    throw new ElfError(
      `${XEN_GUEST_SECTION} says XEN_VER=${xenVer ?? ""}: will only load images built for Xen v${XEN_GUEST_REQUIRED_XEN_VER} (saw ${shown})`,
    );
  }
  let virtBase: number | undefined;
  if (entries.has(XenGuestKey.VIRT_BASE)) {
    const v = entries.get(XenGuestKey.VIRT_BASE) ?? "";
    virtBase = parseCNumber(v);
    if (virtBase === undefined) {
      throw new ElfError(`${XEN_GUEST_SECTION}: VIRT_BASE=${v} is not a 32-bit number (saw ${shown})`);
    }
  }
  return {
    raw,
    entries,
    xenVer,
    loader,
    guestOs,
    guestVer: entries.get(XenGuestKey.GUEST_VER),
    virtBase,
    bsdSymtab: entries.has(XenGuestKey.BSD_SYMTAB),
    ptModeWritable: entries.has(XenGuestKey.PT_MODE_WRITABLE),
  };
}

// ---------------------------------------------------------------------------------------------
// The Xen kernel view of an image

export interface XenKernelImage {
  readonly elf: Elf32Image;
  readonly guest: XenGuestInfo;
  /** The segments Xen loads: PT_LOAD with W or X set, in program-header order. */
  readonly loadable: readonly Elf32Segment[];
  /** Lowest p_paddr of the loadable segments (a virtual address, abi.md §4.1). */
  readonly kernStart: number;
  /** Highest p_paddr + p_memsz. */
  readonly kernEnd: number;
  readonly entry: number;
  /** VIRT_BASE, else kernStart; page-aligned and <= kernStart. */
  readonly vStart: number;
}

/** A segment Xen's loader copies: PT_LOAD with PF_W or PF_X (read-only PT_LOADs are skipped). */
export function isLoadableSegment(seg: Elf32Segment): boolean {
  return seg.type === PT_LOAD && (seg.flags & (PF_W | PF_X)) !== 0;
}

/** parseElf32 + the loader rules of abi.md §4.1. Throws `ElfError`. */
export function parseXenKernel(bytes: Uint8Array): XenKernelImage {
  const elf = parseElf32(bytes);
  const raw = readXenGuestString(elf);
  if (raw === undefined) {
    throw new ElfError(`not a Xen-ELF image: '${XEN_GUEST_SECTION}' section not found`);
  }
  const guest = parseXenGuest(raw);
  const loadable = elf.segments.filter(isLoadableSegment);
  if (loadable.length === 0) {
    throw new ElfError("ELF image has no loadable segments (PT_LOAD with the W or X flag)");
  }
  let kernStart = Number.POSITIVE_INFINITY;
  let kernEnd = 0;
  for (const s of loadable) {
    kernStart = Math.min(kernStart, s.paddr);
    kernEnd = Math.max(kernEnd, s.paddr + s.memsz);
  }
  const entry = elf.header.entry;
  if (entry < kernStart || entry > kernEnd) {
    throw new ElfError(
      `ELF entry point ${hex(entry)} is outside the kernel range [${hex(kernStart)}, ${hex(kernEnd)}]`,
    );
  }
  const vStart = guest.virtBase ?? kernStart;
  if (vStart % PAGE_SIZE !== 0) {
    throw new ElfError(
      `v_start ${hex(vStart)}${guest.virtBase !== undefined ? " (VIRT_BASE)" : " (lowest p_paddr)"} is not page-aligned: the guest OS must load to a page boundary`,
    );
  }
  if (vStart > kernStart) {
    throw new ElfError(
      `VIRT_BASE ${hex(vStart)} is above the kernel's lowest load address ${hex(kernStart)} (p_paddr)`,
    );
  }
  if (kernEnd > HYPERVISOR_VIRT_START) {
    throw new ElfError(
      `kernel range [${hex(kernStart)}, ${hex(kernEnd)}) reaches the hypervisor's area at ${hex(HYPERVISOR_VIRT_START)}`,
    );
  }
  return { elf, guest, loadable, kernStart, kernEnd, entry, vStart };
}
