#!/usr/bin/env node
/**
 * The `tsxen` command. Each subcommand lives in its own module exporting a register
 * function; adding one is one line in COMMANDS. Modules are imported one by one so that a
 * module that fails to load (say, mid-way through a change elsewhere in the tree) only
 * loses its own command.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { XEN_VERSION_NAME } from "../xen/version.js";
import { fitHelp } from "./help.js";

type Register = (program: Command) => void;

const COMMANDS: [string, () => Promise<Register>][] = [
  ["run", () => import("./run.js").then((m) => m.registerRun)],
  ["cpu-test", () => import("./cpu-test.js").then((m) => m.registerCpuTest)],
  ["daemon", () => import("../daemon/cli.js").then((m) => m.registerDaemon)],
  ["xm", () => import("./xm.js").then((m) => m.registerXm)],
  ["web", () => import("./web.js").then((m) => m.registerWeb)],
  // Last: its script lists the commands registered before it.
  ["completion", () => import("./completion.js").then((m) => m.registerCompletion)],
];

const program = new Command();
program.name("tsxen").description("a Xen-compatible hypervisor on its own x86-32 CPU");
fitHelp(program);
// An unknown command points at the list (after commander's own sentence and suggestion). One
// handler for all: commander's subcommands share their parent's output settings object, so
// the command being parsed is followed (argv[2] need not be it: `tsxen -- xm frob`).
let parsing = "";
program.hook("preSubcommand", (_program, sub) => {
  parsing = sub.name();
});
program.configureOutput({
  outputError: (str, write) =>
    write(
      /^error: unknown command/.test(str)
        ? `${str}(\`${parsing === "xm" ? "tsxen xm help" : "tsxen --help"}\` lists the commands)\n`
        : str,
    ),
});
program.version(
  `tsxen ${(JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version}: Xen ${XEN_VERSION_NAME} (the interface of March 2005; July 2005's per domain)`,
  "-V, --version",
);
// A command named on the command line is loaded alone: loading the others' modules was a
// tenth of the first command's time (issue 15). Help, --version and completion load them all.
const asked = COMMANDS.find(([n]) => n === process.argv[2] && n !== "completion")?.[0];
for (const [name, load] of COMMANDS) {
  if (asked !== undefined && name !== asked) continue;
  try {
    (await load())(program);
  } catch (e) {
    process.stderr.write(`tsxen: command ${name} unavailable: ${(e as Error).message}\n`);
  }
}
await program.parseAsync(process.argv);
