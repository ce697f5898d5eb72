/**
 * XenLinux 2.6.11 and the outside world through passt (src/tools/backends/passt.ts), gated as
 * the other XenLinux suites are (TSXEN_XENLINUX, _USERLAND, _LTEST; docs/real-guests.md) and
 * on passt being installed. A tsxend with `uplink: xenbr0` and a forward of a host port to the
 * guest's port 80 runs one Linux with a vif on xenbr0: it takes its address by DHCP (BusyBox
 * udhcpc), fetches a page with wget from a server this test runs on 127.0.0.1 (the gateway
 * 10.0.2.2 is the host's loopback), reaches tsxend itself the same way, and serves a page with
 * BusyBox httpd that the test fetches through the forward. Traffic goes only to this machine;
 * every wait is bounded.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { get, type Server as HttpServer, createServer as httpServer } from "node:http";
import { createServer } from "node:net";
import { after, before, it } from "node:test";
import { parseUplink, UPLINK_NET } from "../src/tools/backends/passt.js";
import { parseDomainConfig } from "../src/tools/config.js";
import { startDaemon } from "./helpers/daemon.js";
import { DomainShell, pidGone, until } from "./helpers/domain-shell.js";
import { suiteOrSkip } from "./helpers/suite.js";
import { PROMPT, xenLinuxFiles, xenLinuxInitrd } from "./helpers/xenlinux.js";

const files = xenLinuxFiles();
const skip =
  typeof files === "string"
    ? files
    : spawnSync(process.env.TSXEN_PASST || "passt", ["--version"], { stdio: "ignore" }).error !== undefined
      ? "passt is not installed (Debian package passt)"
      : false;

const MAC = "00:16:3e:00:00:21";

/** A free TCP port on 127.0.0.1 (for passt to listen on). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** GET a URL on this machine: [status, body], or the error's message; one try, bounded. */
function fetchOnce(url: string, ms: number): Promise<[number, string] | string> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: ms }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d.toString();
      });
      res.on("end", () => resolve([res.statusCode ?? 0, body]));
      res.on("error", (e) => resolve(e.message));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${ms} ms`)));
    req.on("error", (e) => resolve(e.message));
  });
}

suiteOrSkip("XenLinux 2.6.11 and the outside world through passt (tsxend --uplink xenbr0)", skip, () => {
  type D = Awaited<ReturnType<typeof startDaemon>>;
  let d: D;
  let shell: DomainShell;
  let web: HttpServer;
  let webPort = 0;
  let fwdPort = 0;
  const requests: string[] = [];

  before(async () => {
    if (typeof files === "string") return;
    // The host's server, on loopback only: the guest reaches it as the gateway.
    web = httpServer((req, res) => {
      requests.push(`${req.socket.remoteAddress} ${req.url}`);
      res.end(`host-page-${req.url === "/hello" ? 42 : 0}\n`);
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    webPort = (web.address() as { port: number }).port;
    fwdPort = await freePort();
    d = await startDaemon({
      machineMemoryMiB: 256,
      // Guest time follows the wall clock: passt answers in wall-clock time.
      pacing: "realtime",
      uplink: parseUplink("xenbr0", [`tcp:${fwdPort}:80`]),
    });
    const cfg = parseDomainConfig(
      "/nonexistent/up1.cfg",
      [`kernel = "vmlinux"`, `memory = 64`, `name = "up1"`, `vif = ['mac=${MAC}, bridge=xenbr0']`].join("\n"),
    );
    d.daemon.manager.create(cfg, { kernel: readFileSync(files.kernel), ramdisk: xenLinuxInitrd(files) });
    shell = new DomainShell(d.daemon.manager, "up1");
  });
  after(async () => {
    await d?.daemon.close();
    web?.close();
  });

  it("takes its address by DHCP from passt (udhcpc)", async () => {
    await until("the prompt", () => shell.console.includes(PROMPT), 300_000);
    const out = await shell.ask(
      "udhcpc -i eth0 -n -q -t 5 -T 3; echo DHCP-$((1+1))-$?",
      "DHCP-2-\\d+",
      120_000,
    );
    assert.match(out, /^DHCP-2-0\r?$/m, out);
    assert.match(
      out,
      new RegExp(`Setting IP address ${UPLINK_NET.guest.replaceAll(".", "\\.")} on eth0`),
      out,
    );
    const route = await shell.ask("route -n; echo ROUTE-$((1+1))", "ROUTE-2");
    assert.match(
      route,
      new RegExp(`^0\\.0\\.0\\.0\\s+${UPLINK_NET.gateway.replaceAll(".", "\\.")}\\s`, "m"),
      route,
    );
    assert.equal(d.daemon.uplink?.port.owner, MAC);
  });

  it("fetches a page with wget from a server on the host's 127.0.0.1, through the gateway", async () => {
    const out = await shell.ask(
      `wget -q -T 10 -O - http://${UPLINK_NET.gateway}:${webPort}/hello; echo WGET-$((1+1))-$?`,
      "WGET-2-\\d+",
    );
    assert.match(out, /^host-page-42\r?$/m, out);
    assert.match(out, /^WGET-2-0\r?$/m, out);
    // passt made the connection from the host's loopback.
    assert.deepEqual(requests, ["127.0.0.1 /hello"]);
  });

  it("reaches tsxend itself at the gateway (an HTTP answer from its API)", async () => {
    const out = await shell.ask(
      `wget -T 10 -O /dev/null http://${UPLINK_NET.gateway}:${d.port}/api/v1/domains 2>&1; echo API-$((1+1))-$?`,
      "API-2-\\d+",
    );
    // No token: tsxend refuses, but that refusal is its answer over HTTP.
    assert.match(out, /server returned error: HTTP\/1\.[01] 4\d\d/, out);
  });

  it("the host reaches the guest's httpd through the forward", async () => {
    await shell.ask(
      "mkdir -p /tmp/www && echo guest-page-$((6*7)) > /tmp/www/index.html && httpd -p 80 -h /tmp/www; echo HTTPD-$((1+1))",
      "HTTPD-2",
    );
    let got: [number, string] | string = "not tried";
    for (let i = 0; i < 5; i++) {
      got = await fetchOnce(`http://127.0.0.1:${fwdPort}/index.html`, 10_000);
      if (typeof got !== "string") break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.deepEqual(got, [200, "guest-page-42\n"]);
    const stats = d.daemon.uplink?.stats;
    assert.ok(stats !== undefined && stats.toPasst > 0 && stats.fromPasst > 0, JSON.stringify(stats));
    assert.equal(stats?.badFrames, 0);
  });

  it("tsxend's close ends passt", async () => {
    const pid = d.daemon.uplink?.pid;
    assert.ok(pid !== undefined);
    await d.daemon.close();
    await until("passt to exit", () => pidGone(pid), 5000);
  });
});
