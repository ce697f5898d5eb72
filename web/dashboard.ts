/**
 * tsxend's dashboard (web/dashboard.html, served by the daemon at /): the host, the domains
 * with their actions (console, pause/unpause, shutdown, reboot, destroy), a domain created
 * from a configuration (with a kernel and an initrd uploaded from the browser, or the
 * daemon's files), and Xen's console ring. Everything goes through the daemon's API
 * (docs/api.md), as xm's requests do; the console is the same WebSocket xm console uses.
 */
import { Terminal } from "@xterm/xterm";

interface DomainInfo {
  id: number;
  name: string;
  memKiB: number;
  cpu: number;
  state: string;
  cpuTimeNs: number;
  abi: string;
}

const API = "/api/v1";
const REFRESH_MS = 1500;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const term = new Terminal({ convertEol: true, cols: 90, rows: 24, fontSize: 13 });
term.open($<HTMLDivElement>("terminal"));
const encoder = new TextEncoder();

/**
 * tsxend's token: the URL it printed at start carries it (?token=); the page keeps it for
 * this origin (localStorage: other tabs and later visits need it too) and takes it out of
 * the address bar, so it stays out of history and screenshots.
 */
const TOKEN_KEY = "tsxen-token";
const given = new URL(location.href);
if (given.searchParams.has("token")) {
  localStorage.setItem(TOKEN_KEY, given.searchParams.get("token") ?? "");
  given.searchParams.delete("token");
  history.replaceState(null, "", given.pathname + given.search + given.hash);
}
let token = localStorage.getItem(TOKEN_KEY) ?? "";
let consoleSocket: WebSocket | null = null;
let consoleDomain = -1;

function say(text: string, kind: "" | "error" | "ok" = ""): void {
  const m = $<HTMLDivElement>("message");
  m.textContent = text;
  m.className = kind;
}

/** Calls the API; resolves with the JSON answer, rejects with the daemon's sentence. */
async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token !== "") headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) $<HTMLFormElement>("auth").style.display = "block";
  const text = await r.text();
  let answer: { error?: string } = {};
  try {
    answer = text === "" ? {} : JSON.parse(text.trim().split("\n").pop() ?? "{}");
  } catch {
    throw new Error(`tsxend answered ${r.status} with something that is not JSON`);
  }
  if (!r.ok || answer.error !== undefined) throw new Error(answer.error ?? `tsxend answered ${r.status}`);
  return answer as T;
}

function button(label: string, action: () => Promise<unknown>, done: string): HTMLButtonElement {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", () => {
    action().then(
      () => {
        say(done, "ok");
        void refresh();
      },
      (e: Error) => say(e.message, "error"),
    );
  });
  return b;
}

function row(d: DomainInfo): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset.domain = String(d.id);
  if (d.id === consoleDomain) tr.className = "selected";
  const cells = [
    String(d.id),
    d.name,
    (d.memKiB / 1024).toFixed(0),
    String(d.cpu),
    d.state,
    (d.cpuTimeNs / 1e9).toFixed(1),
    d.abi,
  ];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 0 || i === 2 || i === 3 || i === 5) td.className = "num";
    tr.append(td);
  });
  const actions = document.createElement("td");
  const dom = `/domains/${d.id}`;
  actions.append(button("Console", async () => attachConsole(d), `console of domain ${d.id} (${d.name})`));
  if (d.id !== 0) {
    const paused = d.state.includes("p");
    actions.append(
      paused
        ? button("Unpause", () => api("POST", `${dom}/unpause`, {}), `domain ${d.id} unpaused`)
        : button("Pause", () => api("POST", `${dom}/pause`, {}), `domain ${d.id} paused`),
      button("Shutdown", () => api("POST", `${dom}/shutdown`, {}), `domain ${d.id} is shutting down`),
      button("Reboot", () => api("POST", `${dom}/reboot`, {}), `domain ${d.id} is rebooting`),
      button("Destroy", () => api("DELETE", dom), `domain ${d.id} destroyed`),
      button("Migrate", () => migrate(d), `domain ${d.id} (${d.name}) migrated`),
    );
  }
  tr.append(actions);
  return tr;
}

/** xm migrate --live from the page: asks where to, then moves the domain there. */
async function migrate(d: DomainInfo): Promise<unknown> {
  const to = prompt(`Migrate ${d.name} (live) to which tsxend? host:port`, "");
  if (to === null || to.trim() === "") throw new Error("migration cancelled");
  const key = prompt(`The token of the tsxend at ${to.trim()} (its token file, or its --token)`, "");
  if (key === null) throw new Error("migration cancelled");
  say(`migrating ${d.name} to ${to.trim()}…`);
  return api("POST", `/domains/${d.id}/migrate`, {
    to: to.trim(),
    live: true,
    ...(key.trim() === "" ? {} : { token: key.trim() }),
  });
}

