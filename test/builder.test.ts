import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { SelectorsMar } from "../src/public/arch_x86_32.js";
import { Sif, StartInfoMar } from "../src/public/xen.js";
import { BuildError, type BuildParams, buildDomainImage, type DomainImage } from "../src/tools/builder.js";
import { ElfError } from "../src/tools/elf.js";
import { gccFixtureGuest, prng, writeElf32 } from "./helpers/elf32_writer.js";
import { guestPath } from "./support/guests.js";

const PAGE = 4096;
const GUEST = "GUEST_OS=test,XEN_VER=3.0,LOADER=generic";
const GARBAGE = 0xaa;

/** A machine of `nrMfns` frames filled with garbage, and a scrambled frame list for the domain. */
function machine(nrMfns: number, nrPages: number, seed = 1) {
  const mem = new Uint8Array(nrMfns * PAGE).fill(GARBAGE);
  const all = Array.from({ length: nrMfns }, (_, i) => i);
  const rnd = prng(seed);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return { mem, frames: all.slice(0, nrPages), sharedInfoMfn: all[nrPages]!, spare: all.slice(nrPages + 1) };
}

const u32 = (mem: Uint8Array, ma: number): number => new DataView(mem.buffer).getUint32(ma, true);
const u16 = (mem: Uint8Array, ma: number): number => new DataView(mem.buffer).getUint16(ma, true);

/** Translate a VA through the bootstrap tables the way the MMU would; returns the MA or -1. */
function walk(mem: Uint8Array, img: DomainImage, va: number): number {
  const pde = u32(mem, img.l2Mfn * PAGE + (va >>> 22) * 4);
  if (!(pde & 1)) return -1;
  const pte = u32(mem, (pde & ~0xfff) + ((va >>> 12) & 1023) * 4);
  if (!(pte & 1)) return -1;
  return (pte & ~0xfff) + (va & 0xfff);
}
function readVa(mem: Uint8Array, img: DomainImage, va: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let done = 0; done < len; ) {
    const chunk = Math.min(len - done, PAGE - ((va + done) % PAGE));
    const ma = walk(mem, img, va + done);
    assert.ok(ma >= 0, `VA 0x${(va + done).toString(16)} not mapped`);
    out.set(mem.subarray(ma, ma + chunk), done);
    done += chunk;
  }
  return out;
}

function throwsBuild(fn: () => unknown, re: RegExp): BuildError {
  let err: BuildError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BuildError, `expected BuildError, got ${String(e)}`);
    assert.match(e.message, re);
    err = e;
    return true;
  });
  return err!;
}

