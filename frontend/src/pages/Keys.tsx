import { KeyManager } from "../components/KeyManager";
import { Card, PageHeader } from "../components/ui";
import { useSession } from "../lib/session";
import type { Scope } from "../lib/types";

export function Keys() {
  const s = useSession();
  const userId = s.userId ?? "";
  // A key may make keys with its own scopes only (no escalation); admins with any.
  const scopes: Scope[] = s.roles.includes("admin")
    ? ["buy", "sell", "admin"]
    : (s.me?.key?.scopes ?? ["buy", "sell"]).filter((x) => x !== "admin");
  return (
    <>
      <PageHeader
        title="API keys"
        subtitle={`Keys of ${userId}. A key's token is shown once, when it is made; revoking a key takes effect at once, also for agents connected with it.`}
      />
      <Card title="Your keys" labelledBy="keys-title">
        <KeyManager userId={userId} scopes={scopes} />
      </Card>
    </>
  );
}
