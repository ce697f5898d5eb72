/**
 * Packs a directory into an initrd: a "newc" cpio archive (the format Linux 2.6's initramfs
 * unpacker reads from the start_info module), optionally gzip-compressed. No root is needed:
 * every entry is owned by root in the archive, and device nodes (which an unprivileged user
 * cannot create in the directory) are added with --dev.
 *
 *   node dist/scripts/mkinitrd.js DIR OUT [--gzip] [--dev PATH,c|b,MAJOR,MINOR[,MODE]]...
 *
 * OUT ending in .gz implies --gzip. SOURCE_DATE_EPOCH, when set, is every entry's mtime, so
 * the same directory always gives the same bytes. Recipe: docs/real-guests.md.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** File-type bits of st_mode (POSIX), as cpio stores them. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** The newc magic; the header is this plus 13 fields of 8 hex digits. */
export const NEWC_MAGIC = "070701";
export const NEWC_HEADER_SIZE = 110;
export const TRAILER_NAME = "TRAILER!!!";

export class MkinitrdError extends Error {}

export interface CpioEntry {
  /** Path inside the archive, relative, with "/" separators ("bin/sh", "dev"). */
  name: string;
  /** st_mode: file type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** Contents of a regular file, or a symlink's target. */
  data?: Uint8Array;
  /** Device number of a character or block node. */
  rdevMajor?: number;
  rdevMinor?: number;
}

const U32_MAX = 0xffffffff;

function hex8(v: number, what: string, name: string): string {
  if (!Number.isInteger(v) || v < 0 || v > U32_MAX) {
    throw new MkinitrdError(`${name}: ${what} ${v} does not fit a cpio header field`);
  }
  return v.toString(16).padStart(8, "0");
}

/** Bytes that bring n up to a multiple of 4 (newc aligns names and data to 4). */
function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/**
 * One newc record: the header, the NUL-terminated name padded so that header and name end on
 * a 4-byte boundary, then the data padded the same way.
 */
function record(e: CpioEntry, ino: number): Uint8Array[] {
  const name = Buffer.from(`${e.name}\0`, "utf8");
  const data = e.data ?? new Uint8Array(0);
  const type = e.mode & S_IFMT;
  const nlink = type === S_IFDIR ? 2 : 1;
  const fields = [
    ino,
    e.mode,
    e.uid,
    e.gid,
    nlink,
    e.mtime,
    data.length,
    0, // devmajor/devminor: the device holding the file; the kernel only uses it for hard links
    0,
    e.rdevMajor ?? 0,
    e.rdevMinor ?? 0,
    name.length,
    0, // check: only the "070702" format has a checksum
  ];
  const labels = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "size",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
  ];
  const header = NEWC_MAGIC + fields.map((v, i) => hex8(v, labels[i], e.name)).join("");
  return [
    Buffer.from(header, "latin1"),
    name,
    new Uint8Array(pad4(NEWC_HEADER_SIZE + name.length)),
    data,
    new Uint8Array(pad4(data.length)),
  ];
}

function checkEntry(e: CpioEntry): void {
  if (e.name === "" || e.name.startsWith("/") || e.name.split("/").some((p) => p === "" || p === "..")) {
    throw new MkinitrdError(`bad archive path ${JSON.stringify(e.name)}: relative, no empty or ".." parts`);
  }
  if (e.name === TRAILER_NAME) throw new MkinitrdError(`${TRAILER_NAME} is the archive's end marker`);
  const type = e.mode & S_IFMT;
  if (![S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK].includes(type)) {
    throw new MkinitrdError(`${e.name}: unsupported file type 0o${type.toString(8)}`);
  }
  if (
    (type === S_IFDIR || type === S_IFCHR || type === S_IFBLK) &&
    e.data !== undefined &&
    e.data.length > 0
  ) {
    throw new MkinitrdError(`${e.name}: only files and symlinks have data`);
  }
}

/** Packs entries, in order, into a newc archive ending with its trailer. */
export function packCpio(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    checkEntry(e);
    if (seen.has(e.name)) throw new MkinitrdError(`${e.name}: twice in the archive`);
    seen.add(e.name);
    parts.push(...record(e, i + 1));
  });
  parts.push(...record({ name: TRAILER_NAME, mode: 0, uid: 0, gid: 0, mtime: 0 }, 0));
  return Buffer.concat(parts);
}

export interface DirectoryOptions {
  /** Every entry's mtime; the files' own mtimes when absent. */
  mtime?: number;
}

/**
 * The entries for everything under dir, parents before children, names sorted so the archive
 * does not depend on readdir order. Owners become root: the guest boots as root, and an
 * unprivileged builder's uid means nothing inside it.
 */
