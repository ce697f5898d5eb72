/**
 * An ext2 root filesystem image of the XenLinux userland for `root=/dev/sda1`, built as
 * docs/real-guests.md builds rootfs.img but with no root and no fakeroot: e2fsprogs' `mke2fs -d`
 * copies the directory, `debugfs -w` adds the device nodes Linux needs before /init runs.
 */
import { spawnSync } from "node:child_process";

/** The nodes of the recipe (path, type, major, minor, mode). */
const NODES: [string, "c" | "b", number, number, number][] = [
  ["console", "c", 5, 1, 0o600],
  ["tty", "c", 5, 0, 0o666],
  ["null", "c", 1, 3, 0o666],
  ["zero", "c", 1, 5, 0o666],
  ["random", "c", 1, 8, 0o666],
  ["urandom", "c", 1, 9, 0o666],
  ["tty1", "c", 4, 1, 0o600],
  ["ttyS0", "c", 4, 64, 0o600],
  ["sda", "b", 8, 0, 0o600],
  ["sda1", "b", 8, 1, 0o600],
  ["sdb", "b", 8, 16, 0o600],
  ["sdc", "b", 8, 32, 0o600],
];

function tool(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { input, encoding: "latin1", timeout: 60_000 });
  if (r.error !== undefined) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Why images cannot be made here (e2fsprogs missing), or false. */
export function rootImageUnavailable(): string | false {
  for (const t of ["mke2fs", "debugfs"]) {
    const r = spawnSync(t, ["-V"], { encoding: "latin1" });
    if (r.error !== undefined) return `${t} not found (Debian package e2fsprogs)`;
  }
  return false;
}

/** Writes an ext2 image of sizeMiB at path holding the userland directory and /dev's nodes. */
export function makeRootImage(userland: string, path: string, sizeMiB: number): void {
  tool("mke2fs", ["-q", "-F", "-t", "ext2", "-L", "tsxenroot", "-d", userland, path, `${sizeMiB}M`]);
  const cmds = ["cd /dev"];
  for (const [name, type, major, minor, mode] of NODES) {
    cmds.push(`mknod ${name} ${type} ${major} ${minor}`);
    const fmt = type === "c" ? 0o20000 : 0o60000;
    cmds.push(`sif ${name} mode 0${(fmt | mode).toString(8)}`, `sif ${name} uid 0`, `sif ${name} gid 0`);
  }
  tool("debugfs", ["-w", "-f", "-", path], `${cmds.join("\n")}\n`);
}

/** A file's contents in an ext2 image, read on the host with debugfs (no mount). */
export function readImageFile(image: string, path: string): string {
  return tool("debugfs", ["-R", `cat ${path}`, image]);
}