/**
 * Domain-0's console: dom0 here is tsxend itself, a Node.js process, not a kernel with a
 * console of its own. On a 2005 machine dom0's console was the machine's (serial line or VGA),
 * where Xen's own messages appeared: the page says so and shows those, Xen's console ring.
 */
async function explainDom0Console(): Promise<void> {
  const text = [
    "Domain-0 is tsxend itself: the toolstack (xend's part) running in Node.js, which",
    "builds and drives the other domains. It runs no guest kernel, so there is no console",
    "to attach to. On a 2005 machine dom0's console was the machine's own (serial or VGA),",
    "where Xen printed its messages; those are Xen's console ring, shown below (xm dmesg).",
    "tsxend's own log is on its stderr and in tsxend.log in its state directory (xm log).",
    "",
  ];
  term.write(`\x1b[36m${text.join("\r\n")}\x1b[0m\r\n`);
  const { text: ring } = await api<{ text: string }>("GET", "/dmesg");
  term.write(ring.replace(/\n/g, "\r\n"));
}

function attachConsole(d: DomainInfo): void {
  consoleSocket?.close();
  consoleSocket = null;
  term.reset();
  consoleDomain = d.id;
  $<HTMLSpanElement>("console-name").textContent = `of domain ${d.id} (${d.name})`;
  if (d.id === 0) {
    void explainDom0Console().catch((e: Error) => say(e.message, "error"));
    void refresh();
    return;
  }
  const q = token === "" ? "" : `?token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(
    `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}/domains/${d.id}/console${q}`,
  );
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => term.write(new Uint8Array(ev.data as ArrayBuffer));
  ws.onclose = (ev) => {
    if (consoleSocket === ws)
      term.write(`\r\n\x1b[33m[console closed${ev.reason ? `: ${ev.reason}` : ""}]\x1b[0m\r\n`);
  };
  consoleSocket = ws;
  term.focus();
  void refresh();
}

term.onData((data) => {
  if (consoleSocket?.readyState === WebSocket.OPEN) consoleSocket.send(encoder.encode(data));
});

async function refresh(): Promise<void> {
  try {
    const info = await api<Record<string, number | string>>("GET", "/info");
    $<HTMLDivElement>("host").textContent =
      `Xen ${info.xen_version} on tsxen: ${info.nr_cpus} CPU(s), ${info.free_memory} of ${info.total_memory} MiB free, scheduler ${info.scheduler}`;
    const { domains } = await api<{ domains: DomainInfo[] }>("GET", "/domains");
    $<HTMLTableSectionElement>("domains").replaceChildren(...domains.map(row));
    const { text } = await api<{ text: string }>("GET", "/dmesg");
    const pre = $<HTMLPreElement>("dmesg");
    if (pre.textContent !== text) {
      pre.textContent = text;
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) {
    $<HTMLDivElement>("host").textContent = `tsxend: ${(e as Error).message}`;
  }
}

/** A chosen file as the API takes an upload: its name and its bytes in base64. */
async function upload(id: string): Promise<{ name: string; data: string } | undefined> {
  const file = $<HTMLInputElement>(id).files?.[0];
  if (file === undefined) return undefined;
  const bytes = new Uint8Array(await file.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { name: file.name, data: btoa(text) };
}

async function createDomain(): Promise<{ domain: DomainInfo; warnings: string[] }> {
  return api<{ domain: DomainInfo; warnings: string[] }>("POST", "/domains", {
    file: "dashboard",
    config: $<HTMLTextAreaElement>("config").value,
    kernelUpload: await upload("kernel-file"),
    ramdiskUpload: await upload("ramdisk-file"),
  });
}

$<HTMLFormElement>("create").addEventListener("submit", (ev) => {
  ev.preventDefault();
  createDomain().then(
    (r) => {
      say(
        `domain ${r.domain.id} (${r.domain.name}) created${r.warnings.map((w) => `; ${w}`).join("")}`,
        "ok",
      );
      attachConsole(r.domain);
    },
    (e: Error) => say(e.message, "error"),
  );
});

$<HTMLFormElement>("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $<HTMLInputElement>("token").value;
  localStorage.setItem(TOKEN_KEY, token);
  $<HTMLFormElement>("auth").style.display = "none";
  void refresh();
});

void refresh();
setInterval(() => void refresh(), REFRESH_MS);