describe("buildDomainImage: the gcc fixture guest, 8 MiB", () => {
  it("lays out the MAR image exactly", (t) => {
    const image = gccFixtureGuest();
    if (!image) return t.skip("gcc -m32 not available");
    const m = machine(2100, 2048);
    const before = m.mem.slice();
    const img = buildDomainImage({
      image,
      mem: m.mem,
      frames: m.frames,
      sharedInfoMfn: m.sharedInfoMfn,
      cmdline: "console=xvc0 root=/dev/ram",
      flags: Sif.BLK_BE_DOMAIN,
      controlEvtchn: 1,
    });
    const { mem, frames } = m;
    // Kernel c0000000..kernEnd (text+data+bss), mfn_list right after, 2048*4 = 2 pages.
    assert.equal(img.abi, "2005-03");
    assert.equal(img.vStart, 0xc0000000);
    assert.equal(img.entry, 0xc0000000);
    assert.ok(img.kernEnd > 0xc0004e20 && img.kernEnd < 0xc0005000, img.kernEnd.toString(16));
    assert.equal(img.modStart, 0);
    assert.equal(img.modLen, 0);
    assert.equal(img.mfnListVa, 0xc0005000);
    assert.equal(img.ptBaseVa, 0xc0007000);
    assert.equal(img.nrPtFrames, 2);
    assert.equal(img.startInfoVa, 0xc0009000);
    assert.equal(img.stackVa, 0xc000a000);
    assert.equal(img.stackTop, 0xc000b000);
    assert.equal(img.vEnd, 0xc0400000);
    assert.equal(img.nrPages, 2048);
    // Page-table frames are the PFNs 7 and 8.
    assert.deepEqual(img.ptFrames, [frames[7], frames[8]]);
    assert.equal(img.l2Mfn, frames[7]);
    assert.equal(img.cr3, frames[7]! * PAGE);

    // L2: only slot 0x300 is set; Xen's slots 1008.. are left alone (zero here).
    for (let s = 0; s < 1024; s++) {
      const e = u32(mem, img.l2Mfn * PAGE + s * 4);
      assert.equal(e, s === 0x300 ? ((frames[8]! * PAGE) | 0x067) >>> 0 : 0, `L2 slot ${s}`);
    }
    // L1: 1024 entries, frames[i] | 0x23, page-table pages read-only 0x21.
    for (let i = 0; i < 1024; i++) {
      const e = u32(mem, frames[8]! * PAGE + i * 4);
      const flags = i === 7 || i === 8 ? 0x021 : 0x023;
      assert.equal(e, (frames[i]! * PAGE + flags) >>> 0, `L1 entry ${i}`);
    }

    // Kernel bytes from the file; bss zero.
    const dvImg = new DataView(image.buffer, image.byteOffset);
    const seg = { off: dvImg.getUint32(52 + 4, true), filesz: dvImg.getUint32(52 + 16, true) };
    const memsz = dvImg.getUint32(52 + 20, true);
    assert.deepEqual(readVa(mem, img, 0xc0000000, seg.filesz), image.subarray(seg.off, seg.off + seg.filesz));
    assert.ok(
      readVa(mem, img, 0xc0000000 + seg.filesz, memsz - seg.filesz).every((b) => b === 0),
      "bss zeroed",
    );

    // mfn_list.
    for (let i = 0; i < 2048; i++) assert.equal(u32(mem, walk(mem, img, img.mfnListVa + 4 * i)), frames[i]);

    // start_info.
    const si = frames[9]! * PAGE;
    assert.equal(walk(mem, img, img.startInfoVa), si);
    assert.equal(u32(mem, si + StartInfoMar.nr_pages), 2048);
    assert.equal(u32(mem, si + 4), 0);
    assert.equal(u32(mem, si + StartInfoMar.shared_info), m.sharedInfoMfn * PAGE);
    assert.equal(u32(mem, si + StartInfoMar.flags), Sif.BLK_BE_DOMAIN);
    assert.equal(u16(mem, si + StartInfoMar.domain_controller_evtchn), 1);
    assert.equal(u16(mem, si + 22), 0);
    assert.equal(u32(mem, si + StartInfoMar.pt_base), 0xc0007000);
    assert.equal(u32(mem, si + StartInfoMar.nr_pt_frames), 2);
    assert.equal(u32(mem, si + StartInfoMar.mfn_list), 0xc0005000);
    assert.equal(u32(mem, si + StartInfoMar.mod_start), 0);
    assert.equal(u32(mem, si + StartInfoMar.mod_len), 0);
    const cmd = "console=xvc0 root=/dev/ram";
    assert.equal(Buffer.from(mem.subarray(si + 64, si + 64 + cmd.length)).toString("latin1"), cmd);
    assert.ok(mem.subarray(si + 64 + cmd.length, si + 320).every((b) => b === 0));
    // Only the 320-byte struct is zeroed; the rest of the page is as it was.
    assert.ok(mem.subarray(si + 320, si + PAGE).every((b) => b === GARBAGE));

    // Stack page zeroed.
    assert.ok(mem.subarray(frames[10]! * PAGE, frames[10]! * PAGE + PAGE).every((b) => b === 0));

    // shared_info: first 588 bytes zero except the upcall masks and n_vcpu; the rest untouched.
    const sh = m.sharedInfoMfn * PAGE;
    for (let i = 0; i < 588; i++) {
      const want = i < 256 && i % 8 === 1 ? 1 : i === 256 ? 1 : 0;
      assert.equal(mem[sh + i], want, `shared_info byte ${i}`);
    }
    assert.ok(mem.subarray(sh + 588, sh + PAGE).every((b) => b === GARBAGE));

    // Registers.
    assert.deepEqual(img.initialRegs, {
      eax: 0,
      ebx: 0,
      ecx: 0,
      edx: 0,
      esi: 0xc0009000,
      edi: 0,
      ebp: 0,
      esp: 0xc000b000,
      eip: 0xc0000000,
      eflags: 0x204,
      cs: SelectorsMar.FLAT_KERNEL_CS,
      ds: 0x0821,
      es: 0x0821,
      fs: 0x0821,
      gs: 0x0821,
      ss: 0x0821,
    });
    assert.equal(img.initialRegs.cs, 0x0819);
    assert.equal(img.kernelSs, 0x0821);
    assert.equal(img.kernelEsp, 0xc000b000);
    assert.equal(img.m2p.length, 2048);
    img.m2p.forEach(([mfn, pfn], k) => {
      assert.equal(pfn, k);
      assert.equal(mfn, frames[k]);
    });

    // Frames outside the domain (and beyond the mapped 4 MiB) are untouched.
    for (const f of m.spare)
      assert.deepEqual(mem.subarray(f * PAGE, f * PAGE + PAGE), before.subarray(f * PAGE, f * PAGE + PAGE));
    for (let pfn = 1024; pfn < 2048; pfn++) {
      const f = frames[pfn]!;
      assert.ok(
        mem.subarray(f * PAGE, f * PAGE + PAGE).every((b) => b === GARBAGE),
        `pfn ${pfn} untouched`,
      );
    }
  });
});

