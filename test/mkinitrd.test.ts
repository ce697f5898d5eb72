import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { MkinitrdError, main, mkinitrd, packCpio } from "../scripts/mkinitrd.js";

/** One parsed newc record, read the way Linux's init/initramfs.c reads it. */
interface Rec {
  offset: number;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdevmajor: number;
  rdevminor: number;
  name: string;
  data: Buffer;
}

/** An independent newc reader: fixed 110-byte headers, 4-byte alignment, TRAILER!!! last. */
function parseNewc(buf: Buffer): Rec[] {
  const recs: Rec[] = [];
  let off = 0;
  for (;;) {
    assert.equal(off % 4, 0, `record at ${off} is 4-byte aligned`);
    assert.equal(buf.toString("latin1", off, off + 6), "070701", `magic at ${off}`);
    const f = (i: number) => {
      const s = buf.toString("latin1", off + 6 + i * 8, off + 14 + i * 8);
      assert.match(s, /^[0-9a-f]{8}$/);
      return Number.parseInt(s, 16);
    };
    const namesize = f(11);
    const filesize = f(6);
    assert.equal(f(12), 0, "check field is zero in 070701");
    const nameEnd = off + 110 + namesize;
    assert.equal(buf[nameEnd - 1], 0, "name is NUL-terminated");
    const name = buf.toString("utf8", off + 110, nameEnd - 1);
    const dataOff = (nameEnd + 3) & ~3;
    const rec: Rec = {
      offset: off,
      ino: f(0),
      mode: f(1),
      uid: f(2),
      gid: f(3),
      nlink: f(4),
      mtime: f(5),
      rdevmajor: f(9),
      rdevminor: f(10),
      name,
      data: buf.subarray(dataOff, dataOff + filesize),
    };
    recs.push(rec);
    off = (dataOff + filesize + 3) & ~3;
    if (name === "TRAILER!!!") break;
    assert.ok(off < buf.length, "archive ends with a trailer");
  }
  assert.equal(off, buf.length, "nothing after the trailer's padding");
  return recs;
}

