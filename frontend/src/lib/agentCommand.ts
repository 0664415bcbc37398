// The command a seller runs to start an agent for their own user (agent/README.md variables;
// API.md: the agent takes its credential from AGENT_KEY, a `sell` key).

/** The agent WebSocket URL of the coordinator serving this page (`wss:` behind TLS). */
export function agentUrl(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws/agent`;
}

/** Single-quotes @v for a POSIX shell unless it is plainly safe. */
export function shQuote(v: string): string {
  return /^[A-Za-z0-9._/:@=+-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

export function agentCommand(url: string, token: string, workerId: string): string {
  return `COORDINATOR_URL=${shQuote(url)} AGENT_KEY=${shQuote(token)} WORKER_ID=${shQuote(workerId)} cacheout-agent`;
}