describe("buildDomainImage: generated images", () => {
  const base = (over: Partial<BuildParams> & { image: Uint8Array }, nrPages = 1024, nrMfns = 1100) => {
    const m = machine(nrMfns, nrPages, 7);
    const img = buildDomainImage({
      mem: m.mem,
      frames: m.frames,
      sharedInfoMfn: m.sharedInfoMfn,
      cmdline: "",
      flags: 0,
      ...over,
    });
    return { m, img };
  };

  it("loads by p_paddr, honours VIRT_BASE, zeroes bss across pages, and places a module", () => {
    const text = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff);
    const data = Uint8Array.from({ length: 100 }, (_, i) => 0x80 | i);
    const image = writeElf32({
      entry: 0xc0100010,
      xenGuest: `${GUEST},VIRT_BASE=0xC0000000`,
      segments: [
        { vaddr: 0x00100000, paddr: 0xc0100000, data: text, flags: 5 },
        { vaddr: 0x00200000, paddr: 0xc0102000, data, memsz: 0x3000, flags: 6 },
        { vaddr: 0xc0000000, paddr: 0xc0000000, data: new Uint8Array([1, 2, 3]), flags: 4 }, // R only: skipped
      ],
    });
    const module = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
    const { m, img } = base({
      image,
      module,
      cmdline: "x".repeat(300),
      flags: Sif.PRIVILEGED | Sif.INITDOMAIN,
    });
    const { mem, frames } = m;
    assert.equal(img.vStart, 0xc0000000);
    assert.equal(img.kernStart, 0xc0100000);
    assert.equal(img.kernEnd, 0xc0105000);
    assert.equal(img.modStart, 0xc0105000);
    assert.equal(img.modLen, 5000);
    assert.equal(img.mfnListVa, 0xc0107000);
    assert.equal(img.ptBaseVa, 0xc0108000);
    assert.equal(img.startInfoVa, 0xc010a000);
    assert.equal(img.stackTop, 0xc010c000);
    assert.equal(img.vEnd, 0xc0400000);
    // Kernel at PFN 256 (0x100 pages above VIRT_BASE).
    assert.equal(walk(mem, img, 0xc0100000), frames[256]! * PAGE);
    assert.deepEqual(readVa(mem, img, 0xc0100000, 5000), text);
    assert.deepEqual(readVa(mem, img, 0xc0102000, 100), data);
    assert.ok(readVa(mem, img, 0xc0102000 + 100, 0x3000 - 100).every((b) => b === 0));
    // The R-only segment and the pages below the kernel were not written.
    assert.ok(mem.subarray(frames[0]! * PAGE, frames[0]! * PAGE + PAGE).every((b) => b === GARBAGE));
    // Module and the zeroed tail of its page.
    assert.deepEqual(readVa(mem, img, img.modStart, 5000), module);
    assert.ok(readVa(mem, img, img.modStart + 5000, 2 * PAGE - 5000).every((b) => b === 0));
    const si = walk(mem, img, img.startInfoVa);
    assert.equal(u32(mem, si + StartInfoMar.mod_start), 0xc0105000);
    assert.equal(u32(mem, si + StartInfoMar.mod_len), 5000);
    assert.equal(u32(mem, si + StartInfoMar.flags), 3);
    // Command line truncated to 255 bytes + NUL.
    assert.equal(
      Buffer.from(mem.subarray(si + 64, si + 64 + 256)).toString("latin1"),
      `${"x".repeat(255)}\0`,
    );
    // Every page of [vStart, vEnd) maps to its PFN's frame, RO exactly on the page tables.
    const ptLo = (img.ptBaseVa - img.vStart) / PAGE;
    for (let pfn = 0; pfn < (img.vEnd - img.vStart) / PAGE; pfn++) {
      const va: number = img.vStart + pfn * PAGE;
      assert.equal(walk(mem, img, va), frames[pfn]! * PAGE);
      const l1 = img.ptFrames[1 + ((va >>> 22) - (img.vStart >>> 22))]!;
      const pte = u32(mem, l1 * PAGE + ((va >>> 12) & 1023) * 4);
      assert.equal(pte & 0xfff, pfn >= ptLo && pfn < ptLo + img.nrPtFrames ? 0x021 : 0x023);
    }
  });

  it("uses several L1s for a big kernel and an unaligned v_start", () => {
    const image = writeElf32({
      entry: 0xc0101000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xc0101000, data: new Uint8Array([0xf4]), memsz: 6 << 20 }],
    });
    const { m, img } = base({ image }, 4096, 4200);
    const { mem, frames } = m;
    assert.equal(img.vStart, 0xc0101000);
    // kernel ends c0701000; mfn_list 4 pages; pt from c0705000.
    assert.equal(img.mfnListVa, 0xc0701000);
    assert.equal(img.ptBaseVa, 0xc0705000);
    assert.equal(img.nrPtFrames, 3); // L2 + L1 for slots 0x300, 0x301
    assert.equal(img.startInfoVa, 0xc0708000);
    assert.equal(img.vEnd, 0xc0800000);
    const ptPfn = (0xc0705000 - 0xc0101000) / PAGE;
    assert.deepEqual(img.ptFrames, [frames[ptPfn], frames[ptPfn + 1], frames[ptPfn + 2]]);
    assert.equal(u32(mem, img.l2Mfn * PAGE + 0x300 * 4), (frames[ptPfn + 1]! * PAGE + 0x67) >>> 0);
    assert.equal(u32(mem, img.l2Mfn * PAGE + 0x301 * 4), (frames[ptPfn + 2]! * PAGE + 0x67) >>> 0);
    assert.equal(u32(mem, img.l2Mfn * PAGE + 0x302 * 4), 0);
    // The first L1 has zeros below v_start (entries 0..0x100), then PFN 0 at index 0x101.
    const l1 = frames[ptPfn + 1]! * PAGE;
    for (let i = 0; i < 0x101; i++) assert.equal(u32(mem, l1 + i * 4), 0);
    assert.equal(u32(mem, l1 + 0x101 * 4), (frames[0]! * PAGE + 0x23) >>> 0);
    // bss zeroed across 6 MiB.
    assert.ok(readVa(mem, img, 0xc0101001, (6 << 20) - 1).every((b) => b === 0));
  });

  it("solves the page-table count like xc_linux_build for many sizes", () => {
    for (const kb of [4, 100, 3000, 3500, 4096, 7800, 8000, 12000]) {
      const image = writeElf32({
        entry: 0xc0000000,
        xenGuest: GUEST,
        segments: [{ vaddr: 0xc0000000, data: new Uint8Array(1), memsz: kb * 1024 }],
      });
      const { img } = base({ image }, 8192, 8300);
      // Reference: the C loop.
      const ru = (x: number) => Math.ceil(x / PAGE) * PAGE;
      const ptStart = ru(ru(ru(img.kernEnd)) + 8192 * 4);
      let n = 2;
      let vEnd = 0;
      for (; ; n++) {
        const stackEnd = ptStart + n * PAGE + 2 * PAGE;
        vEnd = Math.ceil(stackEnd / (4 << 20)) * (4 << 20);
        if (vEnd - stackEnd < 512 << 10) vEnd += 4 << 20;
        if (Math.ceil((vEnd - 0xc0000000) / (4 << 20)) + 1 <= n) break;
      }
      assert.equal(img.nrPtFrames, n, `kb=${kb}`);
      assert.equal(img.vEnd, vEnd, `kb=${kb}`);
      assert.equal(img.ptFrames.length, n);
    }
  });

  it("passes vcpus to n_vcpu and an ABI name", () => {
    const image = writeElf32({
      entry: 0xc0000000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(1) }],
    });
    const { m } = base({ image, vcpus: 4, abi: "2005-03" });
    assert.equal(u32(m.mem, m.sharedInfoMfn * PAGE + 256), 4);
  });
});

