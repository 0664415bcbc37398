import { KeyManager } from "../components/KeyManager";
import { Card, PageHeader } from "../components/ui";
import { useSession } from "../lib/session";

export function Keys() {
  const s = useSession();
  const userId = s.userId ?? "";
  const admin = s.roles.includes("admin");
  return (
    <>
      <PageHeader
        title="API keys"
        subtitle={`Keys of ${userId}. A key's token is shown once, when it is made; revoking a key takes effect at once, also for agents connected with it.`}
      />
      <Card title="Your keys" labelledBy="keys-title">
        <KeyManager userId={userId} scopes={admin ? ["buy", "sell", "admin"] : ["buy", "sell"]} />
      </Card>
    </>
  );
}