export function entriesFromDirectory(dir: string, opts: DirectoryOptions = {}): CpioEntry[] {
  const top = lstatSync(dir, { throwIfNoEntry: false });
  if (top === undefined || !top.isDirectory()) throw new MkinitrdError(`${dir}: not a directory`);
  const out: CpioEntry[] = [];
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const name = rel === "" ? n : `${rel}/${n}`;
      const path = join(dir, name);
      const st = lstatSync(path);
      const base = {
        name,
        mode: st.mode & 0o177777,
        uid: 0,
        gid: 0,
        mtime: opts.mtime ?? Math.floor(st.mtimeMs / 1000),
      };
      if (st.isDirectory()) {
        out.push(base);
        walk(name);
      } else if (st.isFile()) {
        out.push({ ...base, data: readFileSync(path) });
      } else if (st.isSymbolicLink()) {
        out.push({ ...base, data: Buffer.from(readlinkSync(path), "utf8") });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        // Linux's dev_t encoding: major in bits 8-19, minor in bits 0-7 and 20-31.
        const rdev = st.rdev;
        out.push({
          ...base,
          rdevMajor: (rdev >> 8) & 0xfff,
          rdevMinor: (rdev & 0xff) | ((rdev >> 12) & ~0xff),
        });
      } else {
        throw new MkinitrdError(`${path}: sockets and FIFOs are not packed`);
      }
    }
  };
  walk("");
  return out;
}

/** Parses a --dev argument: PATH,c|b,MAJOR,MINOR[,MODE] (MODE in octal, 0600 by default). */
export function parseDevSpec(spec: string, mtime: number): CpioEntry {
  const parts = spec.split(",");
  const num = (s: string | undefined, radix: number, what: string, max: number): number => {
    const re = radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
    if (s === undefined || !re.test(s) || Number.parseInt(s, radix) > max) {
      throw new MkinitrdError(`--dev ${spec}: bad ${what} ${JSON.stringify(s ?? "")}`);
    }
    return Number.parseInt(s, radix);
  };
  if (parts.length < 4 || parts.length > 5) {
    throw new MkinitrdError(`--dev ${spec}: expected PATH,c|b,MAJOR,MINOR[,MODE]`);
  }
  const [path, kind] = parts;
  if (kind !== "c" && kind !== "b") throw new MkinitrdError(`--dev ${spec}: type must be c or b`);
  return {
    name: path.replace(/^\/+/, ""),
    mode: (kind === "c" ? S_IFCHR : S_IFBLK) | num(parts[4] ?? "600", 8, "mode", 0o7777),
    uid: 0,
    gid: 0,
    mtime,
    rdevMajor: num(parts[2], 10, "major", 0xfff),
    rdevMinor: num(parts[3], 10, "minor", 0xfffff),
  };
}

export interface MkinitrdOptions {
  gzip?: boolean;
  /** Device nodes to add (parseDevSpec's format); each replaces a same-named entry. */
  devs?: readonly string[];
  mtime?: number;
}

/** The initrd for dir: the directory's entries plus the device nodes, optionally gzipped. */
export function mkinitrd(dir: string, opts: MkinitrdOptions = {}): Uint8Array {
  const mtime = opts.mtime ?? Math.floor(Date.now() / 1000);
  const nodes = (opts.devs ?? []).map((s) => parseDevSpec(s, mtime));
  const names = new Set(nodes.map((n) => n.name));
  const entries = entriesFromDirectory(dir, { mtime: opts.mtime }).filter((e) => !names.has(e.name));
  for (const n of nodes) {
    const parent = n.name.includes("/") ? n.name.slice(0, n.name.lastIndexOf("/")) : "";
    if (parent !== "" && !entries.some((e) => e.name === parent && (e.mode & S_IFMT) === S_IFDIR)) {
      throw new MkinitrdError(`--dev ${n.name}: directory ${parent} is not in ${dir}`);
    }
  }
  const cpio = packCpio([...entries, ...nodes]);
  return opts.gzip ? gzipSync(cpio, { level: 9 }) : cpio;
}

const USAGE = "usage: mkinitrd DIR OUT [--gzip] [--dev PATH,c|b,MAJOR,MINOR[,MODE]]...";

/** Runs the command line (argv without node and the script); returns the exit status. */
export function main(argv: readonly string[]): number {
  const positional: string[] = [];
  const devs: string[] = [];
  let gzip = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--gzip") gzip = true;
    else if (a === "--dev") {
      const v = argv[++i];
      if (v === undefined) throw new MkinitrdError("--dev needs a value");
      devs.push(v);
    } else if (a.startsWith("--")) throw new MkinitrdError(`unknown option ${a}\n${USAGE}`);
    else positional.push(a);
  }
  if (positional.length !== 2) throw new MkinitrdError(USAGE);
  const [dir, out] = positional;
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && !/^[0-9]+$/.test(epoch)) {
    throw new MkinitrdError(`SOURCE_DATE_EPOCH=${epoch}: not a number of seconds`);
  }
  const img = mkinitrd(dir, {
    gzip: gzip || out.endsWith(".gz"),
    devs,
    mtime: epoch === undefined ? undefined : Number(epoch),
  });
  writeFileSync(out, img);
  process.stdout.write(`${out}: ${img.length} bytes\n`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof MkinitrdError) && !(e as NodeJS.ErrnoException).code) throw e;
    process.stderr.write(`mkinitrd: ${(e as Error).message}\n`);
    process.exitCode = 2;
  }
}