describe("buildDomainImage: errors", () => {
  const okImage = writeElf32({
    entry: 0xc0000000,
    xenGuest: GUEST,
    segments: [{ vaddr: 0xc0000000, data: new Uint8Array(16), memsz: 0x1000 }],
  });
  const params = (over: Partial<BuildParams> = {}): BuildParams => {
    const m = machine(1100, 1024, 3);
    return {
      image: okImage,
      mem: m.mem,
      frames: m.frames,
      sharedInfoMfn: m.sharedInfoMfn,
      cmdline: "",
      flags: 0,
      ...over,
    };
  };

  it("names image problems (wrapping ElfError)", () => {
    const noVer = writeElf32({
      entry: 0xc0000000,
      xenGuest: "GUEST_OS=linux,LOADER=generic",
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(4) }],
    });
    const e = throwsBuild(() => buildDomainImage(params({ image: noVer })), /bad kernel image: .*no XEN_VER/);
    assert.ok(e.cause instanceof ElfError);
    const badEntry = writeElf32({
      entry: 0xc1000000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(4) }],
    });
    throwsBuild(
      () => buildDomainImage(params({ image: badEntry })),
      /entry point 0xc1000000 is outside the kernel range/,
    );
    throwsBuild(
      () => buildDomainImage(params({ image: okImage.subarray(0, 40) })),
      /bad kernel image: ELF image too small/,
    );
    throwsBuild(
      () => buildDomainImage(params({ image: okImage.subarray(0, okImage.length - 1) })),
      /bad kernel image: ELF section header table/,
    );
    const noSection = writeElf32({
      entry: 0xc0000000,
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(4) }],
    });
    throwsBuild(() => buildDomainImage(params({ image: noSection })), /'__xen_guest' section not found/);
    const bsd = writeElf32({
      entry: 0xc0000000,
      xenGuest: `${GUEST},BSD_SYMTAB`,
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(4) }],
    });
    throwsBuild(() => buildDomainImage(params({ image: bsd })), /BSD_SYMTAB/);
  });

  it("refuses images that do not fit", () => {
    const m = machine(1100, 1023, 3);
    throwsBuild(
      () => buildDomainImage({ ...params(), mem: m.mem, frames: m.frames, sharedInfoMfn: m.sharedInfoMfn }),
      /requires too much space: 1024 pages .* but the domain has 1023 pages/,
    );
    const big = writeElf32({
      entry: 0xc0000000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(4), memsz: 5 << 20 }],
    });
    throwsBuild(() => buildDomainImage(params({ image: big })), /requires too much space: 2048 pages/);
    const high = writeElf32({
      entry: 0xfbf90000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xfbf90000, data: new Uint8Array(4) }],
    });
    throwsBuild(
      () => buildDomainImage(params({ image: high })),
      /reaches the hypervisor's area at 0xfc000000/,
    );
  });

  it("checks its parameters", () => {
    const p = params();
    throwsBuild(() => buildDomainImage({ ...p, frames: [] }), /no memory/);
    throwsBuild(
      () => buildDomainImage({ ...p, frames: [...p.frames.slice(0, -1), 5000] }),
      /frames\[1023\] = 5000 is not a machine frame/,
    );
    throwsBuild(
      () => buildDomainImage({ ...p, frames: [...p.frames.slice(0, -1), p.frames[0]!] }),
      /appears twice/,
    );
    throwsBuild(
      () => buildDomainImage({ ...p, frames: [...p.frames.slice(0, -1), 1.5] }),
      /frames\[1023\] = 1.5/,
    );
    throwsBuild(
      () => buildDomainImage({ ...p, sharedInfoMfn: p.frames[3]! }),
      /one of the domain's own frames/,
    );
    throwsBuild(() => buildDomainImage({ ...p, sharedInfoMfn: -1 }), /sharedInfoMfn -1/);
    throwsBuild(() => buildDomainImage({ ...p, controlEvtchn: 70000 }), /control event channel 70000/);
    throwsBuild(() => buildDomainImage({ ...p, flags: -1 }), /flags -1/);
    throwsBuild(() => buildDomainImage({ ...p, vcpus: 33 }), /vcpus 33 is not in 1\.\.32/);
    throwsBuild(
      () => buildDomainImage({ ...p, abi: "2005-11" as never }),
      /unknown guest ABI revision "2005-11"/,
    );
  });

  it("fuzzed images give BuildError or a build, nothing else", () => {
    const g = gccFixtureGuest();
    const img = g ?? okImage;
    const rnd = prng(99);
    const p = params();
    for (let i = 0; i < 800; i++) {
      const c = img.slice(0, i % 3 === 0 ? Math.floor(rnd() * img.length) : img.length);
      for (let j = 0; j < 3; j++) {
        const pos = Math.floor(rnd() * Math.min(c.length, 0x200));
        if (pos < c.length) c[pos] = Math.floor(rnd() * 256);
      }
      try {
        buildDomainImage({ ...p, image: c });
      } catch (e) {
        if (!(e instanceof BuildError)) assert.fail(`iteration ${i}: threw ${String(e)}`);
      }
    }
  });
});

