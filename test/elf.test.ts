import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ElfError,
  findSection,
  isLoadableSegment,
  parseElf32,
  parseXenGuest,
  parseXenKernel,
  readXenGuestString,
} from "../src/tools/elf.js";
import { gccFixtureGuest, prng, writeElf32 } from "./helpers/elf32_writer.js";

const GUEST = "GUEST_OS=test,XEN_VER=3.0,LOADER=generic";

function simple(xenGuest: string | null = GUEST, entry = 0xc0000000): Uint8Array {
  return writeElf32({
    entry,
    segments: [{ vaddr: 0xc0000000, data: new Uint8Array([0x90, 0x90, 0xf4]), memsz: 0x2000 }],
    ...(xenGuest === null ? {} : { xenGuest }),
  });
}

function throwsElf(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ElfError, `expected ElfError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

function patch32(img: Uint8Array, off: number, v: number): Uint8Array {
  const c = img.slice();
  new DataView(c.buffer).setUint32(off, v >>> 0, true);
  return c;
}
function patch16(img: Uint8Array, off: number, v: number): Uint8Array {
  const c = img.slice();
  new DataView(c.buffer).setUint16(off, v, true);
  return c;
}

describe("parseElf32", () => {
  it("reads a generated image", () => {
    const img = simple();
    const elf = parseElf32(img);
    assert.equal(elf.header.entry, 0xc0000000);
    assert.equal(elf.segments.length, 1);
    assert.deepEqual(
      { ...elf.segments[0]!, offset: 0 },
      {
        index: 0,
        type: 1,
        offset: 0,
        vaddr: 0xc0000000,
        paddr: 0xc0000000,
        filesz: 3,
        memsz: 0x2000,
        flags: 7,
        align: 16,
      },
    );
    assert.deepEqual(
      elf.sections.map((s) => s.name),
      ["", ".seg0", "__xen_guest", ".shstrtab"],
    );
    assert.equal(readXenGuestString(elf), GUEST);
    assert.equal(findSection(elf, "nope"), undefined);
  });

  it("reads the gcc-built fixture guest", (t) => {
    const img = gccFixtureGuest();
    if (!img) return t.skip("gcc -m32 not available");
    const elf = parseElf32(img);
    assert.equal(elf.header.entry, 0xc0000000);
    const load = elf.segments.filter(isLoadableSegment);
    assert.equal(load.length, 1);
    assert.equal(load[0]!.paddr, 0xc0000000);
    assert.ok(load[0]!.memsz >= 20000);
    assert.equal(readXenGuestString(elf), "GUEST_OS=tsxen-test,XEN_VER=3.0,LOADER=generic,PT_MODE_WRITABLE");
  });

  it("rejects non-ELF, wrong class, endianness, type, machine and sizes", () => {
    const img = simple();
    throwsElf(() => parseElf32(new Uint8Array(10)), /too small for an ELF header \(10 bytes/);
    throwsElf(() => parseElf32(new Uint8Array(100)), /bad magic/);
    const c = (i: number, v: number): Uint8Array => {
      const x = img.slice();
      x[i] = v;
      return x;
    };
    throwsElf(() => parseElf32(c(4, 2)), /not 32-bit.*EI_CLASS 2/);
    throwsElf(() => parseElf32(c(5, 2)), /not little-endian/);
    throwsElf(() => parseElf32(c(6, 0)), /identification version/);
    throwsElf(() => parseElf32(patch16(img, 16, 3)), /not an executable \(e_type 3/);
    throwsElf(() => parseElf32(patch16(img, 18, 62)), /not for i386 \(e_machine 62/);
    throwsElf(() => parseElf32(patch32(img, 20, 2)), /e_version 2/);
    throwsElf(() => parseElf32(patch16(img, 40, 64)), /e_ehsize 64/);
    throwsElf(() => parseElf32(patch16(img, 42, 56)), /e_phentsize 56/);
    throwsElf(() => parseElf32(patch16(img, 44, 0)), /no program headers/);
    throwsElf(() => parseElf32(patch16(img, 44, 0xffff)), /extended program header/);
    throwsElf(() => parseElf32(patch16(img, 46, 64)), /e_shentsize 64/);
    throwsElf(() => parseElf32(patch16(img, 48, 0xff00)), /reserved range/);
  });

  it("bounds-checks the header tables", () => {
    const img = simple();
    throwsElf(
      () => parseElf32(patch32(img, 28, img.length - 16)),
      /program header table 0x.* beyond end of image/,
    );
    throwsElf(() => parseElf32(patch32(img, 28, 0xffffffff)), /program header table/);
    throwsElf(
      () => parseElf32(patch32(img, 32, img.length)),
      /section header table 0x.* beyond end of image/,
    );
    throwsElf(() => parseElf32(patch16(img, 50, 0)), /no section-header string table/);
    throwsElf(() => parseElf32(patch16(img, 50, 9)), /e_shstrndx 9 is not below e_shnum 4/);
    throwsElf(() => parseElf32(patch16(img, 50, 1)), /has type 1, not SHT_STRTAB/);
  });

  it("checks each PT_LOAD", () => {
    const img = simple();
    const ph = 52;
    throwsElf(
      () => parseElf32(patch32(img, ph + 4, img.length - 1)),
      new RegExp(
        `ELF program header 0: file range 0x${(img.length - 1).toString(16)}\\.\\.0x${(img.length + 2).toString(16)} beyond end of image \\(size 0x${img.length.toString(16)}\\)`,
      ),
    );
    throwsElf(() => parseElf32(patch32(img, ph + 4, 0xfffffffe)), /program header 0: file range/);
    throwsElf(() => parseElf32(patch32(img, ph + 16, 0x3000)), /program header 0: (file range|p_filesz)/);
    throwsElf(() => parseElf32(patch32(img, ph + 20, 2)), /p_filesz 0x3 exceeds p_memsz 0x2/);
    throwsElf(
      () => parseElf32(patch32(img, ph + 12, 0xfffff000)),
      /p_paddr 0xfffff000 \+ p_memsz 0x2000 wraps/,
    );
    throwsElf(() => parseElf32(patch32(img, ph + 8, 0xfffff000)), /p_vaddr 0xfffff000 .* wraps/);
    // A non-PT_LOAD header with a silly range is fine.
    const note = patch32(patch32(img, ph, 4), ph + 4, 0xffffff00);
    assert.equal(parseElf32(note).segments[0]!.type, 4);
  });

  it("checks section names and ranges", () => {
    const img = simple();
    const elf = parseElf32(img);
    const sh = elf.header.shoff;
    const strSize = elf.sections[3]!.size;
    throwsElf(
      () => parseElf32(patch32(img, sh + 40, strSize)),
      /section 1: name offset .* beyond the string table/,
    );
    // Unterminated name: shrink the string table so the last name loses its NUL.
    throwsElf(() => parseElf32(patch32(img, sh + 3 * 40 + 20, strSize - 1)), /not NUL-terminated/);
    throwsElf(
      () => parseElf32(patch32(img, sh + 2 * 40 + 20, 0x10000)),
      /section 2 \(__xen_guest\): file range/,
    );
    throwsElf(
      () => parseElf32(patch32(img, sh + 3 * 40 + 16, img.length)),
      /string table 0x.* beyond end of image/,
    );
  });

  it("treats an image without section headers as having no sections", () => {
    const elf = parseElf32(patch16(simple(), 48, 0));
    assert.equal(elf.sections.length, 0);
    throwsElf(() => parseXenKernel(patch16(simple(), 48, 0)), /'__xen_guest' section not found/);
  });
});

describe("parseXenGuest", () => {
  it("parses the real strings of abi.md §4.1", () => {
    const linux = parseXenGuest(
      "GUEST_OS=linux,GUEST_VER=2.6,XEN_VER=3.0,VIRT_BASE=0xC0000000,LOADER=generic",
    );
    assert.equal(linux.guestOs, "linux");
    assert.equal(linux.guestVer, "2.6");
    assert.equal(linux.virtBase, 0xc0000000);
    assert.equal(linux.loader, "generic");
    const mini = parseXenGuest("XEN_VER=3.0,LOADER=generic,PT_MODE_WRITABLE");
    assert.equal(mini.virtBase, undefined);
    assert.equal(mini.ptModeWritable, true);
    assert.equal(mini.bsdSymtab, false);
    assert.deepEqual(
      [...mini.entries],
      [
        ["XEN_VER", "3.0"],
        ["LOADER", "generic"],
        ["PT_MODE_WRITABLE", undefined],
      ],
    );
    assert.equal(parseXenGuest("LOADER=generic,GUEST_VER=5.3,XEN_VER=3.0,BSD_SYMTAB").bsdSymtab, true);
    assert.equal(parseXenGuest("GUEST_OS=netbsd,GUEST_VER=2.0,XEN_VER=3.0,LOADER=generic").guestOs, "netbsd");
    // GUEST_OS=linux alone is enough (no LOADER).
    assert.equal(parseXenGuest("GUEST_OS=linux,XEN_VER=3.0").loader, undefined);
  });

  it("requires XEN_VER=3.0 and a known loader", () => {
    throwsElf(() => parseXenGuest("GUEST_OS=linux,LOADER=generic"), /no XEN_VER \(need XEN_VER=3\.0\)/);
    throwsElf(
      () => parseXenGuest("LOADER=generic,XEN_VER=2.0"),
      /says XEN_VER=2\.0: will only load images built for Xen v3\.0/,
    );
    throwsElf(() => parseXenGuest("LOADER=generic,XEN_VER=xen-3.0"), /XEN_VER=xen-3\.0/);
    throwsElf(() => parseXenGuest("XEN_VER=3.0"), /neither LOADER=generic nor GUEST_OS=linux/);
    throwsElf(() => parseXenGuest("XEN_VER=3.0,GUEST_OS=netbsd"), /neither LOADER=generic/);
    throwsElf(() => parseXenGuest(""), /neither LOADER/);
  });

  it("parses VIRT_BASE like strtoul(…, 0) and rejects junk", () => {
    const g = (v: string) => parseXenGuest(`LOADER=generic,XEN_VER=3.0,VIRT_BASE=${v}`).virtBase;
    assert.equal(g("0xc0000000"), 0xc0000000);
    assert.equal(g("3221225472"), 0xc0000000);
    assert.equal(g("030000000000"), 0xc0000000);
    assert.equal(g("0"), 0);
    throwsElf(() => g("banana"), /VIRT_BASE=banana is not a 32-bit number/);
    throwsElf(() => g("0x100000000"), /VIRT_BASE=0x100000000/);
    throwsElf(() => g(""), /VIRT_BASE= is not/);
    // First occurrence wins, as with strstr.
    assert.equal(
      parseXenGuest("LOADER=generic,XEN_VER=3.0,VIRT_BASE=0x1000,VIRT_BASE=0x2000").virtBase,
      0x1000,
    );
  });
});

describe("parseXenKernel", () => {
  it("takes the kernel range from p_paddr of W/X PT_LOADs", () => {
    const img = writeElf32({
      entry: 0xc0100010,
      xenGuest: GUEST,
      segments: [
        { vaddr: 0x00100000, paddr: 0xc0100000, data: new Uint8Array(0x40), memsz: 0x1800, flags: 5 },
        { vaddr: 0x00200000, paddr: 0xc0102000, data: new Uint8Array(8), memsz: 0x100, flags: 6 },
        // Read-only PT_LOAD: ignored by Xen's loader.
        { vaddr: 0xc0000000, paddr: 0xc0000000, data: new Uint8Array(8), flags: 4 },
        // Non-PT_LOAD: ignored.
        { type: 4, vaddr: 0xc0800000, data: new Uint8Array(4) },
      ],
    });
    const k = parseXenKernel(img);
    assert.equal(k.kernStart, 0xc0100000);
    assert.equal(k.kernEnd, 0xc0102100);
    assert.equal(k.vStart, 0xc0100000);
    assert.equal(k.entry, 0xc0100010);
    assert.deepEqual(
      k.loadable.map((s) => s.index),
      [0, 1],
    );
  });

  it("applies VIRT_BASE and checks it", () => {
    const seg = [{ vaddr: 0xc0100000, data: new Uint8Array(4), memsz: 0x100 }];
    const mk = (g: string, entry = 0xc0100000) => writeElf32({ entry, xenGuest: g, segments: seg });
    assert.equal(parseXenKernel(mk(`${GUEST},VIRT_BASE=0xC0000000`)).vStart, 0xc0000000);
    throwsElf(
      () => parseXenKernel(mk(`${GUEST},VIRT_BASE=0xC0000800`)),
      /v_start 0xc0000800 \(VIRT_BASE\) is not page-aligned/,
    );
    throwsElf(
      () => parseXenKernel(mk(`${GUEST},VIRT_BASE=0xC0200000`)),
      /VIRT_BASE 0xc0200000 is above the kernel's lowest load address 0xc0100000/,
    );
    const unaligned = writeElf32({
      entry: 0xc0100800,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xc0100800, data: new Uint8Array(4) }],
    });
    throwsElf(() => parseXenKernel(unaligned), /v_start 0xc0100800 \(lowest p_paddr\) is not page-aligned/);
  });

  it("checks the entry point, the loader string and loadable segments", () => {
    assert.equal(parseXenKernel(simple(GUEST, 0xc0002000)).entry, 0xc0002000); // == kernEnd is allowed
    throwsElf(
      () => parseXenKernel(simple(GUEST, 0xc0002001)),
      /entry point 0xc0002001 is outside the kernel range \[0xc0000000, 0xc0002000\]/,
    );
    throwsElf(() => parseXenKernel(simple(GUEST, 0xbfffffff)), /entry point 0xbfffffff/);
    throwsElf(() => parseXenKernel(simple(null)), /not a Xen-ELF image: '__xen_guest' section not found/);
    throwsElf(() => parseXenKernel(simple("GUEST_OS=linux,LOADER=generic")), /no XEN_VER/);
    const ro = writeElf32({
      entry: 0xc0000000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xc0000000, data: new Uint8Array(4), flags: 4 }],
    });
    throwsElf(() => parseXenKernel(ro), /no loadable segments/);
    const high = writeElf32({
      entry: 0xfbfff000,
      xenGuest: GUEST,
      segments: [{ vaddr: 0xfbfff000, data: new Uint8Array(4), memsz: 0x2000 }],
    });
    throwsElf(() => parseXenKernel(high), /reaches the hypervisor's area at 0xfc000000/);
  });
});

describe("ELF fuzzing: only ElfError or success", () => {
  const check = (img: Uint8Array, what: string): void => {
    for (const fn of [parseElf32, parseXenKernel]) {
      try {
        fn(img);
      } catch (e) {
        if (!(e instanceof ElfError)) assert.fail(`${what}: ${fn.name} threw ${String(e)}`);
        assert.ok(e.message.length > 0);
      }
    }
  };
  const images = (): [string, Uint8Array][] => {
    const list: [string, Uint8Array][] = [["generated", simple()]];
    const g = gccFixtureGuest();
    if (g) list.push(["gcc", g]);
    return list;
  };

  it("every truncation", () => {
    for (const [name, img] of images()) {
      let ok = 0;
      for (let n = 0; n <= img.length; n++) {
        const cut = img.slice(0, n);
        check(cut, `${name} truncated to ${n}`);
        try {
          parseXenKernel(cut);
          ok++;
        } catch {}
      }
      // Only lengths that keep every table and the __xen_guest string intact can succeed.
      assert.ok(ok >= 1);
    }
  });

  it("random byte flips and extreme words", () => {
    const rnd = prng(0x5eed);
    for (const [name, img] of images()) {
      for (let iter = 0; iter < 4000; iter++) {
        const c = img.slice();
        const dv = new DataView(c.buffer);
        const n = 1 + Math.floor(rnd() * 6);
        for (let j = 0; j < n; j++) {
          // Bias towards the tables, where a flip changes the parse.
          const hot = rnd() < 0.7;
          const shoff = new DataView(img.buffer, img.byteOffset).getUint32(32, true);
          const pos = hot
            ? rnd() < 0.5
              ? Math.floor(rnd() * Math.min(c.length, 52 + 32 * 4))
              : Math.min(c.length - 1, shoff + Math.floor(rnd() * (c.length - shoff)))
            : Math.floor(rnd() * c.length);
          const r = rnd();
          if (r < 0.5) c[pos] = c[pos]! ^ (1 << Math.floor(rnd() * 8));
          else if (pos + 4 <= c.length) {
            const words = [0, 0xffffffff, 0x7fffffff, 0x80000000, 0xfffff000, c.length, c.length - 1];
            dv.setUint32(pos & ~3, words[Math.floor(rnd() * words.length)]!, true);
          }
        }
        check(c, `${name} iteration ${iter}`);
      }
    }
  });
});
