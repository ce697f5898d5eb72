/**
 * The page (web/index.html): boots a guest (a kernel file, and an initrd as its module) on a
 * WebMachine and shows its console in an xterm.js terminal; the keyboard goes to the guest's
 * console input (over its control interface for a XenLinux domU, as with `tsxen run`). Guest time is paced by
 * the page's clock (a guest that sleeps for a second sleeps for a second here; one that
 * computes runs flat out), in slices of guest time, about 20 ms of the page's time at once,
 * so the page stays live.
 *
 * As v86's page does, it also takes its images by URL parameters (?kernel=URL&initrd=URL&
 * cmdline=TEXT&memory=MiB&abi=2005-07, booting at once when a kernel is named) and by drag
 * and drop (an ELF dropped on the page is the kernel, any other file the initrd).
 */
import { Terminal } from "@xterm/xterm";
import { type Ending, WebMachine } from "./machine.js";

/** The bundled guest, served beside the page. */
const BUNDLED = "hello.elf";
/** Most guest time per step, and wall time per batch of steps before the page gets a turn. */
const STEP_NS = 10e6;
const BATCH_MS = 20;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const status = $<HTMLDivElement>("status");
const startButton = $<HTMLButtonElement>("start");
const stopButton = $<HTMLButtonElement>("stop");

const term = new Terminal({ convertEol: true, cols: 100, rows: 30, fontSize: 13 });
term.open($<HTMLDivElement>("terminal"));

let machine: WebMachine | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;

function show(text: string, kind: "" | "error" | "done" = ""): void {
  status.textContent = text;
  status.className = kind;
}

function finish(ending: NonNullable<Ending>): void {
  clearTimeout(timer);
  startButton.disabled = false;
  stopButton.disabled = true;
  show(ending.text, ending.ok ? "done" : "error");
}

const params = new URLSearchParams(location.search);
/** Files dropped on the page, which win over the form's. */
const dropped: { kernel?: File; ramdisk?: File } = {};

/** A file named by a URL parameter, fetched relative to the page. */
async function fetched(url: string, what: string): Promise<Uint8Array> {
  let r: Response;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch the ${what} ${url}: ${(e as Error).message}`);
  }
  if (!r.ok) throw new Error(`cannot fetch the ${what} ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function kernelImage(): Promise<{ name: string; image: Uint8Array }> {
  const file = dropped.kernel ?? $<HTMLInputElement>("kernel").files?.[0];
  if (file) return { name: file.name, image: new Uint8Array(await file.arrayBuffer()) };
  const url = params.get("kernel");
  if (url) return { name: url.replace(/^.*\//, "") || "kernel", image: await fetched(url, "kernel") };
  const r = await fetch(BUNDLED);
  if (!r.ok) throw new Error(`cannot load the bundled guest ${BUNDLED}: HTTP ${r.status}`);
  return { name: "hello", image: new Uint8Array(await r.arrayBuffer()) };
}

async function ramdiskImage(): Promise<Uint8Array | undefined> {
  const file = dropped.ramdisk ?? $<HTMLInputElement>("ramdisk").files?.[0];
  if (file) return new Uint8Array(await file.arrayBuffer());
  const url = params.get("initrd");
  return url ? fetched(url, "initrd") : undefined;
}

/** The form's memory, checked as its input's min and max say. */
function memoryMiB(): number {
  const input = $<HTMLInputElement>("memory");
  const n = Number(input.value);
  if (!/^\d+$/.test(input.value) || n < Number(input.min) || n > Number(input.max))
    throw new Error(
      `memory must be a whole number of MiB from ${input.min} to ${input.max}, not "${input.value}"`,
    );
  return n;
}

async function boot(): Promise<void> {
  startButton.disabled = true;
  term.reset();
  try {
    const memory = memoryMiB();
    const { name, image } = await kernelImage();
    machine = new WebMachine({
      image,
      ramdisk: await ramdiskImage(),
      name,
      memoryMiB: memory,
      machineMemoryMiB: 128,
      cmdline: $<HTMLInputElement>("cmdline").value,
      abi: $<HTMLSelectElement>("abi").value,
      onConsole: (bytes) => term.write(bytes),
      onLog: (line) => term.write(`\x1b[33m(XEN) ${line}\x1b[0m\n`),
    });
  } catch (e) {
    finish({ ok: false, text: (e as Error).message });
    return;
  }
  stopButton.disabled = false;
  const m = machine;
  const t0 = performance.now();
  const run = (): void => {
    const batchEnd = performance.now() + BATCH_MS;
    let ending: Ending = null;
    try {
      for (;;) {
        const wallNs = (performance.now() - t0) * 1e6;
        if (ending !== null || performance.now() >= batchEnd || m.guestNs >= wallNs) break;
        ending = m.runUntil(Math.min(m.guestNs + STEP_NS, wallNs));
        // Blocked with nothing due: only a key can wake it (time stands still meanwhile).
        if (m.waiting) break;
      }
    } catch (e) {
      ending = { ok: false, text: `tsxen failed: ${(e as Error).message}` };
    }
    if (ending !== null) {
      finish({ ok: ending.ok, text: `${ending.text} (guest time ${(m.guestNs / 1e9).toFixed(2)} s)` });
      return;
    }
    show(
      `domain ${m.domainId} ${m.waiting ? "waiting for the keyboard" : "running"}: guest time ${(m.guestNs / 1e9).toFixed(2)} s, ${(m.retired / 1e6).toFixed(1)} million instructions`,
    );
    // Ahead of the page's clock, or waiting for a key: wait; behind: go on at once.
    timer = setTimeout(run, m.waiting || m.guestNs >= (performance.now() - t0) * 1e6 ? 10 : 0);
  };
  run();
}

$<HTMLFormElement>("boot").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void boot();
});
stopButton.addEventListener("click", () => finish({ ok: false, text: "stopped" }));

// Drag and drop: the kernel (an ELF) and an initrd (anything else), then boot.
document.addEventListener("dragover", (ev) => ev.preventDefault());
document.addEventListener("drop", (ev) => {
  ev.preventDefault();
  const files = [...(ev.dataTransfer?.files ?? [])];
  void (async () => {
    for (const f of files) {
      const head = new Uint8Array(await f.slice(0, 4).arrayBuffer());
      const elf = head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
      if (elf) dropped.kernel = f;
      else dropped.ramdisk = f;
    }
    if (dropped.kernel === undefined) {
      show(`${files.map((f) => f.name).join(", ")}: kept as the initrd; drop a kernel (an ELF) to boot`);
      return;
    }
    if (startButton.disabled) finish({ ok: false, text: "stopped for the dropped kernel" });
    await boot();
  })();
});

// URL parameters fill the form; a kernel boots at once.
for (const [key, id] of [
  ["cmdline", "cmdline"],
  ["memory", "memory"],
  ["abi", "abi"],
] as const) {
  const v = params.get(key);
  if (v !== null) $<HTMLInputElement>(id).value = v;
}
if (params.get("abi") !== null && $<HTMLSelectElement>("abi").value !== params.get("abi"))
  show(`abi must be 2005-03 or 2005-07, not "${params.get("abi")}"`, "error");
else if (params.get("kernel") !== null) void boot();
const encoder = new TextEncoder();
term.onData((data) => machine?.input(encoder.encode(data)));
// For tests driving the page: the status line's text once the run has ended.
(globalThis as { tsxenStatus?: () => string }).tsxenStatus = () => status.textContent ?? "";
