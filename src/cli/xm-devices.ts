/**
 * xm's virtual-device commands (the 2005 manual's block-attach, block-detach, block-list, and
 * network-attach, network-detach, network-list),
 * talking to tsxend's device endpoints (src/daemon/devices.ts).
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import { type Connection, request, XmError } from "./xm-client.js";

interface BlockRow {
  dev: string;
  vdev: number;
  path: string;
  mode: string;
  sectors: number;
  state: string;
  okay: number;
  errors: number;
}

/** xm block-list's table: one row per virtual disk. */
export function formatBlockList(rows: BlockRow[]): string {
  const lines = [
    `${"Dev".padEnd(6)}${"Vdev".padEnd(7)}${"Mode".padEnd(5)}${"Size(MiB)".padStart(10)}  ${"State".padEnd(13)}${"Reqs".padStart(7)}${"Errs".padStart(6)}  Image`,
  ];
  for (const r of rows) {
    lines.push(
      `${r.dev.padEnd(6)}${`0x${r.vdev.toString(16)}`.padEnd(7)}${r.mode.padEnd(5)}${(r.sectors / 2048).toFixed(1).padStart(10)}  ${r.state.padEnd(13)}${String(r.okay + r.errors).padStart(7)}${String(r.errors).padStart(6)}  ${r.path}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

interface VifRow {
  handle: number;
  vif: string;
  mac: string;
  bridge: string;
  state: string;
  txPackets: number;
  txErrors: number;
  rxPackets: number;
  rxDropped: number;
}

/** xm network-list's table: one row per vif. */
export function formatNetworkList(rows: VifRow[]): string {
  const lines = [
    `${"Idx".padEnd(4)}${"Vif".padEnd(10)}${"MAC".padEnd(19)}${"Bridge".padEnd(10)}${"State".padEnd(13)}${"TX".padStart(8)}${"TXerr".padStart(7)}${"RX".padStart(8)}${"RXdrop".padStart(8)}`,
  ];
  for (const r of rows)
    lines.push(
      `${String(r.handle).padEnd(4)}${r.vif.padEnd(10)}${r.mac.padEnd(19)}${r.bridge.padEnd(10)}${r.state.padEnd(13)}${String(r.txPackets).padStart(8)}${String(r.txErrors).padStart(7)}${String(r.rxPackets).padStart(8)}${String(r.rxDropped).padStart(8)}`,
    );
  return `${lines.join("\n")}\n`;
}

/** Registers the device commands on xm (its connection and its error-reporting wrapper). */
export function registerDeviceCommands(
  xm: Command,
  conn: () => Connection,
  run: <A extends unknown[]>(fn: (...args: A) => Promise<void>) => (...args: A) => Promise<void>,
): void {
  const enc = encodeURIComponent;
  xm.command("block-attach")
    .description("give a running domain a virtual disk: block-attach DOMAIN file:IMAGE DEV MODE (r or w)")
    .argument("<domain>", "domain name or id")
    .argument("<image>", "the disk image, file:/path/to/image (as in a configuration's disk = [...])")
    .argument("<dev>", "the device the guest sees: sda1, sdb, hda...")
    .argument("<mode>", "r (read-only) or w (read-write); r! or w! share an image another domain has")
    .action(
      run(async (dom: string, image: string, dev: string, mode: string) => {
        if (!image.startsWith("file:"))
          throw new XmError(`the image must be given as file:/path/to/image, not "${image}"`);
        const uname = `file:${resolve(image.slice("file:".length))}`;
        const r = await request<{ devices: BlockRow[] }>(
          conn(),
          "POST",
          `/domains/${enc(dom)}/block-attach`,
          {
            uname,
            dev,
            mode,
          },
        );
        process.stdout.write(formatBlockList(r.devices));
      }),
    );

  xm.command("block-detach")
    .description("take a virtual disk away from a running domain")
    .argument("<domain>", "domain name or id")
    .argument("<dev>", "the device: sdb, hda1... or its number (0x810)")
    .action(
      run(async (dom: string, dev: string) => {
        await request(conn(), "POST", `/domains/${enc(dom)}/block-detach`, { dev });
      }),
    );

  xm.command("network-attach")
    .description("give a running domain a virtual network interface")
    .argument("<domain>", "domain name or id")
    .argument("[settings...]", "mac=00:16:3e:xx:xx:xx bridge=xenbr0 (both optional)")
    .action(
      run(async (dom: string, settings: string[]) => {
        const r = await request<{ devices: VifRow[] }>(
          conn(),
          "POST",
          `/domains/${enc(dom)}/network-attach`,
          {
            spec: settings.join(","),
          },
        );
        process.stdout.write(formatNetworkList(r.devices));
      }),
    );

  xm.command("network-detach")
    .description("take a virtual network interface away from a running domain")
    .argument("<domain>", "domain name or id")
    .argument("<vif>", "the interface's index (0, 1...) or MAC")
    .action(
      run(async (dom: string, vif: string) => {
        await request(conn(), "POST", `/domains/${enc(dom)}/network-detach`, { vif });
      }),
    );

  xm.command("network-list")
    .description("list a domain's virtual network interfaces")
    .argument("<domain>", "domain name or id")
    .option("--json", "as JSON")
    .action(
      run(async (dom: string, o: { json?: boolean }) => {
        const r = await request<{ devices: VifRow[] }>(conn(), "GET", `/domains/${enc(dom)}/network`);
        process.stdout.write(
          o.json ? `${JSON.stringify(r.devices, null, 2)}\n` : formatNetworkList(r.devices),
        );
      }),
    );

  xm.command("block-list")
    .description("list a domain's virtual disks")
    .argument("<domain>", "domain name or id")
    .option("--json", "as JSON")
    .action(
      run(async (dom: string, o: { json?: boolean }) => {
        const r = await request<{ devices: BlockRow[] }>(conn(), "GET", `/domains/${enc(dom)}/block`);
        process.stdout.write(o.json ? `${JSON.stringify(r.devices, null, 2)}\n` : formatBlockList(r.devices));
      }),
    );
}
