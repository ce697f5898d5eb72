/**
 * `tsxen completion bash`: a bash completion script for tsxen's commands, their options and
 * (for xm commands that take one) the names of the domains a running tsxend has, which the
 * script asks `tsxen completion domains` for. `source <(tsxen completion bash)` loads it.
 */
import type { Command, Option } from "commander";
import { connection, request } from "./xm-client.js";

/** The option words of a command (short and long), and those that take a value. */
function optionWords(cmd: Command): { all: string[]; valued: string[] } {
  const all: string[] = [];
  const valued: string[] = [];
  for (const o of cmd.options as readonly Option[]) {
    const words = [o.short, o.long].filter((w): w is string => w !== undefined);
    all.push(...words);
    if (o.required || o.optional) valued.push(...words);
  }
  return { all: [...all, "--help"], valued };
}

const q = (words: string[]): string => `'${words.join(" ")}'`;

/** The script, with what is known of the program's commands written into it. */
export function bashCompletion(program: Command, self: string[]): string {
  const top = program.commands;
  const optCases: string[] = [];
  const valued = new Set<string>();
  const domainCmds: string[] = [];
  const xm = top.find((c) => c.name() === "xm");
  const add = (key: string, cmd: Command): void => {
    const w = optionWords(cmd);
    optCases.push(`    ${JSON.stringify(key)}) echo ${q(w.all)} ;;`);
    for (const v of w.valued) valued.add(v);
  };
  add("", program);
  for (const c of top) add(c.name(), c);
  for (const c of xm?.commands ?? []) {
    for (const n of [c.name(), ...c.aliases()]) {
      add(`xm ${n}`, c);
      const first = (c.registeredArguments ?? [])[0];
      if (first !== undefined && /^domains?$/.test(first.name())) domainCmds.push(n);
    }
  }
  const xmCmds = (xm?.commands ?? []).flatMap((c) => [c.name(), ...c.aliases()]);
  return `# bash completion for tsxen: source <(tsxen completion bash)
_tsxen_self=(${self.map((s) => `'${s.replace(/'/g, "'\\''")}'`).join(" ")})
_tsxen_opts() {
  case "$1" in
${optCases.join("\n")}
  esac
}
_tsxen() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local valued=${q([...valued])}
  local cmd="" sub="" npos=0 i w daemon=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ " $valued " == *" $w "* ]]; then
      [[ $w == --daemon ]] && daemon=(--daemon "\${COMP_WORDS[i+1]}")
      [[ $w == --token ]] && daemon+=(--token "\${COMP_WORDS[i+1]}")
      ((i++))
    elif [[ $w == -* ]]; then :
    elif [[ -z $cmd ]]; then cmd=$w
    elif [[ $cmd == xm && -z $sub ]]; then sub=$w
    else ((npos++))
    fi
  done
  COMPREPLY=()
  if [[ " $valued " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur")); return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_tsxen_opts "\${cmd:+$cmd}\${sub:+ $sub}") --version" -- "$cur")); return
  fi
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W ${q(top.map((c) => c.name()))} -- "$cur")); return
  fi
  if [[ $cmd == xm && -z $sub ]]; then
    COMPREPLY=($(compgen -W ${q(xmCmds)} -- "$cur")); return
  fi
  if [[ $cmd == xm && $npos == 0 && " ${domainCmds.join(" ")} " == *" $sub "* ]]; then
    COMPREPLY=($(compgen -W "$("\${_tsxen_self[@]}" completion domains "\${daemon[@]}" 2>/dev/null)" -- "$cur")); return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _tsxen tsxen
`;
}

export function registerCompletion(program: Command): void {
  const cmd = program
    .command("completion")
    .description("print a shell completion script: source <(tsxen completion bash)");
  cmd
    .command("bash")
    .description("bash: commands, options, and domain names from a running tsxend")
    .action(() => {
      process.stdout.write(bashCompletion(program, [process.execPath, process.argv[1]]));
    });
  // What the script asks for domain names: one a line, nothing (and status 0) if no tsxend answers.
  cmd
    .command("domains", { hidden: true })
    .option("--daemon <url>")
    .option("--token <secret>")
    .action(async (o: { daemon?: string; token?: string }) => {
      try {
        const r = await request<{ domains: { name: string }[] }>(connection(o), "GET", "/domains");
        process.stdout.write(r.domains.map((d) => `${d.name}\n`).join(""));
      } catch {
        // Nothing to offer.
      }
    });
}