const work = mkdtempSync(join(tmpdir(), "mkinitrd-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** A small userland-shaped tree: nested dirs, an executable, an empty file, a symlink. */
function sampleTree(): string {
  const d = mkdtempSync(join(work, "tree-"));
  mkdirSync(join(d, "bin"));
  mkdirSync(join(d, "etc/init.d"), { recursive: true });
  chmodSync(join(d, "etc/init.d"), 0o750);
  mkdirSync(join(d, "dev"));
  writeFileSync(join(d, "init"), "#!/bin/sh\necho hello\n");
  chmodSync(join(d, "init"), 0o755);
  writeFileSync(join(d, "bin/busybox"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]));
  chmodSync(join(d, "bin/busybox"), 0o4755);
  symlinkSync("busybox", join(d, "bin/sh"));
  writeFileSync(join(d, "etc/empty"), "");
  chmodSync(join(d, "etc/empty"), 0o600);
  writeFileSync(join(d, "etc/init.d/rcS"), "x".repeat(4097));
  return d;
}

describe("mkinitrd: newc cpio initrd", () => {
  it("packs a directory parents-first with modes, sizes, data and a trailer that parse back", () => {
    const cpio = Buffer.from(mkinitrd(sampleTree(), { mtime: 1_100_000_000 }));
    const recs = parseNewc(cpio);
    assert.deepEqual(
      recs.map((r) => r.name),
      [
        "bin",
        "bin/busybox",
        "bin/sh",
        "dev",
        "etc",
        "etc/empty",
        "etc/init.d",
        "etc/init.d/rcS",
        "init",
        "TRAILER!!!",
      ],
    );
    const by = new Map(recs.map((r) => [r.name, r]));
    assert.equal(by.get("etc/init.d")!.mode, 0o040750, "directory type and permissions kept");
    assert.equal(by.get("bin")!.nlink, 2);
    assert.equal(by.get("init")!.mode, 0o100755);
    assert.equal(by.get("init")!.data.toString(), "#!/bin/sh\necho hello\n");
    assert.equal(by.get("bin/busybox")!.mode, 0o104755, "setuid bit kept");
    assert.deepEqual([...by.get("bin/busybox")!.data], [0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]);
    assert.equal(by.get("bin/sh")!.mode, 0o120777);
    assert.equal(by.get("bin/sh")!.data.toString(), "busybox", "symlink target is the data");
    assert.equal(by.get("etc/empty")!.mode, 0o100600);
    assert.equal(by.get("etc/empty")!.data.length, 0);
    assert.equal(by.get("etc/init.d/rcS")!.data.length, 4097);
    for (const r of recs.slice(0, -1)) {
      assert.equal(r.uid, 0, `${r.name} owned by root`);
      assert.equal(r.gid, 0);
      assert.equal(r.mtime, 1_100_000_000);
      assert.equal(r.nlink, (r.mode & 0o170000) === 0o040000 ? 2 : 1);
    }
    const inos = recs.slice(0, -1).map((r) => r.ino);
    assert.equal(new Set(inos).size, inos.length, "inode numbers are distinct");
    assert.ok(!inos.includes(0));
    const trailer = recs.at(-1)!;
    assert.equal(trailer.data.length, 0);
    assert.equal(trailer.nlink, 1);
  });

  it("gzip output decompresses to the same archive, and a fixed mtime gives identical bytes", () => {
    const tree = sampleTree();
    const plain = mkinitrd(tree, { mtime: 7 });
    const gz = mkinitrd(tree, { mtime: 7, gzip: true });
    assert.deepEqual([...gz.subarray(0, 2)], [0x1f, 0x8b]);
    assert.ok(gz.length < plain.length);
    assert.deepEqual(gunzipSync(gz), Buffer.from(plain));
    assert.deepEqual(mkinitrd(tree, { mtime: 7 }), plain);
  });

  it("--dev adds device nodes an unprivileged user cannot create, replacing a same-named file", () => {
    const tree = sampleTree();
    writeFileSync(join(tree, "dev/console"), "placeholder");
    const recs = parseNewc(
      Buffer.from(mkinitrd(tree, { mtime: 1, devs: ["/dev/console,c,5,1", "dev/hda,b,3,0,0660"] })),
    );
    const consoles = recs.filter((r) => r.name === "dev/console");
    assert.equal(consoles.length, 1);
    assert.equal(consoles[0].mode, 0o020600);
    assert.equal(consoles[0].rdevmajor, 5);
    assert.equal(consoles[0].rdevminor, 1);
    assert.equal(consoles[0].data.length, 0);
    const hda = recs.find((r) => r.name === "dev/hda")!;
    assert.equal(hda.mode, 0o060660);
    assert.equal(hda.rdevmajor, 3);
    assert.ok(
      recs.findIndex((r) => r.name === "dev") < recs.findIndex((r) => r.name === "dev/console"),
      "the parent directory comes first",
    );
  });

  it("rejects bad device specs, a node outside the tree's directories, and a missing directory", () => {
    const tree = sampleTree();
    for (const bad of ["dev/x", "dev/x,p,1,2", "dev/x,c,one,2", "dev/x,c,1,2,999", "dev/x,c,4096,0"]) {
      assert.throws(() => mkinitrd(tree, { devs: [bad] }), MkinitrdError, bad);
    }
    assert.throws(() => mkinitrd(tree, { devs: ["nodir/console,c,5,1"] }), /directory nodir is not in/);
    assert.throws(() => mkinitrd(join(tree, "nope")), /not a directory/);
    assert.throws(() => mkinitrd(join(tree, "init")), /not a directory/);
  });

  it("packCpio refuses absolute, empty, '..' and duplicate names, and data on a directory", () => {
    const e = { mode: 0o100644, uid: 0, gid: 0, mtime: 0 };
    for (const name of ["/etc", "", "a//b", "../x", "a/../b", "TRAILER!!!"]) {
      assert.throws(() => packCpio([{ ...e, name }]), MkinitrdError, JSON.stringify(name));
    }
    assert.throws(
      () =>
        packCpio([
          { ...e, name: "a" },
          { ...e, name: "a" },
        ]),
      /twice/,
    );
    assert.throws(
      () => packCpio([{ ...e, name: "d", mode: 0o040755, data: Buffer.from("x") }]),
      /only files/,
    );
    assert.throws(() => packCpio([{ ...e, name: "s", mode: 0o140755 }]), /unsupported file type/);
    assert.throws(() => packCpio([{ ...e, name: "big", uid: 2 ** 32 }]), /does not fit/);
    // The empty archive is just the trailer.
    assert.deepEqual(
      parseNewc(Buffer.from(packCpio([]))).map((r) => r.name),
      ["TRAILER!!!"],
    );
  });

  it("the command line writes OUT, gzips for a .gz name and rejects unknown options", () => {
    const tree = sampleTree();
    const out = join(work, "initrd.cpio.gz");
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "1234";
    const write = process.stdout.write;
    process.stdout.write = () => true;
    try {
      assert.equal(main([tree, out, "--dev", "dev/console,c,5,1"]), 0);
    } finally {
      process.stdout.write = write;
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
    const recs = parseNewc(gunzipSync(readFileSync(out)));
    assert.ok(recs.some((r) => r.name === "dev/console" && r.mtime === 1234));
    assert.ok(recs.every((r) => r.name === "TRAILER!!!" || r.mtime === 1234));
    assert.throws(() => main([tree, out, "--lzma"]), /unknown option --lzma/);
    assert.throws(() => main([tree]), /usage/);
    assert.throws(() => main([tree, out, "--dev"]), /needs a value/);
  });
});