describe("buildDomainImage: the July 2005 profile", () => {
  it("lays out start_info (1068 bytes), the xenstore page and the stack as abi.md §2.6.2, §4.2, §4.5 say", () => {
    const mem = new Uint8Array(8192 * 4096);
    const frames = Array.from({ length: 4096 }, (_, i) => i + 16);
    const image = readFileSync(guestPath("hello"));
    const img = buildDomainImage({
      image,
      mem,
      frames,
      sharedInfoMfn: 5,
      cmdline: "x".repeat(2000),
      flags: 0,
      abi: "2005-07",
      storeEvtchn: 7,
    });
    assert.equal(img.abi, "2005-07");
    assert.equal(img.storePageVa, img.startInfoVa + 4096);
    assert.equal(img.stackVa, img.startInfoVa + 2 * 4096);
    assert.equal(img.initialRegs.esp, img.startInfoVa + 3 * 4096);
    assert.equal(img.initialRegs.eflags, 0x200);
    assert.equal(img.initialRegs.cs, 0xe019);
    assert.equal(img.initialRegs.ss, 0xe021);
    const off = (va: number): number => frames[(va - img.vStart) / 4096] * 4096 + (va % 4096);
    const dv = new DataView(mem.buffer);
    const si = off(img.startInfoVa);
    assert.equal(dv.getUint32(si + 0, true), 4096, "nr_pages @0");
    assert.equal(dv.getUint32(si + 4, true), 5 * 4096, "shared_info @4");
    assert.equal(dv.getUint32(si + 16, true), img.ptBaseVa, "pt_base @16");
    assert.equal(dv.getUint32(si + 24, true), img.mfnListVa, "mfn_list @24");
    assert.equal(mem[si + 36 + 1022], 0x78, "cmd_line[1024] @36 holds 1023 characters");
    assert.equal(mem[si + 36 + 1023], 0, "NUL-terminated");
    assert.equal(dv.getUint32(si + 1060, true), img.storePageVa, "store_page @1060");
    assert.equal(dv.getUint16(si + 1064, true), 7, "store_evtchn @1064");
  });
});
